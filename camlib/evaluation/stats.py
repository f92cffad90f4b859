"""Uncertainty for every number measured on real data, and the one rule that turns it into a verdict.

- :func:`bootstrap_ci`: a statistic over images (default the mean of per-image 0/1 hits, in %) with a
  95% percentile interval from ``scipy.stats.bootstrap`` (seeded, resampling images).
- :func:`paired_diff_ci`: the mean of ``a - b`` over the SAME images (e.g. GAP hit minus GMP hit per
  image), resampled as pairs (``scipy.stats.bootstrap(..., paired=True)``).
- :func:`verdict`: "agrees" / "reversed" / "not resolved" from a difference's interval and the sign the
  paper reports: agrees when the whole interval lies on the paper's side of 0, reversed when it lies on
  the other side, not resolved when it contains 0. Every notebook decides its "does it agree with the
  paper" sentence with this function, never by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import stats as _stats

__all__ = ["Estimate", "Verdict", "bootstrap_ci", "paired_diff_ci", "verdict"]

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


def _interval(data: tuple[np.ndarray, ...], statistic: Callable, *, paired: bool, level: float, n_resamples: int,
              seed: int) -> tuple[float, float]:
    if len(data[0]) < 2 or all(np.ptp(d) == 0 for d in data):  # no spread: the interval is the point
        v = float(statistic(*data))
        return v, v
    res = _stats.bootstrap(data, statistic, paired=paired, vectorized=False, confidence_level=level,
                           n_resamples=n_resamples, method="percentile", rng=np.random.default_rng(seed))
    lo, hi = res.confidence_interval
    return float(lo), float(hi)


def bootstrap_ci(values, statistic: Callable[[np.ndarray], float] | None = None, *, scale: float = 100.0,
                 level: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> Estimate:
    """``statistic(values) * scale`` (default: the mean, so 0/1 hits give a percentage) with a
    percentile bootstrap interval over the values (images); seeded, so it comes back identical."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        raise ValueError("no values to estimate from")
    stat = statistic or np.mean
    value = float(stat(v)) * scale
    lo, hi = _interval((v,), stat, paired=False, level=level, n_resamples=n_resamples, seed=seed)
    return Estimate(value, lo * scale, hi * scale, int(v.size), level)


def paired_diff_ci(a, b, *, scale: float = 100.0, level: float = 0.95, n_resamples: int = 2000,
                   seed: int = 0) -> Estimate:
    """mean(a - b) * scale over paired units (same images) with a paired bootstrap interval."""
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired values must have the same non-zero length, got {a.size} and {b.size}")
    d = a - b
    return bootstrap_ci(d, scale=scale, level=level, n_resamples=n_resamples, seed=seed)


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
