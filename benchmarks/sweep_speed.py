"""Threshold sweep speed: camlib.wsol's all-thresholds-at-once sweep vs the per-threshold loop.

    python benchmarks/sweep_speed.py [--n 100] [--size 224] [--thresholds 100] [--repeats 3]

Both compute, for every map, IoU threshold (0.3 / 0.5 / 0.7) and box threshold, whether the largest
component's box (MaxBoxAcc) and the best of all components' boxes (MaxBoxAccV2) are correct:
:func:`camlib.wsol.box_hits` (run-length encoding of all thresholds + one connected-components call)
against :func:`camlib.wsol.reference_box_hits` (``skimage.measure.label`` + ``regionprops`` at every
threshold). The maps are CAM-like: random 7 x 7 maps (a 224 network's feature grid) upsampled
bicubically to ``size`` and min-max normalised; each map gets one random ground-truth box. The
results must be identical; the script prints both times (wall and CPU, best of ``--repeats`` for
the vectorised sweep, one run of the loop) and the speed-up. Target (issue 4): >= 10x.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from camlib.wsol import CHOE_IOU_THRESHOLDS, box_hits, reference_box_hits


def cam_like_maps(n: int, size: int, seed: int) -> tuple[np.ndarray, list[np.ndarray]]:
    g = torch.Generator().manual_seed(seed)
    maps = torch.nn.functional.interpolate(torch.rand(n, 1, 7, 7, generator=g), size=(size, size), mode="bicubic")
    maps = maps[:, 0].numpy()
    lo, hi = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
    maps = ((maps - lo) / (hi - lo)).astype(np.float32)
    rng = np.random.default_rng(seed)
    gts = []
    for _ in range(n):
        x0, y0 = rng.integers(0, size // 2, 2)
        w, h = rng.integers(size // 8, size // 2, 2)
        gts.append(np.array([[x0, y0, x0 + w, y0 + h]]))
    return maps, gts


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--thresholds", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="optional JSON file for the numbers")
    a = ap.parse_args(argv)
    maps, gts = cam_like_maps(a.n, a.size, a.seed)
    thr = np.arange(a.thresholds) / a.thresholds
    fast_runs = [_timed(lambda: box_hits(maps, gts, thr, CHOE_IOU_THRESHOLDS)) for _ in range(a.repeats)]
    fast, fast_wall, fast_cpu = min(fast_runs, key=lambda r: r[1])
    slow, slow_wall, slow_cpu = _timed(lambda: reference_box_hits(maps, gts, thr, CHOE_IOU_THRESHOLDS))
    same = bool((fast[0] == slow[0]).all() and (fast[1] == slow[1]).all())
    res = {
        "maps": a.n, "size": a.size, "thresholds": a.thresholds, "iou_thresholds": list(CHOE_IOU_THRESHOLDS),
        "vectorised_wall_s": fast_wall, "vectorised_cpu_s": fast_cpu,
        "reference_wall_s": slow_wall, "reference_cpu_s": slow_cpu,
        "speedup_wall": slow_wall / fast_wall, "speedup_cpu": slow_cpu / fast_cpu,
        "identical": same, "machine": platform.platform(), "python": platform.python_version(),
    }  # fmt: skip
    print(f"{a.n} maps {a.size}x{a.size}, {a.thresholds} thresholds, IoU {CHOE_IOU_THRESHOLDS}")
    print(f"  vectorised sweep (camlib.wsol.box_hits):     wall {fast_wall:7.2f} s   cpu {fast_cpu:7.2f} s"
          f"   (best of {a.repeats})")
    print(f"  per-threshold loop (reference_box_hits):     wall {slow_wall:7.2f} s   cpu {slow_cpu:7.2f} s")
    print(f"  speed-up: {res['speedup_wall']:.1f}x wall, {res['speedup_cpu']:.1f}x cpu (target >= 10x); "
          f"identical results: {same}")
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(res, indent=2) + "\n")
    if not same:
        raise SystemExit("the vectorised sweep and the reference loop disagree")
    return res


if __name__ == "__main__":
    main()
