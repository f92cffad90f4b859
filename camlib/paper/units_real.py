"""Class-specific units on real photos: do a class's top units fire on the object (inside its box)?

Section 5 of the paper ranks the units of the last convolutional layer by the class weight ``w_k^c``
(:func:`camlib.paper.units.rank_units`) and shows that the top units of a class respond to parts of
that class. On ILSVRC val images with ground-truth boxes this becomes a measurement:

* for image ``i`` of class ``c``, the **top units** are the ``top_units`` units with the largest
  ``w_k^c``; the **random units** are ``n_random`` live units (units that fire somewhere on the images)
  drawn uniformly, per image and seeded, among the others;
* a unit's **high-activation region** on the image is its map ``f_k`` upsampled bilinearly to the
  network input and thresholded at ``rel`` times its own maximum on that image
  (``R_k = {p : f_k(p) >= rel * max f_k, f_k(p) > 0}``; empty when the unit is silent, ``max f_k = 0``);
* its **in-box rate** is the fraction of the region inside the union of the GT boxes,
  ``|R_k ∩ B| / |R_k|`` (boxes scaled per axis to the input, as the image was: resized without crop);
  the image's rate for a group is the mean over the group's units that fire on it;
* the **chance level** is the box's area fraction ``|B| / (H W)``: what a region placed uniformly at
  random would get;
* the answer is the paired difference top - random over images (:func:`camlib.evaluation.stats.paired_diff_ci`,
  percentage points, 95% bootstrap interval) on the images of the classes with at least ``min_images``
  images (so that each class's top units are judged on several photos), and, as a check because the
  images of one class share their top units, an interval that resamples whole classes
  (:func:`cluster_mean_ci`).

The network's features on the images are computed once and cached (:func:`unit_features`, a
:class:`~camlib.core.features.FeatureCache` keyed on the weights, the preprocessing and the file names);
everything else runs on the cached arrays. :func:`feature_scan` turns them into a
:class:`~camlib.paper.units.UnitScan` for the paper's Figure 13 layout
(:func:`~camlib.paper.units.plot_class_units`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from camlib.core.cam import CAM, HeadSpec, upsample_maps
from camlib.core.digest import array_digest, model_fingerprint
from camlib.core.features import FeatureCache
from camlib.datasets.files import read_rgb
from camlib.datasets.roots import DataInfo, DataSource, resolve_root
from camlib.evaluation.stats import Estimate, bootstrap_ci, bootstrap_interval, paired_diff_ci, verdict
from camlib.paper.units import UnitScan, plot_class_units, rank_units

__all__ = [
    "ILSVRC_SETS",
    "InBoxStudy",
    "LabelledImages",
    "UnitFeatures",
    "box_mask",
    "cluster_mean_ci",
    "data_line",
    "feature_scan",
    "in_box_rates",
    "in_box_study",
    "open_labelled_images",
    "plot_figure13",
    "plot_in_box",
    "unit_features",
    "unit_regions",
]

#: The real ILSVRC sets the study pools (names of :data:`camlib.datasets.roots.SETS`).
ILSVRC_SETS: tuple[str, ...] = ("ilsvrc", "ilsvrc-1k")


# --------------------------------------------------------------------------- images


@dataclass
class LabelledImages:
    """Image files with a class and GT boxes each (pixels of the file: inclusive ``x0, y0, x1, y1``),
    pooled from one or more folders; ``data``: one :class:`~camlib.datasets.roots.DataInfo` per folder,
    ``set_index`` (N,): which folder each image came from."""

    paths: list[Path]
    labels: np.ndarray
    boxes: list[np.ndarray]
    set_index: np.ndarray
    data: list[DataInfo]

    def __len__(self) -> int:
        return len(self.paths)

    def data_rows(self) -> list[DataSource]:
        """The results file's ``data`` rows (name, root kind, n, caveat) of the pooled folders."""
        return [
            DataSource(d.name, d.kind, int((self.set_index == s).sum()), d.caveat)
            for s, d in enumerate(self.data)
        ]

    def display(self, i: int, size: tuple[int, int]) -> np.ndarray:
        """Image ``i`` resized to ``size`` (H, W) without crop, as the network saw it: (H, W, 3) uint8."""
        return np.asarray(read_rgb(self.paths[i]).resize((size[1], size[0]), Image.BILINEAR))


def open_labelled_images(
    roots: dict[str, str | Path | None] | None = None, sets: Sequence[str] = ILSVRC_SETS
) -> LabelledImages | None:
    """The ILSVRC val folders of ``sets`` found by :func:`~camlib.datasets.roots.resolve_root` (``roots``:
    set name -> explicit folder, e.g. a notebook parameter), pooled; None when none is found."""
    from camlib.datasets.ilsvrc import open_ilsvrc_val

    roots = roots or {}
    paths: list[Path] = []
    labels: list[int] = []
    boxes: list[np.ndarray] = []
    set_index: list[int] = []
    data: list[DataInfo] = []
    for name in sets:
        found = resolve_root(name, roots.get(name))
        if not found:
            continue
        ds = open_ilsvrc_val(found.path)
        paths += [ds.image_path(i) for i in range(len(ds))]
        labels += [int(v) for v in ds.labels]
        boxes += [np.asarray(b, dtype=np.float64).reshape(-1, 4) for b in ds.boxes]
        set_index += [len(data)] * len(ds)
        data.append(found.info)
    if not paths:
        return None
    return LabelledImages(paths, np.asarray(labels, np.int64), boxes, np.asarray(set_index, np.int64), data)


def data_line(images: LabelledImages | None, sets: Sequence[str] = ILSVRC_SETS) -> str:
    """The notebook's first output line: the real folders used (name, n, how found, where), or that none
    was found, with how to get each set (:attr:`camlib.datasets.roots.DataRoot.fetch`)."""
    if images is not None:
        return "data: real ILSVRC val photos -- " + "; ".join(
            f"{d.name}: {d.n_images} images ({d.kind}: {d.root})" for d in images.data
        )
    how = "; ".join(f"{name}: {resolve_root(name).fetch}" for name in sets)
    return f"data: procedural shapes (offline fallback: no ILSVRC folder found). For the real photos -- {how}"


# --------------------------------------------------------------------------- features (cached)


@dataclass
class UnitFeatures:
    """The CAM feature layer on every image: ``features`` (N, K, h, w) float16, the images' ``sizes``
    (N, 2) as (H, W), the ``head`` and classifier ``weight`` (C, K) / ``bias`` (C,), ``input_size``;
    ``cached``: read from disk; ``seconds``: time to get them."""

    features: np.ndarray
    sizes: np.ndarray
    weight: Tensor
    bias: Tensor | None
    head: HeadSpec
    input_size: tuple[int, int]
    cached: bool
    seconds: float

    @cached_property
    def pooled(self) -> np.ndarray:
        """``F_k`` (N, K) float32: the global average of each unit's map (computed once)."""
        return self.features.mean(axis=(2, 3), dtype=np.float32)

    @cached_property
    def unit_max(self) -> np.ndarray:
        """(K,) float64: each unit's largest activation over all positions of all images (computed once)."""
        N, K = self.features.shape[:2]
        return self.features.reshape(N, K, -1).max(axis=(0, 2)).astype(np.float64)

    def logits(self) -> np.ndarray:
        """``S_c = sum_k w_k^c F_k + b_c`` with ``F_k`` the global average of unit k (the GAP head)."""
        s = torch.as_tensor(self.pooled) @ self.weight.T
        return (s if self.bias is None else s + self.bias).numpy()


def unit_features(
    model,
    images: LabelledImages,
    *,
    cache: FeatureCache | str | Path | None = "build/feature_cache/units",
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> UnitFeatures:
    """The CAM features of ``model`` (a :class:`camlib.models.ImageNetModel`) on ``images``, each resized to
    the input without crop (:func:`camlib.datasets.transforms.resize_preprocess`), through a
    :class:`~camlib.core.features.FeatureCache` keyed on the weights (:func:`~camlib.core.digest.model_fingerprint`),
    the input size and the file names (``cache=None``: computed, not stored).

    ``batch_size`` 4 on purpose: on a CPU, glibc gives every allocation above 32 MiB fresh pages from the
    kernel, and Lite0's first activations at 224 x 224 pass that size from 8 images on; at 32 a run spent
    more time in page faults (system time) than in the network. At 4 the same images cost less than half
    the CPU time (the features differ from a batch of 32 only by float rounding)."""
    from tqdm.auto import tqdm

    from camlib.core.cam import fc_weights
    from camlib.datasets.transforms import resize_preprocess

    t0 = time.perf_counter()
    net = model.model
    pre = resize_preprocess(model)
    cam = CAM(net)
    size = tuple(int(s) for s in model.input_size)
    cam(pre(read_rgb(images.paths[0]))[None].to(device))  # resolve the head
    head = cam.head
    w, b = fc_weights(net, head)
    parts = {
        "what": "units_real.unit_features",
        "version": 1,
        "model": getattr(model, "name", type(net).__name__),
        "weights_sha256": model_fingerprint(net),
        "layer": head.feature_layer,
        "input_size": list(size),
        "preprocessing": "resize_preprocess (whole image, no crop)",
        "n": len(images),
        "files": array_digest(np.array([str(p.name) for p in images.paths]).astype("U")),
    }

    def compute() -> dict[str, np.ndarray]:
        feats, sizes = [], []
        with torch.inference_mode():
            for start in tqdm(range(0, len(images), batch_size), desc="Lite0 features", disable=not progress):
                imgs = [read_rgb(p) for p in images.paths[start : start + batch_size]]
                sizes += [(im.height, im.width) for im in imgs]
                x = torch.stack([pre(im) for im in imgs]).to(device)
                feats.append(cam(x).features.float().cpu().numpy().astype(np.float16))
        return {"features": np.concatenate(feats), "sizes": np.asarray(sizes, np.int64)}

    if cache is None:
        arrays, hit = compute(), False
    else:
        store = cache if isinstance(cache, FeatureCache) else FeatureCache(cache)
        arrays, hit = store.get_or_compute(parts, compute)
    return UnitFeatures(
        arrays["features"],
        arrays["sizes"],
        w.detach().float().cpu().clone(),
        None if b is None else b.detach().float().cpu().clone(),
        head,
        size,
        hit,
        time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------- regions and boxes


def box_mask(boxes: np.ndarray, image_size: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """The union of ``boxes`` (inclusive pixels ``x0, y0, x1, y1`` of an image of ``image_size`` (H, W)) on
    a ``size`` (H', W') grid, scaled per axis (the image resized without crop): pixel ``(r, q)`` is in when
    its centre lies in ``[x0 sx, (x1 + 1) sx) x [y0 sy, (y1 + 1) sy)``, ``sx = W'/W``, ``sy = H'/H``."""
    H, W = (int(v) for v in image_size)
    h, w = (int(v) for v in size)
    sy, sx = h / H, w / W
    cy, cx = np.arange(h) + 0.5, np.arange(w) + 0.5
    mask = np.zeros((h, w), dtype=bool)
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        rows = (cy >= y0 * sy) & (cy < (y1 + 1) * sy)
        cols = (cx >= x0 * sx) & (cx < (x1 + 1) * sx)
        mask |= rows[:, None] & cols[None, :]
    return mask


def unit_regions(maps, size: tuple[int, int], rel: float = 0.5) -> np.ndarray:
    """High-activation regions (..., U, H, W) of maps (..., U, h, w) (one image, or a batch of images):
    upsampled bilinearly to ``size`` and kept where ``f >= rel * max f`` and ``f > 0`` (a silent unit,
    ``max f <= 0``, has an empty region)."""
    return _regions(torch.as_tensor(np.asarray(maps, dtype=np.float32)), size, rel).numpy()


def _regions(maps: Tensor, size: tuple[int, int], rel: float) -> Tensor:
    if not 0.0 < rel <= 1.0:
        raise ValueError(f"rel must be in (0, 1], got {rel}")
    lead = maps.shape[:-2]
    up = upsample_maps(maps.reshape(-1, 1, *maps.shape[-2:]), size)[:, 0]  # (M, H, W)
    peak = up.flatten(1).amax(1)
    # rel > 0: where the peak is positive, f >= rel * peak already means f > 0; a silent map gets no pixel
    thr = torch.where(peak > 0, rel * peak, torch.full_like(peak, float("inf")))
    return (up >= thr[:, None, None]).reshape(*lead, *up.shape[-2:])


def in_box_rates(regions: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``|R ∩ B| / |R|`` per region: regions (..., U, H, W), mask (..., H, W) -> (..., U); NaN for an empty
    region."""
    inside, n = _region_counts(torch.as_tensor(np.asarray(regions)), torch.as_tensor(np.asarray(mask)))
    return _rates(inside, n)


def _region_counts(regions: Tensor, mask: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``(|R ∩ B|, |R|)`` as int64 arrays (..., U) (exact counts, through a float matrix product)."""
    r = regions.flatten(-2).float()  # (..., U, HW); 0/1 sums below 2**24 are exact in float32
    inside = (r @ mask.flatten(-2).float()[..., None])[..., 0]
    return inside.round().long().numpy(), r.sum(-1).round().long().numpy()


def _rates(inside: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.where(n > 0, inside / np.maximum(n, 1), np.nan)


def _ratio_of_sums(sums: np.ndarray, counts: np.ndarray, axis: int = -1) -> np.ndarray:
    return sums.sum(axis=axis) / counts.sum(axis=axis)


def cluster_mean_ci(
    values, clusters, *, scale: float = 100.0, level: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> Estimate:
    """The mean of ``values`` with a percentile bootstrap interval that resamples whole ``clusters``
    (e.g. the classes: images of one class share their top units, so they are not independent draws):
    each resample draws as many clusters as there are, with replacement, and takes the mean of all
    their values (``scipy.stats.bootstrap`` with the clusters' sums and counts as paired samples and
    their ratio as the statistic, through :func:`~camlib.evaluation.stats.bootstrap_interval`)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    c = np.asarray(clusters).ravel()
    if v.size == 0 or v.size != c.size:
        raise ValueError(f"need as many cluster ids as values (> 0), got {v.size} values and {c.size} ids")
    _, inv = np.unique(c, return_inverse=True)
    sums, counts = np.bincount(inv, weights=v), np.bincount(inv)
    lo, hi = bootstrap_interval(
        (sums, counts),
        _ratio_of_sums,
        paired=True,
        vectorized=True,
        level=level,
        n_resamples=n_resamples,
        seed=seed,
    )
    return Estimate(float(v.mean()) * scale, float(lo) * scale, float(hi) * scale, int(sums.size), level)


# --------------------------------------------------------------------------- the study


@dataclass
class InBoxStudy:
    """:func:`in_box_study`'s outcome: per-image arrays (``top``, ``random``: in-box rates, NaN when no unit
    of the group fires; ``chance``: box area fraction; ``selected``: the image's class has enough images),
    the ``metrics`` the notebook reports, and the ``top_units`` / ``random_units`` (N, k) per image."""

    labels: np.ndarray
    top: np.ndarray
    random: np.ndarray
    chance: np.ndarray
    selected: np.ndarray
    correct: np.ndarray
    top_units: np.ndarray
    random_units: np.ndarray
    metrics: dict = field(default_factory=dict)

    @property
    def classes(self) -> list[int]:
        """The selected classes, most images first (ties: lower class index first)."""
        ids, counts = np.unique(self.labels[self.selected], return_counts=True)
        return [int(c) for c in ids[np.lexsort((ids, -counts))]]

    def report(self) -> str:
        """The study as printed lines: rates with 95% intervals, the difference, the verdict."""
        m = self.metrics
        s = m["selected"]

        def est(d: dict) -> str:
            return f"{d['value']:5.1f}%  [{d['low']:.1f}, {d['high']:.1f}]"

        lines = [
            f"{m['n_images']} images, {m['n_classes_selected']} classes with >= {m['min_images']} images "
            f"-> {s['n_pairs']} images scored ({s['n_no_region']} dropped: no unit of a group fires on them)",
            f"in-box rate, top-{m['top_units']} units of the image's class: {est(s['top'])}",
            f"in-box rate, {m['n_random']} random live units:             {est(s['random'])}",
            f"chance (box area fraction):                    {est(s['chance'])}",
            f"top - random (paired over images):  {s['diff']['value']:+.1f} points  "
            f"[{s['diff']['low']:+.1f}, {s['diff']['high']:+.1f}]",
            f"top - random, resampling whole classes (n={s['diff_by_class']['n']}): "
            f"[{s['diff_by_class']['low']:+.1f}, {s['diff_by_class']['high']:+.1f}]",
            f"top - random on all {m['all']['n_pairs']} scorable images: {m['all']['diff']['value']:+.1f} points  "
            f"[{m['all']['diff']['low']:+.1f}, {m['all']['diff']['high']:+.1f}]",
            f"top - random on the selected images Lite0 classifies right (n={m['correct']['diff']['n']}): "
            f"{m['correct']['diff']['value']:+.1f}  [{m['correct']['diff']['low']:+.1f}, {m['correct']['diff']['high']:+.1f}]",
            f"units that fire on the image: top {s['top_fires']:.2f}, random {s['random_fires']:.2f} (fraction of units)",
            f"-> verdict (top units' regions fall in the box more than random units'): {m['verdict']}",
        ]
        return "\n".join(lines)


def _summary(
    top: np.ndarray, rand: np.ndarray, chance: np.ndarray, keep: np.ndarray, labels: np.ndarray, seed: int
) -> dict:
    ok = keep & np.isfinite(top) & np.isfinite(rand)
    if ok.sum() == 0:
        raise ValueError("no image has a firing unit in both groups: nothing to compare")
    d = {
        "n_pairs": int(ok.sum()),
        "n_no_region": int((keep & ~ok).sum()),
        "top": bootstrap_ci(top[ok], seed=seed).to_dict(),
        "random": bootstrap_ci(rand[ok], seed=seed).to_dict(),
        "chance": bootstrap_ci(chance[ok], seed=seed).to_dict(),
        "diff": paired_diff_ci(top[ok], rand[ok], seed=seed).to_dict(),
        "top_minus_chance": paired_diff_ci(top[ok], chance[ok], seed=seed).to_dict(),
        "diff_by_class": cluster_mean_ci(top[ok] - rand[ok], labels[ok], seed=seed).to_dict(),
    }
    return d


def in_box_study(
    feats: UnitFeatures,
    images: LabelledImages,
    *,
    top_units: int = 3,
    n_random: int = 3,
    rel: float = 0.5,
    min_images: int = 3,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    eps: float = 1e-6,
) -> InBoxStudy:
    """Top vs random units' in-box rates on every image (module docstring), summarised with 95% intervals.

    Images scored: those of classes with at least ``min_images`` images in ``images`` ("selected"), and
    among them those where at least one unit of each group fires. Also reported: the same difference on
    all images, on the selected images the model classifies right (top-1), and per selected class.
    """
    if len(images) != feats.features.shape[0]:
        raise ValueError(f"{len(images)} images but features for {feats.features.shape[0]}")
    N, K = feats.features.shape[:2]
    labels = images.labels
    live = np.flatnonzero(feats.unit_max > eps)
    rng = np.random.default_rng(seed)
    size = feats.input_size
    top_ids = np.zeros((N, top_units), np.int64)
    rand_ids = np.zeros((N, n_random), np.int64)
    ranked, candidates = {}, {}
    for i in range(N):
        c = int(labels[i])
        if c not in ranked:
            ranked[c] = rank_units(feats.weight, c, top_units)[0].numpy()
            others = np.ones(K, bool)
            others[ranked[c]] = False
            candidates[c] = live[others[live]]  # the live units but the top ones, ascending
        top_ids[i] = ranked[c]
        rand_ids[i] = np.sort(rng.choice(candidates[c], n_random, replace=False))
    masks = np.stack([box_mask(images.boxes[i], tuple(feats.sizes[i]), size) for i in range(N)])
    chance = masks.mean(axis=(1, 2))
    rates = _unit_rates(feats.features, np.concatenate([top_ids, rand_ids], axis=1), masks, size, rel)
    t, r = rates[:, :top_units], rates[:, top_units:]
    fires = np.stack([np.isfinite(t).mean(1), np.isfinite(r).mean(1)], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an image where no unit of a group fires: NaN
        top, rand = np.nanmean(t, axis=1), np.nanmean(r, axis=1)
    ids, counts = np.unique(labels, return_counts=True)
    selected = np.isin(labels, ids[counts >= min_images])
    correct = feats.logits().argmax(1) == labels
    sel = _summary(top, rand, chance, selected, labels, seed)
    sel.update(top_fires=float(fires[selected, 0].mean()), random_fires=float(fires[selected, 1].mean()))
    est = Estimate(**{k: sel["diff"][k] for k in ("value", "low", "high", "n", "level")})
    study = InBoxStudy(labels, top, rand, chance, selected, correct, top_ids, rand_ids)
    per_class = {}
    for c in study.classes:
        rows = selected & (labels == c) & np.isfinite(top) & np.isfinite(rand)
        name = class_names[c] if class_names is not None else str(c)
        per_class[name] = {
            "class": c,
            "n": int(rows.sum()),
            "units": [int(u) for u in ranked[c]],
            "top": float(top[rows].mean()) if rows.any() else None,
            "random": float(rand[rows].mean()) if rows.any() else None,
        }
    study.metrics = {
        "n_images": int(N),
        "n_units": int(K),
        "n_live_units": int(live.size),
        "top_units": int(top_units),
        "n_random": int(n_random),
        "rel_threshold": float(rel),
        "min_images": int(min_images),
        "n_classes_selected": len(per_class),
        "n_images_selected": int(selected.sum()),
        "selected": sel,
        "all": _summary(top, rand, chance, np.ones(N, bool), labels, seed),
        "correct": _summary(top, rand, chance, selected & correct, labels, seed),
        "top1_accuracy_selected": float(correct[selected].mean()),
        "verdict": verdict(est, +1),
        "per_class": per_class,
        "units_as_percent": "rates and differences in percent / percentage points",
    }
    return study


#: maps upsampled per call in the study: 24 x 224 x 224 floats (~5 MB) stay in cache and below the size at
#: which every allocation gets fresh pages from the kernel; larger batches cost MORE CPU time, not less
_MAPS_PER_BATCH = 24


def _unit_rates(
    features: np.ndarray, unit_ids: np.ndarray, masks: np.ndarray, size: tuple[int, int], rel: float
) -> np.ndarray:
    """In-box rates (N, U) of units ``unit_ids[i]`` (N, U) on image i (:func:`unit_regions`,
    :func:`in_box_rates` against ``masks[i]``), a few images at a time (``_MAPS_PER_BATCH`` maps per call)."""
    N, U = unit_ids.shape
    batch = max(1, _MAPS_PER_BATCH // U)
    rates = np.empty((N, U))
    for s in range(0, N, batch):
        i = np.arange(s, min(N, s + batch))
        maps = torch.as_tensor(features[i[:, None], unit_ids[i]].astype(np.float32))  # (B, U, h, w)
        inside, n = _region_counts(_regions(maps, size, rel), torch.as_tensor(masks[i]))
        rates[i] = _rates(inside, n)
    return rates


# --------------------------------------------------------------------------- Figure 13 from the cache


def feature_scan(
    feats: UnitFeatures, units: Sequence[int], *, k: int = 3, quantile: float = 0.99
) -> UnitScan:
    """A :class:`~camlib.paper.units.UnitScan` of ``units`` from cached features: each unit's top-``k``
    images by maximum activation (ties: lower image index first) and the exact ``quantile`` of its
    activations over all positions of all images (the threshold :func:`~camlib.paper.units.receptive_fields`
    uses)."""
    units = np.asarray(sorted({int(u) for u in units}), dtype=np.int64)
    N = feats.features.shape[0]
    f = feats.features[:, units].astype(np.float32)  # (N, U, h, w)
    peak = f.reshape(N, units.size, -1).max(2)  # (N, U)
    order = np.argsort(-peak, axis=0, kind="stable")[:k].T  # (U, k)
    rows = np.arange(units.size)[:, None]
    return UnitScan(
        units=units,
        scores=peak[order, rows].astype(np.float64),
        image_ids=order,
        maps=f[order, rows],
        thresholds=np.quantile(f.transpose(1, 0, 2, 3).reshape(units.size, -1), quantile, axis=1),
        unit_max=peak.max(0).astype(np.float64),
        quantile=float(quantile),
        n_images=N,
        input_size=feats.input_size,
        head=feats.head,
        reservoir_size=0,
    )


def plot_figure13(
    feats: UnitFeatures,
    images: LabelledImages,
    study: InBoxStudy,
    class_names: Sequence[str],
    *,
    n_classes: int = 4,
    n_images: int = 3,
    quantile: float = 0.99,
):
    """The paper's Figure 13 layout (:func:`~camlib.paper.units.plot_class_units`) for the ``n_classes``
    selected classes with the most images: each one's top units on their top images among all the images."""
    rows = []
    for c in study.classes[:n_classes]:
        idx, w = rank_units(feats.weight, c, study.top_units.shape[1])
        rows.append((class_names[c], idx.tolist(), w.tolist()))
    scan = feature_scan(feats, [u for r in rows for u in r[1]], k=n_images, quantile=quantile)
    return plot_class_units(scan, lambda i: images.display(i, feats.input_size), rows, n_images)


def plot_in_box(study: InBoxStudy):
    """Two panels: in-box rate vs box area fraction per selected image (top and random units; the
    diagonal is chance), and the histogram of the per-image difference top - random."""
    import matplotlib.pyplot as plt

    from camlib.core.viz import FIG_DPI

    ok = study.selected & np.isfinite(study.top) & np.isfinite(study.random)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=FIG_DPI)
    a.scatter(study.chance[ok], study.random[ok], s=9, alpha=0.6, label="random live units", color="tab:gray")
    a.scatter(
        study.chance[ok], study.top[ok], s=9, alpha=0.6, label="top units of the class", color="tab:red"
    )
    a.plot([0, 1], [0, 1], "k--", lw=0.8, label="chance (box area)")
    a.set(
        xlabel="GT box area / image",
        ylabel="fraction of the region inside the box",
        xlim=(0, 1),
        ylim=(0, 1.02),
    )
    a.legend(fontsize=7, loc="lower right")
    d = study.top[ok] - study.random[ok]
    b.hist(d, bins=np.linspace(-1, 1, 41), color="tab:blue")
    b.axvline(0, color="k", lw=0.8)
    b.axvline(d.mean(), color="tab:red", lw=1.2, label=f"mean {d.mean():+.3f}")
    b.set(xlabel="in-box rate: top - random (per image)", ylabel="images")
    b.legend(fontsize=7)
    fig.tight_layout()
    return fig
