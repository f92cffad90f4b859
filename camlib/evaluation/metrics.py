"""Evaluators in ``accumulate(batch)`` / ``compute()`` form (the wsolevaluation style).

One interface (:class:`Evaluator`): ``accumulate(batch)`` takes ONE :class:`camlib.evaluation.batch.Batch`
(logits, predicted classes, maps by role, boxes by rule and fraction, targets) and reads what it needs;
``box_sets`` names the box sets it reads, so the loop (:mod:`camlib.evaluation.loop`) computes only
those; ``compute()`` returns the metrics. ``update(...)`` is the same count on plain arrays (for tests
and for code without a loop).

All rates are returned in percent (0-100), as in the paper's tables, together with the count ``n``.

- :class:`ClassificationEvaluator`: top-k accuracy and error.
- :class:`LocalizationEvaluator`: the ILSVRC localization protocol of the paper (section 3.1):
  a top-k prediction is correct when one of the k predicted classes is the ground-truth class AND
  the box predicted for that class has IoU >= 0.5 with any ground-truth box of the image.
  GT-known localization (Choe et al.) uses the box of the ground-truth class's map alone.

Every evaluator here and in :mod:`camlib.evaluation.wsol` keeps only counts that ADD UP over disjoint sets of
images, so shards evaluated apart (other processes, other machines) merge exactly: ``state()`` exports
``{"config", "counts", "lists"}``, :func:`merge_states` sums the counts (and concatenates per-image
lists in shard order), ``load_state()`` / ``merge()`` bring the result back into an evaluator, and
:func:`camlib.core.distributed.sync_evaluators` does the same across a ``torch.distributed`` group.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from camlib.core.boxes import iou
from camlib.evaluation.batch import Batch, box_key, parse_box_key

__all__ = [
    "ClassificationEvaluator",
    "Evaluator",
    "ImageIndex",
    "LocalizationEvaluator",
    "Mergeable",
    "PerImage",
    "merge_states",
]


def _np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def merge_states(states: Sequence[dict]) -> dict:
    """Merge evaluator states of disjoint shards: counts summed, per-image lists concatenated in order.

    Every state must have the same ``config`` (same thresholds, same k, ...), else ``ValueError``.
    """
    if not states:
        raise ValueError("nothing to merge")
    first = states[0]
    for s in states[1:]:
        if s["config"] != first["config"]:
            raise ValueError(
                f"cannot merge evaluators with different settings: {s['config']} vs {first['config']}"
            )
        if s["counts"].keys() != first["counts"].keys() or s["lists"].keys() != first["lists"].keys():
            raise ValueError("cannot merge states of different evaluators")
    counts = {
        k: np.sum([np.asarray(s["counts"][k], np.int64) for s in states], axis=0) for k in first["counts"]
    }
    lists = {k: [v for s in states for v in s["lists"][k]] for k in first["lists"]}
    return {"config": first["config"], "counts": counts, "lists": lists}


class Mergeable:
    """``state()`` / ``load_state()`` / ``merge()`` for evaluators made of additive counts.

    Subclasses name their count attributes in ``_COUNTS`` (int or int arrays), their per-image list
    attributes in ``_LISTS`` and return their settings from ``_config()``.
    """

    _COUNTS: tuple[str, ...] = ()
    _LISTS: tuple[str, ...] = ()

    def _config(self) -> dict:
        raise NotImplementedError

    def state(self) -> dict:
        """A picklable snapshot: ``{"config": settings, "counts": {name: int64 array}, "lists": {...}}``."""
        return {
            "config": self._config(),
            "counts": {k: np.array(getattr(self, k), dtype=np.int64, copy=True) for k in self._COUNTS},
            "lists": {k: list(getattr(self, k)) for k in self._LISTS},
        }

    def load_state(self, state: dict) -> None:
        """Replace the counts by those of ``state`` (whose config must match this evaluator's)."""
        if state["config"] != self._config():
            raise ValueError(
                f"state of an evaluator with other settings: {state['config']} vs {self._config()}"
            )
        for k in self._COUNTS:
            v = np.asarray(state["counts"][k], dtype=np.int64)
            setattr(self, k, int(v) if v.ndim == 0 else v.copy())
        for k in self._LISTS:
            setattr(self, k, list(state["lists"][k]))

    def merge(self, *others):
        """Add the counts of other evaluators (or states) of disjoint images; returns ``self``."""
        states = [self.state(), *(o.state() if isinstance(o, Mergeable) else o for o in others)]
        self.load_state(merge_states(states))
        return self


class Evaluator(Mergeable):
    """The evaluator interface: ``accumulate(batch)``, ``compute()``, ``state()`` / ``merge()``.

    Subclasses implement ``_accumulate(batch)`` (read the :class:`~camlib.evaluation.batch.Batch`, call
    their array-level ``update``), list the box sets they read in ``box_sets`` and keep their image
    count in ``n`` (0: nothing to compute).
    """

    box_sets: tuple[str, ...] = ()
    n: int = 0

    def accumulate(self, batch: Batch) -> None:
        """Add one batch record (:class:`camlib.evaluation.batch.Batch`)."""
        if not isinstance(batch, Batch):
            raise TypeError(
                f"{type(self).__name__}.accumulate takes one camlib.evaluation.batch.Batch (got "
                f"{type(batch).__name__}); for plain arrays call {type(self).__name__}.update(...)"
            )
        self._accumulate(batch)

    def _accumulate(self, batch: Batch) -> None:
        raise NotImplementedError

    def compute(self) -> dict:
        raise NotImplementedError


class PerImage:
    """``keep_per_image``: the evaluator also keeps each image's 0/1 outcomes (one row per image, one
    column per outcome, :attr:`columns`), so an interval over images can be computed afterwards
    (:func:`camlib.evaluation.stats.bootstrap_ci`; :mod:`camlib.evaluation.records`). The rows are a
    per-image list: merged shards concatenate them in shard order."""

    keep_per_image: bool = False
    _rows: list

    @property
    def columns(self) -> tuple[str, ...]:
        raise NotImplementedError

    def _keep(self, rows: np.ndarray) -> None:
        if self.keep_per_image:
            self._rows.append(np.asarray(rows, bool).reshape(-1, len(self.columns)))

    def per_image(self) -> dict[str, np.ndarray]:
        """Outcome name -> (N,) bool, in the order the images were seen; needs ``keep_per_image=True``."""
        if not self.keep_per_image:
            raise ValueError(
                f"construct {type(self).__name__} with keep_per_image=True to keep per-image outcomes"
            )
        table = np.concatenate(self._rows) if self._rows else np.zeros((0, len(self.columns)), bool)
        return {c: table[:, j].copy() for j, c in enumerate(self.columns)}


class ClassificationEvaluator(PerImage, Evaluator):
    """Top-k classification accuracy; ``compute()`` -> ``{"top1_acc", "top1_err", ..., "n", "n_nonfinite"}``.
    ``keep_per_image``: also keep each image's ``top{k}`` hits (:meth:`per_image`).

    An image whose logits hold any NaN or infinity is counted WRONG at every k (a broken forward pass
    must not score: all-NaN logits used to sort as 50% top-1 / 100% top-5), and ``n_nonfinite`` says
    how many such images there were.
    """

    def __init__(self, ks: Sequence[int] = (1, 5), *, keep_per_image: bool = False) -> None:
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"ks must be positive integers, got {ks}")
        self.ks = tuple(sorted(set(ks)))  # (1, 1) must not count twice
        self.correct = dict.fromkeys(self.ks, 0)
        self.n = 0
        self.keep_per_image = keep_per_image
        self._rows = []
        self.n_nonfinite = 0

    _COUNTS = ("_correct", "n", "n_nonfinite")
    _LISTS = ("_rows",)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f"top{k}" for k in self.ks)

    def _config(self) -> dict:
        cfg = {"evaluator": "classification", "ks": list(self.ks)}
        return cfg | ({"keep_per_image": True} if self.keep_per_image else {})

    @property
    def _correct(self) -> np.ndarray:
        return np.array([self.correct[k] for k in self.ks], np.int64)

    @_correct.setter
    def _correct(self, v) -> None:
        self.correct = {k: int(c) for k, c in zip(self.ks, np.asarray(v).ravel(), strict=True)}

    def _accumulate(self, batch: Batch) -> None:
        self.update(batch.logits, batch.labels)

    def update(self, logits, targets) -> None:
        """Count (B, C) ``logits`` against (B,) ``targets``: correct at k when the target is among the k
        highest logits (ties: lower index first). Rows with a non-finite logit are wrong at every k."""
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
        finite = np.isfinite(logits).all(axis=1)
        order = np.argsort(-logits, axis=1, kind="stable")
        hits = (
            np.stack([(order[:, :k] == targets[:, None]).any(axis=1) for k in self.ks], axis=1)
            & finite[:, None]
        )
        for j, k in enumerate(self.ks):
            self.correct[k] += int(hits[:, j].sum())
        self.n += len(targets)
        self.n_nonfinite += int((~finite).sum())
        self._keep(hits)

    def compute(self) -> dict[str, float]:
        if self.n == 0:
            raise ValueError("no samples accumulated")
        out: dict[str, float] = {"n": self.n, "n_nonfinite": self.n_nonfinite}
        for k in self.ks:
            acc = 100.0 * self.correct[k] / self.n
            out[f"top{k}_acc"] = acc
            out[f"top{k}_err"] = 100.0 - acc
        return out


class LocalizationEvaluator(PerImage, Evaluator):
    """Top-k localization error and GT-known localization accuracy at an IoU threshold.

    ``accumulate(batch)`` reads the box set ``boxes`` (:func:`camlib.evaluation.batch.box_key`, default
    the paper's rule at 0.2: ``"paper@0.2"``; ``"heuristic"`` for the five-box heuristic with ks=(5,)).
    ``update(pred_classes, pred_boxes, gt_labels, gt_boxes, gt_known_boxes=None)`` on arrays:

    - ``pred_classes``: (B, k) predicted classes, best first (k >= max of ``ks``);
    - ``pred_boxes``: (B, k, 4) the box of each predicted class's map (NO_BOX rows allowed);
    - ``gt_labels``: (B,) ground-truth classes;
    - ``gt_boxes``: B arrays of shape (n_i, 4), every ground-truth box of each image (n_i >= 1);
    - ``gt_known_boxes``: optional (B, 4), the box of the ground-truth class's map.

    ``keep_per_image``: also keep each image's ``top{k}_loc`` hits and ``gt_known`` hit (False where the
    rule gives no GT-known box) (:meth:`per_image`).
    """

    def __init__(
        self,
        ks: Sequence[int] = (1, 5),
        iou_threshold: float = 0.5,
        boxes: str = box_key("paper", 0.2),
        *,
        keep_per_image: bool = False,
    ) -> None:
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"ks must be positive integers, got {ks}")
        parse_box_key(boxes)  # a clear error for a misspelt box set
        self.ks = tuple(sorted(set(ks)))  # (1, 1) must not count twice
        self.boxes = boxes
        self.box_sets = (boxes,)
        self.iou_threshold = float(iou_threshold)
        self.loc_correct = dict.fromkeys(self.ks, 0)
        self.gt_known_correct = 0
        self.gt_known_n = 0
        self.n = 0
        self.keep_per_image = keep_per_image
        self._rows = []

    _COUNTS = ("_loc_correct", "gt_known_correct", "gt_known_n", "n")
    _LISTS = ("_rows",)

    @property
    def columns(self) -> tuple[str, ...]:
        return (*(f"top{k}_loc" for k in self.ks), "gt_known")

    def _config(self) -> dict:
        cfg = {
            "evaluator": "localization",
            "ks": list(self.ks),
            "iou_threshold": self.iou_threshold,
            "boxes": self.boxes,
        }
        return cfg | ({"keep_per_image": True} if self.keep_per_image else {})

    @property
    def _loc_correct(self) -> np.ndarray:
        return np.array([self.loc_correct[k] for k in self.ks], np.int64)

    @_loc_correct.setter
    def _loc_correct(self, v) -> None:
        self.loc_correct = {k: int(c) for k, c in zip(self.ks, np.asarray(v).ravel(), strict=True)}

    def _accumulate(self, batch: Batch) -> None:
        bs = batch.box_set(self.boxes)
        self.update(bs.classes, bs.boxes, batch.labels, batch.gt_boxes, bs.gt_known)

    def update(self, pred_classes, pred_boxes, gt_labels, gt_boxes, gt_known_boxes=None) -> None:
        """Count one batch given as arrays (see the class docstring): top-k correct when one of the first
        k classes is the label AND its box has IoU >= ``iou_threshold`` with a ground-truth box."""
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
            row = [bool(good[:k].any()) for k in self.ks]
            for k, h in zip(self.ks, row, strict=True):
                self.loc_correct[k] += int(h)
            known = False
            if gk is not None:
                known = bool(iou(gk[i], gts).max() >= self.iou_threshold)
                self.gt_known_correct += int(known)
                self.gt_known_n += 1
            self._keep(np.array([*row, known]))
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


class ImageIndex(Evaluator):
    """Which images a run saw, in the order its per-image outcomes are kept: each image's id and the
    area of its largest ground-truth box as a fraction of the image
    (:func:`camlib.evaluation.stats.largest_box_fraction`; NaN when the target has no size), the
    quantity of the box-area strata. ``compute()`` -> ``{"n"}``; ``per_image()`` -> ``{"image_id",
    "area"}``. The area is that of the boxes as evaluated (integer pixels, clipped to the image), so an
    image right at a stratum edge can fall in the neighbouring stratum compared with counts made from
    the manifests' float boxes (``ilsvrc-val-box-area.csv``: 1 of the sample's 100 images, 8 of the 1k
    set's 1,000 move by one stratum)."""

    _COUNTS = ("n",)
    _LISTS = ("ids", "areas")

    def __init__(self) -> None:
        self.n = 0
        self.ids: list = []
        self.areas: list[float] = []

    def _config(self) -> dict:
        return {"evaluator": "image_index"}

    def _accumulate(self, batch: Batch) -> None:
        from camlib.evaluation.stats import largest_box_fraction

        for t in batch.targets:
            self.ids.append(t.image_id)
            area = (
                float("nan") if t.size is None else float(largest_box_fraction([t.boxes], [t.size[::-1]])[0])
            )
            self.areas.append(area)
        self.n += len(batch)

    def per_image(self) -> dict[str, np.ndarray | list]:
        return {"image_id": list(self.ids), "area": np.asarray(self.areas, dtype=float)}

    def compute(self) -> dict:
        return {"n": self.n}
