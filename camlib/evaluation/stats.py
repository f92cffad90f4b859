"""Uncertainty for every number measured on real data, and the one rule that turns it into a verdict.

- :func:`bootstrap_ci`: a statistic over images (default the mean of per-image 0/1 hits, in %) with a
  95% percentile interval from ``scipy.stats.bootstrap`` (seeded, resampling images).
- :func:`bootstrap_table_ci`: a statistic that chooses on the images (MaxBoxAcc: the best threshold of a
  per-image hit table), the choice re-made on every resample.
- :func:`paired_diff_ci`: the mean of ``a - b`` over the SAME images (e.g. GAP hit minus GMP hit per
  image), resampled as pairs (``scipy.stats.bootstrap(..., paired=True)``).
- :func:`bootstrap_interval`: the one resampler behind every interval in camlib
  (``scipy.stats.bootstrap``, percentile method, ``rng=np.random.default_rng(seed)``).
- :func:`verdict`: "agrees" / "reversed" / "not resolved" from a difference's interval and the sign the
  paper reports: agrees when the whole interval lies on the paper's side of 0, reversed when it lies on
  the other side, not resolved when it contains 0. Every notebook decides its "does it agree with the
  paper" sentence with this function, never by hand.
- :func:`stratum_accuracy` and :func:`post_stratified_ci`: accuracy per box-area stratum, and an
  ESTIMATE of the full 50,000-image ILSVRC val number from a sample whose object sizes are not those of
  the val set: ``sum_s N_s / N * acc_s`` with a stratified bootstrap interval (see its docstring for
  the assumption it rests on and what happens to empty strata).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import stats as _stats

__all__ = [
    "BOX_AREA_EDGES",
    "ILSVRC_VAL_BOX_AREA_COUNTS",
    "Estimate",
    "PostStratified",
    "StratumAccuracy",
    "Verdict",
    "bootstrap_ci",
    "bootstrap_interval",
    "bootstrap_table_ci",
    "largest_box_fraction",
    "paired_diff_ci",
    "post_stratified_ci",
    "read_box_area_counts",
    "stratum_accuracy",
    "stratum_index",
    "verdict",
]

Verdict = Literal["agrees", "reversed", "not resolved"]


@dataclass(frozen=True)
class Estimate:
    """A measured value with its ``level`` confidence interval ``[low, high]`` over ``n`` units."""

    value: float
    low: float
    high: float
    n: int
    level: float = 0.95

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.value:.1f} [{self.low:.1f}, {self.high:.1f}] (n={self.n})"


def bootstrap_interval(
    data: Sequence,
    statistic: Callable,
    *,
    paired: bool = False,
    vectorized: bool = False,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    batch: int | None = None,
) -> tuple[float, float]:
    """``(low, high)``: the ``level`` percentile-bootstrap interval of ``statistic(*data)`` from
    ``scipy.stats.bootstrap(method="percentile", rng=np.random.default_rng(seed))``, the one resampler
    of camlib's intervals. ``paired=True`` resamples the samples of ``data`` together (same units);
    otherwise each sample is resampled on its own (independent groups, strata), and a sample of one value
    is held fixed (scipy needs two or more to resample; one value has no resampling variance anyway).
    ``vectorized``: ``statistic`` takes ``axis=``; ``batch`` bounds the memory of the draws (resamples
    per batch). Without spread (nothing to resample, or every sample constant) the interval is the point."""
    data = tuple(np.asarray(d, dtype=float) for d in data)
    free = (
        [i for i, d in enumerate(data) if d.shape[-1] > 1]
        if not paired
        else ([0] if data[0].shape[-1] > 1 else [])
    )
    if not free or all(np.ptp(d) == 0 for d in data):
        v = float(statistic(*data))
        return v, v
    if not paired and len(free) < len(data):
        full, inner = list(data), statistic

        def statistic(*resampled, **kw):
            for i, r in zip(free, resampled, strict=True):
                full[i] = r
            return inner(*full, **kw)

        data = tuple(data[i] for i in free)
    res = _stats.bootstrap(
        data,
        statistic,
        paired=paired,
        vectorized=vectorized,
        confidence_level=level,
        n_resamples=n_resamples,
        batch=batch,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    lo, hi = res.confidence_interval
    return float(lo), float(hi)


def bootstrap_ci(
    values,
    statistic: Callable[[np.ndarray], float] | None = None,
    *,
    scale: float = 100.0,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Estimate:
    """``statistic(values) * scale`` (default: the mean, so 0/1 hits give a percentage) with a
    percentile bootstrap interval over the values (images); seeded, so it comes back identical."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        raise ValueError("no values to estimate from")
    stat = statistic or np.mean
    value = float(stat(v)) * scale
    if stat is np.mean:  # the same resamples, drawn at once (scipy's vectorized path: several times faster)
        lo, hi = bootstrap_interval(
            (v,),
            lambda x, axis=-1: np.mean(x, axis=axis),
            vectorized=True,
            level=level,
            n_resamples=n_resamples,
            seed=seed,
        )
    else:
        lo, hi = bootstrap_interval((v,), stat, level=level, n_resamples=n_resamples, seed=seed)
    return Estimate(value, lo * scale, hi * scale, int(v.size), level)


def bootstrap_table_ci(
    table,
    reduce: Callable[[np.ndarray], float],
    *,
    scale: float = 100.0,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Estimate:
    """``reduce(mean of table over images) * scale`` with a percentile bootstrap interval over images,
    for statistics that CHOOSE something on the images, e.g. MaxBoxAcc (``table`` (N, T): image i hit
    at threshold t; ``reduce=np.max``): every resample re-takes the mean over its images and re-applies
    ``reduce``, so the choice (the best threshold) is re-made on each resample and its noise is in the
    interval. ``table``: (N, ...) 0/1 (or any numbers) per image; seeded.

    scipy's bootstrap resamples 1-D samples, so it resamples the image INDICES (:func:`bootstrap_interval`,
    vectorized) and the statistic reads the rows of ``table`` they name: the same design as resampling rows.
    (The percentile interval of a maximum leans upward: the point value can sit near the interval's
    low end. Read it as the spread of the choose-then-measure number, not as an unbiased estimate.)
    """
    t = np.asarray(table, dtype=float)
    if t.ndim < 1 or t.shape[0] == 0:
        raise ValueError("no images in the table")
    n = t.shape[0]
    flat = t.reshape(n, -1)
    shape = t.shape[1:]
    value = float(reduce(flat.mean(0).reshape(shape))) * scale
    if n < 2 or np.all(flat == flat[0]):
        return Estimate(value, value, value, n, level)

    def statistic(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.intp)
        means = flat[idx].mean(axis=-2).reshape(-1, flat.shape[1])  # one row of threshold means per resample
        return np.array([reduce(m.reshape(shape)) for m in means], dtype=float).reshape(idx.shape[:-1])

    lo, hi = bootstrap_interval(
        (np.arange(n),),
        statistic,
        vectorized=True,
        level=level,
        n_resamples=n_resamples,
        seed=seed,
        batch=max(1, 2_000_000 // flat.size),
    )
    return Estimate(value, lo * scale, hi * scale, n, level)


def paired_diff_ci(
    a, b, *, scale: float = 100.0, level: float = 0.95, n_resamples: int = 2000, seed: int = 0
) -> Estimate:
    """mean(a - b) * scale over paired units (same images) with a paired bootstrap interval
    (``scipy.stats.bootstrap(paired=True)``: one draw of images serves both ``a`` and ``b``)."""
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired values must have the same non-zero length, got {a.size} and {b.size}")
    value = float(np.mean(a - b)) * scale
    lo, hi = bootstrap_interval(
        (a, b), _mean_diff, paired=True, vectorized=True, level=level, n_resamples=n_resamples, seed=seed
    )
    return Estimate(value, lo * scale, hi * scale, int(a.size), level)


def _mean_diff(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a - b, axis=axis)


def verdict(estimate: Estimate | tuple[float, float], paper_sign: int) -> Verdict:
    """Decide a claim from a difference's interval. ``paper_sign`` = +1 when the paper reports the
    difference positive (e.g. GAP - GMP localization accuracy), -1 when negative.

    - the interval lies entirely above 0 (paper_sign=+1) or below 0 (paper_sign=-1): ``"agrees"``;
    - it lies entirely on the other side: ``"reversed"``;
    - it contains 0: ``"not resolved"`` at this sample size.
    """
    if paper_sign not in (1, -1):
        raise ValueError(f"paper_sign must be +1 or -1, got {paper_sign}")
    low, high = (estimate.low, estimate.high) if isinstance(estimate, Estimate) else map(float, estimate)
    if low > high:
        raise ValueError(f"interval [{low}, {high}] is inverted")
    if low > 0:
        sign = 1
    elif high < 0:
        sign = -1
    else:
        return "not resolved"
    return "agrees" if sign == paper_sign else "reversed"


# --------------------------------------------------------------------------- box-area strata

#: Strata of the largest ground-truth box's area, as a fraction of the image: ``[e_k, e_{k+1})``, the
#: last one closed (``np.histogram``'s convention), the rows of ``ilsvrc-val-box-area.csv``.
BOX_AREA_EDGES: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

#: How many of the 50,000 ILSVRC2012 val images fall in each :data:`BOX_AREA_EDGES` stratum (column
#: ``ilsvrc_val_50000`` of ``../shared/data/ilsvrc-val-box-area.csv``, counted from the public
#: wsolevaluation metadata). Shipped as a constant so that a clone without ``../shared`` can reweight;
#: ``tests/test_stats.py`` checks it against the CSV whenever the CSV is present.
ILSVRC_VAL_BOX_AREA_COUNTS: tuple[int, ...] = (
    3532,
    3194,
    6176,
    5818,
    5665,
    5445,
    4842,
    4351,
    3712,
    3108,
    4157,
)


def read_box_area_counts(
    path: str | Path, column: str = "ilsvrc_val_50000"
) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """``(edges, counts)`` from a box-area CSV with columns ``area_from,area_to,<column>...``.

    Rows must be contiguous (each ``area_from`` equals the previous ``area_to``); a bad file raises
    ValueError naming the file, line and fix.
    """
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or column not in rows[0] or "area_from" not in rows[0] or "area_to" not in rows[0]:
        raise ValueError(f"{path}: expected columns area_from,area_to,{column} and at least one row")
    edges, counts = [float(rows[0]["area_from"])], []
    for line, row in enumerate(rows, start=2):
        try:
            lo, hi, count = float(row["area_from"]), float(row["area_to"]), int(row[column])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{line}: {exc}; expect numbers in area_from, area_to, {column}") from exc
        if lo != edges[-1] or hi <= lo or count < 0:
            raise ValueError(
                f"{path}:{line}: stratum [{lo}, {hi}) with count {count} does not follow "
                f"the previous stratum (ending at {edges[-1]}); rows must be contiguous and sorted"
            )
        edges.append(hi)
        counts.append(count)
    return tuple(edges), tuple(counts)


def largest_box_fraction(boxes: Sequence, sizes: Sequence[tuple[float, float]]) -> np.ndarray:
    """Per image, ``max_b (x1 - x0) * (y1 - y0) / (W * H)`` over its boxes ``(k, 4)`` in pixels
    ``x0, y0, x1, y1`` of an image of ``sizes[i] = (W, H)``: the quantity the strata are made of.
    (This convention reproduces the CSV's counts for ``ilsvrc-val-sample`` and ``ilsvrc-val-1k``.)"""
    if len(boxes) != len(sizes):
        raise ValueError(f"{len(boxes)} box lists but {len(sizes)} image sizes; pass one (W, H) per image")
    out = np.empty(len(boxes))
    for i, (b, (w, h)) in enumerate(zip(boxes, sizes, strict=True)):
        b = np.asarray(b, dtype=float).reshape(-1, 4)
        if b.size == 0:
            raise ValueError(f"image {i} has no box; the box-area strata need at least one per image")
        out[i] = float(((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).max()) / (float(w) * float(h))
    return out


def stratum_index(area, edges: Sequence[float] = BOX_AREA_EDGES) -> np.ndarray:
    """Stratum of each area fraction: ``k`` with ``edges[k] <= a < edges[k + 1]`` (the last stratum
    also holds ``a == edges[-1]``). Values outside ``[edges[0], edges[-1]]`` raise ValueError."""
    a = np.asarray(area, dtype=float).ravel()
    e = np.asarray(edges, dtype=float)
    if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
        raise ValueError(f"edges {tuple(edges)} must be at least two increasing numbers")
    bad = np.flatnonzero(~((a >= e[0]) & (a <= e[-1])))
    if bad.size:
        raise ValueError(
            f"area fraction {float(a[bad[0]])!r} (image {bad[0]}) lies outside [{e[0]}, {e[-1]}]; "
            "pass the largest box's area divided by the image area"
        )
    return np.minimum(np.searchsorted(e, a, side="right") - 1, e.size - 2)


@dataclass(frozen=True)
class StratumAccuracy:
    """One stratum ``[low_edge, high_edge)``: ``population`` images of the full set, ``n`` measured
    here, their accuracy (``None`` when ``n == 0``)."""

    low_edge: float
    high_edge: float
    population: int
    n: int
    estimate: Estimate | None

    def to_dict(self) -> dict:
        return {
            "low_edge": self.low_edge,
            "high_edge": self.high_edge,
            "population": self.population,
            "n": self.n,
            "estimate": None if self.estimate is None else self.estimate.to_dict(),
        }


def _strata_inputs(
    hits, area, edges: Sequence[float], population: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h = np.asarray(hits, dtype=float).ravel()
    k = stratum_index(area, edges)
    if h.size != k.size or h.size == 0:
        raise ValueError(f"hits ({h.size}) and area fractions ({k.size}) must be the same non-zero length")
    pop = np.asarray(population, dtype=float)
    if pop.shape != (len(edges) - 1,) or np.any(pop < 0) or pop.sum() <= 0:
        raise ValueError(
            f"population needs one count >= 0 per stratum ({len(edges) - 1}), not all zero; "
            f"got {tuple(population)}"
        )
    return h, k, pop


def stratum_accuracy(
    hits,
    area,
    *,
    edges: Sequence[float] = BOX_AREA_EDGES,
    population: Sequence[int] = ILSVRC_VAL_BOX_AREA_COUNTS,
    scale: float = 100.0,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> list[StratumAccuracy]:
    """Accuracy within each box-area stratum: :func:`bootstrap_ci` of the hits of the images whose
    largest-box fraction ``area`` falls in it, ``None`` for a stratum without images."""
    h, k, pop = _strata_inputs(hits, area, edges, population)
    out = []
    for s in range(len(edges) - 1):
        sel = h[k == s]
        est = (
            bootstrap_ci(sel, scale=scale, level=level, n_resamples=n_resamples, seed=seed)
            if sel.size
            else None
        )
        out.append(StratumAccuracy(float(edges[s]), float(edges[s + 1]), int(pop[s]), int(sel.size), est))
    return out


@dataclass(frozen=True)
class PostStratified:
    """A post-stratified estimate: ``estimate`` (value, interval, n = images used), the per-stratum
    accuracies, the ``cells`` (groups of stratum indices pooled because some had too few images),
    and ``covered``, the share of the population in strata that had at least ``min_count`` images."""

    estimate: Estimate
    strata: tuple[StratumAccuracy, ...]
    cells: tuple[tuple[int, ...], ...]
    covered: float

    def to_dict(self) -> dict:
        return {
            "estimate": self.estimate.to_dict(),
            "strata": [s.to_dict() for s in self.strata],
            "cells": [list(c) for c in self.cells],
            "covered": self.covered,
        }


def _cells(counts: np.ndarray, min_count: int) -> list[list[int]]:
    """Pool strata with fewer than ``min_count`` images into their neighbours: adjacent strata ``k``,
    ``k + 1`` stay apart only when both have enough images, so a run of thin strata joins the strata on
    both sides of it (the one side at either end)."""
    ok = counts >= min_count
    if not ok.any():
        raise ValueError(f"no stratum has {min_count} or more images; nothing to reweight")
    cells = [[0]]
    for s in range(1, counts.size):
        if ok[s - 1] and ok[s]:
            cells.append([s])
        else:
            cells[-1].append(s)
    return cells


def post_stratified_ci(
    hits,
    area,
    *,
    edges: Sequence[float] = BOX_AREA_EDGES,
    population: Sequence[int] = ILSVRC_VAL_BOX_AREA_COUNTS,
    min_count: int = 1,
    scale: float = 100.0,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> PostStratified:
    """Estimate the accuracy over a whole population (default: the 50,000 ILSVRC val images) from a
    sample with a different mix of object sizes, by post-stratification on the largest box's area:

        value = scale * sum_c W_c * acc_c,   W_c = sum_{s in c} N_s / N,   acc_c = mean of the hits in c

    where ``N_s`` is the population count of stratum ``s`` (``population``), ``N = sum_s N_s`` and the
    cells ``c`` are the strata, except that a stratum with fewer than ``min_count`` images here
    (default 1: an EMPTY stratum) is pooled with its neighbours (a run of such strata joins the strata
    on both sides; at either end, the one neighbour), so its population weight goes to the accuracy
    of the nearest object sizes that were measured. ``covered`` reports how much weight that was.

    The interval is a percentile bootstrap resampling images WITHIN each cell (``n_c`` draws with
    replacement, cells independent): ``scipy.stats.bootstrap`` with the cells as its independent samples
    (:func:`bootstrap_interval`), seeded by ``seed``.

    It is an ESTIMATE, not a measurement of the full set: it assumes that within a box-area stratum
    the sample's images are like the population's (no other difference in class mix, image quality or
    resizing), and it corrects only for box size. A cell of one image contributes no bootstrap
    variance, so with thin strata the interval is too narrow: raise ``min_count`` to pool them.
    """
    h, k, pop = _strata_inputs(hits, area, edges, population)
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    strata = stratum_accuracy(
        h,
        area,
        edges=edges,
        population=population,
        scale=scale,
        level=level,
        n_resamples=n_resamples,
        seed=seed,
    )
    counts = np.array([s.n for s in strata])
    cells = _cells(counts, min_count)
    weights = np.array([pop[c].sum() for c in cells]) / pop.sum()
    groups = [h[np.isin(k, c)] for c in cells]
    value = float(sum(w * g.mean() for w, g in zip(weights, groups, strict=True)))

    def reweighted(*gs, axis=-1):  # the cells are scipy's independent samples
        return sum(w * g.mean(axis=axis) for w, g in zip(weights, gs, strict=True))

    lo, hi = bootstrap_interval(
        groups,
        reweighted,
        vectorized=True,
        level=level,
        n_resamples=n_resamples,
        seed=seed,
        batch=max(1, 1_000_000 // max(g.size for g in groups)),
    )
    covered = float(pop[counts >= min_count].sum() / pop.sum())
    estimate = Estimate(value * scale, lo * scale, hi * scale, int(h.size), level)
    return PostStratified(estimate, tuple(strata), tuple(tuple(c) for c in cells), covered)
