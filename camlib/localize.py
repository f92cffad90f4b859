"""The localization pipeline: model -> CAMs -> boxes -> evaluators, one code path for every dataset.

For each image: one forward pass gives the maps of all classes at feature resolution; only the maps
of the top-k predicted classes and of the ground-truth class are upsampled (to the image's own size
by default, where the ground-truth boxes live), normalised and boxed with the paper's rule at each
threshold fraction asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from camlib.boxes import paper_boxes
from camlib.cam import CAM, CAMOptions, postprocess
from camlib.metrics import ClassificationEvaluator, LocalizationEvaluator

__all__ = ["PAPER_OPTIONS", "array_batches", "evaluate_localization", "explain_image", "localize_batch"]

#: The paper's setting: bilinear upsampling to the image's own size, box where M >= 0.2 * max(M).
PAPER_OPTIONS = CAMOptions(upsample="bilinear", size="original", relu=False, normalize="max")
#: For showing maps over an image: bilinear to the image's size, min-max normalised.
DISPLAY_OPTIONS = CAMOptions(size="original")


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
) -> dict:
    """Classification and localization metrics over batches of ``(images, targets)``.

    ``targets[i]`` holds ``label``, ``boxes`` (n, 4) and ``size`` (H, W) as made by
    :class:`camlib.datasets.ilsvrc.WSOLManifestDataset`. Returns
    ``{"classification": {...}, "localization": {fraction: {...}}, "options": {...}}`` and, with
    ``keep_predictions``, the per-image classes and boxes (for figures).
    """
    cam = model if isinstance(model, CAM) else CAM(model)
    cls = ClassificationEvaluator((1, topk))
    loc = {f: LocalizationEvaluator((1, topk)) for f in fractions}
    kept: list[dict] = []
    for x, targets in tqdm(batches, total=total, desc="localize", leave=False):
        labels = [t["label"] for t in targets]
        res = localize_batch(
            cam,
            x.to(device),
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
