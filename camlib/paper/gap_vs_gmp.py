"""The paper's fine-tuning recipe on :func:`camlib.models.train.fit`, and the GAP-vs-GMP study of notebook 02.

Recipe (section 3.1 and the released GoogLeNet-CAM solver, see ``../shared/paper/numbers.md``)::

    SGD, momentum 0.9, weight decay 5e-4, batch 64, base lr 0.001 for the pretrained backbone and
    10x for the new layers (``model.head_prefixes``), x0.1 every 40k of 160k iterations;
    random 224 x 224 crops of the image resized to 256 x 256, mirrored with probability 1/2.

:func:`paper_config` turns an iteration budget into that schedule (the decay keeps the 4-step shape
for a smaller budget), :func:`finetune` runs it through ``fit`` (checkpoints at every epoch end and
every ``checkpoint_every`` steps, exact resume, tqdm with loss and accuracy) on the ILSVRC2012 train
folder (:func:`camlib.datasets.ilsvrc.ilsvrc_train_folder`: one sub-folder per WordNet id, sorted =
torchvision's class order), and :func:`evaluate_ilsvrc` scores a network on ILSVRC val with the one localization code
path (:func:`camlib.evaluation.localize.evaluate_localization`): Table 1 classification and Table 2 localization.

For 64 x 64-ish procedural images the paper's crop becomes
:class:`camlib.datasets.transforms.PadCropFlip` (pad, random crop back to the same size, mirror),
applied to whole batches inside ``fit``. The input transforms, the ILSVRC train reader and
``ILSVRC_TRAIN_HINT`` live in the data layer and are re-exported here.

The second half holds the quick profile's GAP-vs-GMP study: train a :class:`~camlib.models.SmallGAPNet`
with one pooling (:func:`train_pooling_run`), sweep the box threshold on a validation split, pick the
best fraction there and report it on the test split (never tuned on test), summarise seeds
(:func:`summarize_runs`) and say in words whether the measured numbers agree with the paper
(:func:`pooling_verdict`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from camlib.core.cam import CAM, CAMOptions, postprocess
from camlib.datasets.ilsvrc import ILSVRC_TRAIN_HINT, default_ilsvrc_train_root, ilsvrc_train_folder
from camlib.datasets.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PadCropFlip,
    imagenet_eval_transform,
    imagenet_train_transform,
)
from camlib.evaluation.batch import ByFraction
from camlib.evaluation.localize import (
    PAPER_OPTIONS,
    array_batches,
    evaluate_ilsvrc_val,
    evaluate_localization,
)
from camlib.models.train import TrainConfig, TrainState, fit

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ILSVRC_TRAIN_HINT",
    "check_paper_inputs",
    "POOL_NAMES",
    "PadCropFlip",
    "best_fraction",
    "cam_extent",
    "default_ilsvrc_train_root",
    "evaluate_ilsvrc",
    "finetune",
    "finetune_and_evaluate",
    "gt_cams",
    "ilsvrc_train_folder",
    "imagenet_eval_transform",
    "imagenet_train_transform",
    "localization_sweep",
    "paper_comparisons",
    "paper_config",
    "paper_pooling_study",
    "plot_threshold_sweep",
    "pooling_study",
    "pooling_verdict",
    "quick_comparisons",
    "summarize_runs",
    "sweep_curve",
    "train_pooling_run",
]

# --------------------------------------------------------------------------- the recipe


def paper_config(
    n_train: int,
    *,
    iters: int = 160_000,
    batch_size: int = 64,
    lr: float = 1e-3,
    decay_every: int | None = None,
    head_lr_mult: float = 10.0,
    checkpoint_every: int = 1000,
    seed: int = 0,
) -> TrainConfig:
    """The paper's fine-tuning schedule as a :class:`~camlib.models.train.TrainConfig` for ``n_train`` images.

    ``iters`` is the iteration budget (160k in the released solver); the lr is divided by 10 every
    ``decay_every`` iterations (default ``iters // 4``: 40k of 160k). ``epochs`` is just large enough to
    hold the budget, which ``max_iters`` then enforces.
    """
    if n_train <= 0 or iters <= 0 or batch_size <= 0:
        raise ValueError(f"n_train, iters and batch_size must be positive: {n_train}, {iters}, {batch_size}")
    steps_per_epoch = math.ceil(n_train / batch_size)
    return TrainConfig(
        epochs=math.ceil(iters / steps_per_epoch),
        batch_size=batch_size,
        lr=lr,
        momentum=0.9,
        weight_decay=5e-4,
        lr_gamma=0.1,
        lr_step_every=decay_every if decay_every is not None else max(1, iters // 4),
        head_lr_mult=head_lr_mult,
        max_iters=iters,
        checkpoint_every=checkpoint_every,
        seed=seed,
    )


def finetune(
    model: nn.Module,
    dataset: Dataset,
    config: TrainConfig,
    *,
    checkpoint: str | Path | None = None,
    augment: Callable[[Tensor], Tensor] | None = None,
    head_prefixes: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    stop_after: int | None = None,
    progress: bool = True,
    **fit_options,
) -> TrainState:
    """Fine-tune with :func:`camlib.models.train.fit`, the new layers at ``config.head_lr_mult`` x the lr.

    ``head_prefixes`` default to ``model.head_prefixes`` (set by :mod:`camlib.models.gap`).
    ``augment`` is a batch augmentation (e.g. :class:`PadCropFlip`); ``None`` means none beyond the
    dataset's own transform (ImageNet: :func:`imagenet_train_transform` already crops and mirrors).
    Resume: call again with the same ``checkpoint`` and config after an interruption. ``fit_options``
    go to ``fit`` as they are (``num_workers``, ``amp``, ``channels_last``, ...; DDP under torchrun).
    """
    head = tuple(head_prefixes) if head_prefixes is not None else tuple(getattr(model, "head_prefixes", ()))
    if config.head_lr_mult != 1.0 and not head:
        raise ValueError(
            f"head_lr_mult={config.head_lr_mult} but no head layers are named: pass head_prefixes=... "
            "or use a model from camlib.models.gap (which sets model.head_prefixes)"
        )
    return fit(
        model, dataset, config, checkpoint=checkpoint, device=device, augment=augment,
        head_prefixes=head, stop_after=stop_after, progress=progress, **fit_options,
    )  # fmt: skip


def evaluate_ilsvrc(
    model: nn.Module,
    val_root: str | Path,
    *,
    fractions: Sequence[float] = (0.2,),
    batch_size: int = 32,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    limit: int | None = None,
    input_size: int = 224,
) -> dict:
    """Table 1 (classification) and Table 2 (localization) on an ILSVRC val folder (any layout
    :func:`camlib.datasets.ilsvrc.open_ilsvrc_val` reads), through
    :func:`camlib.evaluation.localize.evaluate_localization` with the paper's box rule (:data:`PAPER_OPTIONS`).

    The input is the whole image resized to ``input_size`` (:func:`imagenet_eval_transform`); maps are
    upsampled to each image's own size. ``limit`` keeps the first ``limit`` images (smoke tests).
    Returns evaluate_localization's dict plus ``"n_images"``.
    """
    model.to(device)
    data, out = evaluate_ilsvrc_val(model, val_root, imagenet_eval_transform(input_size), fractions=fractions,
                                    options=PAPER_OPTIONS, topk=5, batch_size=batch_size, num_workers=num_workers,
                                    device=device, limit=limit)  # fmt: skip
    out["n_images"] = len(data)
    return out


# --------------------------------------------------------------------------- GAP vs GMP (quick profile)


def _device_of(model: nn.Module | CAM) -> torch.device:
    net = model.model if isinstance(model, CAM) else model
    p = next(net.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def localization_sweep(
    model: nn.Module | CAM,
    data,
    fractions: Sequence[float],
    *,
    topk: int = 1,
    batch_size: int = 256,
    options: CAMOptions = PAPER_OPTIONS,
    device: str | torch.device | None = None,
) -> dict:
    """:func:`camlib.evaluation.localize.evaluate_localization` on an in-memory set with ``images``, ``labels`` and
    ``boxes`` arrays (e.g. :class:`camlib.datasets.ProceduralShapes`) at every threshold fraction."""
    n = len(data.labels)
    return evaluate_localization(
        model, array_batches(data.images, data.labels, data.boxes, batch_size=batch_size),
        fractions=tuple(float(f) for f in fractions), options=options, topk=topk,
        total=math.ceil(n / batch_size), device=device if device is not None else _device_of(model),
    )  # fmt: skip


def sweep_curve(result: dict, key: str = "gt_known_loc_acc") -> tuple[list[float], list[float]]:
    """(fractions, values of ``key``) of a :func:`localization_sweep` result, fractions ascending."""
    loc = ByFraction(result["localization"])
    fr = loc.fractions()
    return fr, [float(loc[f][key]) for f in fr]


def best_fraction(result: dict, key: str = "gt_known_loc_acc") -> float:
    """The threshold fraction with the highest ``key`` (ties: the smallest fraction). Call it on a
    VALIDATION sweep and report the test split at the fraction it returns."""
    fr, vals = sweep_curve(result, key)
    return fr[int(np.argmax(vals))]


def train_pooling_run(
    make_model: Callable[[], nn.Module],
    train,
    val,
    test,
    config: TrainConfig,
    *,
    fractions: Sequence[float],
    augment: Callable[[Tensor], Tensor] | None = None,
    select_key: str = "gt_known_loc_acc",
    topk: int = 1,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict:
    """Train one model, sweep the box threshold on ``val``, evaluate ``test`` at the paper's 0.2 and at the
    fraction chosen on ``val``.

    ``make_model()`` builds the (seeded) model; ``train`` is an (image, label) dataset, ``val``/``test``
    in-memory sets with ``images``, ``labels``, ``boxes``. Returns ``{"model", "state", "metrics",
    "val_curve", "seconds"}``; ``metrics`` (percent): ``train_acc`` (last epoch, augmented training
    images), ``cls_acc``, ``gt_known_loc_acc@0.2``,
    ``top1_loc_acc@0.2``, ``best_fraction`` (chosen on val), ``gt_known_loc_acc@best``,
    ``top1_loc_acc@best`` (on test).
    """
    t0 = time.time()
    model = make_model()
    state = fit(model, train, config, augment=augment, device=device, progress=progress)
    t1 = time.time()
    model.eval()
    cam = CAM(model)
    val_res = localization_sweep(cam, val, fractions, topk=topk)
    best = best_fraction(val_res, select_key)
    test_res = localization_sweep(cam, test, sorted({0.2, best}), topk=topk)
    loc_paper, loc_best = test_res["localization"][0.2], test_res["localization"][best]
    metrics = {
        "train_acc": 100.0 * state.history[-1]["train_acc"] if state.history else float("nan"),
        "cls_acc": test_res["classification"]["top1_acc"],
        "gt_known_loc_acc@0.2": loc_paper["gt_known_loc_acc"],
        "top1_loc_acc@0.2": loc_paper["top1_loc_acc"],
        "best_fraction": best,
        "gt_known_loc_acc@best": loc_best["gt_known_loc_acc"],
        "top1_loc_acc@best": loc_best["top1_loc_acc"],
        "val_gt_known_loc_acc@best": val_res["localization"][best]["gt_known_loc_acc"],
    }
    return {
        "model": model,
        "state": state,
        "head": cam.head,
        "metrics": metrics,
        "val_curve": ByFraction(zip(*sweep_curve(val_res, select_key), strict=True)),
        "seconds": {"train": t1 - t0, "eval": time.time() - t1},
    }


POOL_NAMES = {"avg": "GAP", "max": "GMP"}


def pooling_study(
    train,
    val,
    test,
    *,
    seeds: Sequence[int],
    epochs: int,
    batch_size: int,
    lr: float,
    fractions: Sequence[float],
    pad: int = 3,
    width: int = 64,
    device: str | torch.device = "cpu",
) -> tuple[dict[str, list[dict]], dict]:
    """Notebook 02's quick profile: for each seed, a :class:`~camlib.models.SmallGAPNet` with GAP and one
    with GMP, same initial weights, data order, crops (:class:`PadCropFlip` ``pad``) and schedule (lr x0.1
    after 3/4 of the steps); each through :func:`train_pooling_run` (threshold chosen on ``val``) plus
    :func:`cam_extent` on ``test`` at 0.2. Prints one line per run.

    Returns ``({"avg": [run per seed], "max": [...]}, options)``, ``options`` recording the training
    config and the model.
    """
    from tqdm.auto import tqdm

    from camlib.datasets import CLASSES
    from camlib.models import SmallGAPNet

    runs: dict[str, list[dict]] = {"avg": [], "max": []}
    config = None
    for seed in tqdm(list(seeds), desc="seeds"):
        steps_per_epoch = -(-len(train) // batch_size)
        config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr,
                             lr_step_every=max(1, steps_per_epoch * epochs * 3 // 4), seed=seed)  # fmt: skip
        for pool in ("avg", "max"):

            def make_model(pool=pool, seed=seed):
                torch.manual_seed(seed)
                return SmallGAPNet(len(CLASSES), pool=pool, width=width)

            run = train_pooling_run(make_model, train, val, test, config, fractions=fractions, augment=PadCropFlip(pad),
                                    device=device)  # fmt: skip
            run["extent"] = cam_extent(run["model"], test, 0.2)
            runs[pool].append(run)
            m = run["metrics"]
            print(
                f"seed {seed} {POOL_NAMES[pool]}: acc {m['cls_acc']:.1f}%  GT-known@0.2 {m['gt_known_loc_acc@0.2']:.1f}%  "
                f"best t={m['best_fraction']:.2f} (val) -> GT-known {m['gt_known_loc_acc@best']:.1f}%  "
                f"[train {run['seconds']['train']:.0f} s, eval {run['seconds']['eval']:.0f} s, head {run['head'].pool}]"
            )
    if config is None:
        raise ValueError("no seeds given")
    options = {"train": config.to_dict() | {"seed": "SEED + i", "augment": repr(PadCropFlip(pad))},
               "model": repr(runs["avg"][0]["model"]).replace("\n", " ")}  # fmt: skip
    return runs, options


def plot_threshold_sweep(
    runs: dict[str, list[dict]], fractions: Sequence[float], *, paper_fraction: float = 0.2
):
    """GT-known localization on the validation split against the threshold, per pooling: mean over seeds
    (band: min-max over seeds), the fraction chosen on it per seed (markers), the paper's 0.2 (dotted).
    Returns the figure."""
    import matplotlib.pyplot as plt

    from camlib.core import viz

    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=viz.FIG_DPI)
    for pool, colour in (("avg", "tab:blue"), ("max", "tab:red")):
        curves = np.array([[r["val_curve"][f] for f in fractions] for r in runs[pool]])
        ax.plot(
            fractions, curves.mean(0), color=colour, label=f"{POOL_NAMES[pool]} (mean of {len(curves)} seeds)"
        )
        ax.fill_between(fractions, curves.min(0), curves.max(0), color=colour, alpha=0.2)
        for r in runs[pool]:
            best = r["metrics"]["best_fraction"]
            ax.plot(best, r["val_curve"][best], "o", color=colour, ms=5)
    ax.axvline(paper_fraction, ls=":", color="gray", label=f"paper's threshold {paper_fraction:g}")
    ax.set_xlabel("threshold (fraction of the CAM's max)")
    ax.set_ylabel("GT-known localization, val (%)")
    ax.set_title("Box threshold sweep: GAP vs GMP")
    ax.legend(fontsize=8)
    return fig


def summarize_runs(runs: Sequence[dict]) -> dict[str, dict[str, float | list[float]]]:
    """Per metric over runs (seeds): ``mean``, ``std`` (sample std, ddof=1; 0 for one run), ``min``,
    ``max`` and the ``values`` themselves."""
    if not runs:
        raise ValueError("no runs to summarise")
    out: dict[str, dict] = {}
    for key in runs[0]["metrics"]:
        v = np.array([float(r["metrics"][key]) for r in runs])
        out[key] = {
            "mean": float(v.mean()),
            "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(v.min()),
            "max": float(v.max()),
            "values": [float(x) for x in v],
        }
    return out


def _fmt(s: dict) -> str:
    return f"{s['mean']:.1f} ± {s['std']:.1f}"


def pooling_verdict(
    summary: dict[str, dict], *, loc_key: str, cls_key: str = "cls_acc", cls_tolerance: float = 3.0
) -> dict:
    """Does the measured GAP-vs-GMP comparison agree with the paper's claim?

    ``summary`` maps ``"avg"``/``"max"`` to :func:`summarize_runs` outputs. The paper's claim has two
    parts: (1) GAP localizes better than GMP (``loc_key``, higher = better), (2) the two classify about
    equally well. (1) holds when GAP's mean is higher AND the difference exceeds the larger of the two
    seed standard deviations; (2) when the means differ by at most ``cls_tolerance`` points (the paper:
    0.6 points top-1). Returns the booleans, the differences and a sentence built from the numbers.
    """
    gap, gmp = summary["avg"], summary["max"]
    d_loc = gap[loc_key]["mean"] - gmp[loc_key]["mean"]
    noise = max(gap[loc_key]["std"], gmp[loc_key]["std"])
    loc_agrees = d_loc > 0 and d_loc > noise
    d_cls = gap[cls_key]["mean"] - gmp[cls_key]["mean"]
    cls_agrees = abs(d_cls) <= cls_tolerance
    if loc_agrees:
        loc_text = (
            f"GAP localizes better ({_fmt(gap[loc_key])} vs {_fmt(gmp[loc_key])} %, +{d_loc:.1f} points, "
            f"more than the seed spread of {noise:.1f}): this agrees with the paper"
        )
    elif d_loc > 0:
        loc_text = (
            f"GAP localizes slightly better ({_fmt(gap[loc_key])} vs {_fmt(gmp[loc_key])} %, "
            f"+{d_loc:.1f} points) but within the seed spread of {noise:.1f}: the direction agrees "
            "with the paper, the evidence is too weak to claim it"
        )
    else:
        loc_text = (
            f"GAP does NOT localize better ({_fmt(gap[loc_key])} vs {_fmt(gmp[loc_key])} %, "
            f"{d_loc:+.1f} points): this disagrees with the paper"
        )
    cls_text = (
        f"classification accuracy {_fmt(gap[cls_key])} (GAP) vs {_fmt(gmp[cls_key])} (GMP), a "
        f"{d_cls:+.1f}-point difference, which "
        + (
            "agrees with the paper's 'about as well'"
            if cls_agrees
            else f"is larger than {cls_tolerance:g} points, unlike the paper's 0.6"
        )
    )
    return {
        "loc_agrees": bool(loc_agrees),
        "cls_agrees": bool(cls_agrees),
        "loc_diff": float(d_loc),
        "cls_diff": float(d_cls),
        "sentence": f"Localization ({loc_key}): {loc_text}. Classification: {cls_text}.",
    }


@torch.inference_mode()
def gt_cams(model: nn.Module | CAM, images, labels, options: CAMOptions = PAPER_OPTIONS) -> np.ndarray:
    """CAMs of the given classes (usually the ground truth), upsampled to the image size and normalised
    per ``options``: (N, H, W) float array. ``images``: (N, H, W, 3) uint8 or (N, 3, H, W) float."""
    x = torch.as_tensor(np.asarray(images))
    if x.dtype == torch.uint8:
        x = x.permute(0, 3, 1, 2).float() / 255.0
    cam = model if isinstance(model, CAM) else CAM(model)
    out = cam(x.to(_device_of(cam)), targets=torch.as_tensor(np.asarray(labels), dtype=torch.long))
    size = tuple(x.shape[-2:])
    return postprocess(out.maps, options, input_size=size, original_size=size)[:, 0].cpu().numpy()


def _box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of inclusive (x0, y0, x1, y1) boxes; 0 for missing boxes (NO_BOX rows)."""
    b = np.asarray(boxes).reshape(-1, 4)
    return np.where(b[:, 0] >= 0, (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1), 0)


@torch.inference_mode()
def cam_extent(
    model: nn.Module | CAM, data, fraction: float = 0.2, *, batch_size: int = 256
) -> dict[str, float]:
    """How much of the object the ground-truth class's CAM covers, with the paper's rule (map >= fraction
    x max), on an in-memory set with ``images``, ``labels``, ``boxes`` and ``masks`` (procedural data).

    Means over images, in percent: ``mask_coverage`` (share of the object's pixels inside the region),
    ``region_on_object`` (share of the region's pixels on the object) and ``box_area_ratio`` (area of the
    paper's box, largest component, over the ground-truth box's area; 100 = same size).
    """
    from camlib.core.boxes import paper_boxes

    cam = model if isinstance(model, CAM) else CAM(model)
    cover, on_obj, ratio = [], [], []
    for s in range(0, len(data.labels), batch_size):
        sl = slice(s, s + batch_size)
        maps = gt_cams(cam, data.images[sl], data.labels[sl])
        region = np.nan_to_num(maps, nan=-np.inf) >= fraction
        mask = np.asarray(data.masks[sl], dtype=bool)
        inter = (region & mask).sum((1, 2))
        cover.append(inter / np.maximum(mask.sum((1, 2)), 1))
        on_obj.append(inter / np.maximum(region.sum((1, 2)), 1))
        ratio.append(_box_area(paper_boxes(maps, fraction)) / _box_area(np.asarray(data.boxes[sl])))
    return {
        "mask_coverage": 100.0 * float(np.concatenate(cover).mean()),
        "region_on_object": 100.0 * float(np.concatenate(on_obj).mean()),
        "box_area_ratio": 100.0 * float(np.concatenate(ratio).mean()),
    }


# --------------------------------------------------------------------------- paper profile


def finetune_and_evaluate(
    arch: str,
    pool: str,
    train_set: Dataset | None,
    val_root: str | Path,
    *,
    iters: int,
    batch_size: int = 64,
    weights: str | None = "DEFAULT",
    checkpoint: str | Path | None = None,
    resume: bool = True,
    device: str | torch.device = "cpu",
    seed: int = 0,
    num_workers: int = 0,
    progress: bool = True,
) -> dict:
    """One row of Tables 1 and 2: build ``arch`` with ``pool`` (:func:`camlib.models.gap_variant`, ImageNet
    ``weights``), fine-tune it on ``train_set`` with :func:`paper_config` (``iters`` iterations; resumed
    from ``checkpoint`` when it exists and ``resume``; started over otherwise), then evaluate it on ILSVRC
    val with :func:`evaluate_ilsvrc`. The original networks (``"googlenet"``, ``"resnet50"``) and
    ``iters=0`` are evaluated as loaded, without training.
    """
    from camlib.models.gap import ORIGINAL_ARCHS, gap_variant, paper_key

    model = gap_variant(arch, pool=pool, weights=weights)  # type: ignore[arg-type]
    t0 = time.time()
    row: dict = {
        "arch": arch,
        "pool": pool,
        "paper_key": paper_key(arch, pool),
        "description": model.description,
    }
    if arch not in ORIGINAL_ARCHS and iters > 0:
        if train_set is None:
            raise FileNotFoundError(f"fine-tuning {arch} needs the ILSVRC train folder. {ILSVRC_TRAIN_HINT}")
        if checkpoint is not None and not resume:
            Path(checkpoint).unlink(missing_ok=True)
        cfg = paper_config(len(train_set), iters=iters, batch_size=batch_size, seed=seed)  # type: ignore[arg-type]
        state = finetune(model, train_set, cfg, checkpoint=checkpoint, device=device, progress=progress)
        row.update(
            config=cfg.to_dict(),
            steps=state.step,
            resumed_from=state.resumed_from,
            finished=state.finished,
            last_epoch=state.history[-1] if state.history else None,
        )
    else:
        row.update(config=None, steps=0, resumed_from=None, finished=True, last_epoch=None)
    t1 = time.time()
    ev = evaluate_ilsvrc(model, val_root, device=device, num_workers=num_workers)
    row.update(
        classification=ev["classification"],
        localization=ev["localization"][0.2],
        head=ev["head"],
        n_images=ev["n_images"],
        seconds={"train": t1 - t0, "eval": time.time() - t1},
    )
    return row


def check_paper_inputs(
    archs: Sequence[str], train_root: str | Path | None, val_root: str | Path | None, *, iters: int
) -> None:
    """Fail fast, before any long work, when the paper profile's ILSVRC inputs are missing: the val folder
    must open in one of the layouts of data/README.md, and the train folder (needed only when some network
    trains) must be a folder of class sub-folders. :func:`paper_pooling_study` checks them fully again."""
    from camlib.datasets.ilsvrc import ILSVRC_TRAIN_HINT, open_ilsvrc_val
    from camlib.models.gap import ORIGINAL_ARCHS

    if val_root is None:
        raise FileNotFoundError(
            "PROFILE='paper' needs ILSVRC val: set ILSVRC_VAL (or $ILSVRC_ROOT) to a folder "
            "in one of the layouts of data/README.md (e.g. images/ + the wsolevaluation manifests)"
        )
    open_ilsvrc_val(val_root)
    if iters > 0 and any(a not in ORIGINAL_ARCHS for a in archs):
        root = None if train_root is None else Path(train_root)
        if root is None or not root.is_dir() or not any(p.is_dir() for p in root.iterdir()):
            raise FileNotFoundError(
                f"no ILSVRC train folder of class sub-folders at {root}. {ILSVRC_TRAIN_HINT}"
            )


def paper_pooling_study(
    archs: Sequence[str],
    pools: Sequence[str],
    train_root: str | Path | None,
    val_root: str | Path | None,
    *,
    iters: int,
    batch_size: int = 64,
    weights: str | None = "DEFAULT",
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    device: str | torch.device = "cpu",
    seed: int = 0,
    num_workers: int = 0,
) -> list[dict]:
    """Notebook 02's paper profile: :func:`finetune_and_evaluate` for every architecture and pooling
    (originals ``googlenet`` / ``resnet50`` with average pooling only, as loaded), checkpoints at
    ``checkpoint_dir/<arch>_<pool>.pt`` (``None``: :func:`camlib.models.checkpoint_dir`, the folder
    notebooks 03, 04 and 05 read by default). The train folder is opened only when some network needs
    training. Prints one line per network; returns the rows."""
    from camlib.models.checkpoints import checkpoint_path
    from camlib.models.gap import ORIGINAL_ARCHS

    if val_root is None:
        raise FileNotFoundError(
            "PROFILE='paper' needs ILSVRC val: set ILSVRC_VAL (or $ILSVRC_ROOT) to a folder "
            "in one of the layouts of data/README.md (e.g. images/ + the wsolevaluation manifests)"
        )
    needs_training = iters > 0 and any(a not in ORIGINAL_ARCHS for a in archs)
    train_data = ilsvrc_train_folder(train_root) if needs_training else None
    if train_data is not None:
        print(f"ILSVRC train: {len(train_data)} images in {len(train_data.classes)} classes at {train_root}")
    rows = []
    for arch in archs:
        for pool in ["avg"] if arch in ORIGINAL_ARCHS else pools:
            row = finetune_and_evaluate(arch, pool, train_data, val_root, iters=iters, batch_size=batch_size,
                                        weights=weights, checkpoint=checkpoint_path(arch, pool, checkpoint_dir),
                                        resume=resume, device=device, seed=seed, num_workers=num_workers)  # fmt: skip
            rows.append(row)
            c, lo = row["classification"], row["localization"]
            print(
                f"{row['description']}: {row['steps']} steps; top-1/top-5 err {c['top1_err']:.2f}/{c['top5_err']:.2f}; "
                f"top-1/top-5 loc err {lo['top1_loc_err']:.2f}/{lo['top5_loc_err']:.2f} on {row['n_images']} val images"
            )
    return rows


def quick_comparisons(summary: dict[str, dict], setting: str) -> list[dict]:
    """Comparison rows (``results/paper.yaml`` keys) for the quick profile's GAP/GMP summaries: top-1
    classification error (Table 1) and top-1 localization error at t=0.2 (Table 2) of GoogLeNet-GAP/-GMP,
    the only networks the paper reports with both poolings. ``setting`` may hold ``{pool}``."""
    rows = []
    for pool, key, name in (("avg", "googlenet_gap", "GAP"), ("max", "googlenet_gmp", "GMP")):
        s = summary[pool]
        where = setting.format(pool=name)
        rows += [
            {"metric": "top-1 classification error (%)", "paper_ref": f"table1.{key}.top1_err",
             "reproduced": 100.0 - s["cls_acc"]["mean"], "setting": where},
            {"metric": "top-1 localization error (%), t=0.2", "paper_ref": f"table2.{key}.top1_loc_err",
             "reproduced": 100.0 - s["top1_loc_acc@0.2"]["mean"], "setting": where},
        ]  # fmt: skip
    return rows


def paper_comparisons(rows: Sequence[dict]) -> list[dict]:
    """Comparison rows for :func:`finetune_and_evaluate` results that have a row in the paper's Tables 1
    and 2 (top-1/top-5 classification and localization error)."""
    out = []
    for row in rows:
        if row["paper_key"] is None:
            continue
        trained = (
            f"fine-tuned {row['steps']} iterations on ILSVRC train"
            if row["steps"]
            else "as loaded (no fine-tuning)"
        )
        setting = (
            f"{row['description']}, {trained}, {row['n_images']} ILSVRC val images, whole image at "
            "224x224, paper box rule t=0.2"
        )
        c, lo = row["classification"], row["localization"]
        for table, key, value in (
            ("table1", "top1_err", c["top1_err"]),
            ("table1", "top5_err", c["top5_err"]),
            ("table2", "top1_loc_err", lo["top1_loc_err"]),
            ("table2", "top5_loc_err", lo["top5_loc_err"]),
        ):
            out.append(
                {
                    "metric": f"{key.replace('_', ' ')} (%)",
                    "paper_ref": f"{table}.{row['paper_key']}.{key}",
                    "reproduced": value,
                    "setting": setting,
                }
            )
    return out
