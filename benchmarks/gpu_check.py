"""One command on a CUDA machine (< 5 minutes): the speed checks of ``make reproduce`` -> ``results/gpu.json``.

    python benchmarks/gpu_check.py                  # writes results/gpu.json
    python benchmarks/gpu_check.py --out /tmp/gpu.json --ft-iters 20

1. **eval images/s, CAM vs plain forward**: torchvision ResNet-50 (random weights, BatchNorm calibrated
   as in ``benchmarks/methods.py``), batch 64 at 224 x 224, bf16 autocast, channels-last: ``model(x)``
   under ``inference_mode`` vs :class:`camlib.core.cam.CAM` top-1 maps + ``postprocess`` to 224 (best of
   ``--rounds`` interleaved rounds; the ratio is the median of per-round ratios);
2. **nccl**: a one-process ``nccl`` group (init, ``all_reduce``, destroy) on this GPU, then the torchrun
   evaluate, ``torchrun --standalone --nproc_per_node=1 -m camlib.evaluate --device cuda`` on
   procedural data (every protocol of notebook 03 on ``--eval-images`` images); with one process
   :func:`camlib.core.distributed.init` forms no group, so item 1 of this step is what exercises nccl;
3. **fine-tune steps/s**: ``python -m camlib.finetune`` (GoogLeNet-GAP, random backbone, global batch
   64 at 224, ``--amp bf16 --channels-last``, DataLoader workers) on a generated ILSVRC-train-layout
   folder of JPEGs (469 x 387, ILSVRC's average size), ``--ft-iters`` steps; the summary's images/s over 64.

The record is plain JSON written atomically (temporary file + ``os.replace``), not
:func:`camlib.tools.results.write_results`: that one validates NOTEBOOK results (profile, paper
comparisons), and ``make report`` reads only ``results/NN_*.json``, so this machine record stays out of
the paper tables. Without CUDA the script stops at once with a message saying so (exit status 2).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
NO_CUDA = ("benchmarks/gpu_check.py needs a CUDA GPU, and torch.cuda.is_available() is False here "
           "(torch {torch}, built for CUDA {cuda}). Run it on a machine with an NVIDIA GPU: "
           "`python benchmarks/gpu_check.py` (writes results/gpu.json). Nothing was measured or written.")  # fmt: skip


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }


def eval_cam_vs_plain(rounds: int, log) -> dict:
    sys.path.insert(0, str(REPO / "benchmarks"))
    import methods  # noqa: PLC0415 - the benchmarks' model builder (random ResNet-50, calibrated BN)

    from camlib.core.cam import CAM, CAMOptions, postprocess

    model = methods.build_model("resnet50").cuda().to(memory_format=torch.channels_last)
    x = torch.randn(64, 3, 224, 224, device="cuda").contiguous(memory_format=torch.channels_last)
    cam = CAM(model)
    opts = CAMOptions()
    amp = {"enabled": True, "note": "bf16"}

    def plain() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp["enabled"]):
            model(x)

    def with_cam() -> None:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp["enabled"]):
            out = cam(x)
            postprocess(out.maps.float(), opts, input_size=(224, 224))

    fns = {"plain": plain, "cam": with_cam}
    try:  # warm-up (cuDNN autotuning, CAM's head detection)
        with_cam()
    except ValueError as exc:  # CAM's numerical head check refused bf16 logits: time both in float32
        amp.update(enabled=False, note=f"none (CAM under bf16 failed: {exc})")
        log(f"CAM under bf16 autocast failed ({exc}); timing both methods in float32")
    for fn in fns.values():
        fn()
    torch.cuda.synchronize()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(rounds):
        for name in list(fns)[r % 2 :] + list(fns)[: r % 2]:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(5):
                fns[name]()
            torch.cuda.synchronize()
            times[name].append((time.perf_counter() - t0) / 5)
    out = {k: 64 / min(v) for k, v in times.items()}
    ratio = statistics.median(p / c for p, c in zip(times["plain"], times["cam"], strict=True))
    log(f"eval, ResNet-50 batch 64 {amp['note'][:4]}: plain {out['plain']:.0f} img/s, CAM {out['cam']:.0f} img/s "
        f"(CAM / plain {ratio:.2f})")  # fmt: skip
    return {"model": "resnet50 (random, BN calibrated)", "batch": 64, "size": 224, "amp": amp["note"],
            "channels_last": True, "images_per_s": out, "cam_over_plain": ratio, "rounds": rounds}  # fmt: skip


def nccl_one_process() -> dict:
    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    t0 = time.perf_counter()
    dist.init_process_group("nccl", rank=0, world_size=1, device_id=torch.device("cuda", 0))
    t = torch.ones(1 << 20, device="cuda")
    dist.all_reduce(t)
    torch.cuda.synchronize()
    ok = bool(t[0].item() == 1.0)
    dist.destroy_process_group()
    return {"backend": "nccl", "all_reduce_ok": ok, "seconds": time.perf_counter() - t0}


def torchrun_evaluate(images: int, workdir: Path, log) -> dict:
    out = workdir / "eval.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m",
           "camlib.evaluate", "--data", "procedural", "--num-images", str(images), "--image-size", "64",
           "--model", "small_gap", "--batch-size", "64", "--device", "cuda", "--workers", "2", "--out", str(out)]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=workdir, env=_env(), capture_output=True, text=True, timeout=240)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"torchrun evaluate failed ({done.returncode}):\n{done.stderr[-3000:]}")
    rec = json.loads(out.read_text())
    log(
        f"torchrun evaluate: {images} procedural images, every protocol, {wall:.1f} s wall (start-up included)"
    )
    return {"command": " ".join(cmd[1:]), "wall_s": wall, "images": images,
            "world_size": rec.get("world_size"), "backend": rec.get("backend"),
            "n_images": rec.get("metrics", {}).get("n_images")}  # fmt: skip


def _jpeg_folder(root: Path, classes: int = 8, per_class: int = 40) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        d = root / f"n{c:08d}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            small = rng.integers(0, 255, (48, 58, 3), dtype=np.uint8)
            Image.fromarray(small).resize((469, 387), Image.BICUBIC).save(
                d / f"n{c:08d}_{i}.JPEG", quality=90
            )
    return root


def finetune_speed(iters: int, workers: int, workdir: Path, log) -> dict:
    train = _jpeg_folder(workdir / "train")
    runs = {}
    for amp in ("bf16", "none"):
        out = workdir / f"ft_{amp}.json"
        cmd = [sys.executable, "-m", "camlib.finetune", "--train", str(train), "--arch", "googlenet_gap",
               "--weights", "none", "--expect-classes", "0", "--iters", str(iters), "--batch-size", "64",
               "--device", "cuda", "--amp", amp, "--channels-last", "--workers", str(workers), "--no-progress",
               "--checkpoint", str(workdir / f"ft_{amp}.pt"), "--checkpoint-every", "100000", "--out", str(out)]  # fmt: skip
        done = subprocess.run(cmd, cwd=workdir, env=_env(), capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"camlib.finetune failed ({done.returncode}):\n{done.stderr[-3000:]}")
        rec = json.loads(out.read_text())
        runs[amp] = {"images_per_s": rec["images_per_s"], "steps_per_s": rec["images_per_s"] / 64,
                     "steps": rec["steps"], "seconds": rec["seconds"]}  # fmt: skip
        log(f"fine-tune GoogLeNet-GAP, batch 64, amp {amp}, {workers} workers: {runs[amp]['steps_per_s']:.2f} steps/s "
            f"({rec['images_per_s']:.0f} img/s)")  # fmt: skip
    return {"arch": "googlenet_gap (random backbone)", "batch": 64, "size": 224, "workers": workers,
            "channels_last": True, "iters": iters, "runs": runs}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "results" / "gpu.json")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--eval-images", type=int, default=2048)
    ap.add_argument("--ft-iters", type=int, default=60)
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print(NO_CUDA.format(torch=torch.__version__, cuda=torch.version.cuda), file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    log = print
    record: dict = {
        "gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cpus": os.cpu_count(), "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }  # fmt: skip
    log(f"{record['gpu']}, torch {record['torch']}, CUDA {record['cuda']}, {record['cpus']} CPUs")
    torch.backends.cudnn.benchmark = True
    record["eval_cam_vs_plain"] = eval_cam_vs_plain(args.rounds, log)
    record["nccl"] = nccl_one_process()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        work = Path(tmp)
        record["torchrun_evaluate"] = torchrun_evaluate(args.eval_images, work, log)
        record["finetune"] = finetune_speed(args.ft_iters, args.workers, work, log)
    record["seconds"] = time.time() - t0
    tmp_out = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp_out.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_out, args.out)
    log(f"wrote {args.out} in {record['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
