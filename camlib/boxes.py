"""Boxes from class activation maps, and box overlap.

Pixel convention (the ILSVRC / wsolevaluation one): a box ``(x0, y0, x1, y1)`` holds the pixels
``x0 <= x <= x1`` and ``y0 <= y <= y1`` (both ends INCLUSIVE), so its area is
``(x1 - x0 + 1) * (y1 - y0 + 1)`` and a single pixel is a box of area 1. A missing box (no region
above the threshold) is the row ``(-1, -1, -1, -1)``; it overlaps nothing.

The paper's rule (section 3.1): keep the pixels whose CAM value is at least ``fraction`` (0.2) of the
map's max, and box the largest connected component (8-connectivity, scikit-image's ``label``).
Defined behaviour at the edges:

- NaN pixels never belong to the region; an all-NaN map gives no box.
- A flat map (every pixel equal, e.g. all zeros after min-max normalisation) with value >= 0 is
  entirely ">= fraction * max": the box is the whole image. A flat negative map gives no box.
- Maps whose max is negative give no box (nothing reaches ``fraction * max`` > max).
- Ties between equally large components go to the one scikit-image labels first (top-left first).
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.measure import label as cc_label

__all__ = ["NO_BOX", "box_of_mask", "iou", "largest_component_box", "paper_box", "paper_boxes"]

NO_BOX = np.array([-1, -1, -1, -1], dtype=np.int64)


def _as_numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().float().cpu().numpy()
    return np.asarray(a)


def box_of_mask(mask: np.ndarray) -> np.ndarray:
    """Tight inclusive box of the True pixels of a 2-D mask, or :data:`NO_BOX` if there are none."""
    ys = np.flatnonzero(mask.any(axis=1))
    if ys.size == 0:
        return NO_BOX.copy()
    xs = np.flatnonzero(mask.any(axis=0))
    return np.array([xs[0], ys[0], xs[-1], ys[-1]], dtype=np.int64)


def largest_component_box(region: np.ndarray) -> np.ndarray:
    """Box of the largest 8-connected component of a boolean region (ties: first label)."""
    if not region.any():
        return NO_BOX.copy()
    labels = cc_label(region, connectivity=2)
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    return box_of_mask(labels == int(counts.argmax()))


def paper_box(cam, fraction: float = 0.2) -> np.ndarray:
    """The paper's box: largest connected component of ``cam >= fraction * max(cam)``.

    ``cam`` is one 2-D map (numpy or torch), already at the resolution the box should be in.
    """
    m = _as_numpy(cam)
    if m.ndim != 2:
        raise ValueError(f"paper_box takes one 2-D map, got shape {m.shape}; use paper_boxes for a batch")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    finite = np.isfinite(m)
    if not finite.any():
        return NO_BOX.copy()
    hi = m[finite].max()
    with np.errstate(invalid="ignore"):
        region = finite & (m >= fraction * hi)
    return largest_component_box(region)


def paper_boxes(maps, fraction: float = 0.2) -> np.ndarray:
    """:func:`paper_box` over a stack of maps (..., H, W) -> boxes (..., 4)."""
    m = _as_numpy(maps)
    lead = m.shape[:-2]
    flat = m.reshape(-1, *m.shape[-2:])
    out = np.stack([paper_box(x, fraction) for x in flat]) if len(flat) else np.zeros((0, 4), np.int64)
    return out.reshape(*lead, 4)


def iou(a, b) -> np.ndarray:
    """Intersection over union of every box in ``a`` (N, 4) with every box in ``b`` (M, 4) -> (N, M).

    Inclusive pixel convention (area = (x1 - x0 + 1)(y1 - y0 + 1)). Rows equal to :data:`NO_BOX`
    (or any box with x1 < x0 or y1 < y0) have IoU 0 with everything.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    valid_a = (a[:, 2] >= a[:, 0]) & (a[:, 3] >= a[:, 1]) & (a[:, 0] >= 0)
    valid_b = (b[:, 2] >= b[:, 0]) & (b[:, 3] >= b[:, 1]) & (b[:, 0] >= 0)
    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1
    inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    union = area_a[:, None] + area_b[None, :] - inter
    out = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return np.where(valid_a[:, None] & valid_b[None, :], out, 0.0)
