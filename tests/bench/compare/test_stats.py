"""bench.compare.stats: the pure statistics of `bench compare`, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bench.compare.stats import (
    bh_adjust,
    bootstrap_mean_diff_ci,
    holm_adjust,
    mannwhitney_p,
    noise_floor_pct,
    pooled_log_sd,
    welch_log_p,
)


def test_holm_hand_computed():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # NaN (an untested step) stays NaN and does not count in m
    out = holm_adjust([0.01, math.nan, 0.04, 0.03, 0.005])
    assert math.isnan(out[1]) and [out[i] for i in (0, 2, 3, 4)] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm_adjust([]) == [] and all(math.isnan(p) for p in holm_adjust([math.nan]))


def test_benjamini_hochberg_hand_computed():
    # sorted: 0.005*4/1 = 0.02, 0.01*4/2 = 0.02, 0.03*4/3 = 0.04, 0.04*4/4 = 0.04 -> running min from the top
    assert bh_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # a later small p pulls earlier ones down: 0.02*3/1=0.06, 0.03*3/2=0.045, 0.03*3/3=0.03 -> 0.03 for all
    assert bh_adjust([0.02, 0.03, 0.03]) == pytest.approx([0.03, 0.03, 0.03])
    out = bh_adjust([math.nan, 0.01])
    assert math.isnan(out[0]) and out[1] == pytest.approx(0.01)


def test_holm_never_below_bh_nor_raw():
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.2, 30)
    holm, bh = np.array(holm_adjust(p)), np.array(bh_adjust(p))
    assert np.all(holm >= p) and np.all(bh >= p) and np.all(holm >= bh - 1e-12)


def test_welch_on_logs():
    a, b = [1.0, 1.1, 0.9], [2.0, 2.2, 1.8]
    expected = stats.ttest_ind(np.log(b), np.log(a), equal_var=False).pvalue
    assert welch_log_p(a, b) == pytest.approx(expected) and expected < 0.01
    rng = np.random.default_rng(5)
    for na, nb in ((2, 2), (3, 5), (10, 4)):
        x, y = rng.lognormal(0, 0.1, na), rng.lognormal(0.05, 0.3, nb)
        assert welch_log_p(x, y) == pytest.approx(stats.ttest_ind(np.log(y), np.log(x), equal_var=False).pvalue)
    assert math.isnan(welch_log_p([1.0], [1.0, 2.0]))  # one trial: no test
    assert welch_log_p([1.0, 1.0], [1.0, 1.0]) == 1.0  # no spread, equal
    assert welch_log_p([1.0, 1.0], [2.0, 2.0]) == 0.0  # no spread, different


def test_pooled_log_sd_and_noise_floor_hand_computed():
    a = np.exp([0.0, 0.2])  # deviations +-0.1: ss 0.02, 1 dof
    b = np.exp([1.0, 1.4, 1.2])  # ss 0.08, 2 dof
    assert pooled_log_sd(a, b) == pytest.approx(math.sqrt(0.10 / 3))
    assert math.isnan(pooled_log_sd([1.0], [2.0]))
    # two trials with log sd 0.05 each: 1.959964 * sqrt(0.005) = 0.138590 -> exp - 1
    assert noise_floor_pct(0.05, 0.05, 0.05) == pytest.approx(
        (math.exp(1.959964 * math.sqrt(0.005)) - 1) * 100, rel=1e-5
    )
    assert noise_floor_pct(0.05, 0.05, 0.05) == pytest.approx(14.866, abs=0.01)
    assert math.isnan(noise_floor_pct(math.nan, 0.05, 0.05))


def test_bootstrap_is_seeded_and_centred():
    rng = np.random.default_rng(0)
    la = rng.normal(0.0, 0.05, (5, 10))
    lb = rng.normal(0.3, 0.05, (5, 10))
    one = bootstrap_mean_diff_ci(la, lb, level=0.95, resamples=2000, seed=[0, 1])
    two = bootstrap_mean_diff_ci(la, lb, level=0.95, resamples=2000, seed=[0, 1])
    other = bootstrap_mean_diff_ci(la, lb, level=0.95, resamples=2000, seed=[0, 2])
    assert one == two  # repeatable
    assert one[0] == other[0] and one[1:] != other[1:]  # the estimate is no resample; the CI depends on the seed
    estimate, low, high = one
    assert estimate == pytest.approx(float(np.mean(lb.mean(axis=0) - la.mean(axis=0))))
    assert low < estimate < high and low > 0.2 and high < 0.4
    wider = bootstrap_mean_diff_ci(la, lb, level=0.99, resamples=2000, seed=[0, 1])
    assert wider[1] <= low and wider[2] >= high
    with pytest.raises(ValueError, match="same steps"):
        bootstrap_mean_diff_ci(la, lb[:, :3], level=0.95, resamples=100, seed=0)


def test_bootstrap_handles_a_missing_cell():
    la = np.log(np.array([[1.0, 2.0], [1.0, np.nan], [1.0, 2.0]]))  # no spread: every resample is exact
    lb = la + math.log(1.5)
    estimate, low, high = bootstrap_mean_diff_ci(la, lb, level=0.95, resamples=500, seed=0)
    assert math.exp(estimate) == pytest.approx(1.5) and math.exp(low) == pytest.approx(1.5)
    assert math.exp(high) == pytest.approx(1.5)


def test_mannwhitney_detail():
    rng = np.random.default_rng(1)
    a = rng.lognormal(0, 0.2, 200)
    assert mannwhitney_p(a, a) == 1.0
    assert mannwhitney_p(a, a * 1.5) < 1e-6
    assert math.isnan(mannwhitney_p([], a))


@pytest.mark.parametrize("ties", [False, True])
def test_lean_mannwhitney_equals_scipys_on_large_samples(ties):
    """Above LEAN_MWU_SIZE the p is counted from the sorted samples: scipy's asymptotic p, ties and all."""
    from bench.compare.stats import LEAN_MWU_SIZE, mannwhitney_p

    rng = np.random.default_rng(3)
    a = rng.lognormal(0.0, 0.3, size=LEAN_MWU_SIZE // 2 + 1000)
    b = rng.lognormal(0.01, 0.3, size=LEAN_MWU_SIZE // 2 + 7)
    if ties:  # latencies rounded to 0.01: many ties within and across the samples
        a, b = np.round(a, 2), np.round(b, 2)
    expected = stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue
    assert mannwhitney_p(a, b) == pytest.approx(expected, rel=1e-9, abs=1e-300)
    assert mannwhitney_p(b, a) == pytest.approx(expected, rel=1e-9, abs=1e-300)
