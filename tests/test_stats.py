import numpy as np
import pytest

from camlib.evaluation.stats import Estimate, bootstrap_ci, paired_diff_ci, verdict


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
    [((1.0, 3.0), 1, "agrees"), ((-3.0, -1.0), 1, "reversed"), ((-1.0, 2.0), 1, "not resolved"),
     ((-3.0, -0.5), -1, "agrees"), ((0.5, 3.0), -1, "reversed"), ((0.0, 2.0), 1, "not resolved")],
)
def test_verdict_from_hand_made_intervals(interval, sign, expected):
    assert verdict(Estimate(sum(interval) / 2, *interval, n=10), sign) == expected
    assert verdict(interval, sign) == expected


def test_verdict_rejects_bad_input():
    with pytest.raises(ValueError):
        verdict((1.0, 2.0), 0)
    with pytest.raises(ValueError):
        verdict((2.0, 1.0), 1)
