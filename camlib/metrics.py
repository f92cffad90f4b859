"""Evaluators in ``accumulate(...)`` / ``compute()`` form (the wsolevaluation style).

All rates are returned in percent (0-100), as in the paper's tables, together with the count ``n``.

- :class:`ClassificationEvaluator`: top-k accuracy and error.
- :class:`LocalizationEvaluator`: the ILSVRC localization protocol of the paper (section 3.1):
  a top-k prediction is correct when one of the k predicted classes is the ground-truth class AND
  the box predicted for that class has IoU >= 0.5 with any ground-truth box of the image.
  GT-known localization (Choe et al.) uses the box of the ground-truth class's map alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from camlib.boxes import iou

__all__ = ["ClassificationEvaluator", "LocalizationEvaluator"]


def _np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


class ClassificationEvaluator:
    """Top-k classification accuracy; ``compute()`` -> ``{"top1_acc", "top1_err", ..., "n"}``."""

    def __init__(self, ks: Sequence[int] = (1, 5)) -> None:
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"ks must be positive integers, got {ks}")
        self.ks = tuple(sorted(set(ks)))  # (1, 1) must not count twice
        self.correct = dict.fromkeys(self.ks, 0)
        self.n = 0

    def accumulate(self, logits, targets) -> None:
        logits, targets = _np(logits), _np(targets).astype(np.int64)
        if logits.ndim != 2 or targets.ndim != 1 or len(logits) != len(targets):
            raise ValueError(
                f"logits must be (B, C) and targets (B,): got {logits.shape} and {targets.shape}"
            )
        C = logits.shape[1]
        if len(targets) and (targets.min() < 0 or targets.max() >= C):
            raise ValueError(f"targets must be class indices in [0, {C})")
        if max(self.ks) > C:
            raise ValueError(f"top-{max(self.ks)} asked for but the model has {C} classes")
        order = np.argsort(-logits, axis=1, kind="stable")
        for k in self.ks:
            self.correct[k] += int((order[:, :k] == targets[:, None]).any(axis=1).sum())
        self.n += len(targets)

    def compute(self) -> dict[str, float]:
        if self.n == 0:
            raise ValueError("no samples accumulated")
        out: dict[str, float] = {"n": self.n}
        for k in self.ks:
            acc = 100.0 * self.correct[k] / self.n
            out[f"top{k}_acc"] = acc
            out[f"top{k}_err"] = 100.0 - acc
        return out


class LocalizationEvaluator:
    """Top-k localization error and GT-known localization accuracy at an IoU threshold.

    ``accumulate(pred_classes, pred_boxes, gt_labels, gt_boxes, gt_known_boxes=None)``:

    - ``pred_classes``: (B, k) predicted classes, best first (k >= max of ``ks``);
    - ``pred_boxes``: (B, k, 4) the box of each predicted class's map (NO_BOX rows allowed);
    - ``gt_labels``: (B,) ground-truth classes;
    - ``gt_boxes``: B arrays of shape (n_i, 4), every ground-truth box of each image (n_i >= 1);
    - ``gt_known_boxes``: optional (B, 4), the box of the ground-truth class's map.
    """

    def __init__(self, ks: Sequence[int] = (1, 5), iou_threshold: float = 0.5) -> None:
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"ks must be positive integers, got {ks}")
        self.ks = tuple(sorted(set(ks)))  # (1, 1) must not count twice
        self.iou_threshold = float(iou_threshold)
        self.loc_correct = dict.fromkeys(self.ks, 0)
        self.gt_known_correct = 0
        self.gt_known_n = 0
        self.n = 0

    def accumulate(self, pred_classes, pred_boxes, gt_labels, gt_boxes, gt_known_boxes=None) -> None:
        pc, pb, gl = _np(pred_classes), _np(pred_boxes), _np(gt_labels)
        if pc.ndim != 2 or pb.shape != (*pc.shape, 4) or gl.shape != (pc.shape[0],):
            raise ValueError(
                "expected pred_classes (B, k), pred_boxes (B, k, 4), gt_labels (B,); got "
                f"{pc.shape}, {pb.shape}, {gl.shape}"
            )
        if pc.shape[1] < max(self.ks):
            raise ValueError(f"need at least {max(self.ks)} predictions per image, got {pc.shape[1]}")
        if len(gt_boxes) != len(gl):
            raise ValueError(f"gt_boxes has {len(gt_boxes)} entries for a batch of {len(gl)}")
        gk = None if gt_known_boxes is None else _np(gt_known_boxes).reshape(-1, 4)
        if gk is not None and len(gk) != len(gl):
            raise ValueError(f"gt_known_boxes has {len(gk)} rows for a batch of {len(gl)}")
        for i, (classes, boxes, label, gts) in enumerate(zip(pc, pb, gl, gt_boxes, strict=True)):
            gts = _np(gts).reshape(-1, 4)
            if len(gts) == 0:
                raise ValueError(f"image {i} of the batch has no ground-truth box")
            hit = iou(boxes, gts).max(axis=1) >= self.iou_threshold  # (k,)
            good = hit & (classes == label)
            for k in self.ks:
                self.loc_correct[k] += int(good[:k].any())
            if gk is not None:
                self.gt_known_correct += int(iou(gk[i], gts).max() >= self.iou_threshold)
                self.gt_known_n += 1
        self.n += len(gl)

    def compute(self) -> dict[str, float]:
        if self.n == 0:
            raise ValueError("no samples accumulated")
        out: dict[str, float] = {"n": self.n, "iou_threshold": self.iou_threshold}
        for k in self.ks:
            acc = 100.0 * self.loc_correct[k] / self.n
            out[f"top{k}_loc_acc"] = acc
            out[f"top{k}_loc_err"] = 100.0 - acc
        if self.gt_known_n:
            out["gt_known_loc_acc"] = 100.0 * self.gt_known_correct / self.gt_known_n
        return out
