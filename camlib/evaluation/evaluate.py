"""Localization evaluation (and GAP features) of one network over a dataset, on one or many processes.

    python -m camlib.evaluate --data ilsvrc --root $ILSVRC_ROOT --model resnet50 --out results/eval/resnet50.json
    torchrun --standalone --nproc_per_node=8 -m camlib.evaluate --data ilsvrc --root $ILSVRC_ROOT \\
        --model resnet50 --device cuda --workers 8 --batch-size 100 --out results/eval/resnet50.json

Every protocol of notebook 03 (:func:`camlib.evaluation.localize.evaluate_protocols`: the paper's rule at each
``--fractions``, the released code's rule, the five-box heuristic, MaxBoxAcc/V2, PxAP when masks exist)
in one pass. Under torchrun each process evaluates a contiguous, batch-aligned shard
(:mod:`camlib.core.distributed`; gloo on CPU, nccl with ``--device cuda``) and the counts are merged, so the
numbers equal a one-process run's. Rank 0 writes ``--out`` (the summary of
:func:`camlib.evaluation.localize.summarize_protocols` plus how it was run) and, with ``--features-out``, the
globally pooled CAM features of every image in dataset order (``.npz``: ``X``, ``y``).

Models: a torchvision name with ImageNet weights (``resnet50``, ``googlenet``; weights from torch's
cache), ``efficientnet_lite0`` (embedded), a -GAP architecture of :func:`camlib.models.gap_variant`
with ``--checkpoint``, or ``small_gap`` (:class:`camlib.models.SmallGAPNet`, ``--checkpoint`` optional)
for ``--data procedural`` (:class:`camlib.datasets.ProceduralShapes`, with masks, made in memory).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from camlib.core import distributed
from camlib.core.io import load_checkpoint
from camlib.datasets.targets import Target
from camlib.evaluation.localize import PAPER_OPTIONS, Protocols, evaluate_protocols, summarize_protocols

__all__ = ["LabelView", "ProceduralTargets", "build", "main"]


class ProceduralTargets(Dataset):
    """:class:`camlib.datasets.ProceduralShapes` as ``(x, Target)`` items for
    :func:`camlib.datasets.ilsvrc.make_loader` (label, box, size, image id and mask)."""

    def __init__(self, shapes) -> None:
        self.shapes = shapes

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, i: int):
        x, label = self.shapes[i]
        s = self.shapes
        return x, Target(label=int(label), boxes=s.boxes[i].reshape(1, 4), size=tuple(x.shape[-2:]), image_id=int(i),
                         mask=s.masks[i])  # fmt: skip


class LabelView(Dataset):
    """``(x, label)`` items of an ``(x, target)`` dataset, for :func:`camlib.core.features.extract_features`."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        x, t = self.dataset[i]
        return x, int(t.label)


def build(args: argparse.Namespace):
    """(model in eval mode, dataset of ``(x, target)``, description) for the command line's choices."""
    from camlib.models import GAP_ARCHS, SmallGAPNet, load_efficientnet_lite0, load_torchvision

    if args.data == "procedural":
        from camlib.datasets import CLASSES, ProceduralShapes

        data = ProceduralShapes(args.num_images, seed=args.seed, size=args.image_size, split="test")
        if args.model != "small_gap":
            raise SystemExit("--data procedural goes with --model small_gap")
        torch.manual_seed(args.seed)  # the same random weights in every process when no checkpoint is given
        model = SmallGAPNet(len(CLASSES))
        if args.checkpoint:
            model.load_state_dict(load_checkpoint(args.checkpoint, fix="Give --checkpoint a state dict saved by torch.save."))
        return model.eval(), ProceduralTargets(data), f"SmallGAPNet on {args.num_images} procedural test images"
    from camlib.datasets.ilsvrc import open_ilsvrc_val
    from camlib.datasets.transforms import imagenet_eval_transform
    from camlib.evaluation.localize import load_gap_checkpoint, whole_image_transform

    if not args.root:
        raise SystemExit("--data ilsvrc needs --root (the ILSVRC2012 val folder; see data/README.md)")
    if args.model in GAP_ARCHS:
        if not args.checkpoint:
            raise SystemExit(f"{args.model} needs --checkpoint (fine-tuned weights, see notebook 02)")
        model, pre = load_gap_checkpoint(args.model, args.checkpoint), imagenet_eval_transform(224)
    else:
        net = load_efficientnet_lite0() if args.model == "efficientnet_lite0" else load_torchvision(args.model)
        model, pre = net.model, whole_image_transform(net.preprocess)
    data = open_ilsvrc_val(args.root, pre)
    if args.limit:
        from torch.utils.data import Subset

        data = Subset(data, range(min(args.limit, len(data))))
    return model.eval(), data, f"{args.model} on {len(data)} ILSVRC val images from {args.root}"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m camlib.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=("ilsvrc", "procedural"), default="ilsvrc")
    ap.add_argument("--root", help="ILSVRC val folder (any layout camlib reads)")
    ap.add_argument("--limit", type=int, default=0, help="first N images only (0 = all)")
    ap.add_argument("--num-images", type=int, default=64, help="procedural: number of images")
    ap.add_argument("--image-size", type=int, default=64, help="procedural: image size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--checkpoint", help="weights for a -GAP architecture or small_gap")
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.5])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes per process")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (one GPU per local rank)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0 = default)")
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                    help="channels-last model and inputs (default: faster CPU convolutions for the networks "
                         "make bench measures; benchmarks/README.md)")
    ap.add_argument("--out", type=Path, required=True, help="summary JSON (written by rank 0)")
    ap.add_argument("--features-out", type=Path, help="also the pooled CAM features of every image (.npz)")
    return ap


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ctx = distributed.init(args.device)
    t0 = time.time()
    from camlib.datasets.ilsvrc import make_loader

    model, data, description = build(args)
    model = model.to(ctx.device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    pin = ctx.device.type == "cuda"
    shard = distributed.shard(data, ctx, block=args.batch_size)
    loader = make_loader(shard, batch_size=args.batch_size, num_workers=args.workers, pin_memory=pin)
    protocols = Protocols(fractions=tuple(args.fractions))
    res = evaluate_protocols(model, loader, options=PAPER_OPTIONS, protocols=protocols, device=ctx.device,
                             total=len(loader), desc=f"rank {ctx.rank}", sync=True)  # fmt: skip
    summary = {
        "description": description,
        "metrics": summarize_protocols(res),
        "pxap": res.get("pxap", {}).get("pxap"),
        "protocols": res["protocols"],
        "options": res["options"],
        "world_size": ctx.world_size,
        "backend": ctx.backend,
        "batch_size": args.batch_size,
        "seconds": round(time.time() - t0, 2),
    }
    summary["metrics"].pop("seconds", None)  # timing differs between runs; the metrics must not
    if args.features_out:
        from camlib.core.features import gap_features

        X, y = gap_features(model, LabelView(data), batch_size=args.batch_size, device=ctx.device,
                            num_workers=args.workers, progress=False, shard=True)  # fmt: skip
        if ctx.is_main:
            args.features_out.parent.mkdir(parents=True, exist_ok=True)
            np.savez(args.features_out, X=X, y=y)
    if ctx.is_main:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
        print(f"{description}: {ctx.world_size} process(es), {summary['seconds']:.1f} s -> {args.out}")
    distributed.shutdown()
    return summary


if __name__ == "__main__":
    main()
    if distributed.launched_by_torchrun():
        # every process has passed the final barrier and the outputs are written: leave without the
        # interpreter's teardown, where gloo's worker threads have been seen (rarely) to abort a
        # finished run with SIGABRT ("terminate called without an active exception")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
