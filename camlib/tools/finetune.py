"""Fine-tune a -GAP network on an ILSVRC-train-layout folder, on one process or many (torchrun).

    python -m camlib.finetune --train $ILSVRC_TRAIN_ROOT --arch googlenet_gap --checkpoint build/checkpoints/googlenet_gap_avg.pt
    torchrun --standalone --nproc_per_node=8 -m camlib.finetune --train $ILSVRC_TRAIN_ROOT \\
        --arch googlenet_gap --device cuda --amp bf16 --channels-last --checkpoint build/checkpoints/googlenet_gap_avg.pt

The paper's recipe (:func:`camlib.paper.gap_vs_gmp.paper_config`: SGD, momentum 0.9, weight decay 5e-4,
global batch 64, lr 0.001 and 10x for the new layers, /10 every quarter of ``--iters`` = 160k) on
:func:`camlib.paper.gap_vs_gmp.ilsvrc_train_folder` (one sub-folder per WordNet id; random ``--image-size``
crops of the image resized to ``--resize``, mirrored), run by :func:`camlib.paper.gap_vs_gmp.finetune`,
i.e. :func:`camlib.models.train.fit`: DataLoader workers, per-sample seeded augmentation, exact resume.

Under torchrun every process takes its part of each global batch of ``--batch-size`` images and the
gradients are summed (:mod:`camlib.models.train`): P processes compute what one process would. Rank 0
writes ``--checkpoint`` (every ``--checkpoint-every`` steps, at epoch ends, and when interrupted: Ctrl-C /
SIGTERM finish the current step first) and ``--out``; running the same command again resumes, with any
number of processes. The checkpoint's ``"model"`` is what :func:`camlib.evaluation.localize.load_gap_checkpoint`
and ``python -m camlib.evaluate --model <arch> --checkpoint`` read.

``--arch`` is any name of :func:`camlib.models.gap_variant`; ``--weights none`` starts the backbone from
random weights (nothing to download: smoke tests). ``--limit N`` keeps N images spread evenly over the
folder (smoke runs, ``make plan``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from camlib.core import distributed

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m camlib.finetune", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--train", type=Path, default=None,
                    help="ILSVRC2012 train folder (default: $ILSVRC_TRAIN_ROOT)")  # fmt: skip
    ap.add_argument("--arch", default="googlenet_gap", help="a camlib.models.gap_variant name")
    ap.add_argument("--pool", choices=("avg", "max"), default="avg", help="avg = -GAP, max = -GMP")
    ap.add_argument("--weights", default="DEFAULT", help="torchvision backbone weights, or 'none' (random)")
    ap.add_argument("--expect-classes", type=int, default=1000, help="class folders expected (0 = any)")
    ap.add_argument("--limit", type=int, default=0, help="use N images spread over the folder (0 = all)")
    ap.add_argument("--iters", type=int, default=160_000, help="iteration budget (the released solver: 160k)")
    ap.add_argument("--batch-size", type=int, default=64, help="GLOBAL batch (split over the processes)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument(
        "--decay-every", type=int, default=None, help="lr /10 every N iterations (default iters/4)"
    )
    ap.add_argument("--checkpoint-every", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=224, help="training crop")
    ap.add_argument("--resize", type=int, default=0, help="resize before the crop (default 8/7 x crop: 256)")
    ap.add_argument("--checkpoint", type=Path, required=True, help="saved to and resumed from")
    ap.add_argument("--restart", action="store_true", help="delete --checkpoint first and start over")
    ap.add_argument("--stop-after", type=int, default=None, help="stop after N steps of this run (saved)")
    ap.add_argument(
        "--device", default=None, help="cpu or cuda (one GPU per local rank; default: cuda if any)"
    )
    ap.add_argument(
        "--workers", type=int, default=None, help="DataLoader workers per process (default: auto)"
    )
    ap.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none", help="autocast on CUDA")
    ap.add_argument("--channels-last", action="store_true", help="NHWC model and images (CUDA speed)")
    ap.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm (CUDA): global-batch statistics")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0 = default)")
    ap.add_argument(
        "--out", type=Path, default=None, help="JSON summary (rank 0): config, steps, history, speed"
    )
    ap.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    return ap


def _spread(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (every class of a sorted ImageFolder is represented)."""
    k = min(k, n)
    return sorted({int(i * n // k) for i in range(k)})


def main(argv: list[str] | None = None) -> int:
    from torch.utils.data import Subset

    from camlib.models import gap_variant
    from camlib.paper.gap_vs_gmp import (
        default_ilsvrc_train_root,
        finetune,
        ilsvrc_train_folder,
        imagenet_train_transform,
        paper_config,
    )

    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ctx = distributed.init(args.device)
    log = print if ctx.is_main else (lambda *a, **k: None)
    if args.out is not None and ctx.is_main:  # fail before any work, not after hours of it
        args.out.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(args.out.parent, os.W_OK):
            raise SystemExit(f"--out {args.out}: folder not writable")
    root = args.train if args.train is not None else default_ilsvrc_train_root()
    resize = args.resize or round(args.image_size * 8 / 7)
    data = ilsvrc_train_folder(root, imagenet_train_transform(resize, args.image_size),
                               expect_classes=args.expect_classes or None)  # fmt: skip
    num_classes = len(data.classes)  # type: ignore[attr-defined]
    if args.limit:
        data = Subset(data, _spread(len(data), args.limit))  # type: ignore[arg-type]
    weights = None if str(args.weights).lower() in ("none", "") else args.weights
    torch.manual_seed(args.seed)  # the new layers' init (rank 0's is broadcast under torchrun)
    model = gap_variant(args.arch, pool=args.pool, num_classes=num_classes, weights=weights)
    if args.sync_bn:
        if ctx.device.type != "cuda":
            raise SystemExit("--sync-bn needs CUDA (SyncBatchNorm has no CPU kernel); drop it on CPU")
        from camlib.models.train import convert_sync_bn

        model = convert_sync_bn(model)
    if args.restart and ctx.is_main:
        args.checkpoint.unlink(missing_ok=True)
    if ctx.distributed:
        torch.distributed.barrier()
    cfg = paper_config(len(data), iters=args.iters, batch_size=args.batch_size, lr=args.lr,  # type: ignore[arg-type]
                       decay_every=args.decay_every, checkpoint_every=args.checkpoint_every, seed=args.seed)  # fmt: skip
    log(f"fine-tuning {args.arch} ({args.pool}) on {len(data)} images of {num_classes} classes from {root}: "  # type: ignore[arg-type]
        f"{cfg.max_iters} iterations of global batch {cfg.batch_size} over {ctx.world_size} process(es) "
        f"on {ctx.device}; checkpoint {args.checkpoint}")  # fmt: skip
    t0 = time.time()
    try:
        state = finetune(model, data, cfg, checkpoint=args.checkpoint, device=ctx.device, stop_after=args.stop_after,
                         progress=args.progress, num_workers=args.workers, amp=None if args.amp == "none" else args.amp,
                         channels_last=args.channels_last)  # fmt: skip
    except KeyboardInterrupt:
        log(f"interrupted: state saved to {args.checkpoint}; run the same command to resume", file=sys.stderr)
        return 130
    summary = {
        "arch": args.arch, "pool": args.pool, "weights": weights, "train_root": str(root),
        "n_images": len(data), "num_classes": num_classes, "config": cfg.to_dict(),  # type: ignore[arg-type]
        "steps": state.step, "finished": state.finished, "resumed_from": state.resumed_from,
        "history": state.history, "world_size": ctx.world_size, "backend": ctx.backend,
        "device": str(ctx.device), "amp": args.amp, "channels_last": args.channels_last,
        "seconds": time.time() - t0, "images_per_s": state.samples / max(state.seconds, 1e-9),
        "checkpoint": str(args.checkpoint),
    }  # fmt: skip
    if args.out is not None and ctx.is_main:
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(json.dumps(summary, indent=2, sort_keys=True))
        os.replace(tmp, args.out)
    log(f"{'finished' if state.finished else 'stopped'} at step {state.step}: "
        f"{summary['images_per_s']:.1f} images/s; checkpoint {args.checkpoint}")  # fmt: skip
    distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
