"""``python -m camlib.browser`` as before: the command lives in :mod:`camlib.tools.browser`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("camlib.tools.browser", run_name="__main__", alter_sys=True)
