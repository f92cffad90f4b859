"""Localization evaluation (and GAP features) of one network over a dataset, on one or many processes.

    python -m camlib.evaluate --data ilsvrc --root $ILSVRC_ROOT --model resnet50 --out results/eval/resnet50.json
    torchrun --standalone --nproc_per_node=8 -m camlib.evaluate --data ilsvrc --root $ILSVRC_ROOT \\
        --model resnet50 --device cuda --workers 8 --batch-size 100 --out results/eval/resnet50.json

Every protocol of notebook 03, in three settings (``--settings``, default all of them):

- ``cam``: CAM of a single whole-image input (no crop), :func:`camlib.evaluation.localize.evaluate_protocols`:
  the paper's rule at each ``--fractions`` (each in (0, 1]), the released code's rule, the five-box
  heuristic (with both rules), MaxBoxAcc / MaxBoxAccV2, PxAP when masks exist;
- ``backprop``: the same protocols on the Backprop baseline's gradient maps (:class:`camlib.core.saliency.BackpropSaliency`);
- ``cam_ten_crop``: the released code's ten crops merged (ILSVRC images only; ``RELEASED_OPTIONS``).

``--out`` gets ``metrics`` (the ``cam`` setting, :func:`camlib.evaluation.localize.summarize_protocols`),
``runs`` (every setting's summary), ``not_run`` (settings that do not apply, and why) and how it was run.
Under torchrun each process evaluates a contiguous, batch-aligned shard (:mod:`camlib.core.distributed`;
gloo on CPU, nccl with ``--device cuda``) and the counts are merged, so the numbers equal a one-process
run's. Rank 0 writes ``--out`` and, with ``--features-out``, the globally pooled CAM features of every
image in dataset order (``X``, ``y`` in numpy's npz format, written to exactly the name given).

Nothing is lost, nothing is found late:

- ``--out`` and ``--features-out`` are checked (a file name, in a folder that can be created and written)
  BEFORE the model or data are loaded; both are written atomically.
- Every ``--save-every`` batches each process writes its state (finished settings, the current pass:
  :func:`camlib.evaluation.loop.loop_state`) to ``--state`` (default ``<out>.state/``, one pickle per
  process: resume only from your own files). Run the same command again after a kill and it resumes
  there, with the same numbers as an uninterrupted run; a state of other settings is refused (remove it
  or pass ``--restart``). The state is removed when ``--out`` is written.
- ``--max-map-side`` (default 1024) bounds peak memory on very large images: maps are made at most that
  large for box extraction and scoring (targets scaled to that grid, kept boxes scaled back;
  :func:`camlib.evaluation.loop.cap_target`); 0 keeps every map at its image's size.

Models: a torchvision name with ImageNet weights (``resnet50``, ``googlenet``; weights from torch's
cache), ``efficientnet_lite0`` (embedded), a -GAP architecture of :func:`camlib.models.gap_variant`
with ``--checkpoint`` (default: notebook 02's in :func:`camlib.models.checkpoint_dir`), or ``small_gap``
(:class:`camlib.models.SmallGAPNet`, ``--checkpoint`` optional) for ``--data procedural``
(:class:`camlib.datasets.ProceduralShapes`, with masks, made in memory).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import signal
import sys
import tempfile
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


SETTINGS = ("cam", "backprop", "cam_ten_crop")


def build(args: argparse.Namespace, setting: str = "cam"):
    """(model in eval mode, dataset of ``(x, target)``, description) for the command line's choices; the
    dataset's input is the whole image (``cam``, ``backprop``) or its ten crops (``cam_ten_crop``)."""
    from camlib.models import GAP_ARCHS, SmallGAPNet, load_torchvision

    if args.data == "procedural":
        from camlib.datasets import CLASSES, ProceduralShapes

        data = ProceduralShapes(args.num_images, seed=args.seed, size=args.image_size, split="test")
        if args.model != "small_gap":
            raise SystemExit("--data procedural goes with --model small_gap")
        torch.manual_seed(args.seed)  # the same random weights in every process when no checkpoint is given
        model = SmallGAPNet(len(CLASSES))
        if args.checkpoint:
            model.load_state_dict(
                load_checkpoint(args.checkpoint, fix="Give --checkpoint a state dict saved by torch.save.")
            )
        return (
            model.eval(),
            ProceduralTargets(data),
            f"SmallGAPNet on {args.num_images} procedural test images",
        )
    from camlib.datasets.ilsvrc import open_ilsvrc_val
    from camlib.datasets.transforms import (
        TenCrop,
        imagenet_eval_transform,
        input_normalizer,
        localization_input,
    )
    from camlib.evaluation.localize import load_gap_checkpoint

    if not args.root:
        raise SystemExit("--data ilsvrc needs --root (the ILSVRC2012 val folder; see data/README.md)")
    if args.model in GAP_ARCHS:
        from camlib.models import find_checkpoint

        ckpt = args.checkpoint or find_checkpoint(args.model, quiet=True)
        if not ckpt:
            raise SystemExit(
                f"{args.model} needs --checkpoint (fine-tuned weights of notebook 02; none in the "
                f"checkpoint folder either)"
            )
        model, pre = load_gap_checkpoint(args.model, ckpt), imagenet_eval_transform(224)
    else:
        net = load_torchvision(args.model)  # efficientnet_lite0: the embedded one
        model, pre = net.model, localization_input(net.preprocess)
    data = open_ilsvrc_val(args.root, TenCrop(input_normalizer(pre)) if setting == "cam_ten_crop" else pre)
    if args.limit:
        from torch.utils.data import Subset

        data = Subset(data, range(min(args.limit, len(data))))
    return model.eval(), data, f"{args.model} on {len(data)} ILSVRC val images from {args.root}"


def _fraction(text: str) -> float:
    f = float(text)
    if not 0.0 < f <= 1.0:
        raise argparse.ArgumentTypeError(
            f"{text}: a threshold fraction lies in (0, 1] (of the map's maximum)"
        )
    return f


def _settings(text: str) -> tuple[str, ...]:
    names = SETTINGS if text == "all" else tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in names if s not in SETTINGS]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"{text}: expected 'all' or a comma-separated subset of {', '.join(SETTINGS)}"
        )
    return names


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m camlib.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=("ilsvrc", "procedural"), default="ilsvrc")
    ap.add_argument("--root", help="ILSVRC val folder (any layout camlib reads)")
    ap.add_argument("--limit", type=int, default=0, help="first N images only (0 = all)")
    ap.add_argument("--num-images", type=int, default=64, help="procedural: number of images")
    ap.add_argument("--image-size", type=int, default=64, help="procedural: image size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="resnet50")
    ap.add_argument(
        "--checkpoint", help="weights for a -GAP architecture (default: the checkpoint folder's) or small_gap"
    )
    ap.add_argument(
        "--settings",
        type=_settings,
        default=SETTINGS,
        help="all (default) or a comma-separated subset of cam,backprop,cam_ten_crop",
    )
    ap.add_argument("--fractions", type=_fraction, nargs="+", default=[0.2, 0.3, 0.4, 0.5])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes per process")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (one GPU per local rank)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0 = default)")
    ap.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="channels-last model and inputs (default: faster CPU convolutions for the networks "
        "make bench measures; benchmarks/README.md)",
    )
    ap.add_argument(
        "--max-map-side",
        type=int,
        default=1024,
        help="longest side of the maps boxes are extracted from (bounds memory on huge images; 0: no cap)",
    )
    ap.add_argument("--out", type=Path, required=True, help="summary JSON (written by rank 0)")
    ap.add_argument(
        "--features-out",
        type=Path,
        help="also the pooled CAM features of every image (npz data, this exact name)",
    )
    ap.add_argument("--state", type=Path, help="folder of the resumable state (default: <out>.state)")
    ap.add_argument("--save-every", type=int, default=20, help="batches between state writes (0: never)")
    ap.add_argument("--restart", action="store_true", help="ignore (and replace) an existing state")
    ap.add_argument(
        "--stop-after-checkpoints", type=int, default=0, help=argparse.SUPPRESS
    )  # tests: kill -9 itself
    return ap


def check_output(path: Path | None, flag: str) -> None:
    """Exit with status 2 (a usage error) unless ``path`` names a file this process can create: checked
    before any model or data is loaded, so a mistyped ``--out`` costs nothing."""
    if path is None:
        return
    path = Path(path)
    problem = None
    if path.is_dir():
        problem = "is a folder; give a file name"
    else:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            problem = f"cannot be written: {blocker} is a file, not a folder"
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".check"):
                    pass
            except OSError as exc:
                problem = f"cannot be written ({exc.strerror or exc})"
    if problem:
        print(f"camlib.evaluate: error: {flag} {path} {problem}; nothing was run", file=sys.stderr)
        raise SystemExit(2)


def _fingerprint(args: argparse.Namespace, world_size: int) -> dict:
    keys = (
        "data",
        "root",
        "limit",
        "num_images",
        "image_size",
        "seed",
        "model",
        "checkpoint",
        "settings",
        "fractions",
        "batch_size",
        "max_map_side",
    )
    return {
        **{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in vars(args).items() if k in keys},
        "world_size": world_size,
    }


class EvalState:
    """This process's resumable state: ``finished`` {setting: summary}, ``current`` setting and its ``loop``
    state; one pickle per process in the state folder, written atomically."""

    def __init__(self, folder: Path, rank: int, fingerprint: dict, restart: bool) -> None:
        self.path = folder / f"rank{rank}.pkl"
        self.fingerprint = fingerprint
        self.finished: dict[str, dict] = {}
        self.current: str | None = None
        self.loop: dict | None = None
        self.saves = 0
        if self.path.is_file() and not restart:
            saved = pickle.loads(self.path.read_bytes())
            if saved["fingerprint"] != fingerprint:
                raise SystemExit(
                    f"error: the state in {folder} is of another run ({saved['fingerprint']}); remove "
                    f"it or pass --restart"
                )
            self.finished, self.current, self.loop = saved["finished"], saved["current"], saved["loop"]
            done = self.loop["batches"] if self.loop else 0
            print(
                f"resuming from {self.path}: finished {sorted(self.finished) or 'none'}; "
                f"{self.current or '-'} at batch {done}",
                flush=True,
            )

    def save(self) -> None:
        from camlib.core.io import atomic_write_bytes

        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(
            self.path,
            pickle.dumps(
                {
                    "fingerprint": self.fingerprint,
                    "finished": self.finished,
                    "current": self.current,
                    "loop": self.loop,
                }
            ),
        )
        self.saves += 1

    def resume_for(self, setting: str) -> dict | None:
        return self.loop if self.current == setting else None


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    check_output(args.out, "--out")  # before any work
    check_output(args.features_out, "--features-out")
    if args.threads:
        torch.set_num_threads(args.threads)
    ctx = distributed.init(args.device)
    t0 = time.time()
    from torch.utils.data import Subset

    from camlib.core.saliency import BackpropSaliency
    from camlib.datasets.ilsvrc import make_loader
    from camlib.evaluation.localize import RELEASED_OPTIONS

    state = EvalState(
        args.state or args.out.with_name(args.out.name + ".state"),
        ctx.rank,
        _fingerprint(args, ctx.world_size),
        args.restart,
    )
    protocols = Protocols(fractions=tuple(args.fractions))
    runs, not_run, description, model = dict(state.finished), {}, None, None
    for setting in args.settings:
        if setting == "cam_ten_crop" and args.data != "ilsvrc":
            not_run[setting] = "ten crops need ILSVRC images (--data ilsvrc)"
            continue
        if setting in runs:
            continue
        model, data, description = build(args, setting)
        model = model.to(ctx.device)
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        source = BackpropSaliency(model) if setting == "backprop" else model
        bs = max(1, args.batch_size // 5) if setting == "cam_ten_crop" else args.batch_size
        shard = distributed.shard(data, ctx, block=bs)
        resume = state.resume_for(setting)
        start = resume["batches"] * bs if resume else 0
        part = Subset(shard, range(start, len(shard))) if start else shard
        loader = make_loader(
            part, batch_size=bs, num_workers=args.workers, pin_memory=ctx.device.type == "cuda"
        )
        state.current = setting

        def checkpoint(loop: dict, setting=setting) -> None:
            state.current, state.loop = setting, loop
            state.save()
            if args.stop_after_checkpoints and state.saves >= args.stop_after_checkpoints:
                os.kill(os.getpid(), signal.SIGKILL)  # the test's kill -9, right after a state write

        res = evaluate_protocols(
            source,
            loader,
            options=RELEASED_OPTIONS if setting == "cam_ten_crop" else PAPER_OPTIONS,
            protocols=protocols,
            device=ctx.device,
            total=len(loader),
            desc=f"{setting} rank {ctx.rank}",
            sync=True,
            max_map_side=args.max_map_side or None,
            resume=resume,
            checkpoint=checkpoint if args.save_every else None,
            checkpoint_every=args.save_every,
        )
        summary = summarize_protocols(res)
        summary.pop("seconds", None)  # timing differs between runs; the metrics must not
        summary["pxap"] = res.get("pxap", {}).get("pxap")
        runs[setting] = summary
        state.finished, state.current, state.loop = dict(runs), None, None
        if args.save_every:
            state.save()
    if description is None:  # every setting came from the state: the description of the data and model
        model, data, description = build(args, "cam")
        model = model.to(ctx.device)
    first = runs.get("cam") or next(iter(runs.values()))
    summary = {
        "description": description,
        "metrics": first,
        "pxap": first.get("pxap"),
        "runs": runs,
        "not_run": not_run,
        "protocols": protocols.to_dict(),
        "options": {"single": PAPER_OPTIONS.to_dict(), "ten_crop": RELEASED_OPTIONS.to_dict()},
        "max_map_side": args.max_map_side or None,
        "world_size": ctx.world_size,
        "backend": ctx.backend,
        "batch_size": args.batch_size,
        "seconds": round(time.time() - t0, 2),
    }
    if args.features_out:
        from camlib.core.features import gap_features

        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        _, data, _ = build(args, "cam")
        X, y = gap_features(model, LabelView(data), batch_size=args.batch_size, device=ctx.device,
                            num_workers=args.workers, progress=False, shard=True)  # fmt: skip
        if ctx.is_main:
            from camlib.core.io import atomic_write_bytes

            buf = io.BytesIO()
            np.savez(buf, X=X, y=y)  # to a buffer: the file gets exactly the name given (no ".npz" added)
            atomic_write_bytes(args.features_out, buf.getvalue())
    if ctx.is_main:
        from camlib.core.io import atomic_write_text

        atomic_write_text(args.out, json.dumps(summary, indent=1, sort_keys=True) + "\n")
        print(f"{description}: {ctx.world_size} process(es), {summary['seconds']:.1f} s -> {args.out}")
    distributed.all_sum(0)  # a barrier: --out is written before any process removes its state
    state.path.unlink(missing_ok=True)
    if ctx.is_main:
        try:
            state.path.parent.rmdir()
        except OSError:
            pass  # other ranks' files not yet removed, or not empty: harmless
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
