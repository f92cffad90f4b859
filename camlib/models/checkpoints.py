"""The ONE folder where fine-tuned -GAP checkpoints live, so that the notebooks chain by default.

Notebook 02 (:func:`camlib.paper.gap_vs_gmp.paper_pooling_study`) writes ``<arch>_<pool>.pt`` there;
notebooks 03, 04 and 05 read ``googlenet_gap_avg.pt`` (03: every -GAP architecture found) from there
when their checkpoint parameter is left at ``None``. ``make reproduce`` runs 02 first, so a plain run
yields the -GAP rows without any parameter.

The folder: ``$CAMLIB_CHECKPOINTS`` when set, else ``build/checkpoints/`` of the checkout (beside
``camlib/``; git-ignored). README.md and data/README.md name it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CHECKPOINT_ENV", "checkpoint_dir", "checkpoint_path", "find_checkpoint", "find_gap_checkpoints"]

CHECKPOINT_ENV = "CAMLIB_CHECKPOINTS"
_DEFAULT = Path(__file__).resolve().parents[2] / "build" / "checkpoints"


def checkpoint_dir() -> Path:
    """``$CAMLIB_CHECKPOINTS`` or ``<checkout>/build/checkpoints`` (not created here)."""
    env = os.environ.get(CHECKPOINT_ENV)
    return Path(env).expanduser() if env else _DEFAULT


def checkpoint_path(arch: str, pool: str = "avg", folder: str | Path | None = None) -> Path:
    """Where the checkpoint of ``arch`` with ``pool`` is written and read: ``<folder>/<arch>_<pool>.pt``."""
    return Path(folder if folder is not None else checkpoint_dir()) / f"{arch}_{pool}.pt"


def find_checkpoint(
    arch: str, pool: str = "avg", folder: str | Path | None = None, *, quiet: bool = False
) -> Path | None:
    """:func:`checkpoint_path` when that file exists (printing which, and a warning when its fine-tuning
    did not reach its iteration budget), else None (printing where it was looked for)."""
    path = checkpoint_path(arch, pool, folder)
    if not path.is_file():
        if not quiet:
            print(f"no {arch} ({pool}) checkpoint at {path} (notebook 02's paper profile writes it there)")
        return None
    if not quiet:
        print(f"{arch} ({pool}): using the checkpoint {path}{_progress(path)}")
    return path


def find_gap_checkpoints(archs, pool: str = "avg", folder: str | Path | None = None) -> dict[str, str]:
    """``{arch: path}`` of the ``archs`` whose checkpoint :func:`find_checkpoint` finds."""
    found = {a: find_checkpoint(a, pool, folder) for a in archs}
    return {a: str(p) for a, p in found.items() if p is not None}


def _progress(path: Path) -> str:
    """`` (step S of the budget B: UNFINISHED)`` from a ``fit`` checkpoint's step and config, or ``""``."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the loader that uses it gives the clear error
        return f" (unreadable here: {type(exc).__name__})"
    if not isinstance(payload, dict) or "step" not in payload:
        return ""
    budget = (payload.get("config") or {}).get("max_iters")
    step = int(payload["step"])
    if budget and step < int(budget):
        return f" (step {step} of the budget {budget}: its fine-tuning is UNFINISHED; rerun notebook 02 to resume it)"
    return f" (step {step})"
