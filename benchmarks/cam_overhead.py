"""CAM overhead: all-class CAMs at feature resolution vs a plain forward pass (same batch, CPU).

    python benchmarks/cam_overhead.py [--batch 16] [--repeats 7] [--out results/cam_overhead.json]

For each model: the best (least disturbed) time of a plain ``model(x)`` under ``torch.inference_mode`` and of
``CAM(model)(x, all_classes=True)`` (logits + features + every class's map, no upsampling), taken
alternately so both see the same machine load. Target (issue 2): overhead < 10 %.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
import torchvision.models as tvm

from camlib.cam import CAM
from camlib.models import load_efficientnet_lite0


def _time(fn, repeats: int) -> list[tuple[float, float]]:
    """(wall seconds, process CPU seconds) of each call; CPU time is less disturbed by other jobs."""
    out = []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        out.append((time.perf_counter() - t, time.process_time() - c))
    return out


def measure(name: str, model: torch.nn.Module, batch: int, repeats: int) -> dict:
    model.eval()
    x = torch.randn(batch, 3, 224, 224)
    cam = CAM(model)

    def plain():
        with torch.inference_mode():
            model(x)

    def cams():
        cam(x, all_classes=True)

    plain(), cams()  # warm up, resolve the head
    tp, tc = [], []
    for _ in range(repeats):  # interleave so both see the same load
        tp += _time(plain, 1)
        tc += _time(cams, 1)
    p, c = min(w for w, _ in tp), min(w for w, _ in tc)  # the least-disturbed run of each
    pc, cc = min(u for _, u in tp), min(u for _, u in tc)
    out = cam(x[:1], all_classes=True)
    return {
        "model": name,
        "batch": batch,
        "plain_forward_s": p,
        "all_class_cam_s": c,
        "overhead_pct": 100.0 * (c - p) / p,
        "plain_forward_cpu_s": pc,
        "all_class_cam_cpu_s": cc,
        "overhead_cpu_pct": 100.0 * (cc - pc) / pc,
        "maps_shape": list(out.maps.shape[1:]),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", default="results/bench/cam_overhead.json")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    rows = [
        measure("resnet50", tvm.resnet50(), args.batch, args.repeats),
        measure("efficientnet_lite0", load_efficientnet_lite0().model, args.batch, args.repeats),
    ]
    for r in rows:
        print(f"{r['model']:>20} batch {r['batch']}: forward {r['plain_forward_s'] * 1e3:7.1f} ms, "
              f"all-class CAMs {r['all_class_cam_s'] * 1e3:7.1f} ms, overhead {r['overhead_pct']:+.1f}% "
              f"(CPU time {r['plain_forward_cpu_s']:.2f} s vs {r['all_class_cam_cpu_s']:.2f} s: {r['overhead_cpu_pct']:+.1f}%)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "rows": rows, "threads": torch.get_num_threads(), "torch": torch.__version__,
        "machine": platform.machine(), "processor": platform.processor(),
    }, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
