"""``python -m camlib.video`` as before: the command lives in :mod:`camlib.paper.video`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("camlib.paper.video", run_name="__main__", alter_sys=True)
