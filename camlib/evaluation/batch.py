"""The batch record every evaluator reads, and how fractions and box sets are named.

The evaluation loop (:mod:`camlib.evaluation.loop`) turns each batch of images into ONE :class:`Batch`:

- ``targets``: the :class:`~camlib.datasets.targets.Target` of every image (label, boxes, size, id, mask);
- ``logits`` (B, C) and ``pred`` (B, k): the class scores and the top-k classes, best first;
- ``maps``: per image a (k + 1, H, W) float32 stack at the image's size: the maps of the k predicted
  classes, then the map of the ground-truth class (its "role" is ``"gt"``; min-max normalised,
  ``"gt_minmax"``, made on demand with :func:`camlib.core.cam.normalize_maps`);
- ``boxes``: :class:`BoxSet` per box rule and fraction, named by :func:`box_key`
  (``"paper@0.2"``, ``"released"``, ``"heuristic"``, ``"heuristic_released"``).

Every evaluator's ``accumulate(batch)`` takes what it needs from the record; the loop computes only the
box sets the evaluators ask for (their ``box_sets``).

Threshold fractions are keyed ONE way everywhere: the string :func:`fraction_key` (``0.2 -> "0.2"``,
``f"{f:g}"``). :class:`ByFraction` is a dict with those keys that also accepts the float on lookup, so
``result["localization"][0.2]`` and ``result["localization"]["0.2"]`` are the same entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from camlib.datasets.targets import Target

__all__ = ["BOX_RULES", "Batch", "BoxSet", "ByFraction", "box_key", "fraction_key", "parse_box_key"]

#: Box rules the loop knows: the paper's (needs a fraction), the released code's first box per class,
#: and the five-box heuristic (:func:`camlib.core.boxes.five_box_heuristic`) with either rule.
BOX_RULES = ("paper", "released", "heuristic", "heuristic_released")


def fraction_key(fraction: float | str) -> str:
    """The key of a threshold fraction: ``f"{f:g}"`` (``0.2 -> "0.2"``, ``0.25 -> "0.25"``).

    Raises ``ValueError`` when the key does not give the fraction back exactly (more than six
    significant digits), so two different fractions can never share a key.
    """
    if isinstance(fraction, str):
        fraction = float(fraction)
    key = f"{float(fraction):g}"
    if float(key) != float(fraction):
        raise ValueError(
            f"fraction {fraction!r} has more than 6 significant digits; round it (e.g. round(f, 4))"
        )
    return key


class ByFraction(dict):
    """A dict keyed by :func:`fraction_key` strings; ``d[0.2]``, ``d["0.2"]``, ``0.2 in d`` and
    ``d.get(0.2)`` all reach the same entry. Iteration and JSON give the string keys."""

    def __init__(self, items: Iterable[tuple[Any, Any]] | dict = ()) -> None:
        super().__init__()
        for k, v in items.items() if isinstance(items, dict) else items:
            self[k] = v

    def __setitem__(self, key, value) -> None:
        super().__setitem__(fraction_key(key), value)

    def __getitem__(self, key):
        return super().__getitem__(fraction_key(key))

    def __contains__(self, key) -> bool:
        try:
            return super().__contains__(fraction_key(key))
        except (TypeError, ValueError):
            return False

    def get(self, key, default=None):
        return super().get(fraction_key(key), default)

    def fractions(self) -> list[float]:
        """The fractions as floats, ascending."""
        return sorted(float(k) for k in self)


def box_key(rule: str, fraction: float | str | None = None) -> str:
    """Name of a box set: ``box_key("paper", 0.2) == "paper@0.2"``; the other rules take no fraction."""
    if rule not in BOX_RULES:
        raise ValueError(f"unknown box rule {rule!r}; one of {BOX_RULES}")
    if rule == "paper":
        if fraction is None:
            raise ValueError("the paper rule needs a fraction: box_key('paper', 0.2)")
        return f"paper@{fraction_key(fraction)}"
    if fraction is not None:
        raise ValueError(f"the {rule!r} rule takes no fraction")
    return rule


def parse_box_key(key: str) -> tuple[str, float | None]:
    """Inverse of :func:`box_key`: ``"paper@0.2" -> ("paper", 0.2)``, ``"released" -> ("released", None)``."""
    rule, _, frac = key.partition("@")
    if rule not in BOX_RULES or (rule == "paper") != bool(frac):
        raise ValueError(f"not a box set name: {key!r} (e.g. 'paper@0.2', 'released', 'heuristic')")
    return rule, (float(frac) if frac else None)


@dataclass
class BoxSet:
    """Boxes of one rule for a batch: ``boxes`` (B, n, 4) inclusive pixel boxes for the classes
    ``classes`` (B, n); ``gt_known`` (B, 4), the box of the ground-truth class's map, when the rule
    gives one per class (not for the five-box heuristic)."""

    classes: np.ndarray
    boxes: np.ndarray
    gt_known: np.ndarray | None = None


def _mask(mask) -> np.ndarray:
    m = np.asarray(mask)
    return m if np.issubdtype(m.dtype, np.integer) and m.dtype != bool else m.astype(bool)


@dataclass
class Batch:
    """One batch as every evaluator sees it (see the module docstring)."""

    targets: Sequence[Target]
    logits: Tensor
    pred: np.ndarray
    maps: list[np.ndarray]
    boxes: dict[str, BoxSet] = field(default_factory=dict)
    _minmax: list[np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        B = len(self.targets)
        if self.logits.shape[0] != B or self.pred.shape[0] != B or len(self.maps) != B:
            raise ValueError(
                f"batch of {B} targets but logits {tuple(self.logits.shape)}, pred {self.pred.shape}, {len(self.maps)} maps"
            )

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def topk(self) -> int:
        return int(self.pred.shape[1])

    @property
    def labels(self) -> np.ndarray:
        """(B,) ground-truth classes."""
        return np.array([t.label for t in self.targets], dtype=np.int64)

    @property
    def gt_boxes(self) -> list[np.ndarray]:
        """Every ground-truth box of each image, B arrays (n_i, 4)."""
        return [t.boxes for t in self.targets]

    @property
    def masks(self) -> list[np.ndarray | None]:
        """Each image's object mask (H, W) bool, or None; integer masks stay as they are (wsolevaluation's
        0 background / 1 foreground / 255 ignore, read by :func:`camlib.evaluation.wsol.split_mask`)."""
        return [None if t.mask is None else _mask(t.mask) for t in self.targets]

    def role(self, name: str) -> list[np.ndarray]:
        """Maps by role: ``"classes"`` (k, H, W) per image, ``"gt"`` (H, W) the ground-truth class's map
        as boxed, ``"gt_minmax"`` the same min-max normalised (``(M - min) / (max - min)``, flat maps 0,
        :func:`camlib.core.cam.normalize_maps`)."""
        if name == "classes":
            return [m[:-1] for m in self.maps]
        if name == "gt":
            return [m[-1] for m in self.maps]
        if name == "gt_minmax":
            if self._minmax is None:
                from camlib.core.cam import normalize_maps

                self._minmax = [normalize_maps(torch.from_numpy(np.ascontiguousarray(m[-1])), "minmax").numpy()
                                for m in self.maps]  # fmt: skip
            return self._minmax
        raise ValueError(f"unknown map role {name!r}; one of 'classes', 'gt', 'gt_minmax'")

    def box_set(self, key: str) -> BoxSet:
        """The :class:`BoxSet` named ``key``, with an error naming the fix when it was not computed."""
        try:
            return self.boxes[key]
        except KeyError:
            raise KeyError(
                f"box set {key!r} was not computed for this batch (have {sorted(self.boxes)}); an evaluator "
                "that needs it must list it in its box_sets"
            ) from None
