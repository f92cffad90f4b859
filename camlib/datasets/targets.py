"""The one ground-truth record every reader yields and every evaluation loop reads.

A :class:`Target` belongs to one image: its class, its boxes and the size of the pixel grid the boxes
are in. Boxes are inclusive pixel boxes ``(x0, y0, x1, y1)``; a reader whose annotations are in another
grid (e.g. wsolevaluation's ORIGINAL-pixel boxes for a resized file) scales them per axis to the file it
reads (:func:`scale_boxes`), so evaluation never needs to know where a set came from.

``Target`` also answers ``t["label"]`` / ``t.get("size")`` so that code written against the earlier
plain-dict targets keeps working while it moves to attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = ["Target", "scale_boxes"]


@dataclass
class Target:
    """Ground truth of one image.

    - ``label``: class index; ``boxes``: (n, 4) int64 inclusive boxes in the pixels of ``size``;
    - ``size``: (H, W) of the image the boxes refer to (None when not known yet);
    - ``image_id``: the reader's id (file name or index); ``mask``: optional (H, W) bool object mask (or
      wsolevaluation's uint8 0 background / 1 foreground / 255 ignore),
      for PxAP; ``extra``: anything else a reader wants to carry along.
    """

    label: int
    boxes: np.ndarray
    size: tuple[int, int] | None = None
    image_id: Any = None
    mask: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.label = int(self.label)
        self.boxes = np.asarray(self.boxes, dtype=np.int64).reshape(-1, 4)
        if self.size is not None:
            self.size = (int(self.size[0]), int(self.size[1]))

    # -- dict-style access (the earlier format) -------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        if key in _FIELDS:
            return getattr(self, key)
        return self.extra[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key in _FIELDS:
            setattr(self, key, value)
        else:
            self.extra[key] = value

    def __contains__(self, key: str) -> bool:
        return (key in _FIELDS and getattr(self, key) is not None) or key in self.extra

    def get(self, key: str, default: Any = None) -> Any:
        try:
            value = self[key]
        except KeyError:
            return default
        return default if value is None else value


_FIELDS = frozenset(f.name for f in fields(Target)) - {"extra"}


def scale_boxes(boxes, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Inclusive boxes in a (H, W) = ``from_size`` grid scaled per axis to ``to_size``::

        x' = round(x * W' / W),  y' = round(y * H' / H),  clipped to [0, W' - 1] x [0, H' - 1]

    The same code then serves the original images and any resized copy (squashed or not).
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    (h0, w0), (h1, w1) = from_size, to_size
    if min(h0, w0, h1, w1) <= 0:
        raise ValueError(f"sizes must be positive, got {from_size} -> {to_size}")
    sx, sy = w1 / w0, h1 / h0
    out = np.rint(b * np.array([sx, sy, sx, sy]))
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w1 - 1)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h1 - 1)
    return out.astype(np.int64)
