"""``python -m camlib.notebook_tools`` as before: the command lives in :mod:`camlib.tools.notebook_tools`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("camlib.tools.notebook_tools", run_name="__main__", alter_sys=True)
