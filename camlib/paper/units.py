"""Class-specific units (Zhou et al., CVPR 2016, section 5 and Figure 13).

A CAM network scores class ``c`` as ``S_c = sum_k w_k^c F_k + b_c`` with ``F_k`` the global average
of unit ``k``'s map ``f_k``. The weight ``w_k^c`` says how much unit ``k`` counts for class ``c``, so
ranking the units of the last convolutional layer by ``w_k^c`` gives the units a class is built from;
the paper shows the receptive fields of the top-ranked units on their top-activating images.

This module does that in three steps, with memory bounded whatever the dataset's size:

1. :func:`head_weights` + :func:`rank_units`: the ``(C, K)`` weights of the head :func:`camlib.core.cam.find_head` finds
   and the units of one class sorted by ``w_k^c``.
2. :func:`scan_units`: ONE streamed pass over a dataset. For every tracked unit, a size-``k`` heap
   (:class:`TopKPerUnit`, ``heapq``) keeps the ``k`` images with the highest maximum activation and
   their feature-resolution maps; a fixed-size reservoir sample (:class:`ReservoirQuantile`) of the
   unit's activations estimates a high quantile of them (the threshold). Nothing else is kept.
3. :func:`receptive_fields`: the unit's map upsampled to the image size and thresholded at that
   quantile -- the image region the unit responds to. On images with part masks
   (:class:`camlib.datasets.ProceduralShapes`), :func:`part_hits` measures how often that region
   falls mostly on ONE part of the object.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from camlib.core.cam import CAM, HeadSpec, fc_weights, find_head, upsample_maps
from camlib.datasets.files import ImageFiles, list_images
from camlib.datasets.transforms import resize_preprocess
from camlib.evaluation.stats import bootstrap_interval

__all__ = [
    "ClassUnits",
    "ImageList",
    "PartHits",
    "PartStudy",
    "ReservoirQuantile",
    "TopKPerUnit",
    "UnitScan",
    "class_units",
    "head_weights",
    "image_files",
    "image_list",
    "live_units",
    "mean_ci",
    "mean_diff_ci",
    "part_hit_study",
    "part_hits",
    "plot_class_units",
    "random_units",
    "rank_units",
    "receptive_fields",
    "resize_preprocess",
    "scan_units",
]

# --------------------------------------------------------------------------- 1. ranking


def head_weights(
    model: nn.Module,
    example: Tensor,
    *,
    feature_layer: str | None = None,
    fc_layer: str | None = None,
) -> tuple[Tensor, Tensor | None, HeadSpec]:
    """The classifier weights ``W`` (C, K), bias (C,) or None, and the head CAM found on ``example``.

    ``example`` is any input batch the model accepts (one forward pass resolves the head). For a 1x1
    convolution classifier the kernel is returned as (C, K). The tensors are detached copies.
    """
    head = find_head(model, example, feature_layer, fc_layer)
    w, b = fc_weights(model, head)
    return w.detach().float().clone(), None if b is None else b.detach().float().clone(), head


def rank_units(
    weights: Tensor, class_index: int, k: int | None = None, *, lowest: bool = False
) -> tuple[Tensor, Tensor]:
    """Units of class ``class_index`` sorted by ``w_k^c``: (unit indices, their weights).

    Highest weight first (``lowest=True``: most negative first); ties keep the lower unit index first.
    ``k`` keeps only the first ``k`` units.
    """
    w = torch.as_tensor(weights)
    if w.ndim != 2:
        raise ValueError(f"weights must be (num_classes, num_units), got shape {tuple(w.shape)}")
    if not 0 <= int(class_index) < w.shape[0]:
        raise ValueError(f"class_index {class_index} out of range [0, {w.shape[0]})")
    row = w[int(class_index)].float()
    values, idx = torch.sort(row, descending=not lowest, stable=True)
    if k is not None:
        idx, values = idx[: int(k)], values[: int(k)]
    return idx, values


def random_units(candidates: Sequence[int] | np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct units drawn uniformly from ``candidates`` with ``np.random.default_rng(seed)``."""
    cand = np.asarray(candidates, dtype=np.int64)
    if n > cand.size:
        raise ValueError(f"asked for {n} random units out of {cand.size} candidates")
    return np.sort(np.random.default_rng(seed).choice(cand, size=n, replace=False))


# --------------------------------------------------------------------------- 2. streaming statistics


class TopKPerUnit:
    """For each of ``num_units`` units, the ``k`` items with the highest score, in bounded memory.

    One min-heap (``heapq``) of at most ``k`` entries per unit: a new item enters only when it beats
    the heap's smallest entry. Ordering: higher score first; equal scores keep the smaller item id.
    Item ids must be unique (an image is pushed once). With ``keep_maps`` an array (e.g. the unit's
    (h, w) activation map) is stored with each entry, so memory is O(num_units * k * h * w).
    """

    def __init__(self, num_units: int, k: int, *, keep_maps: bool = False) -> None:
        if num_units < 1 or k < 1:
            raise ValueError(f"num_units and k must be >= 1, got {num_units}, {k}")
        self.num_units, self.k, self.keep_maps = int(num_units), int(k), keep_maps
        self._heaps: list[list[tuple]] = [[] for _ in range(self.num_units)]
        self._floor = np.full(self.num_units, -np.inf)  # the smallest kept score of a FULL heap

    def push(self, scores, ids: Sequence[int] | np.ndarray, maps=None) -> None:
        """Offer a batch: ``scores`` (B, num_units), ``ids`` (B,), optional ``maps`` (B, num_units, ...)."""
        s = np.asarray(scores.detach().cpu() if isinstance(scores, Tensor) else scores, dtype=np.float64)
        ids = np.asarray(ids, dtype=np.int64)
        if s.ndim != 2 or s.shape[1] != self.num_units or s.shape[0] != ids.shape[0]:
            raise ValueError(
                f"scores must be (B, {self.num_units}) with B = len(ids) = {ids.shape[0]}, got {s.shape}"
            )
        if self.keep_maps and maps is None:
            raise ValueError("this TopKPerUnit keeps maps: pass maps=(B, num_units, ...)")
        if maps is not None:
            maps = np.asarray(maps.detach().cpu() if isinstance(maps, Tensor) else maps)
        # Vectorised pre-filter: only (item, unit) pairs that can enter the heap reach Python.
        rows, units = np.nonzero(s >= self._floor[None, :])
        for b, u in zip(rows.tolist(), units.tolist(), strict=True):
            entry = (s[b, u], -int(ids[b]), None if maps is None else np.array(maps[b, u], dtype=np.float32))
            heap = self._heaps[u]
            if len(heap) < self.k:
                heapq.heappush(heap, entry)
            elif entry[:2] > heap[0][:2]:
                heapq.heapreplace(heap, entry)
            else:
                continue
            if len(heap) == self.k:
                self._floor[u] = heap[0][0]

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(scores (U, k) float64, ids (U, k) int64, maps (U, k, ...) float32 or None), best first.

        Units that saw fewer than ``k`` items are padded with score ``-inf``, id ``-1`` and zero maps.
        """
        U, k = self.num_units, self.k
        scores = np.full((U, k), -np.inf)
        ids = np.full((U, k), -1, dtype=np.int64)
        maps = None
        shape = next((h[0][2].shape for h in self._heaps if h and h[0][2] is not None), None)
        if shape is not None:
            maps = np.zeros((U, k, *shape), dtype=np.float32)
        for u, heap in enumerate(self._heaps):
            for j, (sc, neg_id, m) in enumerate(sorted(heap, key=lambda e: (-e[0], -e[1]))):
                scores[u, j], ids[u, j] = sc, -neg_id
                if maps is not None and m is not None:
                    maps[u, j] = m
        return scores, ids, maps


class ReservoirQuantile:
    """Quantiles of each unit's activations from a fixed-size uniform sample (Vitter's algorithm R).

    All units see the same stream length, so one random draw per incoming value decides the
    replacement slot for every unit at once. Memory: ``num_units * size`` float32 values. Exact while
    fewer than ``size`` values have been seen.
    """

    def __init__(self, num_units: int, size: int = 4096, seed: int = 0) -> None:
        if num_units < 1 or size < 1:
            raise ValueError(f"num_units and size must be >= 1, got {num_units}, {size}")
        self.num_units, self.size = int(num_units), int(size)
        self.sample = np.zeros((self.num_units, self.size), dtype=np.float32)
        self.seen = 0
        self._rng = np.random.default_rng(seed)

    def update(self, values) -> None:
        """Add ``values`` (num_units, m): column ``j`` is the j-th new value of every unit."""
        v = np.asarray(values.detach().cpu() if isinstance(values, Tensor) else values, dtype=np.float32)
        if v.ndim != 2 or v.shape[0] != self.num_units:
            raise ValueError(f"values must be (num_units={self.num_units}, m), got {v.shape}")
        m = v.shape[1]
        fill = min(m, max(self.size - self.seen, 0))
        if fill:
            self.sample[:, self.seen : self.seen + fill] = v[:, :fill]
        rest = m - fill
        if rest > 0:
            positions = np.arange(self.seen + fill, self.seen + m)  # 0-based stream positions
            slots = (self._rng.random(rest) * (positions + 1)).astype(np.int64)
            take = slots < self.size
            src, dst = np.nonzero(take)[0] + fill, slots[take]
            # sequential semantics: when two values land in one slot, the later one stays
            _, last = np.unique(dst[::-1], return_index=True)
            keep = dst.size - 1 - last
            self.sample[:, dst[keep]] = v[:, src[keep]]
        self.seen += m

    def quantile(self, q: float) -> np.ndarray:
        """The ``q``-quantile (0..1) of each unit's activations seen so far, (num_units,)."""
        if self.seen == 0:
            raise ValueError("no values seen yet")
        n = min(self.seen, self.size)
        return np.quantile(self.sample[:, :n], q, axis=1)


# --------------------------------------------------------------------------- image lists


def image_files(root: str | Path) -> list[Path]:
    """All image files under ``root`` (:func:`camlib.datasets.files.list_images`: recursive, sorted);
    a clear error naming the IMAGE_FOLDER parameter when the folder is missing or holds no image."""
    return list_images(
        root,
        hint="Put the images (jpg/png, any sub-folders) in a folder and pass its path as the "
        "IMAGE_FOLDER parameter, e.g. papermill ... -p IMAGE_FOLDER /data/images",
    )


def ImageList(items: Sequence, preprocess: Callable, names: Sequence[str] | None = None) -> ImageFiles:
    """Images given as file paths, PIL images or (H, W, 3) uint8 arrays, fed through ``preprocess``: a
    :class:`camlib.datasets.files.ImageFiles` without labels, so ``dataset[i]`` is ``(network input, i)``;
    its ``display(i, size)`` gives the image resized to ``size`` (the network input size, no crop) as
    uint8, for overlays at the map's geometry. Files are read lazily, so a long list costs no memory."""
    return ImageFiles(items, None, preprocess, names=names)


def image_list(model, photos: Sequence[str] = (), folder: str | Path | None = None) -> ImageList:
    """An :class:`ImageList` for ``model`` (:func:`resize_preprocess`): the ``skimage.data`` ``photos``
    (by name), then every image file under ``folder`` (:func:`image_files`: a clear error when the
    folder is missing or holds no image). Names: the photo names, then the file names."""
    from camlib.datasets.photos import load_photo

    items: list = [load_photo(p) for p in photos]
    names = list(photos)
    if folder is not None:
        files = image_files(folder)
        items += files
        names += [f.name for f in files]
    if not items:
        raise ValueError("image_list needs photos=... or folder=...")
    return ImageList(items, resize_preprocess(model), names)


# --------------------------------------------------------------------------- scanning a dataset


@dataclass
class UnitScan:
    """The outcome of :func:`scan_units`; row ``r`` describes unit ``units[r]``.

    ``scores`` (U, k): the unit's maximum activation on each of its top-k images, best first;
    ``image_ids`` (U, k): their dataset indices; ``maps`` (U, k, h, w): the unit's activation maps
    on them (feature resolution); ``unit_max`` (U,): its largest activation anywhere;
    ``thresholds`` (U,): the ``quantile`` of its activations (all positions of all images, from a
    reservoir of ``reservoir_size`` values per unit); ``pred_counts`` (C,): how many images the
    model classified as each class (top-1), to pick classes worth showing.
    """

    units: np.ndarray
    scores: np.ndarray
    image_ids: np.ndarray
    maps: np.ndarray
    thresholds: np.ndarray
    unit_max: np.ndarray
    quantile: float
    n_images: int
    input_size: tuple[int, int]
    head: HeadSpec
    reservoir_size: int
    pred_counts: np.ndarray | None = None

    def row(self, unit: int) -> int:
        """Row of ``unit`` (a unit index of the layer) in the arrays."""
        hits = np.flatnonzero(self.units == unit)
        if hits.size == 0:
            raise KeyError(f"unit {unit} was not tracked by this scan")
        return int(hits[0])


def _as_batch(items: list) -> Tensor:
    xs = [it[0] if isinstance(it, (tuple, list)) else it for it in items]
    return torch.stack([torch.as_tensor(x) for x in xs])


@torch.inference_mode()
def scan_units(
    model: nn.Module,
    dataset,
    *,
    units: Sequence[int] | np.ndarray | None = None,
    k: int = 16,
    quantile: float = 0.99,
    batch_size: int = 64,
    reservoir_size: int = 4096,
    seed: int = 0,
    device: str | torch.device = "cpu",
    feature_layer: str | None = None,
    fc_layer: str | None = None,
    progress: bool = True,
) -> UnitScan:
    """Stream ``dataset`` once through ``model``: top-k images and an activation quantile per unit.

    ``dataset[i]`` is an input tensor (3, H, W) or a tuple starting with one; batches are built from
    ``batch_size`` consecutive indices, so only one batch of images, the heaps and the reservoirs
    are in memory. ``units`` (default: all) are channel indices of the CAM feature layer found by
    :class:`camlib.core.cam.CAM`. An image's score for a unit is the unit's MAXIMUM activation on it.
    """
    from tqdm.auto import tqdm

    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    n = len(dataset)
    if n == 0:
        raise ValueError("the dataset is empty")
    cam = CAM(model, feature_layer, fc_layer)
    heaps: TopKPerUnit | None = None
    reservoir: ReservoirQuantile | None = None
    sel: Tensor | None = None
    unit_max: np.ndarray | None = None
    pred_counts: np.ndarray | None = None
    input_size = (0, 0)
    bar = tqdm(total=n, desc="scanning units", unit="img", disable=not progress)
    try:
        for start in range(0, n, batch_size):
            idx = range(start, min(n, start + batch_size))
            x = _as_batch([dataset[i] for i in idx]).to(device)
            input_size = (int(x.shape[-2]), int(x.shape[-1]))
            out = cam(x)
            f = out.features.float()  # (B, K, h, w)
            top1 = np.bincount(out.logits.argmax(1).cpu().numpy(), minlength=out.logits.shape[1])
            pred_counts = top1 if pred_counts is None else pred_counts + top1
            if sel is None:
                K = f.shape[1]
                sel = (
                    torch.arange(K) if units is None else torch.as_tensor(np.asarray(units), dtype=torch.long)
                )
                if sel.numel() == 0 or int(sel.min()) < 0 or int(sel.max()) >= K:
                    raise ValueError(f"units must be indices in [0, {K}) of layer {cam.head.feature_layer!r}")
                heaps = TopKPerUnit(sel.numel(), k, keep_maps=True)
                reservoir = ReservoirQuantile(sel.numel(), reservoir_size, seed=seed)
                unit_max = np.full(sel.numel(), -np.inf)
            fu = f[:, sel.to(f.device)].cpu()  # (B, U, h, w)
            peak = fu.flatten(2).amax(2)  # (B, U)
            heaps.push(peak, np.asarray(idx), fu)
            reservoir.update(fu.permute(1, 0, 2, 3).reshape(fu.shape[1], -1))
            unit_max = np.maximum(unit_max, peak.amax(0).numpy())
            bar.update(len(idx))
    finally:
        bar.close()
    assert heaps is not None and reservoir is not None and sel is not None and cam.head is not None
    scores, ids, maps = heaps.result()
    return UnitScan(
        units=sel.numpy(),
        scores=scores,
        image_ids=ids,
        maps=maps,
        thresholds=reservoir.quantile(quantile),
        unit_max=unit_max,
        quantile=float(quantile),
        n_images=n,
        input_size=input_size,
        head=cam.head,
        reservoir_size=reservoir_size,
        pred_counts=pred_counts,
    )


def live_units(scan: UnitScan, eps: float = 1e-6) -> np.ndarray:
    """Units (layer indices) whose activation exceeded ``eps`` somewhere: dead units have no region."""
    return scan.units[scan.unit_max > eps]


# --------------------------------------------------------------------------- 3. receptive fields


def receptive_fields(maps, thresholds, size: tuple[int, int], mode: str = "bilinear") -> np.ndarray:
    """Boolean regions (..., H, W): the maps (..., h, w) upsampled to ``size``, ``>= threshold`` and ``> 0``.

    ``thresholds`` broadcasts against the leading dimensions (one per unit, or a scalar). ``>=`` (not
    ``>``) matters for saturating activations: EfficientNet-Lite0's ReLU6 units often sit at exactly 6,
    so their high quantile IS 6 and the region is where they saturate; ``> 0`` keeps a dead unit's
    (threshold 0) region empty.
    """
    m = torch.as_tensor(np.asarray(maps, dtype=np.float32))
    lead = m.shape[:-2]
    up = upsample_maps(m.reshape(-1, 1, *m.shape[-2:]), size, mode).reshape(*lead, *size)
    t = torch.as_tensor(np.asarray(thresholds, dtype=np.float32))
    t = t.reshape(*t.shape, *([1] * (up.ndim - t.ndim)))
    return ((up >= t) & (up > 0)).numpy()


@dataclass
class PartHits:
    """Per tracked unit: how often its receptive field falls mostly on ONE object part.

    ``hit_rate`` (U,): fraction of the unit's top-k regions with more than ``min_fraction`` of their
    pixels on a single part; ``top_part`` (U,): the part id (1-based, 0 = none) it hits most often;
    ``area`` (U,): mean region size as a fraction of the image; ``empty`` (U,): regions with no pixel
    above threshold (counted as misses); ``hits`` (U, k) bool and ``parts`` (U, k) the hit part ids.
    """

    units: np.ndarray
    hit_rate: np.ndarray
    top_part: np.ndarray
    area: np.ndarray
    empty: np.ndarray
    hits: np.ndarray
    parts: np.ndarray
    min_fraction: float

    def rate(self, units: Sequence[int] | np.ndarray) -> float:
        """Mean hit rate over the given units (layer indices)."""
        rows = [int(np.flatnonzero(self.units == u)[0]) for u in np.asarray(units).ravel()]
        return float(self.hit_rate[rows].mean())


def part_hits(scan: UnitScan, part_masks: np.ndarray, min_fraction: float = 0.5) -> PartHits:
    """Score each tracked unit's top-k receptive fields against part masks (N, H, W), 0 = background.

    A region "hits" part ``p`` when more than ``min_fraction`` of its pixels lie on part ``p``.
    The masks must have the network input's size (the maps are upsampled to it).
    """
    U, k = scan.image_ids.shape
    hits = np.zeros((U, k), dtype=bool)
    parts = np.zeros((U, k), dtype=np.int64)
    area = np.zeros((U, k))
    empty = np.zeros(U, dtype=np.int64)
    size = tuple(part_masks.shape[-2:])
    if size != tuple(scan.input_size):
        raise ValueError(f"part masks are {size} but the network input was {scan.input_size}")
    regions = receptive_fields(scan.maps, scan.thresholds[:, None], size)  # (U, k, H, W)
    valid = scan.image_ids >= 0
    for u in range(U):
        for j in range(k):
            if not valid[u, j]:
                continue
            reg = regions[u, j]
            npx = int(reg.sum())
            area[u, j] = npx / reg.size
            if npx == 0:
                empty[u] += 1
                continue
            counts = np.bincount(part_masks[scan.image_ids[u, j]][reg].ravel().astype(np.int64))
            counts[0] = 0  # background is not a part
            best = int(counts.argmax())
            if best > 0 and counts[best] > min_fraction * npx:
                hits[u, j], parts[u, j] = True, best
    n_valid = valid.sum(1).clip(min=1)
    top_part = np.array(
        [np.bincount(p[h], minlength=2).argmax() if h.any() else 0 for p, h in zip(parts, hits, strict=True)]
    )
    return PartHits(
        units=scan.units,
        hit_rate=hits.sum(1) / n_valid,
        top_part=top_part,
        area=(area * valid).sum(1) / n_valid,
        empty=empty,
        hits=hits,
        parts=parts,
        min_fraction=float(min_fraction),
    )


def mean_ci(values, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean of ``values`` with a percentile-bootstrap interval over its items
    (``scipy.stats.bootstrap`` through :func:`camlib.evaluation.stats.bootstrap_interval`, seeded)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("no values")
    lo, hi = bootstrap_interval((v,), np.mean, vectorized=True, level=level, n_resamples=n_boot, seed=seed)
    return float(v.mean()), lo, hi


def _diff_of_means(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return a.mean(axis=axis) - b.mean(axis=axis)


def mean_diff_ci(a, b, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high), each group resampled independently (percentile bootstrap,
    ``scipy.stats.bootstrap`` with two unpaired samples, seeded)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError("no values")
    lo, hi = bootstrap_interval(
        (a, b), _diff_of_means, vectorized=True, level=level, n_resamples=n_boot, seed=seed
    )
    return float(a.mean() - b.mean()), lo, hi


# --------------------------------------------------------------------------- the notebook's two studies


@dataclass
class PartStudy:
    """:func:`part_hit_study`'s outcome: ``metrics`` (the numbers notebook 08 reports), the
    (class, unit) ``pairs`` of the top units, the ``random_units`` drawn as baseline and the hits."""

    metrics: dict
    pairs: list[tuple[str, int]]
    random_units: np.ndarray
    hits: PartHits
    n_live: int

    @property
    def verdict(self) -> str:
        """Top vs random units, read from the 95% interval of the difference (not written in advance)."""
        d = self.metrics["part_hit_rate"]
        diff, (lo, _) = d["top_minus_random"], d["top_minus_random_ci95"]
        if lo > 0:
            return "higher than that of random units, and the 95% interval of the difference excludes 0"
        if diff > 0:
            return "higher than that of random units, but the 95% interval of the difference includes 0: not conclusive"
        return "NOT higher than that of random units"

    def report(self) -> str:
        """The study as printed lines: rates with intervals, region areas, per class, the verdict."""
        d, a = self.metrics["part_hit_rate"], self.metrics["region_area_fraction"]
        (tl, th), (rl, rh), (dl, dh) = d["top_units_ci95"], d["random_units_ci95"], d["top_minus_random_ci95"]
        n_top = len({c for c, _ in self.pairs})
        lines = [
            f"part-hit rate, top-{len(self.pairs) // max(n_top, 1)} units of each class: {d['top_units']:.3f}  (95% CI {tl:.3f}-{th:.3f})",
            f"part-hit rate, {d['n_random_units']} random live units:        {d['random_units']:.3f}  (95% CI {rl:.3f}-{rh:.3f})",
            f"part-hit rate, all {self.n_live} live units:             {d['all_live_units']:.3f}",
            f"top - random: {d['top_minus_random']:+.3f}  (95% bootstrap CI over units {dl:+.3f} to {dh:+.3f})",
            f"mean region area (fraction of the image): top {a['top_units']:.3f}, random {a['random_units']:.3f}",
        ]
        for c, v in self.metrics["per_class"].items():
            lines.append(
                f"  {c:9s} {v['part_hit_rate']:.2f}  parts {v['most_hit_part']}  class purity {v['class_purity']:.2f}"
            )
        lines.append(f"-> the top units' part-hit rate is {self.verdict}")
        return "\n".join(lines)


def part_hit_study(
    scan: UnitScan,
    weights: Tensor,
    top_units: dict[str, tuple[Tensor, Tensor]],
    labels: np.ndarray,
    part_masks: np.ndarray,
    class_names: Sequence[str],
    part_names: dict[str, Sequence[str]],
    *,
    min_fraction: float = 0.5,
    seed: int = 0,
) -> PartStudy:
    """Are the top units of each class part detectors? Their part-hit rate (:func:`part_hits`) against
    as many random live units (:func:`random_units`, ``seed``) and all live units.

    ``top_units``: class name -> (units, weights) from :func:`rank_units`; ``labels`` and ``part_masks``
    (N, H, W): the scanned images' classes and part maps; ``part_names[class]``: names of part ids 1, 2, ...
    Reported per group: the mean hit rate with a bootstrap 95% interval over units (:func:`mean_ci`), the
    top - random difference (:func:`mean_diff_ci`), the mean region area, and the class purity (the
    fraction of a unit's top images that show the class; for a random unit, the class it weighs most).
    """
    hits = part_hits(scan, part_masks, min_fraction)
    live = live_units(scan)
    pairs = [(c, int(u)) for c, (idx, _) in top_units.items() for u in idx]
    n_random = len(pairs)
    rand = random_units(live, n_random, seed=seed)
    labels = np.asarray(labels)

    def purity(u: int, c: str) -> float:  # fraction of the unit's top images that show class c
        return float((labels[scan.image_ids[scan.row(u)]] == list(class_names).index(c)).mean())

    def area(units) -> float:
        return float(np.mean([hits.area[scan.row(int(u))] for u in units]))

    per_class = {}
    for c, (idx, w) in top_units.items():
        rows = [scan.row(int(u)) for u in idx]
        per_class[c] = {
            "units": [int(u) for u in idx],
            "weights": [float(v) for v in w],
            "part_hit_rate": float(hits.hit_rate[rows].mean()),
            "most_hit_part": [part_names[c][p - 1] if p else "none" for p in hits.top_part[rows]],
            "class_purity": float(np.mean([purity(int(u), c) for u in idx])),
        }
    top_rates = [hits.rate([u]) for _, u in pairs]
    rand_rates = [hits.rate([u]) for u in rand]
    top_rate, top_lo, top_hi = mean_ci(top_rates, seed=seed)
    rand_rate, rand_lo, rand_hi = mean_ci(rand_rates, seed=seed)
    diff, diff_lo, diff_hi = mean_diff_ci(top_rates, rand_rates, seed=seed)
    W = torch.as_tensor(weights)
    best_class = [
        class_names[int(W[:, int(u)].argmax())] for u in rand
    ]  # the class a random unit weighs most
    metrics = {
        "n_units": int(W.shape[1]),
        "n_live_units": int(len(live)),
        "part_hit_rate": {
            "top_units": top_rate,
            "top_units_ci95": [top_lo, top_hi],
            "random_units": rand_rate,
            "random_units_ci95": [rand_lo, rand_hi],
            "top_minus_random": diff,
            "top_minus_random_ci95": [diff_lo, diff_hi],
            "all_live_units": hits.rate(live),
            "n_top_pairs": len(pairs),
            "n_random_units": n_random,
            "random_unit_ids": [int(u) for u in rand],
        },
        "region_area_fraction": {"top_units": area([u for _, u in pairs]), "random_units": area(rand)},
        "class_purity": {
            "top_units": float(np.mean([purity(u, c) for c, u in pairs])),
            "random_units": float(
                np.mean([purity(int(u), c) for u, c in zip(rand, best_class, strict=True)])
            ),
        },
        "per_class": per_class,
    }
    return PartStudy(metrics, pairs, rand, hits, int(len(live)))


@dataclass
class ClassUnits:
    """:func:`class_units`'s outcome: the scan, the head and its weights, and one row per shown class
    ``(class name, its top units, their weights w_k^c)``."""

    scan: UnitScan
    head: HeadSpec
    weights: Tensor
    rows: list[tuple[str, list[int], list[float]]]
    dataset: ImageList
    display_size: tuple[int, int]

    def metrics(self) -> dict:
        return {
            "n_images": len(self.dataset),
            "feature_layer": self.head.feature_layer,
            "n_units": int(self.weights.shape[1]),
            "classes": [r[0] for r in self.rows],
            "top_units": {r[0]: r[1] for r in self.rows},
        }

    def figure(self, n_images: int = 3):
        """Figure 13's layout (:func:`plot_class_units`) on the dataset's images at the network's input size."""
        return plot_class_units(
            self.scan, lambda i: self.dataset.display(i, self.display_size), self.rows, n_images
        )


def class_units(
    model,
    dataset: ImageList,
    *,
    of_images: Sequence[int] | None = None,
    n_classes: int = 4,
    top_units: int = 3,
    k: int = 8,
    quantile: float = 0.99,
    batch_size: int = 32,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> ClassUnits:
    """The units classes are built from, on a folder of images (the paper's Figure 13).

    ``model``: a :class:`camlib.models.ImageNetModel`; ``dataset``: e.g. :func:`image_list`. One
    :func:`scan_units` pass (top-``k`` images per unit, the ``quantile`` threshold), then for each shown
    class its ``top_units`` units by ``w_k^c`` (:func:`rank_units`). Shown classes: the top-1 classes of
    the images ``of_images``, else the ``n_classes`` classes the network predicts most often on the dataset.
    """
    net = model.model
    scan = scan_units(
        net,
        dataset,
        k=k,
        quantile=quantile,
        batch_size=batch_size,
        seed=seed,
        device=device,
        progress=progress,
    )
    W, _, head = head_weights(net, dataset[0][0][None].to(device))
    if of_images is not None:
        x = torch.stack([dataset[i][0] for i in of_images])
        with torch.inference_mode():
            shown = net(x.to(device)).argmax(1).tolist()
    else:
        shown = np.argsort(-scan.pred_counts, kind="stable")[:n_classes].tolist()
    rows = []
    for c in shown:
        idx, w = rank_units(W, int(c), top_units)
        rows.append((model.classes[int(c)], idx.tolist(), w.tolist()))
    return ClassUnits(scan, head, W, rows, dataset, tuple(model.input_size))


# --------------------------------------------------------------------------- figure


def plot_class_units(
    scan: UnitScan,
    image_fn: Callable[[int], np.ndarray],
    rows: Sequence[tuple[str, Sequence[int], Sequence[float]]],
    n_images: int = 3,
    dim: float = 0.3,
):
    """The paper's Figure 13 layout: per class (a row), its top units, each on its top images.

    ``rows``: (class name, unit indices, their weights ``w_k^c``). ``image_fn(i)`` returns image ``i``
    of the scanned dataset as (H, W, 3) at the network input size. Outside the unit's receptive field
    (:func:`receptive_fields`) the image is dimmed to ``dim``; the region's outline is drawn in yellow.
    """
    import matplotlib.pyplot as plt

    from camlib.core.viz import FIG_DPI, to_image

    n_units = max(len(r[1]) for r in rows)
    ncols = n_units * n_images
    fig, axes = plt.subplots(
        len(rows), ncols, figsize=(1.25 * ncols, 1.45 * len(rows) + 0.3), dpi=FIG_DPI, squeeze=False
    )
    for r, (name, units, weights) in enumerate(rows):
        for a, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            ui, j = divmod(a, n_images)
            if ui >= len(units):
                ax.axis("off")
                continue
            row = scan.row(int(units[ui]))
            img_id = int(scan.image_ids[row, j])
            if img_id < 0:
                ax.axis("off")
                continue
            img = to_image(image_fn(img_id))
            region = receptive_fields(scan.maps[row, j], scan.thresholds[row], img.shape[:2])
            ax.imshow(np.where(region[..., None], img, dim * img))
            if region.any():
                ax.contour(region.astype(float), levels=[0.5], colors="yellow", linewidths=0.7)
            if j == 0:
                ax.set_title(f"unit {int(units[ui])}\nw={float(weights[ui]):.3f}", fontsize=7)
            if a == 0:
                ax.set_ylabel(name[:16], fontsize=8)
    fig.tight_layout()
    return fig
