"""The localization pipeline: model -> CAMs -> boxes -> evaluators, one code path for every dataset.

For each image: one forward pass gives the maps of all classes at feature resolution; only the maps
of the top-k predicted classes and of the ground-truth class are upsampled (to the image's own size
by default, where the ground-truth boxes live), normalised and boxed with the paper's rule at each
threshold fraction asked for.

:func:`evaluate_protocols` is the full version used for Tables 2 and 3 (notebook 03): for a CAM or a
:class:`camlib.core.saliency.BackpropSaliency` (same call shape), single-crop or the released code's ten
crops (:class:`TenCrop`, :func:`merge_ten_crops`), it feeds one set of maps per image to every box rule
(the paper's, the released code's, the five-box heuristic) and to Choe et al.'s threshold sweeps
(:mod:`camlib.evaluation.wsol`), and counts unreadable images.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from camlib.core.boxes import (
    HEURISTIC_LOOSE,
    HEURISTIC_TIGHT,
    nth_box,
    paper_boxes,
    released_boxes,
)
from camlib.core.cam import (
    CAM,
    DISPLAY_OPTIONS,
    PAPER_OPTIONS,
    RELEASED_OPTIONS,
    CAMOptions,
    postprocess,
    upsample_maps,
)
from camlib.datasets.transforms import (  # the input transforms live in the data layer; re-exported here
    TEN_CROP,
    TEN_CROP_SIZE,
    PixelNormalize,
    TenCrop,
    WholeImage,
    input_normalizer,
    ten_crop_offsets,
    whole_image_transform,
)
from camlib.evaluation.metrics import ClassificationEvaluator, LocalizationEvaluator
from camlib.evaluation.wsol import (
    CHOE_IOU_THRESHOLDS,
    CHOE_THRESHOLDS,
    BoxAccSweep,
    PxAPEvaluator,
    largest_component_boxes,
)

__all__ = [
    "PAPER_OPTIONS",
    "RELEASED_OPTIONS",
    "PixelNormalize",
    "Protocols",
    "TenCrop",
    "array_batches",
    "class_maps",
    "comparison_rows",
    "evaluate_localization",
    "evaluate_protocols",
    "explain_image",
    "input_normalizer",
    "load_gap_checkpoint",
    "localize_batch",
    "mask_batches",
    "merge_ten_crops",
    "protocol_rows",
    "summarize_protocols",
    "WholeImage",
    "ten_crop_offsets",
    "whole_image_transform",
]



def localize_batch(
    cam: CAM,
    x: Tensor,
    *,
    sizes: Sequence[tuple[int, int]] | None = None,
    gt_labels: Sequence[int] | Tensor | None = None,
    topk: int = 5,
    fractions: Sequence[float] = (0.2,),
    options: CAMOptions = PAPER_OPTIONS,
) -> dict:
    """Boxes for the top-k classes (and the ground-truth class) of every image of a batch.

    Returns ``{"logits", "pred_classes" (B, k), "boxes": {f: (B, k, 4)}, "gt_known_boxes": {f: (B, 4)}}``.
    ``sizes`` are the (H, W) the maps are upsampled to when ``options.size == "original"``.
    """
    B = x.shape[0]
    if sizes is not None and len(sizes) != B:
        raise ValueError(f"{len(sizes)} sizes for a batch of {B}")
    if gt_labels is not None and len(gt_labels) != B:
        raise ValueError(f"{len(gt_labels)} ground-truth labels for a batch of {B}")
    out = cam(x, all_classes=True)
    pred = out.logits.topk(topk, dim=1).indices
    wanted = pred if gt_labels is None else torch.cat([pred, torch.as_tensor(gt_labels).view(B, 1)], 1)
    boxes = {f: np.zeros((B, topk, 4), np.int64) for f in fractions}
    gt_known = {f: np.zeros((B, 4), np.int64) for f in fractions}
    for i in range(B):
        maps = out.maps[i, wanted[i]][None]  # (1, n, h, w): only these get upsampled
        size = sizes[i] if sizes is not None else None
        m = postprocess(maps, options, input_size=tuple(x.shape[-2:]), original_size=size)[0]
        for f in fractions:
            b = paper_boxes(m, f)
            boxes[f][i] = b[:topk]
            if gt_labels is not None:
                gt_known[f][i] = b[topk]
    return {"logits": out.logits, "pred_classes": pred, "boxes": boxes, "gt_known_boxes": gt_known}


def evaluate_localization(
    model: nn.Module | CAM,
    batches: Iterable[tuple[Tensor, list[dict]]],
    *,
    fractions: Sequence[float] = (0.2,),
    options: CAMOptions = PAPER_OPTIONS,
    topk: int = 5,
    device: str | torch.device = "cpu",
    total: int | None = None,
    keep_predictions: bool = False,
    sync: bool = False,
) -> dict:
    """Classification and localization metrics over batches of ``(images, targets)``.

    ``targets[i]`` holds ``label``, ``boxes`` (n, 4) and ``size`` (H, W) as made by
    :class:`camlib.datasets.ilsvrc.WSOLManifestDataset`. Returns
    ``{"classification": {...}, "localization": {fraction: {...}}, "options": {...}}`` and, with
    ``keep_predictions``, the per-image classes and boxes (for figures).

    ``sync=True`` under ``torch.distributed`` (:mod:`camlib.core.distributed`): ``batches`` are this
    process's shard; counts and kept predictions of all processes are merged, so every process
    returns the metrics of the whole dataset.
    """
    cam = model if isinstance(model, CAM) else CAM(model)
    cls = ClassificationEvaluator((1, topk))
    loc = {f: LocalizationEvaluator((1, topk)) for f in fractions}
    kept: list[dict] = []
    for x, targets in tqdm(batches, total=total, desc="localize", leave=False):
        labels = [t["label"] for t in targets]
        res = localize_batch(
            cam,
            x.to(device, non_blocking=True),
            sizes=[t["size"] for t in targets],
            gt_labels=labels,
            topk=topk,
            fractions=fractions,
            options=options,
        )
        cls.accumulate(res["logits"], labels)
        gts = [t["boxes"] for t in targets]
        for f in fractions:
            loc[f].accumulate(res["pred_classes"], res["boxes"][f], labels, gts, res["gt_known_boxes"][f])
        if keep_predictions:
            for i, t in enumerate(targets):
                kept.append(
                    {
                        "image_id": t.get("image_id"),
                        "label": t["label"],
                        "pred_classes": res["pred_classes"][i].tolist(),
                        "scores": res["logits"][i].softmax(0)[res["pred_classes"][i]].tolist(),
                        "boxes": {f: res["boxes"][f][i].tolist() for f in fractions},
                        "gt_known_box": {f: res["gt_known_boxes"][f][i].tolist() for f in fractions},
                        "gt_boxes": np.asarray(t["boxes"]).tolist(),
                    }
                )
    if sync:
        from camlib.core import distributed

        distributed.sync_evaluators(cls, *loc.values())
        kept = distributed.gather_list(kept)
    result = {
        "classification": cls.compute(),
        "localization": {f: loc[f].compute() for f in fractions},
        "options": options.to_dict(),
        "head": cam.head.__dict__ if cam.head is not None else None,
    }
    if keep_predictions:
        result["predictions"] = kept
    return result


def array_batches(images, labels, boxes, batch_size: int = 128):
    """Yield ``(x, targets)`` batches, the format of :func:`evaluate_localization`, from in-memory arrays.

    ``images``: (N, H, W, 3) uint8 or (N, 3, H, W) float in [0, 1]; ``labels``: (N,); ``boxes``: (N, 4)
    (one box per image, e.g. :class:`camlib.datasets.ProceduralShapes`) or a list of (n_i, 4) arrays.
    Images are fed as float [0, 1] tensors at their own size, so maps are upsampled to (H, W).
    """
    imgs = torch.as_tensor(np.asarray(images))
    if imgs.dtype == torch.uint8:
        imgs = imgs.permute(0, 3, 1, 2).float() / 255.0
    n = len(imgs)
    if len(labels) != n or len(boxes) != n:
        raise ValueError(f"{n} images but {len(labels)} labels and {len(boxes)} boxes")
    H, W = imgs.shape[-2:]
    for s in range(0, n, batch_size):
        sl = range(s, min(n, s + batch_size))
        targets = [
            {"label": int(labels[i]), "boxes": np.asarray(boxes[i]).reshape(-1, 4), "size": (int(H), int(W)),
             "image_id": i}
            for i in sl
        ]
        yield imgs[s : s + batch_size], targets


def explain_image(
    cam: CAM,
    image,
    preprocess,
    classes: Sequence[str],
    *,
    k: int = 5,
    options: CAMOptions = DISPLAY_OPTIONS,
    fraction: float = 0.2,
) -> dict:
    """Top-k classes of one image with their probabilities, CAMs at the image's size and paper boxes.

    ``image``: PIL image or (H, W, 3) uint8 array; ``preprocess`` makes the network input of it.
    Returns ``{"classes", "names", "probs", "maps" (k, H, W), "boxes" (k, 4), "logits", "raw_maps"}``.
    """
    arr = np.asarray(image)
    x = preprocess(image)[None]
    out = cam(x, topk=k)
    size = arr.shape[:2]
    maps = postprocess(out.maps, options, input_size=tuple(x.shape[-2:]), original_size=size)[0]
    cls = out.classes[0].tolist()
    return {
        "classes": cls,
        "names": [classes[c] for c in cls],
        "probs": out.probs[0, cls].tolist(),
        "maps": maps,
        "boxes": paper_boxes(maps, fraction),
        "logits": out.logits[0],
        "raw_maps": out.maps[0],
        "head": out.head,
    }


# ================================================================================================
# All protocols of Tables 2 and 3 and Choe et al., on one code path (CAM or backprop saliency)
# ================================================================================================

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


def class_maps(source, x: Tensor, *, topk: int = 5, gt_labels: Sequence[int] | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Logits (B, C), top-k classes (B, k) and raw maps (B, k [+1], h, w) of the top-k classes followed
    by the ground-truth class, from a :class:`~camlib.core.cam.CAM` or a
    :class:`~camlib.core.saliency.BackpropSaliency`. ``x`` (B, 10, 3, H, W) is the ten-crop setting (CAM
    only): class scores are the softmax averaged over the crops (returned as its log), maps are merged
    with :func:`merge_ten_crops`.
    """
    B = x.shape[0]
    gt = None if gt_labels is None else torch.as_tensor(list(gt_labels), device=x.device).view(B, 1)
    # channels-last inputs: faster convolutions on CPU when the model is channels-last too
    cl = torch.channels_last
    if x.ndim == 5:
        if not isinstance(source, CAM):
            raise ValueError("the ten-crop setting is implemented for CAM only")
        K = x.shape[1]
        out = source(x.flatten(0, 1).contiguous(memory_format=cl), all_classes=True)
        probs = out.logits.float().softmax(1).view(B, K, -1).mean(1)
        logits = probs.clamp_min(1e-30).log()
        pred = logits.topk(topk, dim=1).indices
        wanted = pred if gt is None else torch.cat([pred, gt], dim=1)
        fm = out.maps.view(B, K, *out.maps.shape[1:])
        rows = torch.arange(B, device=fm.device)[:, None, None]
        crops = torch.arange(K, device=fm.device)[None, :, None]
        sel = fm[rows, crops, wanted[:, None, :]]  # (B, K, n, h, w), one gather
        return logits, pred, merge_ten_crops(sel)
    x = x.contiguous(memory_format=cl)
    if isinstance(source, CAM):
        out = source(x, all_classes=True)
        pred = out.logits.topk(topk, dim=1).indices
        wanted = pred if gt is None else torch.cat([pred, gt], dim=1)
        maps = out.maps[torch.arange(B, device=wanted.device)[:, None], wanted]  # (B, n, h, w), one gather
        return out.logits, pred, maps
    out = source(x, topk=topk, extra_targets=None if gt is None else gt[:, 0])
    return out.logits, out.classes[:, :topk], out.maps


@dataclass(frozen=True)
class Protocols:
    """What :func:`evaluate_protocols` measures (recorded with the results).

    - ``fractions``: the paper's rule (largest component of ``M >= f * max M``) at each fraction;
    - ``released``: also the released code's generator (:func:`camlib.core.boxes.released_boxes`, first box
      per class) and its Table 3 combination;
    - ``heuristic_tight`` / ``heuristic_loose``: the five-box heuristic with the paper's rule
      (:func:`camlib.core.boxes.five_box_heuristic`); the defaults are fixed a priori, not tuned;
    - ``sweep_thresholds`` / ``iou_thresholds``: Choe et al.'s MaxBoxAcc / MaxBoxAccV2 sweep on the
      min-max normalised map of the ground-truth class;
    - ``gt_known_fractions``: GT-known localization at each fraction of the max (the paper's rule),
      per image, for the threshold study.
    """

    topk: int = 5
    fractions: tuple[float, ...] = (0.2,)
    released: bool = True
    heuristic_tight: float = HEURISTIC_TIGHT
    heuristic_loose: float = HEURISTIC_LOOSE
    sweep_thresholds: tuple[float, ...] = tuple(float(t) for t in CHOE_THRESHOLDS)
    iou_thresholds: tuple[float, ...] = CHOE_IOU_THRESHOLDS
    gt_known_fractions: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sweep_thresholds"] = f"{len(self.sweep_thresholds)} values {self.sweep_thresholds[0]:g}..{self.sweep_thresholds[-1]:g}"
        return d


def _minmax(m: np.ndarray) -> np.ndarray:
    """Min-max normalisation as :func:`camlib.core.cam.normalize_maps` (flat maps -> 0, NaN kept), in numpy."""
    finite = np.isfinite(m)
    if not finite.any():
        return m.copy()
    lo, hi = m[finite].min(), m[finite].max()
    if not hi > lo:
        return np.where(np.isnan(m), m, 0).astype(m.dtype)
    return ((m - lo) / (hi - lo)).astype(m.dtype)


def evaluate_protocols(
    source,
    batches: Iterable[tuple[Tensor, list[dict]]],
    *,
    options: CAMOptions = PAPER_OPTIONS,
    protocols: Protocols = Protocols(),
    device: str | torch.device = "cpu",
    total: int | None = None,
    keep_predictions: bool = False,
    keep_maps: int = 0,
    desc: str = "localize",
    sync: bool = False,
) -> dict:
    """Every localization protocol of the paper and of Choe et al. in one pass over ``batches``.

    ``source``: a :class:`~camlib.core.cam.CAM` (or a model, wrapped in one) or a
    :class:`~camlib.core.saliency.BackpropSaliency`. ``batches``: ``(x, targets)`` as made by
    :func:`camlib.datasets.ilsvrc.collate_with_targets` or :func:`array_batches`; ``x`` (B, 10, 3, H, W)
    selects the released ten-crop setting (use :data:`RELEASED_OPTIONS`). A target may carry a
    boolean ``"mask"`` (H, W): then PxAP is measured too. Batches' ``targets.skipped`` (unreadable
    images) are counted and listed.

    Maps are upsampled per ``options`` (to the image's size by default); the paper's rule, the released
    rule and the heuristic box the map as it is (scale-free), MaxBoxAcc/V2 and PxAP use its min-max
    normalisation. Returns a dict: ``classification``; ``paper`` {fraction: top-1/top-5 loc error and
    GT-known}; ``released`` and ``heuristic_released`` (with ``protocols.released``); ``heuristic``
    (top-5 loc error from five boxes); ``wsol`` (MaxBoxAcc, MaxBoxAccV2, curves); ``gt_known_sweep``;
    ``pxap`` (if masks); ``n_images``, ``n_skipped``, ``skipped``; ``seconds``; the options; and
    ``evaluators`` (the sweep evaluators, whose per-image tables allow held-out threshold choices).

    ``sync=True`` under ``torch.distributed`` (:mod:`camlib.core.distributed`): ``batches`` are this
    process's contiguous shard (:func:`camlib.core.distributed.shard`); after the pass the counts of all
    processes are summed and the per-image lists gathered in rank order, so every process returns
    what one process would have over the whole dataset.
    """
    import time as _time

    t0 = _time.time()
    if isinstance(source, nn.Module):
        source = CAM(source)
    p = protocols
    k = p.topk
    if k < 3:
        raise ValueError("the five-box heuristic needs topk >= 3")
    opts = replace(options, normalize="none")
    cls = ClassificationEvaluator((1, k))
    paper = {f: LocalizationEvaluator((1, k)) for f in p.fractions}
    heur = LocalizationEvaluator((5,))
    rel = LocalizationEvaluator((1, k)) if p.released else None
    heur_rel = LocalizationEvaluator((5,)) if p.released else None
    wsol = BoxAccSweep(p.sweep_thresholds, p.iou_thresholds, scale="absolute", keep_per_image=True)
    gts_sweep = BoxAccSweep(p.gt_known_fractions, (0.5,), scale="max", keep_per_image=True)
    pxap = PxAPEvaluator(p.sweep_thresholds)
    skipped: list[dict] = []
    kept: list[dict] = []
    maps_kept: list[np.ndarray] = []
    n_images = 0
    for x, targets in tqdm(batches, total=total, desc=desc, leave=False):
        skipped.extend(getattr(targets, "skipped", []))
        if len(targets) == 0:
            continue
        B = len(targets)
        labels = [int(t["label"]) for t in targets]
        with torch.no_grad() if isinstance(source, CAM) else torch.enable_grad():
            logits, pred, raw = class_maps(source, x.to(device, non_blocking=True), topk=k, gt_labels=labels)
        cls.accumulate(logits.detach().float().cpu(), labels)
        pred_np = pred.cpu().numpy()
        in_size = tuple(raw.shape[-2:]) if x.ndim == 5 else tuple(x.shape[-2:])
        boxes = {f: np.zeros((B, k, 4), np.int64) for f in p.fractions}
        gtk = {f: np.zeros((B, 4), np.int64) for f in p.fractions}
        rel_boxes, rel_gtk = np.zeros((B, k, 4), np.int64), np.zeros((B, 4), np.int64)
        rel_five = np.zeros((B, 5, 4), np.int64)
        gt_raw, gt_mm, masks, mask_maps, all_maps = [], [], [], [], []
        for i, t in enumerate(targets):
            size = tuple(t["size"]) if t.get("size") is not None else None
            m = postprocess(raw[i][None].detach(), opts, input_size=in_size, original_size=size)[0]
            m = m.float().cpu().numpy()
            all_maps.extend(m)
            if p.released:
                rb = [released_boxes(m[c], max_boxes=2) for c in range(k + 1)]  # only boxes 1 and 2 are used
                rel_boxes[i] = [nth_box(rb[c], 0) for c in range(k)]
                rel_gtk[i] = nth_box(rb[k], 0)
                rel_five[i] = [nth_box(rb[0], 0), nth_box(rb[0], 1), nth_box(rb[1], 0), nth_box(rb[1], 1),
                               nth_box(rb[2], 0)]  # fmt: skip
            gt_raw.append(m[k])
            gt_mm.append(_minmax(m[k]))
            if t.get("mask") is not None:
                masks.append(np.asarray(t["mask"], bool))
                mask_maps.append(gt_mm[-1])
            if len(maps_kept) < keep_maps:
                maps_kept.append(m[k].astype(np.float16))
        # the paper's rule at every fraction (and the heuristic's tight/loose) for all maps at once:
        # identical to camlib.core.boxes.paper_box (tests/test_wsol.py), one batched pass
        fr = (*p.fractions, p.heuristic_tight, p.heuristic_loose)
        multi = largest_component_boxes(all_maps, fr, scale="max").reshape(B, k + 1, len(fr), 4)
        for j, f in enumerate(p.fractions):
            boxes[f], gtk[f] = multi[:, :k, j], multi[:, k, j]
        tight, loose = multi[:, :3, -2], multi[:, :3, -1]
        heur_boxes = np.stack([tight[:, 0], loose[:, 0], tight[:, 1], loose[:, 1], loose[:, 2]], axis=1)
        heur_cls = pred_np[:, [0, 0, 1, 1, 2]]
        gts = [np.asarray(t["boxes"]).reshape(-1, 4) for t in targets]
        for f in p.fractions:
            paper[f].accumulate(pred_np, boxes[f], labels, gts, gtk[f])
        heur.accumulate(heur_cls, heur_boxes, labels, gts)
        if p.released:
            rel.accumulate(pred_np, rel_boxes, labels, gts, rel_gtk)
            heur_rel.accumulate(heur_cls, rel_five, labels, gts)
        wsol.accumulate(gt_mm, gts)
        gts_sweep.accumulate(gt_raw, gts)
        if masks:
            pxap.accumulate(mask_maps, masks)
        n_images += B
        if keep_predictions:
            probs = logits.detach().float().softmax(1).cpu()
            for i, t in enumerate(targets):
                kept.append({
                    "image_id": t.get("image_id"), "label": labels[i], "pred_classes": pred_np[i].tolist(),
                    "probs": probs[i, pred_np[i]].tolist(), "gt_boxes": gts[i].tolist(), "size": list(t["size"]),
                    "paper_boxes": {f"{f:g}": boxes[f][i].tolist() for f in p.fractions},
                    "gt_known_box": {f"{f:g}": gtk[f][i].tolist() for f in p.fractions},
                    "released_boxes": rel_boxes[i].tolist() if p.released else None,
                    "released_gt_known_box": rel_gtk[i].tolist() if p.released else None,
                    "heuristic_boxes": heur_boxes[i].tolist(),
                })  # fmt: skip
    if sync:
        from camlib.core import distributed

        distributed.sync_evaluators(cls, *paper.values(), heur, rel, heur_rel, wsol, gts_sweep, pxap)
        skipped, kept = distributed.gather_list(skipped), distributed.gather_list(kept)
        maps_kept = distributed.gather_list(maps_kept)[:keep_maps]
        n_images = distributed.all_sum(n_images)
    if n_images == 0:
        raise ValueError(f"no image could be evaluated ({len(skipped)} skipped)")
    out: dict = {
        "classification": cls.compute(),
        "paper": {f"{f:g}": paper[f].compute() for f in p.fractions},
        "heuristic": heur.compute(),
        "wsol": wsol.compute(),
        "gt_known_sweep": gts_sweep.compute(),
        "n_images": n_images,
        "n_skipped": len(skipped),
        "skipped": skipped,
        "seconds": _time.time() - t0,
        "source": type(source).__name__,
        "options": options.to_dict(),
        "protocols": p.to_dict(),
        "head": getattr(getattr(source, "head", None), "__dict__", None),
        "evaluators": {"wsol": wsol, "gt_known_sweep": gts_sweep},
    }
    if p.released:
        out["released"] = rel.compute()
        out["heuristic_released"] = heur_rel.compute()
    if pxap.n:
        out["pxap"] = pxap.compute()
    if keep_predictions:
        out["predictions"] = kept
    if keep_maps:
        out["gt_maps"] = maps_kept
    return out


def load_gap_checkpoint(arch: str, path: str | Path, *, pool: str = "avg", device: str | torch.device = "cpu") -> nn.Module:
    """A -GAP network of :func:`camlib.models.gap_variant` with weights from a checkpoint file: a state
    dict, or a :func:`camlib.models.train.fit` / :func:`camlib.paper.gap_vs_gmp.finetune` checkpoint (``"model"``)."""
    from camlib.models import gap_variant

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} for {arch} not found: fine-tune one with notebook 02 / camlib.paper.gap_vs_gmp "
            f"(ILSVRC train), then give its path in GAP_CHECKPOINTS"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    model = gap_variant(arch, pool=pool)
    model.load_state_dict(state, strict=True)
    return model.eval().to(device)


def protocol_rows(result: dict, fraction: float = 0.2) -> dict[str, dict[str, float]]:
    """The headline numbers of an :func:`evaluate_protocols` result, one row per box rule."""
    c = result["classification"]
    pa = result["paper"][f"{fraction:g}"]
    rows = {
        "classification": {"top1_err": c["top1_err"], "top5_err": c["top5_err"]},
        f"paper rule (t={fraction:g})": {"top1_loc_err": pa["top1_loc_err"], "top5_loc_err": pa["top5_loc_err"],
                                        "gt_known_loc_acc": pa["gt_known_loc_acc"]},
        "heuristic, 5 boxes (paper rule)": {"top5_loc_err": result["heuristic"]["top5_loc_err"]},
    }  # fmt: skip
    if "released" in result:
        r = result["released"]
        rows["released code's rule (bbox1)"] = {"top1_loc_err": r["top1_loc_err"], "top5_loc_err": r["top5_loc_err"],
                                                "gt_known_loc_acc": r["gt_known_loc_acc"]}  # fmt: skip
        rows["heuristic, 5 boxes (released rule)"] = {"top5_loc_err": result["heuristic_released"]["top5_loc_err"]}
    w = result["wsol"]
    rows["Choe et al."] = {"maxboxacc": w["maxboxacc"], "maxboxacc_v2": w["maxboxacc_v2"]}
    if "pxap" in result:
        rows["Choe et al."]["pxap"] = result["pxap"]["pxap"]
    return rows


def mask_batches(images, labels, boxes, masks, batch_size: int = 128):
    """:func:`array_batches` with each target's ground-truth ``"mask"`` (H, W) bool, so that
    :func:`evaluate_protocols` also measures PxAP (e.g. :class:`camlib.datasets.ProceduralShapes`)."""
    masks = np.asarray(masks, dtype=bool)
    if len(masks) != len(labels):
        raise ValueError(f"{len(masks)} masks for {len(labels)} images")
    for x, targets in array_batches(images, labels, boxes, batch_size):
        for t in targets:
            t["mask"] = masks[t["image_id"]]
        yield x, targets


def comparison_rows(
    result: dict,
    setting: str,
    *,
    cam_key: str | None = None,
    backprop: bool = False,
    heuristics: bool = False,
    choe_key: str | None = None,
    cutmix_key: str | None = None,
    rule: str = "paper",
    fraction: float = 0.2,
) -> list[dict]:
    """``write_results`` comparison rows of one :func:`evaluate_protocols` result.

    ``cam_key``: the paper's network key (``results/paper.yaml``: table2.<key>.*) the CAM result is set
    against; ``backprop``: the result is the Backprop baseline (table2.backprop_googlenet, table3.backprop);
    ``heuristics``: add Table 3 rows (GoogLeNet-GAP, plain and with the five-box heuristic);
    ``choe_key`` / ``cutmix_key``: e.g. ``"imagenet.resnet50"``. ``rule`` = ``"paper"`` (at
    ``fraction``) or ``"released"`` picks the box rule of the Table 2/3 rows; ``setting`` says what was
    run and is completed with the rule.
    """
    if rule == "paper":
        loc, how = result["paper"][f"{fraction:g}"], f"paper rule (largest component >= {fraction:g} max)"
        five = result["heuristic"]
    elif rule == "released":
        loc, how = result["released"], "released code's box rule (bbox1)"
        five = result["heuristic_released"]
    else:
        raise ValueError(f"rule must be 'paper' or 'released', got {rule!r}")
    s = f"{setting}; {how}"
    rows = []
    key = "backprop_googlenet" if backprop else cam_key
    if key:
        rows += [
            {"metric": "top-1 localization error (%)", "paper_ref": f"table2.{key}.top1_loc_err",
             "reproduced": loc["top1_loc_err"], "setting": s},
            {"metric": "top-5 localization error (%)", "paper_ref": f"table2.{key}.top5_loc_err",
             "reproduced": loc["top5_loc_err"], "setting": s},
        ]  # fmt: skip
    if heuristics or backprop:
        t3 = "backprop" if backprop else "googlenet_gap"
        rows.append({"metric": "top-5 localization error (%), val not test", "paper_ref": f"table3.{t3}.top5_loc_err",
                     "reproduced": loc["top5_loc_err"], "setting": s})  # fmt: skip
    if heuristics and not backprop:
        rows.append({"metric": "top-5 localization error (%), five-box heuristic, val not test",
                     "paper_ref": "table3.googlenet_gap_heuristics.top5_loc_err", "reproduced": five["top5_loc_err"],
                     "setting": f"{setting}; tight/loose boxes from the top-2 classes + loose box of the 3rd, "
                                f"{'released rule' if rule == 'released' else 'paper rule'}"})  # fmt: skip
    if choe_key:
        rows.append({"metric": "MaxBoxAccV2 (%)", "paper_ref": f"choe.{choe_key}.maxboxaccv2",
                     "reproduced": result["wsol"]["maxboxacc_v2"],
                     "setting": f"{setting}; min-max normalised map of the true class, maps at image size"})  # fmt: skip
    if cutmix_key:
        rows.append({"metric": "top-1 localization accuracy (%)", "paper_ref": f"cutmix.{cutmix_key}.top1_loc",
                     "reproduced": loc["top1_loc_acc"], "setting": s})  # fmt: skip
    return rows


def summarize_protocols(result: dict) -> dict:
    """The JSON-ready headline numbers of an :func:`evaluate_protocols` result (for ``write_results``)."""
    c, w, g = result["classification"], result["wsol"], result["gt_known_sweep"]
    pick = ("top1_loc_err", "top5_loc_err", "top1_loc_acc", "top5_loc_acc", "gt_known_loc_acc")
    out = {
        "n_images": result["n_images"],
        "n_skipped": result["n_skipped"],
        "skipped": [s.get("image_id") for s in result["skipped"]],
        "seconds": round(float(result["seconds"]), 1),
        "top1_err": c["top1_err"],
        "top5_err": c["top5_err"],
        "paper_rule": {f: {k: v[k] for k in pick if k in v} for f, v in result["paper"].items()},
        "heuristic_top5_loc_err": result["heuristic"]["top5_loc_err"],
        "maxboxacc": w["maxboxacc"],
        "maxboxacc_threshold": w["maxboxacc_threshold"],
        "maxboxacc_v2": w["maxboxacc_v2"],
        "maxboxacc_v2_by_iou": w["maxboxacc_v2_by_iou"],
        "gt_known_by_fraction": {f"{t:g}": a for t, a in zip(g["thresholds"], g["curves"]["largest"]["0.5"], strict=True)},
    }
    if "released" in result:
        out["released_rule"] = {k: result["released"][k] for k in pick if k in result["released"]}
        out["heuristic_released_top5_loc_err"] = result["heuristic_released"]["top5_loc_err"]
    if "pxap" in result:
        out["pxap"] = result["pxap"]["pxap"]
        out["best_piou"] = result["pxap"]["best_piou"]
    return out
