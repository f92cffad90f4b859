"""``python -m camlib.run_notebooks`` as before: the command lives in :mod:`camlib.tools.run_notebooks`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("camlib.tools.run_notebooks", run_name="__main__", alter_sys=True)
