"""Today's WSOL metrics (Choe et al., "Evaluating Weakly Supervised Object Localization Methods Right",
CVPR 2020 / TPAMI): threshold sweeps computed for every threshold at once.

- **MaxBoxAcc**: for each threshold tau of a sweep, box the LARGEST connected component of
  ``map >= tau`` (the paper's rule, :func:`camlib.core.boxes.largest_component_box`); an image is correct
  when that box has IoU >= delta (0.5) with one of its ground-truth boxes. BoxAcc(tau) is the fraction
  of correct images; MaxBoxAcc = max over tau.
- **MaxBoxAccV2**: the boxes of ALL connected components at tau; an image is correct when one of them
  matches a ground-truth box (best match) at IoU >= delta; MaxBoxAcc per delta, averaged over
  delta = 0.3, 0.5, 0.7.
- **PxAP**: pixel-level average precision of the map against ground-truth masks (area under the
  precision-recall curve traced by the thresholds).

How every threshold is done at once (no Python loop over thresholds). Superlevel sets are nested, and
a threshold only matters through the integer LEVEL of each pixel, ``L = #{thresholds <= value}``: the
pixel belongs to the superlevel sets of threshold indices ``0 .. L-1``. Then:

1. Run-length encoding of all T masks at once: in a row, a run of threshold index ``j`` starts at
   pixel x exactly for ``left_level <= j < L(x)`` and ends at x for ``right_level <= j < L(x)`` (a
   missing neighbour has level 0). Each pixel thus emits an integer interval of run starts and one of
   run ends; expanding the intervals (``np.repeat``) and a stable (radix) sort by threshold index give
   every run of every threshold of every map, ordered by (threshold, map, row, column), with starts
   and ends paired in order.
2. Two runs of adjacent rows of the same (threshold, map) touch (8-connectivity) when their column
   ranges overlap after widening by one pixel; the touching runs of the next row form one contiguous
   block of the sorted runs, found with two ``np.searchsorted`` calls for all runs at once.
3. ONE ``scipy.sparse.csgraph.connected_components`` call on the graph of runs labels every connected
   component of every threshold of every map; boxes, areas and first pixels (for ties) are reductions
   over runs grouped by label.

The work is proportional to the number of runs (about rows x components x thresholds for smooth maps),
not to T x H x W: ``benchmarks/sweep.py`` (``make bench``) times it against :func:`reference_box_hits`, the
straightforward loop (``skimage.measure.label`` + ``regionprops`` at each threshold), and
``tests/test_wsol.py`` checks that both give identical per-image, per-threshold results.

Conventions (shared with :mod:`camlib.core.boxes`): inclusive pixel boxes; 8-connectivity; a pixel is in
the region when ``value >= threshold``; NaN pixels are never in a region; the largest
component is the one with most pixels, ties to the one whose first pixel comes first in raster order
(what ``skimage.measure.label`` + ``argmax`` picks). Choe et al. box the largest *contour* by
``cv2.contourArea`` and bound contours with ``cv2.boundingRect`` (one pixel wider than inclusive
boxes); we use pixel components as the paper's rule does. Thresholds are compared in the map's own
floating dtype; ``scale="max"`` makes them fractions of each map's maximum (``value >= t * max``,
exactly the comparison of :func:`camlib.core.boxes.paper_box`), ``scale="absolute"`` uses them as given
(for min-max normalised maps, Choe et al.'s setting).

How far the box thresholds are from Choe et al.'s code (wsolevaluation): NOT only on pixels exactly on
a threshold. Their boxes first quantise the map to 8 bits by truncation, ``q = uint8(255 * s)``, then keep
``q > int(tau * max(q))`` (OpenCV ``THRESH_BINARY``); for a min-max map that is ``s >= (floor(255 tau) + 1)
/ 255``, a threshold up to 1/255 higher than ``tau`` (and at tau = 0 every pixel below 1/255 is dropped).
So the pixel sets differ at almost every (map, threshold) pair: in 9,992 of 10,000 pairs as measured in
issue 19 on real CAMs, and in 9,955 of 10,000 (median 56 of 50,176 pixels per pair) in our re-measurement
(EfficientNet-Lite0 CAMs of the ground-truth class of the 100 ILSVRC sample images, 224 x 224, min-max
normalised, tau = 0, 0.01, ..., 0.99). The boxes barely move: MaxBoxAcc and MaxBoxAccV2 agreed exactly in
the issue's measurement. Their PxAP bins the float map with ``np.histogram`` (no quantisation), which is
``value >= tau`` as here; :class:`PxAPEvaluator` says what else differs there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from skimage.measure import label as cc_label
from skimage.measure import regionprops

from camlib.core.boxes import iou, largest_component_box
from camlib.datasets.splits import random_halves
from camlib.evaluation.batch import Batch
from camlib.evaluation.metrics import Evaluator

__all__ = [
    "CHOE_IOU_THRESHOLDS",
    "CHOE_THRESHOLDS",
    "IGNORE_VALUE",
    "BoxAccSweep",
    "Components",
    "PxAPEvaluator",
    "box_hits",
    "components_all_thresholds",
    "held_out_threshold",
    "largest_component_boxes",
    "random_halves",
    "reference_box_hits",
    "reference_pxap_counts",
    "split_mask",
    "threshold_levels",
]

#: Choe et al.'s sweep: tau = 0, 0.01, ..., 0.99 of the min-max normalised map.
CHOE_THRESHOLDS = np.round(np.arange(0.0, 1.0, 0.01), 4)
#: IoU thresholds averaged by MaxBoxAccV2.
CHOE_IOU_THRESHOLDS = (0.3, 0.5, 0.7)

Scale = Literal["absolute", "max"]

# Bound on pixels handled in one pass (the run arrays grow with pixels x levels crossed).
_CHUNK_PIXELS = 1_500_000


# ---------------------------------------------------------------------------------------------- input
def _maps_list(maps) -> list[np.ndarray]:
    """(B, H, W) array/tensor or a sequence of 2-D maps (sizes may differ) -> list of float arrays."""
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().float().cpu().numpy()
    if isinstance(maps, np.ndarray):
        if maps.ndim == 2:
            raise ValueError(
                "expected a batch of maps (B, H, W) or a list of 2-D maps, got one 2-D map; use [m]"
            )
        if maps.ndim != 3:
            raise ValueError(f"expected maps of shape (B, H, W), got {maps.shape}")
        maps = list(maps)
    out = []
    for i, m in enumerate(maps):
        if isinstance(m, torch.Tensor):
            m = m.detach().float().cpu().numpy()
        m = np.asarray(m)
        if m.ndim != 2:
            raise ValueError(f"map {i} has shape {m.shape}; every map must be 2-D (H, W)")
        if not np.issubdtype(m.dtype, np.floating) or m.dtype == np.float16:
            m = m.astype(np.float32)
        out.append(m)
    return out


def _thresholds(thresholds) -> np.ndarray:
    t = np.asarray(thresholds, dtype=np.float64).ravel()
    if t.size == 0:
        raise ValueError("need at least one threshold")
    if not np.isfinite(t).all():
        raise ValueError("thresholds must be finite numbers")
    if t.size > 32000:
        raise ValueError(f"at most 32000 thresholds, got {t.size}")
    return t


def _gt_list(gt_boxes, n: int) -> list[np.ndarray]:
    if len(gt_boxes) != n:
        raise ValueError(f"{len(gt_boxes)} ground-truth entries for {n} maps")
    out = []
    for i, g in enumerate(gt_boxes):
        g = g.detach().cpu().numpy() if isinstance(g, torch.Tensor) else np.asarray(g)
        g = g.reshape(-1, 4)
        if len(g) == 0:
            raise ValueError(f"map {i} has no ground-truth box")
        out.append(g.astype(np.int64))
    return out


def _image_thresholds(m: np.ndarray, t: np.ndarray, scale: Scale) -> np.ndarray:
    """The thresholds this map is compared with, in its dtype (see the module's conventions)."""
    tt = t.astype(m.dtype)
    if scale == "absolute":
        return tt
    if scale != "max":
        raise ValueError(f"scale must be 'absolute' or 'max', got {scale!r}")
    finite = np.isfinite(m)
    if not finite.any():
        return tt  # no pixel is ever in a region: levels are all 0 anyway
    hi = m[finite].max()
    return tt * hi


def threshold_levels(maps, thresholds, scale: Scale = "absolute") -> tuple[np.ndarray, np.ndarray]:
    """Integer levels of every pixel, zero-padded to a common size, and the threshold order.

    Returns ``levels`` (B, Hmax, Wmax) int16 and ``order`` (B, T): with ``s = thresholds_of_map[order]``
    sorted ascending, pixel p of map b lies in ``map >= s[j]`` exactly when ``levels[b, p] > j``. NaN
    pixels and the padding have level 0 (in no region).
    """
    ms = _maps_list(maps)
    t = _thresholds(thresholds)
    T = t.size
    if not ms:
        return np.zeros((0, 0, 0), np.int16), np.zeros((0, T), np.int64)
    H = max(m.shape[0] for m in ms)
    W = max(m.shape[1] for m in ms)
    levels = np.zeros((len(ms), H, W), np.int16)
    order = np.empty((len(ms), T), np.int64)
    if scale == "absolute" and len({m.dtype for m in ms}) == 1:
        # one threshold list for all maps: one searchsorted over the NaN-padded stack
        dtype = ms[0].dtype
        thr = t.astype(dtype)
        o = np.argsort(thr, kind="stable")
        order[:] = o
        stack = np.full((len(ms), H, W), np.nan, dtype)
        for b, m in enumerate(ms):
            stack[b, : m.shape[0], : m.shape[1]] = m
        finite = np.isfinite(stack)
        lev = np.searchsorted(thr[o], np.where(finite, stack, dtype.type(0)), side="right")
        levels[:] = np.where(finite, lev, 0)
        return levels, order
    for b, m in enumerate(ms):
        thr = _image_thresholds(m, t, scale)
        o = np.argsort(thr, kind="stable")
        order[b] = o
        finite = np.isfinite(m)
        lev = np.searchsorted(thr[o], np.where(finite, m, thr.dtype.type(0)), side="right")
        lev[~finite] = 0
        levels[b, : m.shape[0], : m.shape[1]] = lev
    return levels, order


# ------------------------------------------------------------------------------------ components
@dataclass
class Components:
    """Every connected component of every threshold of every map (one row per component).

    ``map`` and ``threshold`` index the batch and the ORIGINAL threshold list; ``boxes`` (n, 4) are
    inclusive (x0, y0, x1, y1); ``area`` counts pixels; ``first`` is the raster index (in the padded
    grid) of the component's first pixel, used to break ties like ``skimage.measure.label`` does.
    """

    map: np.ndarray
    threshold: np.ndarray
    boxes: np.ndarray
    area: np.ndarray
    first: np.ndarray

    def __len__(self) -> int:
        return len(self.map)


def _expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For half-open integer intervals [lo_i, hi_i): (i, value) for every value of every interval."""
    cnt = hi - lo
    pos = np.flatnonzero(cnt > 0)  # most pixels start no run: expand only the others
    c = cnt[pos].astype(np.int64)
    idx = np.repeat(pos.astype(np.int32), c)
    shift = np.repeat((np.cumsum(c) - c - lo[pos]).astype(np.int32), c)
    return idx, np.arange(len(idx), dtype=np.int32) - shift


def _components_chunk(levels: np.ndarray, n_thresholds: int) -> tuple[np.ndarray, ...]:
    """Components of one chunk of levels (B, H, W); see the module docstring for the algorithm."""
    B, H, W = levels.shape
    L = levels
    left = np.zeros_like(L)
    left[:, :, 1:] = L[:, :, :-1]
    right = np.zeros_like(L)
    right[:, :, :-1] = L[:, :, 1:]
    flat = L.ravel()
    # 1. run starts and ends of every threshold index, then sorted by (threshold, map, row, column)
    p_start, j_start = _expand(left.ravel(), flat)
    p_end, j_end = _expand(right.ravel(), flat)
    if p_start.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros((0, 4), np.int64), empty, empty
    o = np.argsort(j_start.astype(np.int16), kind="stable")  # radix sort on small integers
    p_start, j = p_start[o], j_start[o]
    p_end = p_end[np.argsort(j_end.astype(np.int16), kind="stable")]
    b, rem = np.divmod(p_start, np.int32(H * W))
    y, x0 = np.divmod(rem, np.int32(W))
    x1 = p_end % np.int32(W)
    # 2. touching runs of the next row: a contiguous block in sorted order
    key_dtype = np.int32 if (n_thresholds * B + 1) * (H + 1) * (W + 2) < 2**31 - 1 else np.int64
    rowkey = (j.astype(key_dtype) * B + b) * (H + 1) + y
    key0 = rowkey * (W + 2) + x0 + 1
    key1 = key0 + (x1 - x0)
    below = (rowkey + 1) * (W + 2)
    lower = np.searchsorted(key1, below + x0, side="left")  # first run below with x1' >= x0 - 1
    upper = np.searchsorted(key0, below + x1 + 2, side="right")  # last run below with x0' <= x1 + 1
    a, nb = _expand(lower, upper)
    # 3. one connected-components call for all runs
    n_runs = len(x0)
    graph = csr_matrix((np.ones(len(a), np.int8), (a, nb)), shape=(n_runs, n_runs))
    n_comp, lab = connected_components(graph, directed=False)
    big = np.iinfo(np.int32).max
    lab = lab.astype(np.int32)
    cx0 = np.full(n_comp, big, np.int32)  # same dtypes as the values: ufunc.at's fast path
    np.minimum.at(cx0, lab, x0)
    cy0 = np.full(n_comp, big, np.int32)
    np.minimum.at(cy0, lab, y)
    cx1 = np.full(n_comp, -1, np.int32)
    np.maximum.at(cx1, lab, x1)
    cy1 = np.full(n_comp, -1, np.int32)
    np.maximum.at(cy1, lab, y)
    first = np.full(n_comp, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, lab, y.astype(np.int64) * W + x0)
    area = np.bincount(lab, weights=(x1 - x0 + 1), minlength=n_comp).astype(np.int64)
    cmap = np.empty(n_comp, np.int64)
    cmap[lab] = b
    cj = np.empty(n_comp, np.int64)
    cj[lab] = j
    return cmap, cj, np.stack([cx0, cy0, cx1, cy1], axis=1).astype(np.int64), area, first


def components_all_thresholds(maps, thresholds, scale: Scale = "absolute") -> Components:
    """All connected components (8-connectivity) of ``map >= t`` for every map and every threshold.

    One batched pass; see the module docstring. ``Components.threshold`` indexes ``thresholds`` as
    given (any order).
    """
    ms = _maps_list(maps)
    t = _thresholds(thresholds)
    parts = []
    start = 0
    while start < len(ms):  # chunks bounded in pixels; maps of one chunk are padded to a common size
        stop, pixels = start, 0
        budget = max(1, min(_CHUNK_PIXELS, 150_000_000 // t.size))  # runs <= pixels x thresholds
        while stop < len(ms) and (stop == start or pixels + ms[stop].size <= budget):
            pixels += ms[stop].size
            stop += 1
        levels, order = threshold_levels(ms[start:stop], t, scale)
        cmap, cj, boxes, area, first = _components_chunk(levels, t.size)
        parts.append((cmap + start, order[cmap, cj], boxes, area, first))
        start = stop
    if not parts:
        e = np.zeros(0, np.int64)
        return Components(e, e, np.zeros((0, 4), np.int64), e, e)
    return Components(*(np.concatenate(p) for p in zip(*parts, strict=True)))


def _best_iou(boxes: np.ndarray, owner: np.ndarray, gts: list[np.ndarray]) -> np.ndarray:
    """IoU of each box with the best-matching ground-truth box of its map (inclusive pixels)."""
    if len(boxes) == 0:
        return np.zeros(0)
    G = max(len(g) for g in gts)
    pad = np.full((len(gts), G, 4), -1, np.float64)
    for i, g in enumerate(gts):
        pad[i, : len(g)] = g
    out = np.empty(len(boxes))
    step = max(1, 2_000_000 // G)
    for s in range(0, len(boxes), step):
        a = boxes[s : s + step].astype(np.float64)[:, None, :]
        g = pad[owner[s : s + step]]
        ix = np.minimum(a[..., 2], g[..., 2]) - np.maximum(a[..., 0], g[..., 0]) + 1
        iy = np.minimum(a[..., 3], g[..., 3]) - np.maximum(a[..., 1], g[..., 1]) + 1
        inter = np.clip(ix, 0, None) * np.clip(iy, 0, None)
        area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
        area_g = (g[..., 2] - g[..., 0] + 1) * (g[..., 3] - g[..., 1] + 1)
        union = area_a + area_g - inter
        valid = (g[..., 2] >= g[..., 0]) & (g[..., 3] >= g[..., 1]) & (g[..., 0] >= 0)
        val = np.where(valid & (union > 0), inter / np.where(union > 0, union, 1), 0.0)
        out[s : s + step] = val.max(axis=1)
    return out


def _largest_per_cell(comp: Components, T: int) -> np.ndarray:
    """Index (into ``comp``) of the largest component of each (map, threshold) cell present."""
    cell = comp.map * T + comp.threshold
    o = np.lexsort((comp.first, -comp.area, cell))
    return o[np.r_[True, cell[o][1:] != cell[o][:-1]]]


def largest_component_boxes(maps, thresholds, scale: Scale = "max") -> np.ndarray:
    """Box of the largest component of ``map >= t`` for every map and threshold -> (B, T, 4).

    With ``scale="max"`` this is :func:`camlib.core.boxes.paper_box` at every fraction at once (same
    comparisons, same tie rule); :data:`camlib.core.boxes.NO_BOX` rows where the region is empty.
    """
    ms = _maps_list(maps)
    t = _thresholds(thresholds)
    out = np.full((len(ms), t.size, 4), -1, np.int64)
    comp = components_all_thresholds(ms, t, scale)
    if len(comp):
        sel = _largest_per_cell(comp, t.size)
        out[comp.map[sel], comp.threshold[sel]] = comp.boxes[sel]
    return out


def box_hits(
    maps,
    gt_boxes,
    thresholds=CHOE_THRESHOLDS,
    iou_thresholds: Sequence[float] = CHOE_IOU_THRESHOLDS,
    scale: Scale = "absolute",
) -> tuple[np.ndarray, np.ndarray]:
    """Per map, IoU threshold and threshold: is the box correct? -> ``(largest, any)``, both (B, D, T) bool.

    ``largest``: the box of the largest component (MaxBoxAcc's rule); ``any``: the best-matching box
    over all components (MaxBoxAccV2's rule). A threshold with no component is a miss.
    """
    ms = _maps_list(maps)
    t = _thresholds(thresholds)
    gts = _gt_list(gt_boxes, len(ms))
    deltas = np.asarray(iou_thresholds, dtype=np.float64).ravel()
    B, D, T = len(ms), deltas.size, t.size
    largest = np.zeros((B, D, T), bool)
    anyhit = np.zeros((B, D, T), bool)
    comp = components_all_thresholds(ms, t, scale)
    if len(comp) == 0:
        return largest, anyhit
    best = _best_iou(comp.boxes, comp.map, gts)
    cell = comp.map * T + comp.threshold
    # the largest component of each (map, threshold): most pixels, then first in raster order
    firsts = _largest_per_cell(comp, T)
    for d, delta in enumerate(deltas):
        hit = best >= delta
        counts = np.bincount(cell[hit], minlength=B * T)
        anyhit[:, d, :] = (counts > 0).reshape(B, T)
        lh = np.zeros(B * T, bool)
        lh[cell[firsts]] = hit[firsts]
        largest[:, d, :] = lh.reshape(B, T)
    return largest, anyhit


# ------------------------------------------------------------------------------------ reference
def reference_box_hits(
    maps,
    gt_boxes,
    thresholds=CHOE_THRESHOLDS,
    iou_thresholds: Sequence[float] = CHOE_IOU_THRESHOLDS,
    scale: Scale = "absolute",
) -> tuple[np.ndarray, np.ndarray]:
    """The straightforward version of :func:`box_hits`: a Python loop over maps and thresholds.

    At each threshold: ``skimage.measure.label`` of the region, ``regionprops`` boxes of all
    components, and :func:`camlib.core.boxes.largest_component_box` for the largest. Slow; kept as the
    specification the vectorised sweep is tested (and timed) against.
    """
    ms = _maps_list(maps)
    t = _thresholds(thresholds)
    gts = _gt_list(gt_boxes, len(ms))
    deltas = np.asarray(iou_thresholds, dtype=np.float64).ravel()
    largest = np.zeros((len(ms), deltas.size, t.size), bool)
    anyhit = np.zeros_like(largest)
    for b, m in enumerate(ms):
        thr = _image_thresholds(m, t, scale)
        finite = np.isfinite(m)
        for k in range(t.size):
            with np.errstate(invalid="ignore"):
                region = finite & (m >= thr[k])
            if not region.any():
                continue
            props = regionprops(cc_label(region, connectivity=2))
            boxes = np.array([[p.bbox[1], p.bbox[0], p.bbox[3] - 1, p.bbox[2] - 1] for p in props])
            best_all = iou(boxes, gts[b]).max()
            best_largest = iou(largest_component_box(region), gts[b]).max()
            anyhit[b, :, k] = best_all >= deltas
            largest[b, :, k] = best_largest >= deltas
    return largest, anyhit


# ------------------------------------------------------------------------------------ evaluators
class BoxAccSweep(Evaluator):
    """MaxBoxAcc and MaxBoxAccV2 in ``accumulate`` / ``compute`` form.

    ``accumulate(batch)`` sweeps the maps of role ``maps`` (:meth:`camlib.evaluation.batch.Batch.role`;
    default ``"gt_minmax"``, Choe et al.'s min-max normalised map of the true class, for
    ``scale="absolute"``, and ``"gt"``, the map as boxed, for ``scale="max"``).
    ``update(maps, gt_boxes)`` on arrays: maps (B, H, W) or a list of 2-D maps at the resolution of the
    boxes; ``gt_boxes`` B arrays (n_i, 4). ``compute()`` ->

    - ``maxboxacc``: max over thresholds of BoxAcc with the largest component at IoU 0.5 (needs 0.5
      among ``iou_thresholds``), with ``maxboxacc_threshold``;
    - ``maxboxacc_v2``: mean over ``iou_thresholds`` of max over thresholds of BoxAcc with all
      components (best match), with ``maxboxacc_v2_by_iou`` and the best threshold per IoU;
    - ``curves``: BoxAcc per threshold for both rules and every IoU (for threshold plots);
    - ``n``, ``thresholds``, ``iou_thresholds``, ``scale``.

    With ``keep_per_image=True`` the per-image hit tables are kept, so :meth:`compute` can be asked
    for a subset of the images (``compute(indices=...)``: e.g. choose a threshold on one split and
    report on another), and :meth:`per_image` returns them. ``state()`` / ``merge()``: see
    :mod:`camlib.evaluation.metrics` (per-image tables are concatenated in shard order).
    """

    _COUNTS = ("largest_correct", "any_correct", "n")
    _LISTS = ("_largest", "_any")

    def _config(self) -> dict:
        return {"evaluator": "box_acc_sweep", "thresholds": self.thresholds.tolist(),
                "iou_thresholds": list(self.iou_thresholds), "scale": self.scale,
                "keep_per_image": self.keep_per_image, "maps": self.maps}  # fmt: skip

    def __init__(
        self,
        thresholds=CHOE_THRESHOLDS,
        iou_thresholds: Sequence[float] = CHOE_IOU_THRESHOLDS,
        scale: Scale = "absolute",
        keep_per_image: bool = False,
        maps: str | None = None,
    ) -> None:
        if scale not in ("absolute", "max"):
            raise ValueError(f"scale must be 'absolute' or 'max', got {scale!r}")
        self.maps = maps if maps is not None else ("gt_minmax" if scale == "absolute" else "gt")
        if self.maps not in ("gt", "gt_minmax"):
            raise ValueError(f"maps must be the role 'gt' or 'gt_minmax', got {self.maps!r}")
        self.thresholds = _thresholds(thresholds)
        self.iou_thresholds = tuple(float(d) for d in iou_thresholds)
        if not self.iou_thresholds or any(not 0 < d <= 1 for d in self.iou_thresholds):
            raise ValueError(f"IoU thresholds must lie in (0, 1], got {iou_thresholds}")
        self.scale = scale
        self.keep_per_image = keep_per_image
        D, T = len(self.iou_thresholds), self.thresholds.size
        self.largest_correct = np.zeros((D, T), np.int64)
        self.any_correct = np.zeros((D, T), np.int64)
        self.n = 0
        self._largest: list[np.ndarray] = []
        self._any: list[np.ndarray] = []

    def _accumulate(self, batch: Batch) -> None:
        self.update(batch.role(self.maps), batch.gt_boxes)

    def update(self, maps, gt_boxes) -> None:
        """Add per-threshold hits of ``maps`` against ``gt_boxes`` (see the class docstring)."""
        largest, anyhit = box_hits(maps, gt_boxes, self.thresholds, self.iou_thresholds, self.scale)
        self.largest_correct += largest.sum(axis=0)
        self.any_correct += anyhit.sum(axis=0)
        self.n += largest.shape[0]
        if self.keep_per_image:
            self._largest.append(largest)
            self._any.append(anyhit)

    def per_image(self) -> tuple[np.ndarray, np.ndarray]:
        """(largest, any) hit tables (N, D, T); needs ``keep_per_image=True``."""
        if not self.keep_per_image:
            raise ValueError("construct the evaluator with keep_per_image=True to keep per-image results")
        D, T = len(self.iou_thresholds), self.thresholds.size
        if not self._largest:
            return np.zeros((0, D, T), bool), np.zeros((0, D, T), bool)
        return np.concatenate(self._largest), np.concatenate(self._any)

    def compute(self, indices=None) -> dict:
        if indices is None:
            n, lc, ac = self.n, self.largest_correct, self.any_correct
        else:
            largest, anyhit = self.per_image()
            idx = np.asarray(indices, dtype=np.int64)
            n, lc, ac = len(idx), largest[idx].sum(axis=0), anyhit[idx].sum(axis=0)
        if n == 0:
            raise ValueError("no samples accumulated")
        lacc = 100.0 * lc / n
        aacc = 100.0 * ac / n
        th = self.thresholds
        out: dict = {
            "n": int(n),
            "scale": self.scale,
            "thresholds": th.tolist(),
            "iou_thresholds": list(self.iou_thresholds),
            "curves": {
                "largest": {f"{d:g}": lacc[i].tolist() for i, d in enumerate(self.iou_thresholds)},
                "all": {f"{d:g}": aacc[i].tolist() for i, d in enumerate(self.iou_thresholds)},
            },
        }
        best_all = aacc.max(axis=1)
        out["maxboxacc_v2"] = float(best_all.mean())
        out["maxboxacc_v2_by_iou"] = {f"{d:g}": float(best_all[i]) for i, d in enumerate(self.iou_thresholds)}
        out["maxboxacc_v2_threshold"] = {
            f"{d:g}": float(th[int(aacc[i].argmax())]) for i, d in enumerate(self.iou_thresholds)
        }
        if 0.5 in self.iou_thresholds:
            i = self.iou_thresholds.index(0.5)
            out["maxboxacc"] = float(lacc[i].max())
            out["maxboxacc_threshold"] = float(th[int(lacc[i].argmax())])
        return out


#: the value of an ignored pixel in wsolevaluation's masks (``get_mask``: 0 background, 1 foreground)
IGNORE_VALUE = 255


def split_mask(mask, ignore=None) -> tuple[np.ndarray, np.ndarray]:
    """One ground-truth mask -> ``(foreground, counted)`` bool arrays, wsolevaluation's semantics.

    ``mask``: bool (True = foreground), or integers in {0, 1, 255} as wsolevaluation's ``get_mask``
    returns them (0 background, 1 foreground, 255 ignore). ``ignore``: an optional bool mask of pixels
    to leave out (OpenImages' ignore boxes). As in wsolevaluation, an ignored pixel that is foreground
    stays foreground (``ignore & ~foreground``). Pixels not ``counted`` are in neither the true- nor
    the false-positive counts. Other integer values are refused (a 0/255 mask read as 0/1 would turn
    every object into "ignore"; pass ``mask > 0`` for that).
    """
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    m = np.asarray(mask)
    if m.dtype == bool:
        fg, ign = m, np.zeros(m.shape, bool)
    elif np.issubdtype(m.dtype, np.integer):
        bad = ~np.isin(m, (0, 1, IGNORE_VALUE))
        if bad.any():
            raise ValueError(
                f"integer masks must hold 0 (background), 1 (foreground) or {IGNORE_VALUE} (ignore), found "
                f"{np.unique(m[bad])[:5].tolist()}; for a 0/255 object mask pass mask > 0"
            )
        fg, ign = m == 1, m == IGNORE_VALUE
    else:
        raise ValueError(f"masks must be bool or integer (0/1/{IGNORE_VALUE}), got {m.dtype}")
    if ignore is not None:
        if isinstance(ignore, torch.Tensor):
            ignore = ignore.detach().cpu().numpy()
        ig = np.asarray(ignore)
        if ig.shape != m.shape:
            raise ValueError(f"ignore mask {ig.shape} differs from the mask {m.shape}")
        ign = ign | ig.astype(bool)
    return fg, ~(ign & ~fg)


def _mask_list(masks, n: int, ignore=None) -> list[tuple[np.ndarray, np.ndarray]]:
    if isinstance(masks, torch.Tensor):
        masks = list(masks.detach().cpu().numpy())
    if len(masks) != n:
        raise ValueError(f"{len(masks)} masks for {n} maps")
    if ignore is None:
        ignore = [None] * n
    elif len(ignore) != n:
        raise ValueError(f"{len(ignore)} ignore masks for {n} maps")
    return [split_mask(m, g) for m, g in zip(masks, ignore, strict=True)]


def reference_pxap_counts(
    maps, masks, thresholds=CHOE_THRESHOLDS, ignore=None
) -> tuple[np.ndarray, np.ndarray]:
    """Loop version of the pixel counts behind PxAP: (true positives, false positives) per threshold;
    ignored pixels (:func:`split_mask`) are in neither."""
    ms = _maps_list(maps)
    t = _thresholds(thresholds)
    gts = _mask_list(masks, len(ms), ignore)
    tp = np.zeros(t.size, np.int64)
    fp = np.zeros(t.size, np.int64)
    for m, (g, counted) in zip(ms, gts, strict=True):
        thr = t.astype(m.dtype)
        for k in range(t.size):
            with np.errstate(invalid="ignore"):
                pred = np.isfinite(m) & (m >= thr[k]) & counted
            tp[k] += int((pred & g).sum())
            fp[k] += int((pred & ~g).sum())
    return tp, fp


def _average_precision(tps: np.ndarray, fps: np.ndarray, n_fg: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Precision, recall and AP (percent) of operating points ordered from the highest threshold down:
    AP = sum of precision x recall gain, the recall starting at 0 (points predicting nothing add 0)."""
    pred = tps + fps
    precision = np.where(pred > 0, tps / np.maximum(pred, 1), 0.0)
    recall = tps / n_fg
    gain = np.diff(np.r_[0.0, recall])
    return precision, recall, float((precision * gain).sum()) * 100.0


class PxAPEvaluator(Evaluator):
    """Pixel average precision against ground-truth masks (Choe et al.'s PxAP), thresholds at once.

    ``accumulate(batch)``: the maps of role ``maps`` (default ``"gt_minmax"``) of the images whose
    target has a ``mask`` (images without one are not counted). ``update(maps, masks, ignore=None)``:
    maps (B, H, W) (min-max normalised for Choe et al.'s setting; thresholds absolute) and masks of the
    same sizes, bool or wsolevaluation's 0/1/255 (255 = ignore), plus optional bool ``ignore`` masks
    (:func:`split_mask`). As in wsolevaluation's ``MaskEvaluator``, ignored pixels are left out of
    both the true- and the false-positive counts (they are neither object nor background). A pixel is
    predicted at threshold t when ``value >= t`` (wsolevaluation's histogram bins give the same);
    NaN pixels are never predicted (foreground NaN pixels are missed).

    ``thresholds``: the sweep (default Choe et al.'s 0, 0.01, ..., 0.99), or ``"exact"``: EVERY distinct
    pixel value of the dataset is an operating point, so AP is the exact area of the pixel
    precision-recall curve (what ``sklearn.metrics.average_precision_score`` gives on the counted
    pixels), not its sampling at fixed thresholds. The exact mode keeps one (value, fg, bg) count per
    distinct value seen (memory grows with the distinct values, compacted after every update).

    Pixel counts are summed over the whole dataset (as wsolevaluation does), then ``compute()`` ->
    ``{"pxap", "best_piou", "best_piou_threshold", "n", "n_ignored_pixels"}`` plus, for a sweep,
    ``"precision", "recall", "thresholds"`` (for ``"exact"``, ``"n_operating_points"``): AP = sum over
    thresholds (high to low) of precision x recall gain, in percent; ``best_piou`` is the best pixel IoU
    over thresholds. ``state()`` / ``merge()``: see :mod:`camlib.evaluation.metrics`.

    How this differs from wsolevaluation's number on the same counts: its sweep adds the operating
    points ``value >= 1`` and ``>= 2`` on top of the thresholds (pixels at exactly 1.0, the maximum of
    each min-max map, are then a first point of their own) and skips points predicting nothing.
    """

    _COUNTS = ("fg_hist", "bg_hist", "n", "n_ignored")
    _LISTS = ("exact_parts",)

    def _config(self) -> dict:
        thr = "exact" if self.exact else self.thresholds.tolist()
        return {"evaluator": "pxap", "thresholds": thr, "maps": self.maps}

    def __init__(self, thresholds=CHOE_THRESHOLDS, maps: str = "gt_minmax") -> None:
        if maps not in ("gt", "gt_minmax"):
            raise ValueError(f"maps must be the role 'gt' or 'gt_minmax', got {maps!r}")
        self.maps = maps
        self.exact = isinstance(thresholds, str)
        if self.exact and thresholds != "exact":
            raise ValueError(f"thresholds must be numbers or 'exact', got {thresholds!r}")
        self.thresholds = np.zeros(0) if self.exact else _thresholds(thresholds)
        self.order = np.argsort(self.thresholds, kind="stable")
        T = self.thresholds.size
        self.fg_hist = np.zeros(T + 1, np.int64)  # pixels of each level (0 .. T), foreground
        self.bg_hist = np.zeros(T + 1, np.int64)
        self.exact_parts: list[
            np.ndarray
        ] = []  # exact mode: one (3, k) array (value, fg, bg) after compaction
        self.n = 0
        self.n_ignored = 0

    def _accumulate(self, batch: Batch) -> None:
        with_mask = [i for i, m in enumerate(batch.masks) if m is not None]
        if with_mask:
            maps = batch.role(self.maps)
            self.update([maps[i] for i in with_mask], [batch.masks[i] for i in with_mask])

    def update(self, maps, masks, ignore=None) -> None:
        """Add the pixel counts of ``maps`` against ``masks`` (and ``ignore`` masks) of the same sizes."""
        ms = _maps_list(maps)
        gts = _mask_list(masks, len(ms), ignore)
        T = self.thresholds.size
        for i, (m, (g, counted)) in enumerate(zip(ms, gts, strict=True)):
            if m.shape != g.shape:
                raise ValueError(f"map {i} has shape {m.shape} but its mask {g.shape}")
            self.n_ignored += int((~counted).sum())
            if self.exact:
                self._add_exact(m, g, counted)
            else:
                lev, _ = threshold_levels([m], self.thresholds[self.order], "absolute")
                lev = lev[0].astype(np.int64)
                self.fg_hist += np.bincount(lev[g & counted], minlength=T + 1)
                self.bg_hist += np.bincount(lev[~g & counted], minlength=T + 1)
            self.n += 1

    def _add_exact(self, m: np.ndarray, g: np.ndarray, counted: np.ndarray) -> None:
        keep = counted & np.isfinite(m)
        n_nan_fg = int((g & counted & ~np.isfinite(m)).sum())
        vals = m[keep].astype(np.float64)
        part = np.stack([vals, g[keep].astype(np.float64), (~g[keep]).astype(np.float64)])
        if n_nan_fg:  # missed foreground: counted in the total, predicted at no threshold
            part = np.c_[part, [[-np.inf], [n_nan_fg], [0.0]]]
        both = np.concatenate([*self.exact_parts, part], axis=1)
        u, inv = np.unique(both[0], return_inverse=True)
        self.exact_parts = [
            np.stack([u, np.bincount(inv, both[1], u.size), np.bincount(inv, both[2], u.size)])
        ]

    def counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(true positives, false positives) per threshold, in the order the thresholds were given
        (exact mode: per distinct value, from the lowest up)."""
        if self.exact:
            v, fg, bg = self._exact_table()
            tp = fg[::-1].cumsum()[::-1]
            fp = bg[::-1].cumsum()[::-1]
            finite = np.isfinite(v)
            return tp[finite].astype(np.int64), fp[finite].astype(np.int64)
        # level > j  <=>  in the region of sorted threshold j
        tp_sorted = self.fg_hist[::-1].cumsum()[::-1][1:]
        fp_sorted = self.bg_hist[::-1].cumsum()[::-1][1:]
        tp = np.empty_like(tp_sorted)
        fp = np.empty_like(fp_sorted)
        tp[self.order] = tp_sorted
        fp[self.order] = fp_sorted
        return tp, fp

    def _exact_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.exact_parts:
            return np.zeros(0), np.zeros(0), np.zeros(0)
        both = np.concatenate(self.exact_parts, axis=1)  # several parts after a merge
        u, inv = np.unique(both[0], return_inverse=True)
        return u, np.bincount(inv, both[1], u.size), np.bincount(inv, both[2], u.size)

    def compute(self) -> dict:
        if self.n == 0:
            raise ValueError("no samples accumulated")
        if self.exact:
            v, fg, _ = self._exact_table()
            n_fg = int(fg.sum())
        else:
            n_fg = int(self.fg_hist.sum())
        if n_fg == 0:
            raise ValueError("no foreground pixel in any (counted part of any) mask: PxAP is undefined")
        tp, fp = self.counts()
        srt = v[np.isfinite(v)] if self.exact else self.thresholds[self.order]
        tps = (tp if self.exact else tp[self.order])[::-1]  # high threshold -> low
        fps = (fp if self.exact else fp[self.order])[::-1]
        precision, recall, ap = _average_precision(tps, fps, n_fg)
        piou = tps / (n_fg + fps)
        out = {
            "pxap": ap,
            "best_piou": float(piou.max()) * 100.0 if piou.size else 0.0,
            "best_piou_threshold": float(srt[::-1][int(piou.argmax())]) if piou.size else float("nan"),
            "n": self.n,
            "n_ignored_pixels": self.n_ignored,
        }
        if self.exact:
            out["n_operating_points"] = int(srt.size)
        else:
            out.update(
                precision=precision[::-1].tolist(), recall=recall[::-1].tolist(), thresholds=srt.tolist()
            )
        return out


# ------------------------------------------------------------------------------ choosing thresholds
def held_out_threshold(hits: np.ndarray, thresholds, choose, report) -> dict:
    """Choose a threshold on some images, report it on others; show what choosing on the reported
    images themselves would have claimed.

    ``hits`` (N, T) bool: image i is correct at threshold j (e.g. one IoU column of
    :meth:`BoxAccSweep.per_image`). The threshold with the best accuracy on ``choose`` (ties: the first)
    is reported with its accuracy on ``report``; ``oracle_*`` is the best accuracy on ``report`` over
    all thresholds: picking the threshold on the test images, which is not allowed, and whose excess
    over the honest number (``optimism``) is the bias it brings. Accuracies in percent.
    """
    hits = np.asarray(hits, bool)
    t = np.asarray(thresholds, dtype=np.float64)
    choose, report = np.asarray(choose), np.asarray(report)
    if hits.ndim != 2 or hits.shape[1] != t.size:
        raise ValueError(f"hits must be (N, {t.size}), got {hits.shape}")
    if len(choose) == 0 or len(report) == 0:
        raise ValueError("both splits need images")
    if np.intersect1d(choose, report).size:
        raise ValueError("the choosing and the reporting images overlap")
    acc_c = 100.0 * hits[choose].mean(axis=0)
    acc_r = 100.0 * hits[report].mean(axis=0)
    j, jo = int(acc_c.argmax()), int(acc_r.argmax())
    return {
        "threshold": float(t[j]),
        "choose_acc": float(acc_c[j]),
        "report_acc": float(acc_r[j]),
        "oracle_threshold": float(t[jo]),
        "oracle_report_acc": float(acc_r[jo]),
        "optimism": float(acc_r[jo] - acc_r[j]),
        "n_choose": int(len(choose)),
        "n_report": int(len(report)),
        "curve_choose": acc_c.tolist(),
        "curve_report": acc_r.tolist(),
    }
