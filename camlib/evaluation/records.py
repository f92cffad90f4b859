"""Per-image outcomes of one evaluation run, and every interval, stratum table and held-out choice made of them.

The one evaluation loop (:func:`camlib.evaluation.loop.run_evaluation`) keeps, per image, whether each
protocol got it right (the evaluators' ``keep_per_image`` tables, :class:`~camlib.evaluation.metrics.PerImage`)
and which image it was with the area of its largest ground-truth box
(:class:`~camlib.evaluation.metrics.ImageIndex`). :func:`records_of` gathers them into one
:class:`ImageRecords`; everything a notebook reports about uncertainty is made of it here:

- :meth:`ImageRecords.headline`: every headline number (classification, GT-known and top-1/top-5
  localization at the paper's rule, the released rule, the five-box heuristic, MaxBoxAcc/V2) as an
  :class:`~camlib.evaluation.stats.Estimate` with a seeded 95% bootstrap interval over images. The hit
  rates use :func:`~camlib.evaluation.stats.bootstrap_ci`; MaxBoxAcc and MaxBoxAccV2 choose their best
  threshold on all the images, and their interval is that of the hits at the chosen threshold(s)
  (:meth:`ImageRecords.maxboxacc`; ``rechoose=True`` re-chooses it per resample instead).
- :meth:`ImageRecords.strata` / :meth:`ImageRecords.post_stratified`: accuracy per box-area stratum and
  the post-stratified ESTIMATE of the full 50,000-image val number
  (:func:`~camlib.evaluation.stats.stratum_accuracy`, :func:`~camlib.evaluation.stats.post_stratified_ci`).
- :func:`held_out_halves`: the threshold lesson on disjoint halves (choose on one half, report on the
  other, and the reverse), with intervals and the verdict on "choosing on the test images is optimistic".
- :func:`pooled`: several sets' records as one (only ever reported with the caveat that the sets are
  not a random sample of val).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from camlib.core.boxes import HEURISTIC_LOOSE, HEURISTIC_TIGHT
from camlib.evaluation.batch import box_key
from camlib.evaluation.stats import (
    BOX_AREA_EDGES,
    ILSVRC_VAL_BOX_AREA_COUNTS,
    Estimate,
    PostStratified,
    StratumAccuracy,
    bootstrap_ci,
    bootstrap_table_ci,
    paired_diff_ci,
    post_stratified_ci,
    stratum_accuracy,
    verdict,
)

__all__ = [
    "ImageRecords",
    "compare_runs",
    "error_of",
    "format_estimates",
    "format_comparison",
    "format_held_out",
    "format_heuristic_held_out",
    "heuristic_held_out",
    "heuristic_table",
    "held_out_halves",
    "paired_effect",
    "plot_strata",
    "pooled",
    "records_of",
    "strata_figure",
    "summary_text",
    "set_summary",
    "split_halves",
    "strata_dict",
]

#: The two outcomes reported per box-area stratum and post-stratified: GT-known and top-1 localization
#: at the paper's rule (key in the results -> hit name suffix).
STRATA_OUTCOMES = {"gt_known_loc_acc": "gt_known", "top1_loc_acc": "top1_loc"}

POOLED_CAVEAT = (
    "pooled over sets that are NOT a random sample of the 50,000 val images (each chosen its own "
    "way: object sizes, image sizes and classes differ), weighted by their sizes: a rate over these "
    "images, not an estimate of the val number; use the per-set or post-stratified figures for that"
)

POST_STRATIFIED_CAVEAT = (
    "ESTIMATE, not a measurement: the set's per-stratum accuracies reweighted with the 50,000 "
    "val images' box-area counts; assumes the set's images are like val's within each stratum "
    "(other differences, e.g. resizing, are not corrected); strata with fewer than min_count "
    "images are pooled with their neighbours ('covered' = val share in well-measured strata)"
)

#: What the loop's evaluators are called in :func:`records_of`'s hit names: a localization evaluator
#: by its box set (``"paper@0.2"``, ``"released"``, ``"heuristic"``, ``"heuristic_released"``).
CLASSIFICATION = "classification"


@dataclass
class ImageRecords:
    """Per-image outcomes of one run, all in the same image order.

    ``image_ids``; ``area``: largest ground-truth box / image area; ``hits``: name -> (N,) bool, e.g.
    ``"classification.top1"``, ``"paper@0.2.gt_known"``, ``"paper@0.2.top1_loc"``,
    ``"released.top5_loc"``, ``"heuristic.top5_loc"``; ``sweeps``: name -> (N, D, T) bool hit tables of
    the threshold sweeps (``"wsol.largest"``, ``"wsol.all"``: Choe et al.'s; ``"gt_known_sweep.largest"``:
    the paper's rule at each fraction), with their ``thresholds`` and ``iou_thresholds`` in
    ``sweep_axes``.
    """

    image_ids: list
    area: np.ndarray
    hits: dict[str, np.ndarray]
    sweeps: dict[str, np.ndarray] = field(default_factory=dict)
    sweep_axes: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.image_ids)
        self.area = np.asarray(self.area, dtype=float)
        for k, v in {"area": self.area, **self.hits, **self.sweeps}.items():
            if len(v) != n:
                raise ValueError(
                    f"{n} image ids but {k!r} has {len(v)} rows: every outcome needs one row per image"
                )

    def __len__(self) -> int:
        return len(self.image_ids)

    def subset(self, indices) -> ImageRecords:
        """The records of the images at ``indices`` (e.g. one half)."""
        idx = np.asarray(indices, dtype=np.int64)
        return ImageRecords(
            [self.image_ids[i] for i in idx],
            self.area[idx],
            {k: v[idx] for k, v in self.hits.items()},
            {k: v[idx] for k, v in self.sweeps.items()},
            dict(self.sweep_axes),
        )

    def estimate(self, name: str, *, seed: int = 0, n_resamples: int = 2000) -> Estimate:
        """The hit rate (%) of outcome ``name`` with its bootstrap interval over the images."""
        if name not in self.hits:
            raise KeyError(f"no per-image outcome {name!r}; have {sorted(self.hits)}")
        return bootstrap_ci(self.hits[name], seed=seed, n_resamples=n_resamples)

    def maxboxacc(
        self, *, v2: bool = False, rechoose: bool = False, seed: int = 0, n_resamples: int = 2000
    ) -> Estimate:
        """MaxBoxAcc (largest component, IoU 0.5) or MaxBoxAccV2 (all components, mean over the IoU
        thresholds of the best threshold's accuracy), with a 95% interval over images.

        Default: the threshold(s) are chosen on all the images (as the value is), and the interval is
        the bootstrap of the per-image hits at them; it leaves out the noise of that choice (the
        held-out halves measure it: :func:`held_out_halves`). ``rechoose=True``: the threshold is
        re-chosen on every resample (:func:`~camlib.evaluation.stats.bootstrap_table_ci`), whose
        percentile interval of a maximum leans upward and may not contain the value.
        """
        key = "wsol.all" if v2 else "wsol.largest"
        ious = self.sweep_axes[key][1]
        table = self.sweeps[key] if v2 else self.sweeps[key][:, [ious.index(0.5)]] if 0.5 in ious else None
        if table is None:
            raise ValueError(f"MaxBoxAcc needs IoU 0.5 among the sweep's IoU thresholds {ious}")
        if rechoose:
            return bootstrap_table_ci(
                table, lambda acc: acc.max(axis=1).mean(), seed=seed, n_resamples=n_resamples
            )
        best = table.mean(0).argmax(axis=1)  # (D,): the best threshold per IoU threshold
        per_image = table[:, np.arange(table.shape[1]), best].mean(axis=1)
        return bootstrap_ci(per_image, seed=seed, n_resamples=n_resamples)

    def headline(
        self, fraction: float = 0.2, *, seed: int = 0, n_resamples: int = 2000
    ) -> dict[str, Estimate]:
        """Every headline accuracy (%) this run measured, each with its 95% interval over images (see the
        module docstring): ``top1_acc``, ``top5_acc``, ``gt_known_loc_acc``, ``top1_loc_acc``,
        ``top5_loc_acc`` (paper's rule at ``fraction``), ``released_*``, ``heuristic_top5_loc_acc``,
        ``heuristic_released_top5_loc_acc``, ``maxboxacc``, ``maxboxacc_v2``. Errors: :func:`error_of`."""
        paper = box_key("paper", fraction)
        names = {"top1_acc": f"{CLASSIFICATION}.top1", "top5_acc": f"{CLASSIFICATION}.top5"}
        for prefix, rule in (("", paper), ("released_", "released")):
            names |= {
                f"{prefix}gt_known_loc_acc": f"{rule}.gt_known",
                f"{prefix}top1_loc_acc": f"{rule}.top1_loc",
                f"{prefix}top5_loc_acc": f"{rule}.top5_loc",
            }
        names |= {
            "heuristic_top5_loc_acc": "heuristic.top5_loc",
            "heuristic_released_top5_loc_acc": "heuristic_released.top5_loc",
        }
        out = {
            k: self.estimate(v, seed=seed, n_resamples=n_resamples)
            for k, v in names.items()
            if v in self.hits
        }
        if "wsol.largest" in self.sweeps:
            out["maxboxacc"] = self.maxboxacc(seed=seed, n_resamples=n_resamples)
            out["maxboxacc_v2"] = self.maxboxacc(v2=True, seed=seed, n_resamples=n_resamples)
        return out

    def strata(
        self,
        names: Sequence[str],
        *,
        edges: Sequence[float] = BOX_AREA_EDGES,
        population: Sequence[int] = ILSVRC_VAL_BOX_AREA_COUNTS,
        seed: int = 0,
    ) -> dict[str, list[StratumAccuracy]]:
        """Accuracy of each outcome in ``names`` per box-area stratum (with intervals; None where empty)."""
        return {
            n: stratum_accuracy(self.hits[n], self.area, edges=edges, population=population, seed=seed)
            for n in names
        }

    def post_stratified(
        self,
        name: str,
        *,
        min_count: int = 5,
        edges: Sequence[float] = BOX_AREA_EDGES,
        population: Sequence[int] = ILSVRC_VAL_BOX_AREA_COUNTS,
        seed: int = 0,
    ) -> PostStratified:
        """An ESTIMATE of outcome ``name``'s rate over the whole population (default: the 50,000 val
        images) reweighted per box-area stratum; strata with fewer than ``min_count`` images are pooled
        with their neighbours (:func:`~camlib.evaluation.stats.post_stratified_ci`)."""
        return post_stratified_ci(
            self.hits[name], self.area, edges=edges, population=population, min_count=min_count, seed=seed
        )


def records_of(evaluators: Mapping[str, object]) -> ImageRecords:
    """The :class:`ImageRecords` of a run's evaluators (those of :func:`~camlib.evaluation.loop.run_evaluation`):
    the :class:`~camlib.evaluation.metrics.ImageIndex` (required), every evaluator constructed with
    ``keep_per_image=True`` (classification: ``"classification.top{k}"``; localization: named by its box
    set, ``"paper@0.2.top1_loc"``...) and every :class:`~camlib.evaluation.wsol.BoxAccSweep` with
    per-image tables (``"<name>.largest"``, ``"<name>.all"``)."""
    from camlib.evaluation.metrics import ClassificationEvaluator, ImageIndex, LocalizationEvaluator
    from camlib.evaluation.wsol import BoxAccSweep

    index = [ev for ev in evaluators.values() if isinstance(ev, ImageIndex)]
    if len(index) != 1:
        raise ValueError(
            "records_of needs exactly one ImageIndex among the evaluators (which images, in which order)"
        )
    info = index[0].per_image()
    hits: dict[str, np.ndarray] = {}
    sweeps: dict[str, np.ndarray] = {}
    axes: dict = {}
    for name, ev in evaluators.items():
        if isinstance(ev, (ClassificationEvaluator, LocalizationEvaluator)) and ev.keep_per_image:
            prefix = CLASSIFICATION if isinstance(ev, ClassificationEvaluator) else ev.boxes
            hits |= {f"{prefix}.{col}": v for col, v in ev.per_image().items()}
        elif isinstance(ev, BoxAccSweep) and ev.keep_per_image:
            largest, anyhit = ev.per_image()
            for kind, table in (("largest", largest), ("all", anyhit)):
                sweeps[f"{name}.{kind}"] = table
                axes[f"{name}.{kind}"] = (tuple(ev.thresholds.tolist()), tuple(ev.iou_thresholds))
    return ImageRecords(info["image_id"], info["area"], hits, sweeps, axes)


def strata_dict(strata: Sequence[StratumAccuracy]) -> dict[str, dict]:
    """Per-stratum accuracies keyed ``"0.2-0.3"`` (JSON-ready; the report shows each with its interval)."""
    return {
        f"{s.low_edge:g}-{s.high_edge:g}": {"n": s.n, "population": s.population, "accuracy": s.estimate}
        for s in strata
    }


def set_summary(
    records: ImageRecords,
    *,
    fraction: float = 0.2,
    seed: int = 0,
    min_count: int = 5,
    strata: bool = True,
    fractions: Sequence[float] = (),
) -> dict:
    """Everything reported about one set's run, JSON-ready (Estimates stay Estimates): ``n``,
    ``headline`` (:meth:`ImageRecords.headline`), ``by_fraction`` (GT-known, top-1 and top-5
    localization at the paper's rule at each of ``fractions``), and with ``strata`` and box areas known:
    ``strata`` (GT-known and top-1 localization at the paper's rule per box-area stratum) and
    ``post_stratified`` (their reweighted ESTIMATE of the full-val number, with ``covered``, the
    ``cells`` pooled and the caveat)."""
    out: dict = {"n": len(records), "headline": records.headline(fraction, seed=seed)}
    if fractions:
        cols = {"gt_known_loc_acc": "gt_known", "top1_loc_acc": "top1_loc", "top5_loc_acc": "top5_loc"}
        out["by_fraction"] = {
            f"{f:g}": {
                k: records.estimate(f"{box_key('paper', f)}.{c}", seed=seed)
                for k, c in cols.items()
                if f"{box_key('paper', f)}.{c}" in records.hits
            }
            for f in fractions
        }
    paper = box_key("paper", fraction)
    names = {k: f"{paper}.{v}" for k, v in STRATA_OUTCOMES.items() if f"{paper}.{v}" in records.hits}
    if not strata or not names or not np.isfinite(records.area).all():
        return out
    per = records.strata(list(names.values()), seed=seed)
    out["strata"] = {k: strata_dict(per[v]) for k, v in names.items()}
    try:
        post = {k: records.post_stratified(v, min_count=min_count, seed=seed) for k, v in names.items()}
    except ValueError as err:  # a tiny set (a smoke test's 8 images): no stratum big enough
        out["post_stratified_note"] = f"no post-stratified estimate: {err}"
        return out
    out["post_stratified"] = {
        k: {
            "estimate": p.estimate,
            "covered": p.covered,
            "cells": [list(c) for c in p.cells],
            "min_count": min_count,
        }
        for k, p in post.items()
    }
    out["post_stratified_caveat"] = POST_STRATIFIED_CAVEAT
    return out


def summary_text(summary: dict, label: str) -> str:
    """A :func:`set_summary` as text: the headline numbers with their intervals, then each
    post-stratified estimate beside the measured number it reweights."""
    lines = [
        f"== {label}: 95% bootstrap intervals over images (seeded)",
        format_estimates(summary["headline"]),
    ]
    for key, by in summary.get("by_fraction", {}).items():
        lines.append(
            f"  t = {key}: " + "   ".join(f"{k.removesuffix('_loc_acc')} {v}" for k, v in by.items())
        )
    for key, p in summary.get("post_stratified", {}).items():
        lines.append(
            f"  {key}: measured {summary['headline'][key]} -> post-stratified ESTIMATE of the 50,000-image "
            f"val number {p['estimate']} (strata with >= {p['min_count']} images cover {p['covered']:.0%} of val)"
        )
    return "\n".join(lines)


def format_held_out(h: dict, label: str) -> str:
    """A :func:`held_out_halves` result as text."""
    lines = [
        f"{label}: t chosen on the other half (every image reported once): {h['cross_fitted']};  t chosen on all "
        f"the test images (t={h['oracle_threshold']:.2f}): {h['oracle']};  optimism {h['optimism']} -> {h['verdict']}"
    ]
    for tag in ("A->B", "B->A"):
        d = h[tag]
        lines.append(
            f"    choose on {tag[0]} (n={d['n_choose']}): t={d['threshold']:.2f} -> on {tag[-1]}: {d['report_ci']};"
            f"  chosen on {tag[-1]} itself: t={d['oracle_threshold']:.2f}, optimism {d['optimism_ci']}"
        )
    return "\n".join(lines)


def paired_effect(
    before: ImageRecords, after: ImageRecords, names: Mapping[str, str], *, seed: int = 0
) -> dict:
    """The same images measured two ways (e.g. as they are vs squashed to 227 x 227): per outcome
    (result key -> hit name), both rates and ``after - before`` paired over the images the two runs share
    (matched by image id), each with its interval."""
    pos = {i: k for k, i in enumerate(before.image_ids)}
    common = [i for i in after.image_ids if i in pos]
    if not common:
        raise ValueError("the two runs share no image id")
    ib = np.array([pos[i] for i in common])
    ia = np.array([after.image_ids.index(i) for i in common])
    out = {}
    for key, name in names.items():
        b, a = before.hits[name][ib], after.hits[name][ia]
        out[key] = {
            "before": bootstrap_ci(b, seed=seed),
            "after": bootstrap_ci(a, seed=seed),
            "difference": paired_diff_ci(a, b, seed=seed),
        }
    return out


#: Outcomes compared between two map sources on the same images (result key -> hit name suffix of the
#: paper's rule at 0.2, the released rule, the heuristic).
COMPARED = {
    "gt_known_loc_acc": "paper@0.2.gt_known",
    "top1_loc_acc": "paper@0.2.top1_loc",
    "top5_loc_acc": "paper@0.2.top5_loc",
    "heuristic_top5_loc_acc": "heuristic.top5_loc",
    "released_gt_known_loc_acc": "released.gt_known",
    "released_top1_loc_acc": "released.top1_loc",
    "released_top5_loc_acc": "released.top5_loc",
}


def compare_runs(
    a: ImageRecords,
    b: ImageRecords,
    *,
    paper_sign: int = 1,
    names: Mapping[str, str] = COMPARED,
    seed: int = 0,
) -> dict:
    """Run ``a`` vs run ``b`` on the images both saw (e.g. CAM vs Backprop): per outcome both rates,
    the paired difference a - b and its :func:`~camlib.evaluation.stats.verdict` against the paper's sign
    (+1: the paper reports a ahead). Outcomes missing from either run are left out."""
    names = {k: v for k, v in names.items() if v in a.hits and v in b.hits}
    out = paired_effect(b, a, names, seed=seed)
    return {
        k: {
            "a": v["after"],
            "b": v["before"],
            "difference": v["difference"],
            "verdict": verdict(v["difference"], paper_sign),
        }
        for k, v in out.items()
    }


def format_comparison(cmp: dict, label: str, a: str = "CAM", b: str = "Backprop") -> str:
    """A :func:`compare_runs` result as text, one outcome per line, with the verdict."""
    lines = [f"{label}: {a} - {b}, paired over the same images (verdict: the paper reports {a} ahead)"]
    lines += [
        f"  {k:<28} {a} {v['a']}  {b} {v['b']}  difference {v['difference']} -> {v['verdict']}"
        for k, v in cmp.items()
    ]
    return "\n".join(lines)


def strata_figure(records: Mapping[str, ImageRecords], fraction: float = 0.2, *, seed: int = 0):
    """The figure of the box-area lesson: GT-known and top-1 localization (paper's rule at
    ``fraction``) per box-area stratum, one series per set (label -> records), with 95% intervals."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    titles = {"gt_known": "GT-known localization", "top1_loc": "top-1 localization"}
    for ax, (suffix, title) in zip(axes, titles.items(), strict=True):
        name = f"{box_key('paper', fraction)}.{suffix}"
        plot_strata(
            {lab: r.strata([name], seed=seed)[name] for lab, r in records.items()},
            ax=ax,
            title=f"{title}, paper rule t={fraction:g}, IoU 0.5",
        )
    fig.tight_layout()
    return fig


def pooled(records: Sequence[ImageRecords]) -> ImageRecords:
    """Several runs' records as one set of images (outcomes present in all of them). Only meaningful
    with its caveat: sets chosen differently are not a random sample of the val images, so a pooled
    rate is a rate over THESE images, weighted by how many each set has."""
    if not records:
        raise ValueError("nothing to pool")
    hit_names = set.intersection(*(set(r.hits) for r in records))
    sweep_names = {
        k
        for k in set.intersection(*(set(r.sweeps) for r in records))
        if len({r.sweep_axes[k] for r in records}) == 1
    }
    return ImageRecords(
        [i for r in records for i in r.image_ids],
        np.concatenate([r.area for r in records]),
        {k: np.concatenate([r.hits[k] for r in records]) for k in sorted(hit_names)},
        {k: np.concatenate([r.sweeps[k] for r in records]) for k in sorted(sweep_names)},
        {k: records[0].sweep_axes[k] for k in sweep_names},
    )


def error_of(est: Estimate) -> Estimate:
    """An accuracy's Estimate as an error rate (%): ``100 - value`` with the interval flipped."""
    return Estimate(100.0 - est.value, 100.0 - est.high, 100.0 - est.low, est.n, est.level)


def format_estimates(estimates: Mapping[str, Estimate], width: int = 34) -> str:
    """One line per estimate: ``name  value [low, high] (n=N)``."""
    return "\n".join(f"{k:<{width}} {v}" for k, v in estimates.items())


# ------------------------------------------------------------------------------ choosing thresholds
def split_halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint random halves of ``range(n)`` (sorted index arrays), seeded."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2 :])


def held_out_halves(
    table: np.ndarray, thresholds: Sequence[float], *, seed: int = 0, n_resamples: int = 2000
) -> dict:
    """The threshold lesson on disjoint halves A and B of the images: choose the threshold on A, report
    on B; then on B, report on A (:func:`camlib.evaluation.wsol.held_out_threshold`). Adds:

    - per direction, ``report_ci``: the honest accuracy on the reported half with its interval, and
      ``optimism_ci``: the accuracy the threshold chosen on the reported half itself would claim minus
      the honest one, paired over the reported images (the two thresholds taken as chosen);
    - ``cross_fitted``: every image reported once, at the threshold chosen on the other half (n = all);
      ``oracle``: the best threshold chosen on all images and reported on them (what a test-tuned paper
      would print); ``optimism``: oracle - cross_fitted paired over all images, and its ``verdict``
      (:func:`camlib.evaluation.stats.verdict` with sign +1: "agrees" when choosing on the test images
      is measurably optimistic, "not resolved" when the interval contains 0).

    ``table``: (N, T) bool, image i correct at threshold t.
    """
    from camlib.evaluation.wsol import held_out_threshold

    hits = np.asarray(table, bool)
    a, b = split_halves(len(hits), seed)
    out: dict = {"seed": seed, "n": len(hits)}
    crossfit = np.zeros(len(hits), bool)
    for tag, (choose, report) in {"A->B": (a, b), "B->A": (b, a)}.items():
        h = {
            k: v
            for k, v in held_out_threshold(hits, thresholds, choose, report).items()
            if not k.startswith("curve")
        }
        j, jo = list(thresholds).index(h["threshold"]), list(thresholds).index(h["oracle_threshold"])
        h["report_ci"] = bootstrap_ci(hits[report, j], seed=seed, n_resamples=n_resamples)
        h["optimism_ci"] = paired_diff_ci(
            hits[report, jo], hits[report, j], seed=seed, n_resamples=n_resamples
        )
        crossfit[report] = hits[report, j]
        out[tag] = h
    best = int(hits.mean(0).argmax())
    out["oracle_threshold"] = float(thresholds[best])
    out["cross_fitted"] = bootstrap_ci(crossfit, seed=seed, n_resamples=n_resamples)
    out["oracle"] = bootstrap_ci(hits[:, best], seed=seed, n_resamples=n_resamples)
    out["optimism"] = paired_diff_ci(hits[:, best], crossfit, seed=seed, n_resamples=n_resamples)
    out["verdict"] = verdict(out["optimism"], +1)
    return out


def heuristic_table(result: Mapping, tights: Sequence[float], looses: Sequence[float]) -> np.ndarray:
    """(N, len(tights), len(looses)) bool: is the five-box heuristic (paper rule, Table 3) right at top-5
    on image i with tight fraction ``tights[j]`` and loose fraction ``looses[l]``? From what an
    :func:`~camlib.evaluation.localize.evaluate_protocols` pass kept (``keep_predictions``), no map
    recomputed: a heuristic box counts only when its class is the true one, so the image is right when
    the true class is 1st or 2nd and its tight box hits, or 1st to 3rd and its loose box hits; and the
    true class's map is the map the GT-known sweep boxed (``"gt_known_sweep.largest"``, the paper rule
    at each fraction, IoU >= 0.5). Every fraction must be one of that sweep's (0.05, 0.1, ..., 0.95)."""
    rec, preds = result["records"], result["predictions"]
    if [p["image_id"] for p in preds] != list(rec.image_ids):
        raise ValueError("the kept predictions and the per-image records are not the same images in order")
    thresholds, ious = rec.sweep_axes["gt_known_sweep.largest"]
    col = {round(float(t), 6): j for j, t in enumerate(thresholds)}
    missing = [f for f in (*tights, *looses) if round(float(f), 6) not in col]
    if missing:
        raise ValueError(f"fractions {missing} were not swept; choose among {[float(t) for t in thresholds]}")
    hit = rec.sweeps["gt_known_sweep.largest"][:, list(ious).index(0.5), :]
    rank = np.array([list(p["pred_classes"][:3]).index(p["label"]) if p["label"] in p["pred_classes"][:3] else 3
                     for p in preds])  # fmt: skip
    tight = hit[:, [col[round(float(t), 6)] for t in tights]] & (rank < 2)[:, None]
    loose = hit[:, [col[round(float(f), 6)] for f in looses]] & (rank < 3)[:, None]
    return tight[:, :, None] | loose[:, None, :]


def heuristic_held_out(
    result: Mapping,
    *,
    tights: Sequence[float] = (0.3, 0.35, 0.4, 0.45, 0.5, 0.6),
    looses: Sequence[float] = (0.1, 0.15, 0.2, 0.25, 0.3),
    fixed: tuple[float, float] = (HEURISTIC_TIGHT, HEURISTIC_LOOSE),
    seed: int = 0,
    n_resamples: int = 2000,
) -> dict:
    """Exercise 03.1: the heuristic's (tight, loose) chosen on half A of the images (the best top-5
    localization accuracy over the grid, loose <= tight; ties: the first in grid order), its top-5
    localization error reported on half B (:func:`split_halves`), beside the a-priori ``fixed`` choice on
    the same half B, and the paired difference fixed error - chosen error on B (> 0: the choice helps)
    with its :func:`~camlib.evaluation.stats.verdict`. ``fixed_err_all``: the fixed choice over all
    images, the number the protocol run itself reports (``result["heuristic"]["top5_loc_err"]``)."""
    from camlib.evaluation.wsol import held_out_threshold

    grid_t, grid_l = list(tights) + [fixed[0]], list(looses) + [fixed[1]]
    table = heuristic_table(result, grid_t, grid_l)
    a, b = split_halves(len(table), seed)
    # the grid's pairs with loose <= tight, in grid order (the fixed pair only when listed), as the
    # "thresholds" of the one choose-on-A rule (ties: the first)
    pairs = [(i, j) for i in range(len(tights)) for j in range(len(looses)) if tights[i] >= looses[j]]
    flat = table[:, [i for i, _ in pairs], [j for _, j in pairs]]
    i, j = pairs[int(held_out_threshold(flat, range(len(pairs)), a, b)["threshold"])]
    fi, fj = len(tights), len(looses)
    ci = dict(seed=seed, n_resamples=n_resamples)
    chosen_b, fixed_b = table[b, i, j], table[b, fi, fj]
    gain = paired_diff_ci(chosen_b, fixed_b, **ci)
    return {
        "seed": seed,
        "n": len(table),
        "n_choose": len(a),
        "n_report": len(b),
        "grid": {"tight": [float(t) for t in tights], "loose": [float(f) for f in looses]},
        "chosen": {"tight": float(grid_t[i]), "loose": float(grid_l[j])},
        "fixed": {"tight": float(fixed[0]), "loose": float(fixed[1])},
        "chosen_err_A": error_of(bootstrap_ci(table[a, i, j], **ci)),  # in-sample: optimistic
        "chosen_err_B": error_of(bootstrap_ci(chosen_b, **ci)),
        "fixed_err_B": error_of(bootstrap_ci(fixed_b, **ci)),
        "gain_B": gain,  # accuracy points, chosen - fixed on B = fixed error - chosen error
        "verdict": verdict(gain, +1),
        "fixed_err_all": 100.0 - 100.0 * float(table[:, fi, fj].mean()),
    }


def format_heuristic_held_out(h: dict, label: str) -> str:
    """:func:`heuristic_held_out` as text."""
    c, f = h["chosen"], h["fixed"]
    return (
        f"{label}: chosen on half A (n={h['n_choose']}): tight {c['tight']:g}, loose {c['loose']:g} "
        f"(top-5 loc err on A {h['chosen_err_A']})\n"
        f"  half B (n={h['n_report']}): chosen {h['chosen_err_B']}   fixed {f['tight']:g}/{f['loose']:g} "
        f"{h['fixed_err_B']}\n  gain on B (fixed err - chosen err, paired): {h['gain_B']} -> {h['verdict']}"
    )


# ------------------------------------------------------------------------------ figure
def plot_strata(
    strata: Mapping[str, Sequence[StratumAccuracy]],
    *,
    ax=None,
    title: str = "",
    offset: float = 0.008,
    thin_below: int = 5,
):
    """Accuracy per box-area stratum with its 95% interval, one series per label (e.g. per data set),
    empty strata left out, strata of fewer than ``thin_below`` images hollow; the population share of
    each stratum as grey bars on a second axis."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    first = next(iter(strata.values()))
    mids = np.array([(s.low_edge + s.high_edge) / 2 for s in first])
    widths = np.array([s.high_edge - s.low_edge for s in first])
    share = np.array([s.population for s in first], dtype=float)
    twin = ax.twinx()
    twin.bar(mids, share / share.sum() * 100, width=widths * 0.95, color="0.9", zorder=0)
    twin.set_ylabel("share of the 50,000 val images (%)", color="0.5", fontsize=8)
    ax.set_zorder(twin.get_zorder() + 1)
    ax.patch.set_visible(False)
    for i, (label, rows) in enumerate(strata.items()):
        keep = [s for s in rows if s.estimate is not None]
        x = np.array([(s.low_edge + s.high_edge) / 2 for s in keep]) + (i - (len(strata) - 1) / 2) * offset
        v = np.array([s.estimate.value for s in keep])
        err = np.array(
            [
                [s.estimate.value - s.estimate.low for s in keep],
                [s.estimate.high - s.estimate.value for s in keep],
            ]
        )
        name = label if "(n=" in label else f"{label} (n={sum(s.n for s in rows)})"
        line = ax.errorbar(x, v, yerr=err, marker="o", ms=4, capsize=2, lw=1, label=name)
        thin = np.array([s.n < thin_below for s in keep])
        if thin.any():  # strata of a few images: hollow markers (their interval says little)
            ax.plot(x[thin], v[thin], "o", ms=7, mfc="white", mec=line[0].get_color(), zorder=5)
    ax.set(
        xlabel="area of the largest ground-truth box (fraction of the image)",
        ylabel="accuracy (%)",
        ylim=(0, 100),
        title=title,
    )
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    return ax
