"""Environment check run by `make setup`: torch and torchvision's compiled ops must load together."""

from __future__ import annotations

import sys


def check() -> None:
    import torch
    import torchvision

    try:
        from torchvision.ops import nms

        nms(torch.zeros(1, 4), torch.zeros(1), 0.5)
    except Exception as exc:  # pragma: no cover - exercised only on a broken install
        sys.exit(
            f"torchvision {torchvision.__version__} cannot run its compiled ops with torch "
            f"{torch.__version__} ({exc}).\nReinstall the matching pair: "
            "rm -rf .venv && make setup (the pair is pinned in constraints.txt)."
        )
    print(f"ok: torch {torch.__version__}, torchvision {torchvision.__version__}, ops import")


if __name__ == "__main__":
    check()
