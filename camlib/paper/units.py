"""Class-specific units (Zhou et al., CVPR 2016, section 5 and Figure 13).

A CAM network scores class ``c`` as ``S_c = sum_k w_k^c F_k + b_c`` with ``F_k`` the global average
of unit ``k``'s map ``f_k``. The weight ``w_k^c`` says how much unit ``k`` counts for class ``c``, so
ranking the units of the last convolutional layer by ``w_k^c`` gives the units a class is built from;
the paper shows the receptive fields of the top-ranked units on their top-activating images.

This module does that in three steps, with memory bounded whatever the dataset's size:

1. :func:`head_weights` + :func:`rank_units`: the ``(C, K)`` weights found by :class:`camlib.core.cam.CAM`
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

from camlib.core.cam import CAM, HeadSpec, upsample_maps
from camlib.datasets.files import ImageFiles, list_images
from camlib.datasets.transforms import resize_preprocess

__all__ = [
    "ImageList",
    "PartHits",
    "ReservoirQuantile",
    "TopKPerUnit",
    "UnitScan",
    "head_weights",
    "image_files",
    "live_units",
    "mean_ci",
    "mean_diff_ci",
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
    cam = CAM(model, feature_layer, fc_layer)
    cam(example[:1])
    assert cam.head is not None
    fc = dict(model.named_modules())[cam.head.fc_layer]
    w = fc.weight.detach().float().clone()
    if w.ndim == 4:
        w = w[:, :, 0, 0]
    b = None if fc.bias is None else fc.bias.detach().float().clone()
    return w, b, cam.head


def rank_units(weights: Tensor, class_index: int, k: int | None = None, *, lowest: bool = False) -> tuple[Tensor, Tensor]:
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
    return list_images(root, hint="Put the images (jpg/png, any sub-folders) in a folder and pass its path as the "
                                   "IMAGE_FOLDER parameter, e.g. papermill ... -p IMAGE_FOLDER /data/images")


def ImageList(items: Sequence, preprocess: Callable, names: Sequence[str] | None = None) -> ImageFiles:
    """Images given as file paths, PIL images or (H, W, 3) uint8 arrays, fed through ``preprocess``: a
    :class:`camlib.datasets.files.ImageFiles` without labels, so ``dataset[i]`` is ``(network input, i)``;
    its ``display(i, size)`` gives the image resized to ``size`` (the network input size, no crop) as
    uint8, for overlays at the map's geometry. Files are read lazily, so a long list costs no memory."""
    return ImageFiles(items, None, preprocess, names=names)


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
                sel = torch.arange(K) if units is None else torch.as_tensor(np.asarray(units), dtype=torch.long)
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
    top_part = np.array([np.bincount(p[h], minlength=2).argmax() if h.any() else 0 for p, h in zip(parts, hits, strict=True)])
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
    """(mean, low, high): the mean of ``values`` with a percentile-bootstrap interval over its items."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("no values")
    rng = np.random.default_rng(seed)
    boots = v[rng.integers(0, v.size, (n_boot, v.size))].mean(1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(v.mean()), float(lo), float(hi)


def mean_diff_ci(a, b, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(mean(a) - mean(b), low, high), each group resampled independently (percentile bootstrap)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError("no values")
    rng = np.random.default_rng(seed)
    d = a[rng.integers(0, a.size, (n_boot, a.size))].mean(1) - b[rng.integers(0, b.size, (n_boot, b.size))].mean(1)
    lo, hi = np.quantile(d, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(a.mean() - b.mean()), float(lo), float(hi)


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
