"""THE evaluation loop: batches -> map source -> maps -> boxes -> every evaluator.

For each batch of ``(x, targets)`` (``targets``: :class:`camlib.datasets.targets.Target` records):

1. **map source** (:func:`class_maps`): a :class:`~camlib.core.cam.CAM`, a
   :class:`~camlib.core.saliency.BackpropSaliency` (same call shape) or, for ``x`` of shape
   (B, 10, 3, H, W), the released code's ten crops merged by
   :func:`merge_ten_crops`, gives the logits, the top-k classes and the raw
   maps of the top-k classes followed by the ground-truth class (one gather, nothing else upsampled);
2. **maps**: each image's k + 1 maps are upsampled / normalised by the ``options``
   (:func:`camlib.core.cam.postprocess`; to the image's own size by default, where its boxes live);
3. **boxes** (:func:`make_boxes`): only the box sets the evaluators ask for (``box_sets``): the paper's
   rule at every fraction asked for (largest component of ``M >= f max M``, all maps and fractions in
   one pass, :func:`camlib.evaluation.wsol.largest_component_boxes`, identical to
   :func:`camlib.core.boxes.paper_box`), the released code's first box per class
   (:func:`camlib.core.boxes.released_boxes`) and the five-box heuristic
   (:func:`camlib.core.boxes.five_box_heuristic`) with either rule;
4. **every evaluator**: ``accumulate(batch)`` with the one :class:`~camlib.evaluation.batch.Batch` record.

Unreadable images (``targets.skipped``, :func:`camlib.datasets.ilsvrc.collate_with_targets`) are counted and
listed. ``sync=True`` under ``torch.distributed`` (:mod:`camlib.core.distributed`): ``batches`` are this
process's contiguous shard; after the pass the counts of all processes are summed and the per-image
lists (kept predictions, maps, skipped images) gathered in rank order, so every process returns what
one process would have over the whole dataset.

:func:`camlib.evaluation.localize.evaluate_localization` (notebooks 01, 02) and
:func:`camlib.evaluation.localize.evaluate_protocols` (notebook 03, the ``camlib.evaluate`` CLI) are
configurations of :func:`run_evaluation`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from camlib.core.boxes import HEURISTIC_LOOSE, HEURISTIC_TIGHT, five_box_heuristic, nth_box, released_boxes
from camlib.core.cam import CAM, PAPER_OPTIONS, CAMOptions, postprocess, upsample_maps
from camlib.datasets.targets import Target
from camlib.datasets.transforms import TEN_CROP, TEN_CROP_SIZE, ten_crop_offsets
from camlib.evaluation.batch import Batch, BoxSet, box_key, fraction_key, parse_box_key
from camlib.evaluation.metrics import Evaluator
from camlib.evaluation.wsol import largest_component_boxes

__all__ = [
    "LoopResult",
    "cap_target",
    "class_maps",
    "gt_positions",
    "loop_state",
    "make_boxes",
    "run_evaluation",
]


# ------------------------------------------------------------------------------------- map source
def merge_ten_crops(maps: Tensor, size: int = TEN_CROP_SIZE, crop: int = TEN_CROP) -> Tensor:
    """The released ``mergeTenCrop``: (B, 10, n, h, w) crop maps -> (B, n, size, size).

    Each crop's map is resized bicubically to the crop, mirrored back for crops 6-10, put in place,
    and the absolute values are summed over the crops (pixels near the corners are covered by fewer
    crops, as in the released code).
    """
    B, K, n = maps.shape[:3]
    if K != 10:
        raise ValueError(f"expected 10 crops, got {K}")
    up = upsample_maps(maps.flatten(0, 1).float(), (crop, crop), "bicubic").view(B, K, n, crop, crop)
    up = torch.cat([up[:, :5], up[:, 5:].flip(-1)], dim=1).abs()
    out = torch.zeros(B, n, size, size, dtype=up.dtype, device=up.device)
    for k, (t, s) in enumerate(ten_crop_offsets(size, crop) * 2):
        out[:, :, t : t + crop, s : s + crop] += up[:, k]
    return out


def class_maps(
    source,
    x: Tensor,
    *,
    topk: int = 5,
    gt_labels: Sequence[int] | None = None,
    channels_last: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Logits (B, C), top-k classes (B, k) and raw maps (B, k [+1], h, w) of the top-k classes followed
    by the ground-truth class, from a :class:`~camlib.core.cam.CAM` or a
    :class:`~camlib.core.saliency.BackpropSaliency`. ``x`` (B, 10, 3, H, W) is the ten-crop setting (CAM
    only): class scores are the softmax averaged over the crops (returned as its log), maps are merged
    with :func:`merge_ten_crops`. ``channels_last``: feed channels-last inputs
    (faster CPU convolutions when the model is channels-last too).
    """
    B = x.shape[0]
    gt = None if gt_labels is None else torch.as_tensor(list(gt_labels), device=x.device).view(B, 1)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if x.ndim == 5:
        if not isinstance(source, CAM):
            raise ValueError("the ten-crop setting is implemented for CAM only")
        K = x.shape[1]
        out = source(x.flatten(0, 1).contiguous(memory_format=fmt), all_classes=True)
        probs = out.logits.float().softmax(1).view(B, K, -1).mean(1)
        logits = probs.clamp_min(1e-30).log()
        pred = logits.topk(topk, dim=1).indices
        wanted = pred if gt is None else torch.cat([pred, gt], dim=1)
        fm = out.maps.view(B, K, *out.maps.shape[1:])
        rows = torch.arange(B, device=fm.device)[:, None, None]
        crops = torch.arange(K, device=fm.device)[None, :, None]
        sel = fm[rows, crops, wanted[:, None, :]]  # (B, K, n, h, w), one gather
        return logits, pred, merge_ten_crops(sel)
    x = x.contiguous(memory_format=fmt)
    if isinstance(source, CAM):
        out = source(x, all_classes=True)
        pred = out.logits.topk(topk, dim=1).indices
        wanted = pred if gt is None else torch.cat([pred, gt], dim=1)
        maps = out.maps[torch.arange(B, device=wanted.device)[:, None], wanted]  # (B, n, h, w), one gather
        return out.logits, pred, maps
    out = source(x, topk=topk, extra_targets=None if gt is None else gt[:, 0])
    return out.logits, out.classes[:, :topk], out.maps


# ------------------------------------------------------------------------------------------ boxes
def gt_positions(pred: np.ndarray, labels: Sequence[int] | None) -> np.ndarray:
    """(B,) the rank of each image's ground-truth class among its top-k ``pred`` (B, k), -1 where it is
    not among them (or ``labels`` is None). Where it is, the ground-truth map IS that class's map (the
    same raw map, gathered twice), so its boxes are that class's boxes."""
    B, k = pred.shape
    if labels is None:
        return np.full(B, -1, np.int64)
    hit = pred == np.asarray(labels, dtype=np.int64).reshape(B, 1)
    return np.where(hit.any(1), hit.argmax(1), -1)


def make_boxes(
    maps: Sequence[np.ndarray],
    pred: np.ndarray,
    keys: Iterable[str],
    *,
    tight: float = HEURISTIC_TIGHT,
    loose: float = HEURISTIC_LOOSE,
    labels: Sequence[int] | None = None,
) -> dict[str, BoxSet]:
    """The box sets named ``keys`` (:func:`camlib.evaluation.batch.box_key`) for one batch.

    ``maps``: per image (k + 1, H, W), the top-k classes' maps then the ground-truth class's; ``pred``
    (B, k). ``"paper@f"``: classes ``pred``, boxes of the top-k maps, GT-known box of the last map, all
    fractions in one pass; ``"released"``: the released generator's first box per map;
    ``"heuristic"`` / ``"heuristic_released"``: :func:`camlib.core.boxes.five_box_heuristic` on the
    top-3 maps with the paper's rule (``tight`` / ``loose``) or the released one.

    No map is boxed twice: the released boxes of the top-3 classes come from the heuristic's when both
    are asked (its boxes 1, 3, 5 are the first box of classes 1, 2, 3); the paper-rule heuristic takes
    its tight and loose boxes from the ``"paper@f"`` boxes when both fractions are among them (the same
    function of the same map); and with ``labels`` (B,) the ground-truth map of an image whose true
    class is among its top-k (:func:`gt_positions`) is not boxed again: its boxes are that class's.
    """
    keys = set(keys)
    B, k = pred.shape
    out: dict[str, BoxSet] = {}
    parsed = {key: parse_box_key(key) for key in keys}
    fractions = sorted({f for rule, f in parsed.values() if rule == "paper"})
    gt_at = gt_positions(pred, labels)
    multi = None
    if fractions:
        flat = [m[c] for i, m in enumerate(maps) for c in range(k + 1) if c < k or gt_at[i] < 0]
        boxed = largest_component_boxes(flat, fractions, scale="max")
        multi = np.zeros((B, k + 1, len(fractions), 4), np.int64)
        j = 0
        for i in range(B):
            n = k + (gt_at[i] < 0)
            multi[i, :n] = boxed[j : j + n]
            j += n
            if gt_at[i] >= 0:
                multi[i, k] = multi[i, gt_at[i]]
        for j, f in enumerate(fractions):
            out[box_key("paper", f)] = BoxSet(pred, multi[:, :k, j], multi[:, k, j])
    if ("heuristic" in keys or "heuristic_released" in keys) and k < 3:
        raise ValueError(f"the five-box heuristic needs topk >= 3, got topk={k}")
    if "heuristic" in keys:
        five = np.zeros((B, 5, 4), np.int64)
        cls = np.zeros((B, 5), np.int64)
        which = np.array([0, 0, 1, 1, 2])
        have = [float(f) for f in fractions]
        reuse = (
            multi is not None and float(tight) in have and float(loose) in have and 0 <= loose <= tight <= 1
        )
        for i, m in enumerate(maps):
            if reuse:  # five_box_heuristic(m[:3], tight, loose, rule="paper"), from the boxes above
                jt, jl = have.index(float(tight)), have.index(float(loose))
                five[i] = multi[i, [0, 0, 1, 1, 2], [jt, jl, jt, jl, jl]]
            else:
                which, five[i] = five_box_heuristic(m[:3], tight, loose, rule="paper")
            cls[i] = pred[i, which]
        out["heuristic"] = BoxSet(cls, five)
    if "released" in keys or "heuristic_released" in keys:
        first = np.zeros((B, k + 1, 4), np.int64)
        five = np.zeros((B, 5, 4), np.int64)
        cls = np.zeros((B, 5), np.int64)
        for i, m in enumerate(maps):
            start = 0
            if "heuristic_released" in keys:
                which, five[i] = five_box_heuristic(m[:3], rule="released")
                cls[i] = pred[i, which]
                first[i, :3] = five[i, [0, 2, 4]]
                start = 3
            if "released" in keys:
                for c in range(start, k + 1):
                    if c == k and gt_at[i] >= 0:
                        first[i, k] = first[i, gt_at[i]]
                    else:  # only box 1 is used
                        first[i, c] = nth_box(released_boxes(m[c], max_boxes=1), 0)
        if "released" in keys:
            out["released"] = BoxSet(pred, first[:, :k], first[:, k])
        if "heuristic_released" in keys:
            out["heuristic_released"] = BoxSet(cls, five)
    return out


# ------------------------------------------------------------------------------------------- loop
@dataclass
class LoopResult:
    """What :func:`run_evaluation` returns: the evaluators (merged over processes under ``sync``) and
    their ``metrics`` (``compute()`` of each evaluator that saw at least one image), the image counts,
    the skipped images, the kept predictions / maps, the seconds and the map source's head."""

    evaluators: dict[str, Evaluator]
    metrics: dict[str, dict]
    n_images: int
    skipped: list[dict]
    seconds: float
    head: dict | None
    source: str
    predictions: list[dict] = field(default_factory=list)
    gt_maps: list[np.ndarray] = field(default_factory=list)


def _prediction(batch: Batch, i: int, probs: Tensor) -> dict:
    """The per-image record kept by ``keep_predictions`` (figures, error analysis)."""
    t = batch.targets[i]
    pred = batch.pred[i]
    return {
        "image_id": t.image_id,
        "label": t.label,
        "size": None if t.size is None else list(t.size),
        "pred_classes": pred.tolist(),
        "probs": probs[i, pred].tolist(),
        "gt_boxes": t.boxes.tolist(),
        "boxes": {key: bs.boxes[i].tolist() for key, bs in batch.boxes.items()},
        "gt_known_box": {
            key: bs.gt_known[i].tolist() for key, bs in batch.boxes.items() if bs.gt_known is not None
        },
    }


def loop_state(
    done: int, n_images: int, skipped, kept, maps_kept, evaluators: Mapping[str, Evaluator]
) -> dict:
    """A picklable snapshot of a :func:`run_evaluation` pass after ``done`` batches (its ``resume=``)."""
    return {
        "batches": int(done),
        "n_images": int(n_images),
        "skipped": list(skipped),
        "kept": list(kept),
        "maps_kept": list(maps_kept),
        "evaluators": {k: ev.state() for k, ev in evaluators.items()},
    }


def cap_target(t: Target, max_side: int) -> tuple[Target, tuple[float, float] | None]:
    """``t`` on a grid whose longest side is at most ``max_side``: ``(scaled target, (sy, sx))`` with the
    factors from the capped grid back to the image (``None`` and ``t`` itself when it fits). Boxes are
    scaled per axis and rounded (inclusive pixels, clipped to the grid), the mask by nearest neighbour."""
    if t.size is None or max(t.size) <= max_side:
        return t, None
    H, W = t.size
    s = max_side / max(H, W)
    h, w = max(1, round(H * s)), max(1, round(W * s))
    sy, sx = H / h, W / w
    b = t.boxes.astype(np.float64)
    boxes = np.stack(
        [np.floor(b[:, 0] / sx), np.floor(b[:, 1] / sy), np.floor(b[:, 2] / sx), np.floor(b[:, 3] / sy)], 1
    )
    boxes = np.clip(boxes, 0, [w - 1, h - 1, w - 1, h - 1]).astype(np.int64)
    mask = None
    if t.mask is not None:
        rows = np.minimum((np.arange(h) * sy).astype(int), H - 1)
        cols = np.minimum((np.arange(w) * sx).astype(int), W - 1)
        mask = np.asarray(t.mask)[rows][:, cols]
    capped = Target(
        label=t.label,
        boxes=boxes,
        size=(h, w),
        image_id=t.image_id,
        mask=mask,
        extra={**t.extra, "original_size": (H, W), "original_boxes": t.boxes},
    )
    return capped, (sy, sx)


def _scale_back(pred: dict, scale: tuple[float, float] | None, target: Target) -> dict:
    """A kept prediction of a capped target with its boxes in the image's own pixels again."""
    if scale is None:
        return pred
    sy, sx = scale

    def up(b):
        b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
        keep = b[:, 0] >= 0  # NO_BOX rows stay as they are
        out = b.copy()
        out[keep] = np.stack(
            [
                np.floor(b[keep, 0] * sx),
                np.floor(b[keep, 1] * sy),
                np.floor((b[keep, 2] + 1) * sx) - 1,
                np.floor((b[keep, 3] + 1) * sy) - 1,
            ],
            1,
        )
        return out.astype(np.int64).tolist()

    pred = dict(pred)
    pred["size"] = list(target.extra["original_size"])
    pred["gt_boxes"] = np.asarray(target.extra["original_boxes"]).tolist()
    pred["boxes"] = {k: up(v) for k, v in pred["boxes"].items()}
    pred["gt_known_box"] = {
        k: up(v)[0] if np.asarray(v).ndim == 1 else up(v) for k, v in pred["gt_known_box"].items()
    }
    return pred


def _check_targets(targets) -> list[Target]:
    bad = next((t for t in targets if not isinstance(t, Target)), None)
    if bad is not None:
        raise TypeError(
            f"targets must be camlib.datasets.targets.Target records, got {type(bad).__name__}; build them with "
            "Target(label=..., boxes=..., size=(H, W)) (the ILSVRC readers, array_batches and mask_batches do)"
        )
    return list(targets)


def run_evaluation(
    source,
    batches: Iterable[tuple[Tensor, Sequence[Target]]],
    evaluators: Mapping[str, Evaluator],
    *,
    options: CAMOptions = PAPER_OPTIONS,
    topk: int = 5,
    device: str | torch.device = "cpu",
    heuristic: tuple[float, float] = (HEURISTIC_TIGHT, HEURISTIC_LOOSE),
    channels_last: bool = True,
    keep_predictions: bool = False,
    keep_maps: int = 0,
    total: int | None = None,
    desc: str = "evaluate",
    sync: bool = False,
    map_cache=None,
    max_map_side: int | None = None,
    resume: dict | None = None,
    checkpoint: Callable[[dict], None] | None = None,
    checkpoint_every: int = 0,
) -> LoopResult:
    """One pass of ``batches`` through the map source, the boxes and every evaluator (module docstring).

    ``source``: a :class:`~camlib.core.cam.CAM` (a plain model is wrapped in one) or a
    :class:`~camlib.core.saliency.BackpropSaliency`; ``evaluators``: name -> evaluator (their
    ``box_sets`` decide which boxes are made); ``options``: how raw maps become the maps that are boxed;
    ``heuristic``: the five-box heuristic's (tight, loose) fractions; ``keep_predictions``: keep every
    image's classes, probabilities and boxes; ``keep_maps``: keep the ground-truth class's map (float16)
    of the first ``keep_maps`` images; ``map_cache``: a :class:`camlib.evaluation.mapcache.MapCache`
    (single-crop CAM only): each batch's logits, classes and raw maps come from it when stored, and
    are stored otherwise (saved after the pass).

    ``max_map_side``: peak memory bound for very large images. A map is upsampled to the image's size
    only up to this longest side; for a larger image the target (boxes, size, mask) is scaled to the
    capped grid (:func:`cap_target`), every box is extracted and scored there (IoU is scale-free, up to
    a pixel of rounding on the capped grid), and kept boxes are scaled back to the image's pixels.
    ``None``: no cap (maps at the image's size, as the released code).

    Resumable passes: ``checkpoint(state)`` is called every ``checkpoint_every`` batches with this
    process's state so far (:func:`loop_state`: batches done, image counts, skipped images, kept
    predictions/maps, every evaluator's ``state()``); ``resume=state`` starts from such a state, and
    ``batches`` must then yield the batches AFTER the ``state["batches"]`` already done.
    """
    t0 = time.time()
    if isinstance(source, nn.Module):
        source = CAM(source)
    needed = sorted({key for ev in evaluators.values() for key in ev.box_sets})
    skipped: list[dict] = []
    kept: list[dict] = []
    maps_kept: list[np.ndarray] = []
    n_images = done = 0
    if resume is not None:
        done, n_images = int(resume["batches"]), int(resume["n_images"])
        skipped, kept, maps_kept = list(resume["skipped"]), list(resume["kept"]), list(resume["maps_kept"])
        if set(resume["evaluators"]) != set(evaluators):
            raise ValueError(
                f"resume state of evaluators {sorted(resume['evaluators'])}, not {sorted(evaluators)}"
            )
        for name, ev in evaluators.items():
            ev.load_state(resume["evaluators"][name])
    for x, targets in tqdm(batches, total=total, desc=desc, leave=False):
        done += 1
        skipped.extend(getattr(targets, "skipped", []))
        if len(targets) == 0:
            continue
        targets = _check_targets(targets)
        scales = [None] * len(targets)
        if max_map_side:
            capped = [cap_target(t, max_map_side) for t in targets]
            targets, scales = [c[0] for c in capped], [c[1] for c in capped]
        labels = [t.label for t in targets]
        ids = [t.image_id for t in targets]
        stored = None if map_cache is None else map_cache.get(ids)
        if stored is not None:
            logits, pred, raw = stored
        else:
            with torch.no_grad() if isinstance(source, CAM) else torch.enable_grad():
                logits, pred, raw = class_maps(source, x.to(device, non_blocking=True), topk=topk, gt_labels=labels,
                                               channels_last=channels_last)  # fmt: skip
            if map_cache is not None:
                map_cache.put(ids, logits, pred, raw)
        in_size = tuple(raw.shape[-2:]) if x.ndim == 5 else tuple(x.shape[-2:])
        maps = [
            postprocess(raw[i][None].detach(), options, input_size=in_size, original_size=t.size)[0]
            .float()
            .cpu()
            .numpy()
            for i, t in enumerate(targets)
        ]
        pred_np = pred.cpu().numpy()
        batch = Batch(targets, logits.detach().float().cpu(), pred_np, maps)
        batch.boxes = make_boxes(maps, pred_np, needed, tight=heuristic[0], loose=heuristic[1], labels=labels)
        for ev in evaluators.values():
            ev.accumulate(batch)
        n_images += len(batch)
        if keep_predictions:
            probs = batch.logits.softmax(1)
            kept.extend(
                _scale_back(_prediction(batch, i, probs), scales[i], targets[i]) for i in range(len(batch))
            )
        for m in batch.role("gt")[: max(0, keep_maps - len(maps_kept))]:
            maps_kept.append(m.astype(np.float16))
        if checkpoint is not None and checkpoint_every and done % checkpoint_every == 0:
            checkpoint(loop_state(done, n_images, skipped, kept, maps_kept, evaluators))
    if map_cache is not None:
        map_cache.save()
    if sync:
        from camlib.core import distributed

        distributed.sync_evaluators(*evaluators.values())
        skipped, kept = distributed.gather_list(skipped), distributed.gather_list(kept)
        maps_kept = distributed.gather_list(maps_kept)[:keep_maps]
        n_images = distributed.all_sum(n_images)
    if n_images == 0:
        raise ValueError(f"no image could be evaluated ({len(skipped)} skipped)")
    return LoopResult(
        evaluators=dict(evaluators),
        metrics={name: ev.compute() for name, ev in evaluators.items() if ev.n},
        n_images=n_images,
        skipped=skipped,
        seconds=time.time() - t0,
        head=getattr(getattr(source, "head", None), "__dict__", None),
        source=type(source).__name__,
        predictions=kept,
        gt_maps=maps_kept,
    )


def fraction_keys(fractions: Sequence[float]) -> list[str]:
    """:func:`camlib.evaluation.batch.fraction_key` of each fraction, refusing duplicates and fractions
    outside (0, 1] (a box from ``M >= 1.5 max M`` or ``M >= -0.2 max M`` is not a threshold rule): every
    path that boxes at fractions (the batched box path of the loop included) goes through here."""
    bad = [f for f in fractions if not (0.0 < float(f) <= 1.0)]
    if bad:
        raise ValueError(
            f"threshold fractions must lie in (0, 1] (a fraction of the map's maximum); got {bad}"
        )
    keys = [fraction_key(f) for f in fractions]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate fractions in {list(fractions)}")
    return keys
