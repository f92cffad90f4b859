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

__all__ = [
    "HEURISTIC_LOOSE",
    "HEURISTIC_TIGHT",
    "NO_BOX",
    "RELEASED_THRESHOLDS",
    "box_of_mask",
    "five_box_heuristic",
    "heatmap_uint8",
    "iou",
    "largest_component_box",
    "nth_box",
    "paper_box",
    "paper_boxes",
    "released_boxes",
]

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


# ------------------------------------------------------------------------------------------------
# The released code's box generator and the paper's five-box heuristic (Table 3)
# ------------------------------------------------------------------------------------------------

#: Thresholds of the released box generator, on the 0-255 heat-map image (``generate_bbox.m``).
RELEASED_THRESHOLDS = (20, 100, 110)


def heatmap_uint8(cam) -> np.ndarray:
    """The heat-map image the released code writes and boxes: ``round(255 * M / max(M))``, as uint8.

    Negative values and NaN become 0; a map whose max is not positive becomes all zeros. (The released
    pipeline also passes the image through JPEG compression; we skip that lossy step.)
    """
    m = _as_numpy(cam).astype(np.float64)
    if m.ndim != 2:
        raise ValueError(f"heatmap_uint8 takes one 2-D map, got shape {m.shape}")
    finite = np.isfinite(m)
    if not finite.any() or m[finite].max() <= 0:
        return np.zeros(m.shape, np.uint8)
    v = np.where(finite, m, 0.0) / m[finite].max()
    return np.floor(np.clip(v, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _released_rects(
    gray: np.ndarray, threshold: int, erosion: int, holes: bool
) -> list[tuple[int, int, int, int]]:
    """Rectangles ``(x, y, w, h)`` of one threshold of ``dt_box.cpp``.

    fromDT: the pixels > ``threshold``, then only those whose distance to the background, rescaled so
    that the largest distance is 255, is > ``erosion`` (thin parts and small blobs go; a constant image
    is left unchanged, as the C code does). getBBox: the bounding rectangles of the contours OpenCV's
    findContours(RETR_CCOMP) returns: the outer border of every 8-connected component, and every
    hole's border (the ring of foreground pixels around a 4-connected hole: the hole's box grown by one
    pixel).

    Everything runs on the foreground's box grown by one pixel (clipped to the image): that ring is
    background, so distances to the background are the same there as in the whole image (clamping any
    farther background pixel onto the ring only brings it closer), and a background component is a
    hole exactly when it does not touch the crop's edge.
    """
    from scipy.ndimage import distance_transform_edt, find_objects

    fg = gray > threshold
    if not fg.any():
        return []
    if fg.all():
        keep, y0, x0 = fg, 0, 0
    else:
        ys, xs = np.flatnonzero(fg.any(axis=1)), np.flatnonzero(fg.any(axis=0))
        y0, y1 = max(ys[0] - 1, 0), min(ys[-1] + 2, fg.shape[0])
        x0, x1 = max(xs[0] - 1, 0), min(xs[-1] + 2, fg.shape[1])
        d = distance_transform_edt(fg[y0:y1, x0:x1])
        keep = np.floor(d * (255.0 / d.max()) + 0.5) > erosion
    rects = []
    for sl in find_objects(cc_label(keep, connectivity=2)):
        if sl is not None:
            rects.append(
                (x0 + sl[1].start, y0 + sl[0].start, sl[1].stop - sl[1].start, sl[0].stop - sl[0].start)
            )
    if holes:
        h, w = keep.shape
        for sl in find_objects(cc_label(~keep, connectivity=1)):
            if sl is None or sl[0].start == 0 or sl[1].start == 0 or sl[0].stop == h or sl[1].stop == w:
                continue  # touches the edge: not a hole
            rects.append((x0 + sl[1].start - 1, y0 + sl[0].start - 1, sl[1].stop - sl[1].start + 2,
                          sl[0].stop - sl[0].start + 2))  # fmt: skip
    return rects


def _big_overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int], overlap: float) -> bool:
    t = int(max(a[2] * a[3], b[2] * b[3]) * overlap)
    xo = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    yo = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return xo * yo > t


def released_boxes(
    cam,
    thresholds: tuple[int, ...] = RELEASED_THRESHOLDS,
    *,
    erosion: int = 10,
    margin: int = 5,
    overlap: float = 0.5,
    holes: bool = True,
    max_boxes: int | None = None,
) -> np.ndarray:
    """The box generator released with the paper's code (``bboxgenerator/dt_box.cpp``), re-implemented
    with scikit-image / SciPy. Returns (n, 4) boxes, largest first (``(0, 4)`` when there are none).

    It differs from the paper's text (:func:`paper_box`). On the heat-map image ``round(255 M/max M)``
    (:func:`heatmap_uint8`), for each threshold of ``thresholds`` (20, 100, 110):

    1. keep the pixels ``> threshold``; take their Euclidean distance to the nearest pixel outside,
       rescale it so the largest distance is 255 and keep the pixels above ``erosion`` (10): an
       erosion relative to the thickest part, which removes thin strands and small blobs;
    2. the bounding rectangle ``(x, y, w, h)`` of every contour (outer borders of components and, with
       ``holes``, hole borders, as OpenCV's RETR_CCOMP), limited to stay ``margin`` (5) pixels away
       from the right and bottom edges: ``x <= W-5``, ``w <= W-x-5`` (likewise y, h).

    The boxes of all thresholds are sorted by area (largest first, stable) and a box is dropped when it
    overlaps an earlier (larger) one by more than ``overlap`` (0.5) of the larger area, with the
    C++ loop's quirk kept: after a drop, the next box is not compared with the same earlier box. A
    rectangle ``(x, y, w, h)`` is reported as ``(x, y, x + w, y + h)``, as the released MATLAB code
    turns it into a box (so ``x1`` is one past the last pixel of the contour in our inclusive
    convention). The released evaluation takes, per class, the first box ("bbox1"); its Table 3
    combination takes the first two (:func:`five_box_heuristic`). ``max_boxes``: return only the first
    that many, the same as ``released_boxes(cam)[:max_boxes]`` but faster on noisy maps with many
    contours (the merge's pass ``i`` only removes boxes after position ``i``, so the first ``n`` boxes
    are final after ``n`` passes).
    """
    if max_boxes is not None and max_boxes < 1:
        raise ValueError(f"max_boxes must be >= 1 or None, got {max_boxes}")
    gray = heatmap_uint8(cam)
    H, W = gray.shape
    rects = []
    for th in thresholds:
        for x, y, w, h in _released_rects(gray, int(th), erosion, holes):
            cx = min(max(x, 0), W - margin)
            cy = min(max(y, 0), H - margin)
            cw = min(max(w, 0), W - x - margin)
            ch = min(max(h, 0), H - y - margin)
            rects.append((cx, cy, max(cw, 0), max(ch, 0)))
    if not rects:
        return np.zeros((0, 4), np.int64)
    r = np.asarray(rects, dtype=np.int64).reshape(-1, 4)
    r = r[np.argsort(-(r[:, 2] * r[:, 3]), kind="stable")]  # ties keep threshold, then contour order
    r = _merge_released(r, overlap, max_boxes)
    return np.stack([r[:, 0], r[:, 1], r[:, 0] + r[:, 2], r[:, 1] + r[:, 3]], axis=1)


def _merge_released(r: np.ndarray, overlap: float, max_boxes: int | None = None) -> np.ndarray:
    """``dt_box.cpp``'s mergeBBox on area-sorted rectangles (x, y, w, h), one box i at a time.

    The C++ loop ``for j > i: if big_overlap(i, j) erase(j)`` then increments j, so the rectangle that
    moved into place j is never compared with i. Against a fixed i, a rectangle is thus removed when it
    overlaps i and the rectangle just before it (in the current list) was not removed: inside each run
    of consecutive overlapping rectangles, the 1st, 3rd, 5th ... go. (:func:`_big_overlap` is the
    one-pair version, kept as the specification the tests compare with.) With ``max_boxes`` the loop
    stops once that many leading boxes are final and returns only those.
    """
    i = 0
    while i < len(r) - 1 and (max_boxes is None or i < max_boxes):
        a, rest = r[i], r[i + 1 :]
        t = np.floor(np.maximum(a[2] * a[3], rest[:, 2] * rest[:, 3]) * overlap)
        xo = np.clip(np.minimum(a[0] + a[2], rest[:, 0] + rest[:, 2]) - np.maximum(a[0], rest[:, 0]), 0, None)
        yo = np.clip(np.minimum(a[1] + a[3], rest[:, 1] + rest[:, 3]) - np.maximum(a[1], rest[:, 1]), 0, None)
        hit = xo * yo > t
        if hit.any():
            idx = np.arange(len(hit))
            start = np.maximum.accumulate(np.where(hit & ~np.r_[False, hit[:-1]], idx, 0))
            drop = hit & ((idx - start) % 2 == 0)
            r = np.concatenate([r[: i + 1], rest[~drop]])
        i += 1
    return r if max_boxes is None else r[:max_boxes]


def nth_box(boxes: np.ndarray, n: int) -> np.ndarray:
    """Row ``n`` of a (k, 4) box list, or :data:`NO_BOX` when there are not that many."""
    return boxes[n].astype(np.int64) if len(boxes) > n else NO_BOX.copy()


#: Defaults of the five-box heuristic: the paper gives no numbers. Loose = the paper's own 20% rule;
#: tight = 0.4, the released generator's middle threshold 100/255 = 0.39 rounded. Fixed before any
#: evaluation; never tuned on the images reported.
HEURISTIC_TIGHT, HEURISTIC_LOOSE = 0.4, 0.2


def five_box_heuristic(
    maps, tight: float = HEURISTIC_TIGHT, loose: float = HEURISTIC_LOOSE, rule: str = "paper"
) -> tuple[np.ndarray, np.ndarray]:
    """The paper's Table 3 heuristic: five boxes from the CAMs of the top-3 classes.

    ``maps`` (3+, H, W), best class first. Returns ``(which, boxes)``: ``which`` = [0, 0, 1, 1, 2] (the
    rank of the class each box is for) and ``boxes`` (5, 4) = tight and loose box of class 1, tight and
    loose box of class 2, loose box of class 3. ``rule="paper"``: tight/loose = :func:`paper_box` at
    fractions ``tight`` / ``loose`` of the max. ``rule="released"``: the first and second box of
    :func:`released_boxes` (the released evaluation's "bboxCombine"; the first is the largest, i.e.
    the loose one, and comes first).
    """
    m = _as_numpy(maps)
    if m.ndim != 3 or m.shape[0] < 3:
        raise ValueError(f"five_box_heuristic needs the maps of the top-3 classes (3, H, W), got {m.shape}")
    which = np.array([0, 0, 1, 1, 2])
    if rule == "paper":
        if not 0 <= loose <= tight <= 1:
            raise ValueError(f"need 0 <= loose <= tight <= 1, got tight={tight}, loose={loose}")
        boxes = [
            paper_box(m[0], tight),
            paper_box(m[0], loose),
            paper_box(m[1], tight),
            paper_box(m[1], loose),
            paper_box(m[2], loose),
        ]
    elif rule == "released":
        rb = [released_boxes(m[c], max_boxes=2) for c in range(3)]
        boxes = [
            nth_box(rb[0], 0),
            nth_box(rb[0], 1),
            nth_box(rb[1], 0),
            nth_box(rb[1], 1),
            nth_box(rb[2], 0),
        ]
    else:
        raise ValueError(f"rule must be 'paper' or 'released', got {rule!r}")
    return which, np.stack(boxes).astype(np.int64)
