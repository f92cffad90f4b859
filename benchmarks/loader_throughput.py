"""Loader throughput of ``camlib.models.train.fit`` on real JPEGs: workers vs the serial loop vs a bare DataLoader.

    python benchmarks/loader_throughput.py                       # ../shared/data/imagenette/train, 320 files
    python benchmarks/loader_throughput.py --root DIR --images 640 --workers 4 --rounds 3

Three ways through the SAME files (``--images`` spread over an ILSVRC-train-layout folder), with the
paper's training transform (:func:`camlib.paper.gap_vs_gmp.imagenet_train_transform`: resize 256, random
224 crop, mirror, normalise) and a model whose cost is negligible (global pooling + one linear layer), so
that the rate is the loader's:

- ``serial``: ``fit(..., num_workers=0)``: every JPEG decoded in the training process, as before;
- ``fit_workers``: ``fit(..., num_workers=W)`` (per-sample seeded items, W worker processes);
- ``bare``: ``for x, y in DataLoader(folder, batch_size, shuffle=True, num_workers=W)``: decoding and
  collation only, no training step at all: the ceiling.

Images/s = images / wall seconds of one whole pass (worker start-up included in both worker runs). The
methods run in rotated order for ``--rounds`` rounds; the ratios are medians over rounds of the
per-round ratios (paired: load that drifts between rounds cancels), the rates the best round's. On a
shared machine only the ratios of one run are comparable; ``uptime`` is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "imagenette" / "train"


def _probe(num_classes: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, num_classes))


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "uptime unavailable"


def measure(root: Path, images: int, batch_size: int, workers: int, rounds: int) -> dict:
    """The three rates (best round) and the paired ratios (median over rounds)."""
    from camlib.models.train import TrainConfig, fit
    from camlib.paper.gap_vs_gmp import ilsvrc_train_folder, imagenet_train_transform

    folder = ilsvrc_train_folder(root, imagenet_train_transform(), expect_classes=None)
    n = min(images, len(folder))  # type: ignore[arg-type]
    data = Subset(folder, sorted({i * len(folder) // n for i in range(n)}))  # type: ignore[arg-type]
    classes = len(folder.classes)  # type: ignore[attr-defined]
    cfg = TrainConfig(epochs=1, batch_size=batch_size, lr=0.01, seed=0)

    def run_fit(w: int) -> float:
        t0 = time.perf_counter()
        st = fit(_probe(classes), data, cfg, augment=None, num_workers=w, progress=False)
        assert st.samples == len(data)
        return len(data) / (time.perf_counter() - t0)

    def run_bare() -> float:
        t0 = time.perf_counter()
        seen = 0
        loader = DataLoader(data, batch_size=batch_size, shuffle=True, num_workers=workers,
                            prefetch_factor=4 if workers else None)  # fmt: skip
        for x, _ in loader:
            seen += len(x)
        assert seen == len(data)
        return len(data) / (time.perf_counter() - t0)

    methods = {"serial": lambda: run_fit(0), "fit_workers": lambda: run_fit(workers), "bare": run_bare}
    names = list(methods)
    per_round: list[dict[str, float]] = []
    for r in range(rounds):
        got = {}
        for name in names[r % 3 :] + names[: r % 3]:
            got[name] = methods[name]()
        per_round.append(got)
    best = {k: max(rd[k] for rd in per_round) for k in names}
    ratio = {
        "fit_workers/bare": statistics.median(rd["fit_workers"] / rd["bare"] for rd in per_round),
        "fit_workers/serial": statistics.median(rd["fit_workers"] / rd["serial"] for rd in per_round),
    }
    return {"root": str(root), "images": len(data), "batch_size": batch_size, "workers": workers,
            "rounds": per_round, "images_per_s": best, "ratios": ratio}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="ILSVRC-train-layout folder of JPEGs")
    ap.add_argument("--images", type=int, default=320)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    if not args.root.is_dir():
        raise SystemExit(f"{args.root}: no such folder (give --root, an ILSVRC-train-layout folder of JPEGs)")
    torch.set_num_threads(args.threads)
    before = _uptime()
    out = measure(args.root, args.images, args.batch_size, args.workers, args.rounds)
    out["uptime"] = {"before": before, "after": _uptime()}
    rates, ratios = out["images_per_s"], out["ratios"]
    print(f"{out['images']} JPEGs from {args.root}, batch {args.batch_size}, {args.workers} workers, "
          f"{args.rounds} rounds (best round):")  # fmt: skip
    for k in ("serial", "fit_workers", "bare"):
        print(f"  {k:12s} {rates[k]:8.1f} images/s")
    print(
        f"  fit_workers / bare   {ratios['fit_workers/bare']:.2f}x (median of per-round ratios; goal >= 0.9)"
    )
    print(f"  fit_workers / serial {ratios['fit_workers/serial']:.2f}x")
    print(f"  uptime before: {out['uptime']['before']}\n  uptime after:  {out['uptime']['after']}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
