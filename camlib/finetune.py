"""``python -m camlib.finetune`` (also under torchrun): the command lives in :mod:`camlib.tools.finetune`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("camlib.tools.finetune", run_name="__main__", alter_sys=True)
