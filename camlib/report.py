"""``python -m camlib.report`` as before: the command lives in :mod:`camlib.tools.report`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("camlib.tools.report", run_name="__main__", alter_sys=True)
