"""``make bench``: camlib against torchcam and pytorch-grad-cam, the threshold sweep, cost growth.

    python benchmarks/bench.py [--quick] [--out results/bench.json] [--figures figures]

One run, one machine, one process, side by side:

1. **Throughput** (images/s) of the methods of ``benchmarks/methods.py`` (plain forward, camlib top-1
   CAM at 224, camlib all-class CAMs at feature resolution, torchcam ``CAM``, pytorch-grad-cam
   ``GradCAM``) for ResNet-50, GoogLeNet and EfficientNet-Lite0 at batch 1, 16 and 64, on the same
   input tensor. After a warm-up call of each, the methods run in rounds, each round in a rotated
   order, so that load drift hits all of them alike. Images/s come from a method's best round (median
   recorded too); a RATIO of two methods is the median over rounds of their time ratio within the
   same round (paired, so load that drifts between rounds cancels; best-of-round ratios are recorded
   as ``ratios_best``). Plus the same methods on a channels-last model and input at the middle batch.
2. **Agreement**, asserted (the run fails otherwise): camlib's top-1 map min-max normalised equals
   torchcam's CAM (max abs difference < 1e-4); Grad-CAM on the CAM feature layer correlates with CAM
   > 0.99 (feature resolution, and after the same ReLU / min-max / resize).
3. **Threshold sweep** (``benchmarks/sweep.py``): maps/s of :func:`camlib.evaluation.wsol.box_hits` vs a
   wsolevaluation-like OpenCV contour loop (and camlib's skimage reference loop, whose answers must
   be identical) at 100 and 1000 thresholds.
4. **Cost growth** (ResNet-50): time per image and peak resident memory of the plain forward, camlib
   top-1 and camlib all-class as batch size, image size and number of classes grow.

Writes ``--out`` (every raw timing, the ratios, each target's pass/fail, machine, versions, threads,
git revision, load) and ``<figures>/bench_throughput.png``, ``<figures>/bench_cost_growth.png``.
``--quick`` runs tiny settings (a smoke test for ``tests/test_bench.py``; its ratios mean nothing).
"""

from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import importlib.util
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from methods import METHODS, build_model, gradcam_agreement, make_methods, torchcam_agreement  # noqa: E402
from sweep import measure_sweep  # noqa: E402

from camlib.core.cam import CAM, CAMOptions, postprocess  # noqa: E402

FULL = {
    "models": ("resnet50", "googlenet", "efficientnet_lite0"),
    "batches": (1, 16, 64),
    "rounds": {1: 15, 16: 8, 64: 5},
    "size": 224,
    "sweep": ((100, 100, 100), (1000, 20, 10)),  # (thresholds, maps, maps for the skimage loop)
    "growth": {"batch": (1, 4, 16, 32), "size": (160, 224, 320, 448), "classes": (10, 100, 1000, 10000)},
    "growth_base": {"batch": 4, "size": 224, "classes": 1000},
    "growth_model": "resnet50",
    "growth_rounds": 3,
    "agreement_batch": 4,
}
QUICK = {
    "models": ("resnet18", "efficientnet_lite0"),
    "batches": (1, 2),
    "rounds": {1: 2, 2: 2},
    "size": 64,
    "sweep": ((10, 4, 2), (20, 2, 1)),
    "growth": {"batch": (1, 2), "size": (64, 96), "classes": (10, 100)},
    "growth_base": {"batch": 1, "size": 64, "classes": 100},
    "growth_model": "resnet18",
    "growth_rounds": 1,
    "agreement_batch": 2,
}
OPTS = CAMOptions(size="input")  # camlib's top-1 map: bilinear to the input size, min-max
TARGETS = {  # ratio name -> (target, what it means)
    "camlib_top1_vs_plain": (0.9, "camlib top-1 CAM at 224 throughput / plain forward throughput"),
    "camlib_top1_vs_torchcam": (1.0, "camlib top-1 CAM throughput / torchcam CAM throughput"),
    "camlib_top1_vs_gradcam": (2.0, "camlib top-1 CAM throughput / pytorch-grad-cam GradCAM throughput"),
    "sweep_vs_contour_loop": (10.0, "vectorised MaxBoxAcc/V2 sweep maps/s / OpenCV contour loop maps/s"),
}


def available_libraries() -> set[str]:
    """Which comparison libraries import here (``make bench`` installs the ``bench`` extra)."""
    have = set()
    if importlib.util.find_spec("torchcam") is not None:
        have.add("torchcam")
    if importlib.util.find_spec("pytorch_grad_cam") is not None:
        have.add("gradcam")
    return have


def interleaved(fns: dict, rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Wall seconds of every call: warm-up, then ``rounds`` rounds, each in a rotated method order."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    names = list(fns)
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(rounds):
        for k in names[r % len(names) :] + names[: r % len(names)]:
            t = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t)
    return times


def _summary(times: list[float], batch: int) -> dict:
    best = min(times)
    return {
        "best_s": best,
        "median_s": statistics.median(times),
        "images_per_s": batch / best,
        "times_s": times,
    }


def paired_ratio(slow: list[float], fast: list[float]) -> float:
    """Throughput of ``fast`` over that of ``slow``: the median over rounds of ``slow_r / fast_r``
    (the two calls of one round ran seconds apart, under the same load)."""
    return statistics.median(s / f for s, f in zip(slow, fast, strict=True))


def ratios_of(times: dict[str, list[float]], best: bool = False) -> dict[str, float]:
    """camlib top-1 (and all-class) against each other method present, paired or best-of-rounds."""

    def r(ref: str, m: str) -> float:
        return min(times[ref]) / min(times[m]) if best else paired_ratio(times[ref], times[m])

    out = {"camlib_top1_vs_plain": r("plain", "camlib_top1"), "camlib_all_vs_plain": r("plain", "camlib_all")}
    for other in ("torchcam", "gradcam"):
        if other in times:
            out[f"camlib_top1_vs_{other}"] = r(other, "camlib_top1")
    return out


def throughput(cfg: dict, have: set[str], log) -> tuple[list[dict], list[dict], dict]:
    """Rows (model, batch, method timings, ratios), channels-last rows and agreement per model."""
    rows, cl_rows, agreement = [], [], {}
    size = cfg["size"]
    for name in cfg["models"]:
        model = build_model(name, size)
        g = torch.Generator().manual_seed(0)
        xa = torch.randn(cfg["agreement_batch"], 3, size, size, generator=g)
        agreement[name] = {}
        if "torchcam" in have:
            agreement[name]["torchcam"] = torchcam_agreement(model, xa)
        if "gradcam" in have:
            agreement[name]["gradcam"] = gradcam_agreement(model, xa)
        for batch in cfg["batches"]:
            x = torch.randn(batch, 3, size, size, generator=g)
            fns = make_methods(model, x, have)
            times = interleaved(fns, cfg["rounds"][batch], warmup=2 if batch == 1 else 1)
            res = {k: _summary(v, batch) for k, v in times.items()}
            ratios = ratios_of(times)
            rows.append({"model": name, "batch": batch, "size": size, "rounds": cfg["rounds"][batch],
                         "methods": res, "ratios": ratios, "ratios_best": ratios_of(times, best=True)})  # fmt: skip
            log(
                f"{name:>18} b{batch:<3}"
                + "".join(f" {k} {v['images_per_s']:7.1f}/s" for k, v in res.items())
                + "  "
                + " ".join(f"{k.replace('camlib_top1_vs_', 'x')}={v:.2f}" for k, v in ratios.items())
            )
        cl_rows.append(channels_last_row(model, name, cfg, g, have))
        log(
            f"{name:>18} channels-last: plain forward x{cl_rows[-1]['speedup']:.2f} faster; "
            + " ".join(
                f"{k.replace('camlib_top1_vs_', 'x')}={v:.2f}" for k, v in cl_rows[-1]["ratios"].items()
            )
        )
    return rows, cl_rows, agreement


def channels_last_row(model: nn.Module, name: str, cfg: dict, g: torch.Generator, have: set[str]) -> dict:
    """Every method on a channels-last copy of the model and input, with the contiguous plain forward
    pass interleaved, at the middle batch size: ``speedup`` of the forward pass, and the ratios."""
    batch = cfg["batches"][len(cfg["batches"]) // 2]
    x = torch.randn(batch, 3, cfg["size"], cfg["size"], generator=g)
    m_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)

    def plain_contiguous():
        with torch.inference_mode():
            model(x)

    fns = {
        "plain_contiguous": plain_contiguous,
        **make_methods(m_cl, x.contiguous(memory_format=torch.channels_last), have),
    }
    times = interleaved(fns, cfg["rounds"][batch])
    return {"model": name, "batch": batch, "methods": {k: _summary(v, batch) for k, v in times.items()},
            "speedup": paired_ratio(times["plain_contiguous"], times["plain"]), "ratios": ratios_of(times)}  # fmt: skip


# ------------------------------------------------------------------------------------ cost growth
def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    raise OSError(key)


def peak_memory_mb(fn) -> float | None:
    """Peak resident memory above the level before the call, in MiB (Linux: VmHWM reset through
    /proc/self/clear_refs after returning freed heap to the system); None elsewhere."""
    try:
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        base = _status_kb("VmRSS:")
        fn()
        return (_status_kb("VmHWM:") - base) / 1024.0
    except OSError:
        return None


def cost_growth(cfg: dict, log) -> list[dict]:
    """``growth_model`` (ResNet-50): time per image and peak memory of plain / camlib top-1 / camlib
    all-class while one of batch, image size, number of classes grows, the others at ``growth_base``."""
    base = build_model(cfg["growth_model"], cfg["size"])
    rows = []
    for axis, values in cfg["growth"].items():
        for v in values:
            p = {**cfg["growth_base"], axis: v}
            model = base
            if p["classes"] != 1000:
                torch.manual_seed(0)
                model = copy.deepcopy(base)
                model.fc = nn.Linear(base.fc.in_features, p["classes"])
                model.eval()
            x = torch.randn(p["batch"], 3, p["size"], p["size"], generator=torch.Generator().manual_seed(0))
            cam = CAM(model, "layer4", "fc")

            def plain(model=model, x=x):
                with torch.inference_mode():
                    model(x)

            fns = {"plain": plain,
                   "camlib_top1": lambda cam=cam, x=x: postprocess(cam(x).maps, OPTS, input_size=x.shape[-2:]),
                   "camlib_all": lambda cam=cam, x=x: cam(x, all_classes=True).maps}  # fmt: skip
            times = interleaved(fns, cfg["growth_rounds"])
            res = {k: {"best_s": min(t), "ms_per_image": 1000 * min(t) / p["batch"], "times_s": t,
                       "peak_mb": peak_memory_mb(fns[k])} for k, t in times.items()}  # fmt: skip
            h = w = -(-p["size"] // 32)  # ResNet's feature grid
            maps_mb = p["batch"] * p["classes"] * h * w * 4 / 2**20  # the all-class maps themselves, float32
            rows.append({"axis": axis, "value": v, **p, "methods": res, "all_class_maps_mb": maps_mb})
            log(
                f"growth {axis}={v:<6}"
                + "".join(
                    f" {k} {r['ms_per_image']:7.1f} ms/img {r['peak_mb'] or 0:7.1f} MiB"
                    for k, r in res.items()
                )
            )
    return rows


# ----------------------------------------------------------------------------------------- targets
def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def evaluate_targets(rows: list[dict], sweeps: list[dict]) -> dict:
    """Each target: per-configuration ratios, min, geometric mean; ``pass`` when EVERY configuration
    meets the target (``pass_geomean``: when the geometric mean does)."""
    per: dict[str, dict[str, float]] = {k: {} for k in TARGETS}
    for r in rows:
        for k, v in r["ratios"].items():
            if k in per:
                per[k][f"{r['model']}/b{r['batch']}"] = v
    for s in sweeps:
        if "speedup_vs_contour_loop" in s:
            per["sweep_vs_contour_loop"][f"{s['thresholds']} thresholds"] = s["speedup_vs_contour_loop"]
    out = {}
    for k, (target, meaning) in TARGETS.items():
        vals = per[k]
        if not vals:
            out[k] = {"target": target, "meaning": meaning, "measured": False, "pass": None}
            continue
        lo, gm = min(vals.values()), _geomean(list(vals.values()))
        out[k] = {"target": target, "meaning": meaning, "measured": True, "per_config": vals, "min": lo,
                  "geomean": gm, "pass": lo >= target, "pass_geomean": gm >= target}  # fmt: skip
    return out


def check_agreement(agreement: dict) -> dict:
    """Pass/fail of the agreement assertions for every model measured."""
    out = {}
    for name, a in agreement.items():
        if "torchcam" in a:
            out[f"{name}/torchcam_equal"] = (
                a["torchcam"]["max_abs_diff"] < 1e-4 and a["torchcam"]["classes_equal"]
            )
        if "gradcam" in a:
            out[f"{name}/gradcam_corr"] = (
                min(a["gradcam"]["corr_raw_min"], a["gradcam"]["corr_input_min"]) > 0.99
            )
    return out


# ------------------------------------------------------------------------------------------ record
def environment(have: set[str]) -> dict:
    from camlib.tools.results import git_revision, machine_info, package_versions

    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
    except OSError:
        pass
    names = ("torch", "torchvision", "torchcam", "grad-cam", "opencv-python-headless", "opencv-python", "numpy",
             "scipy", "scikit-image", "camlib")  # fmt: skip
    return {"machine": {**machine_info(), "cpu": cpu}, "versions": package_versions(names),
            "threads": torch.get_num_threads(), "git_revision": git_revision(),
            "libraries_compared": sorted(have)}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny settings: a smoke test, not a measurement")
    ap.add_argument("--out", type=Path, default=Path("results/bench.json"))
    ap.add_argument("--figures", type=Path, default=Path("figures"))
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    t0, load0 = time.time(), os.getloadavg()
    have = available_libraries()
    if not have:
        print("NOTE: torchcam and pytorch-grad-cam are not installed (pip install -e '.[bench]'): "
              "only camlib's own methods are timed")  # fmt: skip

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:6.0f} s] {msg}", flush=True)

    torch.manual_seed(0)
    rows, cl_rows, agreement = throughput(cfg, have, log)
    sweeps = []
    for n_thr, n_maps, n_ref in cfg["sweep"]:
        sweeps.append(measure_sweep(n_maps, n_thr, n_reference=n_ref, repeats=3 if not args.quick else 1,
                                    size=cfg["size"] if args.quick else 224, with_cv2=importlib.util.find_spec("cv2") is not None))  # fmt: skip
        s = sweeps[-1]
        log(
            f"sweep {n_thr} thresholds: vectorised {s['vectorised_maps_per_s']:.1f} maps/s, contour loop "
            f"{s.get('contour_loop_maps_per_s', float('nan')):.1f}, skimage loop {s['skimage_loop_maps_per_s']:.1f}"
        )
    growth = cost_growth(cfg, log)
    agree = check_agreement(agreement)
    record = {
        "what": __doc__.split("\n\n")[0],
        "quick": bool(args.quick),
        **environment(have),
        "settings": {**cfg, "rounds": {str(k): v for k, v in cfg["rounds"].items()}},
        "methods": list(METHODS),
        "throughput": rows,
        "channels_last": cl_rows,
        "agreement": agreement,
        "agreement_pass": agree,
        "sweep": sweeps,
        "cost_growth": growth,
        "targets": evaluate_targets(rows, sweeps),
        "load_average_start": list(load0),
        "load_average_end": list(os.getloadavg()),
        "wall_s": time.time() - t0,
    }
    write(record, args.out, args.figures)
    for k, v in record["targets"].items():
        if v["measured"]:
            log(
                f"target {k} >= {v['target']}: min {v['min']:.2f}, geomean {v['geomean']:.2f} -> "
                f"{'PASS' if v['pass'] else 'MISS'}"
            )
    if not all(agree.values()):
        raise SystemExit(f"camlib disagrees with a reference implementation: {agree}")
    return record


def write(record: dict, out: Path, figures: Path) -> None:
    """The figures, then the JSON record (which names them)."""
    from plots import plot_cost_growth, plot_throughput

    from camlib.tools.results import atomic_write_text, to_json_value

    record["figures"] = [str(plot_throughput(record, figures)), str(plot_cost_growth(record, figures))]
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(to_json_value(record, "bench"), indent=1) + "\n")


if __name__ == "__main__":
    main()
