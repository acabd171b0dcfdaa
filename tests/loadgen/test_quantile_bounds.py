"""loadgen.quantile_bounds: order-statistic bounds and the SLO binomial test, checked
against exact binomial sums and by simulation (seeded, so the figures are fixed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from loadgen.quantile_bounds import (
    SloDecision,
    effective_sample_size,
    min_requests_to_meet,
    quantile_ci,
    quantile_ci_ranks,
    slo_decision,
)


def test_p99_with_no_exceedance_needs_459_requests_at_one_percent() -> None:
    assert min_requests_to_meet(99.0, 0.01) == 459
    assert 0.99**459 < 0.01 < 0.99**458
    assert slo_decision(459, 0, 99.0, 0.01).decision is SloDecision.MET
    assert slo_decision(458, 0, 99.0, 0.01).decision is SloDecision.UNDECIDED


def test_decision_tails_equal_exact_binomial_sums() -> None:
    test = slo_decision(200, 2, 99.0, 0.05)
    assert test.p_met == pytest.approx(stats.binom.cdf(2, 200, 0.01), rel=1e-9)
    assert test.p_violated == pytest.approx(stats.binom.sf(1, 200, 0.01), rel=1e-9)
    # 2 of 200 over the bound is what a server exactly at the objective gives: undecided
    assert test.decision is SloDecision.UNDECIDED


def test_many_exceedances_are_a_violation() -> None:
    assert slo_decision(200, 12, 99.0, 0.01).decision is SloDecision.VIOLATED
    assert slo_decision(200, 3, 99.0, 0.01).decision is SloDecision.UNDECIDED


def test_bad_arguments_name_the_problem() -> None:
    with pytest.raises(ValueError, match="percentile"):
        slo_decision(10, 0, 100.0, 0.01)
    with pytest.raises(ValueError, match="exceed"):
        slo_decision(10, 11, 99.0, 0.01)
    with pytest.raises(ValueError, match="q must"):
        quantile_ci_ranks(10, 1.5)


def test_ranks_at_small_n_leave_a_side_missing() -> None:
    low, high = quantile_ci_ranks(64, 0.99, 0.05)
    assert high is None  # nothing bounds p99 from above with 64 samples
    assert low is not None and low <= 64
    assert quantile_ci_ranks(0, 0.5) == (None, None)


def test_p50_ranks_match_the_textbook_interval() -> None:
    # n = 100, median, 95 %: ranks 40 and 61 (the classical table)
    assert quantile_ci_ranks(100, 0.5, 0.05) == (40, 61)


@pytest.mark.parametrize("n,q", [(50, 0.5), (200, 0.9), (1000, 0.99), (3000, 0.999)])
def test_bounds_cover_the_true_quantile_at_least_nominally(n: int, q: float) -> None:
    rng = np.random.default_rng(7)
    truth = stats.expon.ppf(q)
    trials = 2000
    hit = low_miss = high_miss = 0
    for _ in range(trials):
        lo, hi = quantile_ci(rng.exponential(size=n), q, 0.05)
        if not math.isnan(lo) and lo > truth:
            low_miss += 1
        elif not math.isnan(hi) and hi < truth:
            high_miss += 1
        else:
            hit += 1
    # each side errs with probability <= 2.5 %; allow simulation noise (sd ~0.35 %)
    assert low_miss / trials <= 0.025 + 0.012
    assert high_miss / trials <= 0.025 + 0.012
    assert hit / trials >= 0.95 - 0.015


def test_met_is_rarely_claimed_for_a_server_at_the_bound() -> None:
    """False-met rate of the test on a server whose true p99 is exactly at the bound."""
    rng = np.random.default_rng(11)
    n, delta = 600, 0.05
    exceed = rng.binomial(n, 0.01, size=20000)
    met = sum(slo_decision(n, int(h), 99.0, delta).decision is SloDecision.MET for h in exceed[:4000])
    assert met / 4000 <= delta


def test_effective_sample_size_sees_clustering() -> None:
    rng = np.random.default_rng(3)
    independent = (rng.random(4000) < 0.05).astype(float)
    assert effective_sample_size(independent) == pytest.approx(4000, rel=0.25)
    bursts = np.repeat((rng.random(400) < 0.05).astype(float), 10)  # each outcome repeated 10 times
    assert effective_sample_size(bursts) < 4000 / 4
    assert effective_sample_size(np.zeros(100)) == 100


@pytest.mark.parametrize("n", [10_001, 123_457, 1_000_000])
def test_large_n_ranks_equal_the_full_binomial_search(n: int) -> None:
    """Above 10,000 samples only a window of the cdf is evaluated; the ranks must not change."""
    k = np.arange(n + 1)
    for q in (0.5, 0.9, 0.99, 0.999, 0.99999):
        for alpha in (0.05, 0.01):
            cdf = stats.binom.cdf(k, n, q)
            low = np.flatnonzero(cdf[:n] <= alpha / 2)
            up = np.flatnonzero(1.0 - cdf[:n] <= alpha / 2)
            expected = (int(low[-1]) + 1 if low.size else None, int(up[0]) + 1 if up.size else None)
            assert quantile_ci_ranks(n, q, alpha) == expected, (n, q, alpha)
