"""``python -m camlib.env`` as before: the command lives in :mod:`camlib.tools.env`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("camlib.tools.env", run_name="__main__", alter_sys=True)
