"""Configurations of the one evaluation loop, and what notebooks 01-03 need around it.

:func:`evaluate_localization` (the paper's rule at some fractions: notebooks 01, 02,
:mod:`camlib.paper.gap_vs_gmp`) and :func:`evaluate_protocols` (every protocol of Tables 2 and 3 and
Choe et al.'s: notebook 03, the ``camlib.evaluate`` CLI) both run
:func:`camlib.evaluation.loop.run_evaluation`: batches -> map source (CAM, Backprop, ten crops) -> maps ->
boxes -> every evaluator. They only choose the evaluators and the map options. Threshold fractions are
keyed by :func:`camlib.evaluation.batch.fraction_key` strings (``"0.2"``) in every result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from camlib.core.boxes import HEURISTIC_LOOSE, HEURISTIC_TIGHT, paper_boxes
from camlib.core.cam import (
    CAM,
    DISPLAY_OPTIONS,
    PAPER_OPTIONS,
    RELEASED_OPTIONS,
    CAMOptions,
    postprocess,
)
from camlib.core.io import load_checkpoint
from camlib.datasets.targets import Target
from camlib.datasets.transforms import (  # the input transforms live in the data layer; re-exported here
    PixelNormalize,
    TenCrop,
    WholeImage,
    input_normalizer,
    localization_input,
    ten_crop_offsets,
    whole_image_transform,
)
from camlib.evaluation.batch import ByFraction, box_key, fraction_key
from camlib.evaluation.loop import class_maps, fraction_keys, merge_ten_crops, run_evaluation
from camlib.evaluation.metrics import ClassificationEvaluator, ImageIndex, LocalizationEvaluator
from camlib.evaluation.records import error_of, records_of
from camlib.evaluation.wsol import (
    CHOE_IOU_THRESHOLDS,
    CHOE_THRESHOLDS,
    BoxAccSweep,
    PxAPEvaluator,
)

__all__ = [
    "PAPER_OPTIONS",
    "RELEASED_OPTIONS",
    "PixelNormalize",
    "Protocols",
    "TenCrop",
    "WholeImage",
    "array_batches",
    "class_maps",
    "comparison_rows",
    "evaluate_ilsvrc_sets",
    "evaluate_ilsvrc_val",
    "evaluate_localization",
    "evaluate_protocols",
    "explain_image",
    "input_normalizer",
    "load_gap_checkpoint",
    "localization_input",
    "localization_table",
    "mask_batches",
    "merge_ten_crops",
    "protocol_rows",
    "summarize_protocols",
    "ten_crop_offsets",
    "whole_image_transform",
]


def evaluate_localization(
    model: nn.Module | CAM,
    batches: Iterable[tuple[Tensor, Sequence[Target]]],
    *,
    fractions: Sequence[float] = (0.2,),
    options: CAMOptions = PAPER_OPTIONS,
    topk: int = 5,
    device: str | torch.device = "cpu",
    total: int | None = None,
    keep_predictions: bool = False,
    sync: bool = False,
    map_cache=None,
    channels_last: bool = False,
) -> dict:
    """Classification and the paper's localization protocol over batches of ``(images, targets)``: the
    paper's rule at each fraction, as a configuration of :func:`camlib.evaluation.loop.run_evaluation`.

    ``targets[i]`` is a :class:`~camlib.datasets.targets.Target` (label, boxes, size (H, W)) as made by
    the ILSVRC readers or :func:`array_batches`. Maps are post-processed by ``options`` (normalised as
    it says) and boxed with the paper's rule. Returns ``{"classification": {...}, "localization":
    {fraction: {...}} (a :class:`~camlib.evaluation.batch.ByFraction`), "options", "head", "n_images",
    "n_skipped", "skipped", "records"}`` (``records``: each image's outcomes,
    :class:`~camlib.evaluation.records.ImageRecords`, for intervals and box-area strata) and, with
    ``keep_predictions``, the per-image classes and boxes (``boxes["paper@0.2"]``,
    ``gt_known_box["paper@0.2"]``; for figures).

    ``sync=True`` under ``torch.distributed`` (:mod:`camlib.core.distributed`): ``batches`` are this
    process's shard; counts and kept predictions of all processes are merged, so every process
    returns the metrics of the whole dataset. ``channels_last``: feed channels-last inputs (for a
    channels-last model: much faster CPU convolutions).
    """
    cam = model if isinstance(model, CAM) else CAM(model)
    keys = fraction_keys(fractions)
    evs: dict = {
        "images": ImageIndex(),
        "classification": ClassificationEvaluator((1, topk), keep_per_image=True),
    }
    evs.update(
        {f: LocalizationEvaluator((1, topk), boxes=box_key("paper", f), keep_per_image=True) for f in keys}
    )
    res = run_evaluation(cam, batches, evs, options=options, topk=topk, device=device, channels_last=channels_last,
                         keep_predictions=keep_predictions, total=total, desc="localize", sync=sync,
                         map_cache=map_cache)  # fmt: skip
    out = {
        "classification": res.metrics["classification"],
        "localization": ByFraction((f, res.metrics[f]) for f in keys),
        "options": options.to_dict(),
        "head": res.head,
        "n_images": res.n_images,
        "n_skipped": len(res.skipped),
        "skipped": res.skipped,
        "records": records_of(res.evaluators),
    }
    if keep_predictions:
        out["predictions"] = res.predictions
    return out


def evaluate_ilsvrc_val(
    source: nn.Module | CAM,
    root: str | Path,
    preprocess: Callable,
    *,
    fractions: Sequence[float] = (0.2,),
    options: CAMOptions = PAPER_OPTIONS,
    topk: int = 5,
    batch_size: int = 32,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    limit: int | None = None,
    keep_predictions: bool = False,
) -> tuple:
    """:func:`evaluate_localization` on an ILSVRC val folder in any layout
    :func:`camlib.datasets.ilsvrc.open_ilsvrc_val` reads (the 100-image sample or the full 50,000), with
    ``preprocess`` making the network input (through :func:`localization_input`: a torchvision preset's
    centre crop becomes the whole image resized, so the maps cover the pixels the boxes refer to);
    ``limit`` keeps the first ``limit`` images.

    Returns ``(dataset, result)``: the dataset (for showing its images) and the result dict.
    """
    from torch.utils.data import Subset

    from camlib.datasets.ilsvrc import make_loader, open_ilsvrc_val

    data = open_ilsvrc_val(root, localization_input(preprocess))
    if limit is not None:
        data = Subset(data, range(min(limit, len(data))))
    loader = make_loader(
        data, batch_size=batch_size, num_workers=num_workers, pin_memory=torch.device(device).type == "cuda"
    )
    result = evaluate_localization(source, loader, fractions=fractions, options=options, topk=topk, device=device,
                                   total=len(loader), keep_predictions=keep_predictions)  # fmt: skip
    return data, result


def evaluate_ilsvrc_sets(
    source: nn.Module | CAM,
    sets: Sequence,
    preprocess: Callable,
    *,
    keep_predictions: int = 0,
    batch_size: int = 32,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
    preprocessing: str = "",
    **kwargs,
) -> dict[str, dict]:
    """:func:`evaluate_localization` on each ILSVRC val set of ``sets`` on its own
    (:class:`camlib.evaluation.study.ValSet`: ``key`` and the opened ``dataset``), the network input
    made by ``preprocess``: ``{key: result}`` (each with its per-image ``records``). ``keep_predictions``:
    keep the per-image predictions of the first that many sets (for figures); ``kwargs``: the other
    options of :func:`evaluate_localization` (``fractions``, ``options``, ``topk``). ``cache_dir``: keep
    the network's outputs per image there (:class:`~camlib.evaluation.mapcache.MapCache`, keyed on the
    weights, ``preprocessing`` (a description of the input), the images and ``topk``), so a second run
    skips the forward passes (:meth:`~camlib.evaluation.mapcache.MapCache.for_val_set`: the same entry
    notebook 03's study reads and writes); None: no cache. The model is made channels-last (in place)."""
    from camlib.datasets.ilsvrc import make_loader
    from camlib.evaluation.mapcache import MapCache

    cam = source if isinstance(source, CAM) else CAM(source)
    cam.model.to(
        memory_format=torch.channels_last
    )  # 3-4x faster on CPU; the map cache's inputs (notebook 03's too)
    out = {}
    for i, s in enumerate(sets):
        cache = (
            None
            if cache_dir is None
            else MapCache.for_val_set(
                cache_dir, cam, s.dataset, preprocessing=preprocessing, topk=kwargs.get("topk", 5)
            )
        )
        loader = make_loader(s.dataset.with_preprocess(preprocess), batch_size=batch_size, num_workers=num_workers,
                             pin_memory=torch.device(device).type == "cuda")  # fmt: skip
        out[s.key] = evaluate_localization(cam, loader, device=device, total=len(loader), map_cache=cache,
                                           keep_predictions=i < keep_predictions, channels_last=True, **kwargs)  # fmt: skip
    return out


def localization_table(result: dict) -> str:
    """An :func:`evaluate_localization` result as text: classification, then per fraction GT-known and the
    top-1 / top-5 localization error (percent)."""
    c = result["classification"]
    lines = [
        "classification: " + ", ".join(f"top-{k[3:-4]} {v:.0f}%" for k, v in c.items() if k.endswith("_acc"))
    ]
    for f, lo in ByFraction(result["localization"]).items():
        errs = "  ".join(f"top-{k[3:-8]} loc err {v:5.1f}%" for k, v in lo.items() if k.endswith("_loc_err"))
        lines.append(f"t = {float(f):.1f}: GT-known {lo['gt_known_loc_acc']:5.1f}%  {errs}")
    return "\n".join(lines)


def array_batches(images, labels, boxes, batch_size: int = 128, masks=None):
    """Yield ``(x, targets)`` batches (:class:`~camlib.datasets.targets.Target` records) from in-memory arrays.

    ``images``: (N, H, W, 3) uint8 or (N, 3, H, W) float in [0, 1]; ``labels``: (N,); ``boxes``: (N, 4)
    (one box per image, e.g. :class:`camlib.datasets.ProceduralShapes`) or a list of (n_i, 4) arrays;
    ``masks``: optional (N, H, W) object masks (then PxAP can be measured): bool, or wsolevaluation's
    integers (0 background, 1 foreground, 255 ignore: :func:`camlib.evaluation.wsol.split_mask`).
    Images are fed as float [0, 1] tensors at their own size, so maps are upsampled to (H, W).
    """
    imgs = torch.as_tensor(np.asarray(images))
    if imgs.dtype == torch.uint8:
        imgs = imgs.permute(0, 3, 1, 2).float() / 255.0
    n = len(imgs)
    if len(labels) != n or len(boxes) != n:
        raise ValueError(f"{n} images but {len(labels)} labels and {len(boxes)} boxes")
    if masks is not None:
        masks = np.asarray(masks)
        if masks.dtype != bool and not np.issubdtype(masks.dtype, np.integer):
            masks = masks.astype(bool)  # integer masks keep their 255 = ignore
        if len(masks) != n:
            raise ValueError(f"{len(masks)} masks for {n} images")
    H, W = imgs.shape[-2:]
    for s in range(0, n, batch_size):
        targets = [
            Target(label=int(labels[i]), boxes=np.asarray(boxes[i]).reshape(-1, 4), size=(int(H), int(W)), image_id=i,
                   mask=None if masks is None else masks[i])
            for i in range(s, min(n, s + batch_size))
        ]  # fmt: skip
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

    ``image``: PIL image or (H, W, 3) uint8 array; ``preprocess`` makes the network input of it, through
    :func:`localization_input` (a torchvision preset's centre crop becomes the whole image resized, so the
    maps are computed on exactly the pixels they are laid on).
    Returns ``{"classes", "names", "probs", "maps" (k, H, W), "boxes" (k, 4), "logits", "raw_maps"}``.
    """
    arr = np.asarray(image)
    x = localization_input(preprocess)(image)[None]
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
        d["sweep_thresholds"] = (
            f"{len(self.sweep_thresholds)} values {self.sweep_thresholds[0]:g}..{self.sweep_thresholds[-1]:g}"
        )
        return d


def evaluate_protocols(
    source,
    batches: Iterable[tuple[Tensor, Sequence[Target]]],
    *,
    options: CAMOptions = PAPER_OPTIONS,
    protocols: Protocols = Protocols(),
    device: str | torch.device = "cpu",
    total: int | None = None,
    keep_predictions: bool = False,
    keep_maps: int = 0,
    desc: str = "localize",
    sync: bool = False,
    map_cache=None,
    max_map_side: int | None = None,
    resume: dict | None = None,
    checkpoint=None,
    checkpoint_every: int = 0,
) -> dict:
    """Every localization protocol of the paper and of Choe et al. in one pass over ``batches``: a
    configuration of :func:`camlib.evaluation.loop.run_evaluation`.

    ``source``: a :class:`~camlib.core.cam.CAM` (or a model, wrapped in one) or a
    :class:`~camlib.core.saliency.BackpropSaliency`. ``batches``: ``(x, targets)`` as made by
    :func:`camlib.datasets.ilsvrc.collate_with_targets` or :func:`array_batches`; ``x`` (B, 10, 3, H, W)
    selects the released ten-crop setting (use :data:`RELEASED_OPTIONS`). A target may carry a
    boolean ``mask`` (H, W): then PxAP is measured too. Batches' ``targets.skipped`` (unreadable
    images) are counted and listed.

    Maps are upsampled per ``options`` (to the image's size by default) and NOT normalised: the paper's
    rule, the released rule and the heuristic box the map as it is (scale-free), MaxBoxAcc/V2 and PxAP
    use its min-max normalisation (the ``"gt_minmax"`` role). Returns a dict: ``classification``;
    ``paper`` {fraction: top-1/top-5 loc error and GT-known} (:class:`~camlib.evaluation.batch.ByFraction`);
    ``released`` and ``heuristic_released`` (with ``protocols.released``); ``heuristic`` (top-5 loc error
    from five boxes); ``wsol`` (MaxBoxAcc, MaxBoxAccV2, curves); ``gt_known_sweep``; ``pxap`` (if masks);
    ``n_images``, ``n_skipped``, ``skipped``; ``seconds``; the options; and ``evaluators`` (the sweep
    evaluators, whose per-image tables allow held-out threshold choices); ``records``: every image's
    outcome under every protocol (:class:`~camlib.evaluation.records.ImageRecords`: intervals, strata).

    ``sync=True`` under ``torch.distributed``, ``max_map_side`` (maps of very large images at a capped
    size), ``resume`` / ``checkpoint`` / ``checkpoint_every`` (a resumable pass): see
    :func:`camlib.evaluation.loop.run_evaluation`.
    ``map_cache``: a :class:`camlib.evaluation.mapcache.MapCache` for a single-crop CAM source.
    """
    p = protocols
    k = p.topk
    if k < 3:
        raise ValueError("the five-box heuristic needs topk >= 3")
    keys = fraction_keys(p.fractions)
    evs: dict = {
        "images": ImageIndex(),
        "classification": ClassificationEvaluator((1, k), keep_per_image=True),
    }
    evs.update(
        {f: LocalizationEvaluator((1, k), boxes=box_key("paper", f), keep_per_image=True) for f in keys}
    )
    evs["heuristic"] = LocalizationEvaluator((5,), boxes="heuristic", keep_per_image=True)
    if p.released:
        evs["released"] = LocalizationEvaluator((1, k), boxes="released", keep_per_image=True)
        evs["heuristic_released"] = LocalizationEvaluator(
            (5,), boxes="heuristic_released", keep_per_image=True
        )
    evs["wsol"] = BoxAccSweep(p.sweep_thresholds, p.iou_thresholds, scale="absolute", keep_per_image=True)
    evs["gt_known_sweep"] = BoxAccSweep(p.gt_known_fractions, (0.5,), scale="max", keep_per_image=True)
    evs["pxap"] = PxAPEvaluator(p.sweep_thresholds)
    res = run_evaluation(source, batches, evs, options=replace(options, normalize="none"), topk=k, device=device,
                         heuristic=(p.heuristic_tight, p.heuristic_loose), keep_predictions=keep_predictions,
                         keep_maps=keep_maps, total=total, desc=desc, sync=sync, max_map_side=max_map_side,
                         resume=resume, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                         map_cache=map_cache)  # fmt: skip
    m = res.metrics
    out: dict = {
        "classification": m["classification"],
        "paper": ByFraction((f, m[f]) for f in keys),
        "heuristic": m["heuristic"],
        "wsol": m["wsol"],
        "gt_known_sweep": m["gt_known_sweep"],
        "n_images": res.n_images,
        "n_skipped": len(res.skipped),
        "skipped": res.skipped,
        "seconds": res.seconds,
        "source": res.source,
        "options": options.to_dict(),
        "protocols": p.to_dict(),
        "head": res.head,
        "evaluators": {"wsol": evs["wsol"], "gt_known_sweep": evs["gt_known_sweep"]},
        "records": records_of(res.evaluators),
    }
    if p.released:
        out["released"] = m["released"]
        out["heuristic_released"] = m["heuristic_released"]
    if "pxap" in m:
        out["pxap"] = m["pxap"]
    if keep_predictions:
        out["predictions"] = res.predictions
    if keep_maps:
        out["gt_maps"] = res.gt_maps
    return out


def load_gap_checkpoint(
    arch: str, path: str | Path, *, pool: str = "avg", device: str | torch.device = "cpu"
) -> nn.Module:
    """A -GAP network of :func:`camlib.models.gap_variant` with weights from a checkpoint file: a state
    dict, or a :func:`camlib.models.train.fit` / :func:`camlib.paper.gap_vs_gmp.finetune` checkpoint (``"model"``)."""
    from camlib.models import gap_variant

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint {path} for {arch} not found: fine-tune one with notebook 02 / camlib.paper.gap_vs_gmp "
            f"(ILSVRC train), then give its path in GAP_CHECKPOINTS"
        )
    state = load_checkpoint(
        path, fix="Fine-tune one with notebook 02 / camlib.paper.gap_vs_gmp and give its path."
    )
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    model = gap_variant(arch, pool=pool)
    model.load_state_dict(state, strict=True)
    return model.eval().to(device)


def protocol_rows(result: dict, fraction: float = 0.2) -> dict[str, dict[str, float]]:
    """The headline numbers of an :func:`evaluate_protocols` result, one row per box rule."""
    c = result["classification"]
    pa = ByFraction(result["paper"])[fraction]
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
        rows["heuristic, 5 boxes (released rule)"] = {
            "top5_loc_err": result["heuristic_released"]["top5_loc_err"]
        }
    w = result["wsol"]
    rows["Choe et al."] = {"maxboxacc": w["maxboxacc"], "maxboxacc_v2": w["maxboxacc_v2"]}
    if "pxap" in result:
        rows["Choe et al."]["pxap"] = result["pxap"]["pxap"]
    return rows


def mask_batches(images, labels, boxes, masks, batch_size: int = 128):
    """:func:`array_batches` with each target's ground-truth ``mask`` (H, W) bool, so that
    :func:`evaluate_protocols` also measures PxAP (e.g. :class:`camlib.datasets.ProceduralShapes`)."""
    return array_batches(images, labels, boxes, batch_size, masks=masks)


def _acc_ci(result: dict, hit: str, plain: float):
    """The accuracy of per-image outcome ``hit`` with its interval when the result has ``records``
    (the same number as ``plain``, which is returned as it is otherwise)."""
    rec = result.get("records")
    return plain if rec is None or hit not in rec.hits else rec.estimate(hit)


def _err_ci(result: dict, hit: str, plain: float):
    """:func:`_acc_ci` as an error rate (%)."""
    est = _acc_ci(result, hit, None)
    return plain if est is None else error_of(est)


def _maxboxacc_v2_ci(result: dict):
    rec = result.get("records")
    return (
        result["wsol"]["maxboxacc_v2"]
        if rec is None or "wsol.all" not in rec.sweeps
        else rec.maxboxacc(v2=True)
    )


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
    run and is completed with the rule. With the result's per-image ``records`` each ``reproduced`` is
    an :class:`~camlib.evaluation.stats.Estimate` (the same value, with its 95% bootstrap interval).
    """
    if rule == "paper":
        loc, how = (
            ByFraction(result["paper"])[fraction],
            f"paper rule (largest component >= {fraction:g} max)",
        )
        five, rkey, fkey = result["heuristic"], box_key("paper", fraction), "heuristic"
    elif rule == "released":
        loc, how = result["released"], "released code's box rule (bbox1)"
        five, rkey, fkey = result["heuristic_released"], "released", "heuristic_released"
    else:
        raise ValueError(f"rule must be 'paper' or 'released', got {rule!r}")
    s = f"{setting}; {how}"
    rows = []
    key = "backprop_googlenet" if backprop else cam_key
    if key:
        rows += [
            {"metric": "top-1 localization error (%)", "paper_ref": f"table2.{key}.top1_loc_err",
             "reproduced": _err_ci(result, f"{rkey}.top1_loc", loc["top1_loc_err"]), "setting": s},
            {"metric": "top-5 localization error (%)", "paper_ref": f"table2.{key}.top5_loc_err",
             "reproduced": _err_ci(result, f"{rkey}.top5_loc", loc["top5_loc_err"]), "setting": s},
        ]  # fmt: skip
    if heuristics or backprop:
        t3 = "backprop" if backprop else "googlenet_gap"
        rows.append({"metric": "top-5 localization error (%), val not test", "paper_ref": f"table3.{t3}.top5_loc_err",
                     "reproduced": _err_ci(result, f"{rkey}.top5_loc", loc["top5_loc_err"]), "setting": s})  # fmt: skip
    if heuristics and not backprop:
        rows.append({"metric": "top-5 localization error (%), five-box heuristic, val not test",
                     "paper_ref": "table3.googlenet_gap_heuristics.top5_loc_err", "reproduced": _err_ci(result, f"{fkey}.top5_loc", five["top5_loc_err"]),
                     "setting": f"{setting}; tight/loose boxes from the top-2 classes + loose box of the 3rd, "
                                f"{'released rule' if rule == 'released' else 'paper rule'}"})  # fmt: skip
    if choe_key:
        rows.append({"metric": "MaxBoxAccV2 (%)", "paper_ref": f"choe.{choe_key}.maxboxaccv2",
                     "reproduced": _maxboxacc_v2_ci(result),
                     "setting": f"{setting}; min-max normalised map of the true class, maps at image size"})  # fmt: skip
    if cutmix_key:
        rows.append({"metric": "top-1 localization accuracy (%)", "paper_ref": f"cutmix.{cutmix_key}.top1_loc",
                     "reproduced": _acc_ci(result, f"{rkey}.top1_loc", loc["top1_loc_acc"]), "setting": s})  # fmt: skip
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
        "gt_known_by_fraction": {
            fraction_key(t): a for t, a in zip(g["thresholds"], g["curves"]["largest"]["0.5"], strict=True)
        },
    }
    if "released" in result:
        out["released_rule"] = {k: result["released"][k] for k in pick if k in result["released"]}
        out["heuristic_released_top5_loc_err"] = result["heuristic_released"]["top5_loc_err"]
    if "pxap" in result:
        out["pxap"] = result["pxap"]["pxap"]
        out["best_piou"] = result["pxap"]["best_piou"]
    return out
