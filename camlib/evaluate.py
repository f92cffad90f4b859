"""``python -m camlib.evaluate`` as before: the command lives in :mod:`camlib.evaluation.evaluate`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("camlib.evaluation.evaluate", run_name="__main__", alter_sys=True)
