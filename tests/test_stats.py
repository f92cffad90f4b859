from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from camlib.evaluation.stats import (
    BOX_AREA_EDGES,
    ILSVRC_VAL_BOX_AREA_COUNTS,
    Estimate,
    bootstrap_ci,
    bootstrap_interval,
    largest_box_fraction,
    paired_diff_ci,
    post_stratified_ci,
    read_box_area_counts,
    stratum_accuracy,
    stratum_index,
    verdict,
)

BOX_AREA_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ilsvrc-val-box-area.csv"


def test_bootstrap_ci_covers_the_mean_and_is_seeded():
    hits = np.random.default_rng(1).random(400) < 0.3
    e = bootstrap_ci(hits)
    assert e.n == 400 and e.low < e.value < e.high
    assert e.value == pytest.approx(100 * hits.mean())
    # binomial standard error ~ 2.3 points: a 95% interval about +-4.5
    assert 3 < (e.high - e.low) / 2 < 6
    assert bootstrap_ci(hits) == e


def test_paired_difference_of_identical_hits_is_zero():
    h = np.random.default_rng(2).random(50) < 0.5
    e = paired_diff_ci(h, h)
    assert (e.value, e.low, e.high) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        paired_diff_ci([1, 0], [1])


@pytest.mark.parametrize(
    ("interval", "sign", "expected"),
    [
        ((1.0, 3.0), 1, "agrees"),
        ((-3.0, -1.0), 1, "reversed"),
        ((-1.0, 2.0), 1, "not resolved"),
        ((-3.0, -0.5), -1, "agrees"),
        ((0.5, 3.0), -1, "reversed"),
        ((0.0, 2.0), 1, "not resolved"),
    ],
)
def test_verdict_from_hand_made_intervals(interval, sign, expected):
    assert verdict(Estimate(sum(interval) / 2, *interval, n=10), sign) == expected
    assert verdict(interval, sign) == expected


def test_verdict_rejects_bad_input():
    with pytest.raises(ValueError):
        verdict((1.0, 2.0), 0)
    with pytest.raises(ValueError):
        verdict((2.0, 1.0), 1)


# --------------------------------------------------------------------------- box-area strata


def test_stratum_index_half_open_last_closed():
    assert stratum_index([0.0, 0.049, 0.05, 0.5, 0.99, 1.0]).tolist() == [0, 0, 1, 6, 10, 10]
    assert stratum_index([0.0, 0.5, 1.0], edges=(0, 0.5, 1)).tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match=r"1.2 \(image 1\) lies outside"):
        stratum_index([0.3, 1.2])
    with pytest.raises(ValueError, match="increasing"):
        stratum_index([0.3], edges=(0, 0.5, 0.5))


def test_stratum_accuracy_by_hand():
    # stratum [0, .5): hits 1, 0 -> 50 %; stratum [.5, 1]: hits 1, 1, 1 -> 100 %
    strata = stratum_accuracy(
        [1, 0, 1, 1, 1], [0.1, 0.2, 0.7, 0.9, 1.0], edges=(0, 0.5, 1), population=(30, 10)
    )
    assert [(s.low_edge, s.high_edge, s.population, s.n) for s in strata] == [
        (0.0, 0.5, 30, 2),
        (0.5, 1.0, 10, 3),
    ]
    assert strata[0].estimate.value == 50.0 and strata[1].estimate == Estimate(100.0, 100.0, 100.0, 3)
    empty = stratum_accuracy([1], [0.7], edges=(0, 0.5, 1), population=(30, 10))
    assert empty[0].n == 0 and empty[0].estimate is None and empty[0].to_dict()["estimate"] is None


def test_post_stratified_reweights_by_population_share():
    """Population 30 : 10. Sample: [0, .5) hits 1, 0 (acc 1/2); [.5, 1] hits 1, 1, 1 (acc 1).
    Plain mean 4/5 = 80 %; reweighted 0.75 * 1/2 + 0.25 * 1 = 62.5 %. Interval: only the first
    stratum varies, its resampled mean is 0, 1/2 or 1 (p = 1/4, 1/2, 1/4), so the total is 0.25,
    0.625 or 1.0 and the 2.5 / 97.5 percentiles are 25 and 100."""
    r = post_stratified_ci([1, 0, 1, 1, 1], [0.1, 0.2, 0.7, 0.9, 1.0], edges=(0, 0.5, 1), population=(30, 10))
    assert r.estimate == Estimate(62.5, 25.0, 100.0, 5)
    assert r.cells == ((0,), (1,)) and r.covered == 1.0
    assert (
        post_stratified_ci([1, 0, 1, 1, 1], [0.1, 0.2, 0.7, 0.9, 1.0], edges=(0, 0.5, 1), population=(30, 10))
        == r
    )  # seeded
    # a sample in the population's proportions (3 : 1) gets its plain mean back
    same = post_stratified_ci([1, 0, 0, 1], [0.1, 0.2, 0.3, 0.8], edges=(0, 0.5, 1), population=(30, 10))
    assert same.estimate.value == pytest.approx(50.0)
    assert set(r.to_dict()) == {"estimate", "strata", "cells", "covered"}


def test_post_stratified_pools_an_empty_stratum_with_its_neighbours():
    """Population 10, 20, 30, 40 over four strata; stratum 2 is empty, so it joins strata 1 and 3 in
    one cell of weight 0.9 holding hits 0, 0 | 1, 0, 1, 0 (acc 1/3); stratum 0 (weight 0.1) has hits
    1, 1. Estimate 0.1 * 1 + 0.9 * 1/3 = 40 %; covered 70 %. Interval: the cell's resampled mean is
    m / 6 with m ~ Binomial(6, 1/3): P(m = 0) = 8.8 % > 2.5 % gives the low 0.1 + 0 = 10 %, and
    P(m >= 5) = 13/729 = 1.8 % < 2.5 % < P(m >= 4) = 73/729 gives the high 0.1 + 0.9 * 4/6 = 70 %."""
    hits = [1, 1, 0, 0, 1, 0, 1, 0]
    area = [0.1, 0.2, 0.3, 0.4, 0.8, 0.8, 0.9, 1.0]
    r = post_stratified_ci(hits, area, edges=(0, 0.25, 0.5, 0.75, 1), population=(10, 20, 30, 40))
    assert r.cells == ((0,), (1, 2, 3)) and r.covered == pytest.approx(0.7)
    assert r.estimate.value == pytest.approx(40.0) and r.estimate.n == 8
    assert (r.estimate.low, r.estimate.high) == pytest.approx((10.0, 70.0))
    # an empty stratum at the end joins its one neighbour: [.75, 1] empty -> weight 0.7 on stratum 2
    r = post_stratified_ci(
        [1, 0, 1], [0.1, 0.3, 0.6], edges=(0, 0.25, 0.5, 0.75, 1), population=(10, 20, 30, 40)
    )
    assert r.cells == ((0,), (1,), (2, 3)) and r.estimate.value == pytest.approx(
        0.1 * 100 + 0.2 * 0 + 0.7 * 100
    )
    # min_count 2 pools the one-image strata too: counts 2, 1, 1, 0 -> one cell, the plain mean 3/4
    r = post_stratified_ci(
        [1, 1, 0, 1],
        [0.1, 0.2, 0.3, 0.6],
        edges=(0, 0.25, 0.5, 0.75, 1),
        population=(10, 20, 30, 40),
        min_count=2,
    )
    assert (
        r.cells == ((0, 1, 2, 3),)
        and r.estimate.value == pytest.approx(75.0)
        and r.covered == pytest.approx(0.1)
    )
    with pytest.raises(ValueError, match="no stratum has 2 or more images"):
        post_stratified_ci(
            [1, 0, 1],
            [0.1, 0.3, 0.6],
            edges=(0, 0.25, 0.5, 0.75, 1),
            population=(10, 20, 30, 40),
            min_count=2,
        )


def test_post_stratified_rejects_bad_input():
    with pytest.raises(ValueError, match="same non-zero length"):
        post_stratified_ci([1, 0], [0.1])
    with pytest.raises(ValueError, match="one count >= 0 per stratum"):
        post_stratified_ci([1], [0.1], edges=(0, 0.5, 1), population=(1, 2, 3))
    with pytest.raises(ValueError, match="min_count"):
        post_stratified_ci([1], [0.1], min_count=0)


def test_largest_box_fraction_by_hand():
    boxes = [np.array([[0, 0, 10, 10], [0, 0, 20, 5]]), [[5, 5, 15, 25]]]
    assert largest_box_fraction(boxes, [(20, 10), (10, 20)]).tolist() == [0.5, 1.0]
    with pytest.raises(ValueError, match="image 0 has no box"):
        largest_box_fraction([np.zeros((0, 4))], [(10, 10)])


def test_read_box_area_counts_checks_rows(tmp_path):
    good = tmp_path / "a.csv"
    good.write_text("area_from,area_to,ilsvrc_val_50000\n0,0.5,3\n0.5,1,1\n")
    assert read_box_area_counts(good) == ((0.0, 0.5, 1.0), (3, 1))
    bad = tmp_path / "b.csv"
    bad.write_text("area_from,area_to,ilsvrc_val_50000\n0,0.5,3\n0.6,1,1\n")
    with pytest.raises(ValueError, match=r"b.csv:3: .*contiguous"):
        read_box_area_counts(bad)


def test_shipped_counts_are_the_shared_csv():
    assert (
        sum(ILSVRC_VAL_BOX_AREA_COUNTS) == 50000
        and len(ILSVRC_VAL_BOX_AREA_COUNTS) == len(BOX_AREA_EDGES) - 1
    )
    if not BOX_AREA_CSV.is_file():
        pytest.skip(f"{BOX_AREA_CSV} not present (a user's fresh clone)")
    assert read_box_area_counts(BOX_AREA_CSV) == (BOX_AREA_EDGES, ILSVRC_VAL_BOX_AREA_COUNTS)


def test_largest_box_fraction_reproduces_the_csv_on_the_sample(ilsvrc_sample):
    sizes = {
        ln.split(",")[0]: tuple(map(int, ln.split(",")[1:]))
        for ln in (ilsvrc_sample / "image_sizes.txt").read_text().split()
    }
    boxes: dict[str, list] = {}
    for ln in (ilsvrc_sample / "localization.txt").read_text().split():
        key, *box = ln.split(",")
        boxes.setdefault(key, []).append([float(v) for v in box])
    keys = sorted(boxes)
    area = largest_box_fraction([boxes[k] for k in keys], [sizes[k] for k in keys])
    _, expected = read_box_area_counts(ilsvrc_sample.parent / "ilsvrc-val-box-area.csv", "ilsvrc_val_sample")
    assert np.bincount(stratum_index(area), minlength=len(BOX_AREA_EDGES) - 1).tolist() == list(expected)


def test_every_interval_is_scipy_bootstrap():
    """bootstrap_ci / paired_diff_ci are scipy.stats.bootstrap's percentile intervals with rng=default_rng(seed)."""
    rng = np.random.default_rng(5)
    a, b = (rng.random(80) < 0.6).astype(float), (rng.random(80) < 0.4).astype(float)
    ref = scipy_stats.bootstrap(
        (a, b),
        lambda x, y, axis=-1: (x - y).mean(axis),
        paired=True,
        n_resamples=500,
        method="percentile",
        rng=np.random.default_rng(3),
    ).confidence_interval
    e = paired_diff_ci(a, b, n_resamples=500, seed=3)
    assert (e.low, e.high) == pytest.approx((100 * ref.low, 100 * ref.high))
    ref = scipy_stats.bootstrap(
        (a,), np.mean, n_resamples=500, method="percentile", rng=np.random.default_rng(3)
    ).confidence_interval
    e = bootstrap_ci(a, n_resamples=500, seed=3)
    assert (e.low, e.high) == pytest.approx((100 * ref.low, 100 * ref.high))


def test_bootstrap_interval_holds_a_one_value_sample_fixed():
    """Unpaired samples: scipy cannot resample one value, which has no resampling variance: 3 - mean(b)."""
    b = np.array([1.0, 2.0, 3.0, 4.0])
    lo, hi = bootstrap_interval(
        ([3.0], b), lambda x, y, axis=-1: x.mean(axis) - y.mean(axis), vectorized=True
    )
    blo, bhi = bootstrap_interval((b,), np.mean)
    assert (lo, hi) == pytest.approx((3 - bhi, 3 - blo))
    assert bootstrap_interval(([2.0],), np.mean) == (2.0, 2.0)
    assert bootstrap_interval(([1.0, 1.0], [0.0, 0.0]), lambda x, y: x.mean() - y.mean()) == (1.0, 1.0)
