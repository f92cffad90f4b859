"""``make plan``: what ``make reproduce`` will cost, measured on the machine it runs on.

    python -m camlib.tools.plan                    # ~1-2 minutes on a CPU; a GPU is measured as such
    python -m camlib.tools.plan --gpu-tflops 120   # the one-GPU projection with another sustained rate
    python -m camlib.tools.plan --tiny             # seconds (tests): a tiny stand-in network, same report

What is measured here, a few seconds each (median of repeated calls after one warm-up):

- **train step** (forward + backward + SGD) and **eval step** (forward in eval mode, what CAM costs
  up to one small GEMM) of every paper-profile network, random weights: the -GAP networks of
  :mod:`camlib.models.gap` and the torchvision / embedded networks the notebooks' paper profiles use.
  On CUDA at batch 64, 224 x 224, bf16 autocast, channels-last. On a CPU the full size would take
  minutes per step, so it times batch ``--cpu-batch`` at ``--cpu-size`` pixels and scales linearly to
  224 x 224 (cost ~ batch x pixels for convolutions; stated in the report);
- **decode**: one JPEG of ILSVRC's average size (469 x 387, a real photo from ``../shared`` resized, or
  a synthetic one) read + the training transform (resize 256, random 224 crop, mirror) and the eval
  transform (whole image to 224), on one core; the loader's rate is that times the worker processes;
- **boxes**: the paper's box rule on five 224 x 224 maps (per image, CPU).

The projection multiplies these rates by the work of each notebook's paper profile (:data:`WORK`:
ILSVRC train 1.28M / val 50k images, 160k iterations of batch 64 per fine-tuned network, CUB 11,788,
Table 5's eight sets, ...). Wall time on this machine: compute + decode when the CPU does both;
max(compute, decode / workers) with a GPU. The one-GPU projection (when measured on a CPU) divides each
network's FLOPs (``torch.utils.flop_counter`` on the meta device) by ``--gpu-tflops`` sustained
(default 50: an H100-class GPU in eager PyTorch with bf16 AMP and channels-last on these convnets,
i.e. ResNet-50 at ~2,000 training images/s; an assumption, printed, which ``benchmarks/gpu_check.py``
measures on a real GPU) with ``--gpu-cpus`` cores decoding. Disk: data read
(the datasets' published sizes) and written (checkpoints = weights + momentum, feature caches, videos).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["NETWORKS", "WORK", "Stage", "Rates", "main", "measure", "project", "report"]

REPO = Path(__file__).resolve().parents[2]
SHARED_JPEGS = REPO.parent / "shared" / "data" / "imagenette" / "train"
ILSVRC_AVG = (469, 387)  # average ILSVRC image (width, height)


def _gap(arch: str) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        from camlib.models import gap_variant

        return gap_variant(arch, weights=None)

    return make


def _lite0() -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-lite0")


#: The paper-profile networks: name -> builder (random weights, nothing downloaded).
NETWORKS: dict[str, Callable[[], nn.Module]] = {
    "alexnet_gap": _gap("alexnet_gap"),
    "alexnet_star_gap": _gap("alexnet_star_gap"),
    "vggnet_gap": _gap("vggnet_gap"),
    "googlenet_gap": _gap("googlenet_gap"),
    "googlenet": _gap("googlenet"),
    "resnet50": _gap("resnet50"),
    "efficientnet_lite0": _lite0,
}


def _tiny_stand_in() -> nn.Module:
    from camlib.models import SmallGAPNet

    return SmallGAPNet(1000, channels=(4, 8), width=8)


@dataclass(frozen=True)
class Stage:
    """One piece of a notebook's paper profile: ``images`` x ``passes`` of ``kind`` on ``network``.

    ``kind``: ``"train"`` (a training step per image), ``"eval"`` (a forward per image and pass),
    ``"backprop"`` (a forward + ``passes`` backward passes ~ 1 + 2 x passes forwards). ``boxes``: box
    work per image, in units of "the paper's rule on five 224 x 224 maps". ``decoded``: JPEGs read
    (default ``images``). ``written_gb``: disk the stage writes."""

    notebook: str
    what: str
    network: str
    kind: str
    images: int
    passes: int = 1
    boxes: float = 1.0
    decoded: int | None = None
    written_gb: float = 0.0


ILSVRC_TRAIN, ILSVRC_VAL, ITERS, BATCH = 1_281_167, 50_000, 160_000, 64
CUB = 5_994 + 5_794
TABLE5 = {"sun397": 108_754, "mit_indoor67": 15_620, "scene15": 4_485, "sun_attribute": 14_340,
          "caltech101": 9_144, "caltech256": 30_607, "stanford_action40": 9_532, "uiuc_event8": 1_579}  # fmt: skip
VQA_IMAGES = 82_783 + 40_504  # COCO train2014 + val2014 (VQA v1/v2 questions are on these)
SUN_SCENES, SVT, VIDEO_FRAMES, IMAGE_FOLDER = 4_675, 350 + 350, 1_800, 1_000


def _ckpt_gb(params: int) -> float:
    return params * 4 * 2 / 1e9  # float32 weights + SGD momentum


#: The paper profile of every notebook as stages (the assumptions the report prints).
WORK: tuple[Stage, ...] = (
    Stage("01_cam_basics", "CAM + boxes, ResNet-50, ILSVRC val", "resnet50", "eval", ILSVRC_VAL),
    Stage(
        "02_gap_vs_gmp",
        "fine-tune GoogLeNet-GAP, 160k it x 64",
        "googlenet_gap",
        "train",
        ITERS * BATCH,
        boxes=0,
        written_gb=0.1,
    ),
    Stage(
        "02_gap_vs_gmp",
        "fine-tune GoogLeNet-GMP, 160k it x 64",
        "googlenet_gap",
        "train",
        ITERS * BATCH,
        boxes=0,
        written_gb=0.1,
    ),
    Stage("02_gap_vs_gmp", "evaluate GAP + GMP, ILSVRC val", "googlenet_gap", "eval", 2 * ILSVRC_VAL),
    Stage("03_ilsvrc_localization", "all protocols, GoogLeNet", "googlenet", "eval", ILSVRC_VAL, boxes=3),
    Stage("03_ilsvrc_localization", "all protocols, ResNet-50", "resnet50", "eval", ILSVRC_VAL, boxes=3),
    Stage(
        "03_ilsvrc_localization",
        "all protocols, GoogLeNet-GAP (02's)",
        "googlenet_gap",
        "eval",
        ILSVRC_VAL,
        boxes=3,
    ),
    *(
        Stage(
            "03_ilsvrc_localization",
            f"ten-crop (10 crops), {net}",
            net,
            "eval",
            ILSVRC_VAL,
            passes=10,
            boxes=2,
        )
        for net in ("googlenet", "resnet50", "googlenet_gap")
    ),
    Stage(
        "03_ilsvrc_localization",
        "Backprop top-5, GoogLeNet",
        "googlenet",
        "backprop",
        ILSVRC_VAL,
        passes=5,
        boxes=2,
    ),
    Stage(
        "04_fine_grained_cub",
        "full / CAM crop / GT crop + boxes, 2 nets",
        "googlenet_gap",
        "eval",
        2 * CUB,
        passes=3,
        decoded=2 * 3 * CUB,
        written_gb=2 * 3 * CUB * 1024 * 4 / 1e9,
    ),
    Stage(
        "05_generic_features",
        "GAP features, 8 sets, 2 nets",
        "googlenet_gap",
        "eval",
        2 * sum(TABLE5.values()),
        boxes=0,
        written_gb=2 * sum(TABLE5.values()) * 1024 * 4 / 1e9,
    ),
    Stage(
        "06_pattern_discovery",
        "SUN scenes + SVT text features + CAMs",
        "efficientnet_lite0",
        "eval",
        SUN_SCENES + SVT,
        passes=2,
    ),
    Stage(
        "07_vqa",
        "pooled features of the VQA images",
        "googlenet",
        "eval",
        VQA_IMAGES,
        boxes=0,
        written_gb=VQA_IMAGES * 1024 * 4 / 1e9,
    ),
    Stage(
        "08_class_specific_units",
        "unit scan of an image folder, ResNet-50",
        "resnet50",
        "eval",
        IMAGE_FOLDER,
        boxes=0,
    ),
    Stage(
        "09_video_cam",
        "CAM per frame, 3 min at 10 fps",
        "efficientnet_lite0",
        "eval",
        VIDEO_FRAMES,
        written_gb=0.2,
    ),
)

#: Data each notebook reads (GB, the datasets' published sizes): stated, not measured.
DATA_GB = {"01_cam_basics": 6.4, "02_gap_vs_gmp": 147 + 6.4, "03_ilsvrc_localization": 6.4,
           "04_fine_grained_cub": 1.2, "05_generic_features": 37 + 2.4 + 0.1 + 1.5 + 0.13 + 1.2 + 0.7 + 0.2,
           "06_pattern_discovery": 1.5, "07_vqa": 19.0, "08_class_specific_units": 0.2,
           "09_video_cam": 0.2}  # fmt: skip


@dataclass
class Rates:
    """Seconds per image at 224 x 224 (batch 64 on CUDA) of each stage, as measured or projected."""

    device: str
    train_s: dict[str, float]
    eval_s: dict[str, float]
    gflops: dict[str, float]
    params: dict[str, int]
    decode_train_s: float
    decode_eval_s: float
    boxes_s: float
    workers: int
    how: str


def _median_time(fn: Callable[[], object], budget_s: float, max_reps: int, sync: Callable[[], None]) -> float:
    fn()
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_reps and (not times or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _forward_gflops(make: Callable[[], nn.Module]) -> tuple[float, int]:
    """Forward GFLOPs of one 224 x 224 image (2 x multiply-adds) and the parameter count."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = make().eval()
        x = torch.empty(1, 3, 224, 224)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 1e9, sum(p.numel() for p in model.parameters())


def _sample_jpeg() -> bytes:
    """One JPEG of ILSVRC's average size: a real photo resized when ../shared is there, else synthetic."""
    from PIL import Image

    files = sorted(SHARED_JPEGS.glob("*/*.JPEG"))[:1] if SHARED_JPEGS.is_dir() else []
    if files:
        img = Image.open(files[0]).convert("RGB").resize(ILSVRC_AVG, Image.BICUBIC)
    else:
        rng = np.random.default_rng(0)
        small = rng.integers(0, 255, (ILSVRC_AVG[1] // 8, ILSVRC_AVG[0] // 8, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize(ILSVRC_AVG, Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _decode_rates(budget_s: float, max_reps: int) -> tuple[float, float]:
    from PIL import Image

    from camlib.paper.gap_vs_gmp import imagenet_eval_transform, imagenet_train_transform

    data = _sample_jpeg()
    out = []
    for tf in (imagenet_train_transform(), imagenet_eval_transform()):
        out.append(_median_time(lambda tf=tf: tf(Image.open(io.BytesIO(data)).convert("RGB")), budget_s, max_reps,
                                lambda: None))  # fmt: skip
    return out[0], out[1]


def _boxes_rate(budget_s: float, max_reps: int) -> float:
    from camlib.core.boxes import paper_boxes

    g = torch.Generator().manual_seed(0)
    maps = torch.nn.functional.interpolate(torch.rand(5, 1, 14, 14, generator=g), size=(224, 224),
                                           mode="bilinear")[:, 0].numpy()  # fmt: skip
    return _median_time(lambda: paper_boxes(maps, 0.2), budget_s, max_reps, lambda: None)


def measure(
    networks: dict[str, Callable[[], nn.Module]] | None = None,
    *,
    device: str | None = None,
    budget_s: float = 3.0,
    max_reps: int = 20,
    cpu_batch: int = 2,
    cpu_size: int = 112,
    workers: int | None = None,
    log: Callable[[str], None] = print,
) -> Rates:
    """Time every stage of every network here (see the module docstring for how, and how it scales)."""
    networks = NETWORKS if networks is None else networks
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = dev.type == "cuda"
    batch, size = (64, 224) if cuda else (cpu_batch, cpu_size)
    scale = (224 / size) ** 2 / batch  # seconds per call -> seconds per 224 x 224 image
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    train_s, eval_s, gflops, params = {}, {}, {}, {}
    for name, make in networks.items():
        gflops[name], params[name] = _forward_gflops(make)
        torch.manual_seed(0)
        model = make().to(dev)
        if cuda:
            model = model.to(memory_format=torch.channels_last)
        x = torch.randn(batch, 3, size, size, device=dev)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 1000, (batch,), device=dev)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)

        def train_step(model=model, x=x, y=y, opt=opt, amp=amp) -> None:
            model.train()
            with amp:
                out = model(x)
                out = out.logits if hasattr(out, "logits") else out
                loss = nn.functional.cross_entropy(out.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        def eval_step(model=model, x=x, amp=amp) -> None:
            model.eval()
            with torch.inference_mode(), amp:
                model(x)

        train_s[name] = _median_time(train_step, budget_s, max_reps, sync) * scale
        eval_s[name] = _median_time(eval_step, budget_s, max_reps, sync) * scale
        log(f"  {name:18s} train {1 / train_s[name]:9.1f} img/s   eval {1 / eval_s[name]:9.1f} img/s   "
            f"{gflops[name]:6.2f} GFLOPs/img fwd")  # fmt: skip
        del model, opt
    dec_train, dec_eval = _decode_rates(budget_s / 2, max_reps * 5)
    boxes = _boxes_rate(budget_s / 2, max_reps * 5)
    from camlib.models.train import _cpus

    w = workers if workers is not None else _cpus()
    how = (f"CUDA ({torch.cuda.get_device_name(dev)}), batch 64 at 224, bf16 autocast, channels-last" if cuda else
           f"CPU, {torch.get_num_threads()} torch thread(s), batch {batch} at {size}x{size} scaled to 224x224 "
           f"(x {(224 / size) ** 2:.1f} pixels, linear in batch)")  # fmt: skip
    return Rates(str(dev), train_s, eval_s, gflops, params, dec_train, dec_eval, boxes, w, how)


def gpu_projection(rates: Rates, tflops: float, cpus: int) -> Rates:
    """The same stages on one GPU sustaining ``tflops`` (train = 3 x forward FLOPs) with ``cpus``
    decoding cores; decode and box rates per core as measured here."""
    per = {k: v * 1e9 / (tflops * 1e12) for k, v in rates.gflops.items()}
    return Rates("cuda (projected)", {k: 3 * v for k, v in per.items()}, dict(per), rates.gflops, rates.params,
                 rates.decode_train_s, rates.decode_eval_s, rates.boxes_s, cpus,
                 f"one GPU at {tflops:g} TFLOPS sustained (assumed), {cpus} CPU cores decoding")  # fmt: skip


def project(rates: Rates, work: tuple[Stage, ...] = WORK) -> list[dict]:
    """Seconds (compute, decode, wall) and GPU-hours of every stage on ``rates``' machine."""
    gpu = rates.device.startswith("cuda")
    rows = []
    for st in work:
        decoded = st.images if st.decoded is None else st.decoded
        boxes = st.images * st.boxes * rates.boxes_s  # CPU work beside the loader's
        if st.kind == "train":
            compute = st.images * rates.train_s[st.network]
            decode = decoded * rates.decode_train_s
        elif st.kind == "eval":
            compute = st.images * st.passes * rates.eval_s[st.network]
            decode = decoded * rates.decode_eval_s + boxes
        elif st.kind == "backprop":
            compute = st.images * rates.eval_s[st.network] * (1 + 2 * st.passes)
            decode = decoded * rates.decode_eval_s + boxes
        else:
            raise ValueError(f"unknown stage kind {st.kind!r}")
        loader = decode / max(1, rates.workers)
        wall = max(compute, loader) if gpu else compute + loader
        rows.append({"notebook": st.notebook, "what": st.what, "network": st.network, "compute_s": compute,
                     "decode_s": loader, "wall_s": wall, "gpu_hours": wall / 3600 if gpu else 0.0,
                     "written_gb": st.written_gb, "bound": "data" if loader > compute else "compute"})  # fmt: skip
    return rows


def _hours(s: float) -> str:
    return f"{s / 3600:8.1f} h" if s >= 3600 else f"{s / 60:8.1f} min"


def report(rates: Rates, rows: list[dict], title: str) -> str:
    """The plan as text: the rates, then every notebook's stages and totals, then the whole run."""
    lines = [f"## {title}", f"measured/assumed: {rates.how}",
             f"decode per core: train transform {1 / rates.decode_train_s:.0f} img/s, eval {1 / rates.decode_eval_s:.0f} "
             f"img/s ({ILSVRC_AVG[0]}x{ILSVRC_AVG[1]} JPEG); boxes {1 / rates.boxes_s:.0f} img/s; {rates.workers} loader "
             "processes", ""]  # fmt: skip
    lines.append(
        f"{'network':18s} {'train img/s':>12s} {'eval img/s':>11s} {'GFLOPs fwd':>10s} {'params':>8s}"
    )
    for k in rates.train_s:
        lines.append(f"{k:18s} {1 / rates.train_s[k]:12.1f} {1 / rates.eval_s[k]:11.1f} {rates.gflops[k]:10.2f} "
                     f"{rates.params[k] / 1e6:7.1f}M")  # fmt: skip
    lines.append("")
    total = {"wall_s": 0.0, "gpu_hours": 0.0, "written_gb": 0.0}
    for nb in dict.fromkeys(r["notebook"] for r in rows):
        mine = [r for r in rows if r["notebook"] == nb]
        wall, gh, gb = (sum(r[k] for r in mine) for k in ("wall_s", "gpu_hours", "written_gb"))
        lines.append(f"{nb}: {_hours(wall).strip()} wall, {gh:.1f} GPU-h, reads {DATA_GB.get(nb, 0):.1f} GB, "
                     f"writes {gb:.2f} GB")  # fmt: skip
        for r in mine:
            lines.append(f"    {r['what']:46s} {r['network']:18s} {_hours(r['wall_s'])} ({r['bound']}-bound)")
        total["wall_s"] += wall
        total["gpu_hours"] += gh
        total["written_gb"] += gb
    lines.append(f"\nmake reproduce: {_hours(total['wall_s']).strip()} wall ({total['wall_s'] / 86400:.1f} days), "
                 f"{total['gpu_hours']:.1f} GPU-hours, reads {sum(DATA_GB.values()):.0f} GB of datasets, writes "
                 f"{total['written_gb']:.1f} GB (+ executed notebooks and figures, a few MB)")  # fmt: skip
    return "\n".join(lines)


def assumptions(work: tuple[Stage, ...] = WORK) -> str:
    lines = ["## Assumptions (paper profile of each notebook)",
             f"ILSVRC train {ILSVRC_TRAIN:,} images, val {ILSVRC_VAL:,}; fine-tuning {ITERS:,} iterations x batch {BATCH} "
             f"= {ITERS * BATCH / ILSVRC_TRAIN:.1f} epochs per network (the released solver); CUB {CUB:,}; Table 5 "
             f"{sum(TABLE5.values()):,} images over 8 sets; VQA (COCO) {VQA_IMAGES:,}; SUN scenes {SUN_SCENES:,} + SVT "
             f"{SVT}; 08: {IMAGE_FOLDER:,} images of your folder; 09: {VIDEO_FRAMES:,} frames.",
             "Every image is decoded once per pass over it; SVMs / answer layers (CPU, minutes) are not counted."]  # fmt: skip
    for st in work:
        lines.append(
            f"- {st.notebook}: {st.what}: {st.images:,} images x {st.passes} pass(es), {st.kind} on {st.network}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m camlib.tools.plan", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    ap.add_argument("--budget", type=float, default=3.0, help="seconds of timing per stage and network")
    ap.add_argument("--cpu-batch", type=int, default=2)
    ap.add_argument("--cpu-size", type=int, default=112)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--workers", type=int, default=None, help="loader processes here (default: every core)")
    ap.add_argument("--gpu-tflops", type=float, default=50.0, help="sustained TFLOPS of the projected GPU")
    ap.add_argument("--gpu-cpus", type=int, default=16, help="decoding cores beside the projected GPU")
    ap.add_argument("--networks", default="", help="comma-separated subset of the networks (default: all)")
    ap.add_argument(
        "--tiny",
        action="store_true",
        help="smoke run: a tiny stand-in for every network (numbers mean nothing)",
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    nets = NETWORKS
    if args.networks:
        unknown = set(args.networks.split(",")) - set(NETWORKS)
        if unknown:
            raise SystemExit(f"--networks: unknown {sorted(unknown)}; known: {', '.join(NETWORKS)}")
        nets = {k: v for k, v in NETWORKS.items() if k in args.networks.split(",")}
    work = tuple(st for st in WORK if st.network in nets)
    budget, reps, size = (0.05, 2, 32) if args.tiny else (args.budget, 20, args.cpu_size)
    if args.tiny:  # every name timed on one tiny stand-in: the report's shape, not its numbers
        nets = dict.fromkeys(nets, _tiny_stand_in)
    t0 = time.time()
    print(f"# make plan (measured {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f})\n")  # fmt: skip
    rates = measure(nets, device=args.device, budget_s=budget, max_reps=reps, cpu_batch=args.cpu_batch,
                    cpu_size=size, workers=args.workers)  # fmt: skip
    print()
    print(report(rates, project(rates, work), f"this machine ({rates.device})"))
    if not rates.device.startswith("cuda"):
        gpu = gpu_projection(rates, args.gpu_tflops, args.gpu_cpus)
        print()
        print(report(gpu, project(gpu, work), "one GPU (projected from FLOPs)"))
    print()
    print(assumptions(work))
    print(f"\n(measured in {time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
