"""bench.compare.power and bench.compare.gate: the Welch interval, detectable slow-downs, the gate's exits."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bench.compare.gate import EXIT_CANNOT_JUDGE, EXIT_OK, EXIT_REGRESSION, exit_code, judge
from bench.compare.power import detectable_log_effect, trial_scores, trials_for_effect, welch_interval
from bench.compare.verdict import CompareSettings, compare_runs, target_verdict
from tests.support.compare_synth import synthetic_run


def test_welch_interval_matches_scipy() -> None:
    a, b = np.array([0.1, 0.3, 0.2]), np.array([0.5, 0.4, 0.9, 0.6])
    iv = welch_interval(a, b, 0.95)
    ref = stats.ttest_ind(b, a, equal_var=False)
    low, high = ref.confidence_interval(0.95)
    assert (iv.low, iv.high, iv.dof) == (pytest.approx(low), pytest.approx(high), pytest.approx(ref.df))
    assert iv.estimate == pytest.approx(b.mean() - a.mean())
    with pytest.raises(ValueError, match="needs >= 2 trials per side, got 1 and 4"):
        welch_interval(a[:1], b, 0.95)
    flat = welch_interval(np.array([1.0, 1.0]), np.array([1.0, 1.0]), 0.95)
    assert flat.low == flat.high == 0.0 and flat.se == 0.0


def test_trial_scores_centre_steps_so_a_missing_step_does_not_shift_a_trial() -> None:
    # step 2 is 10x step 1; trial 3 of A lacks step 2
    la = np.log(np.array([[1.0, 10.0], [1.0, 10.0], [1.0, np.nan]]))
    lb = np.log(np.array([[1.0, 10.0], [1.0, 10.0]]))
    sa, sb = trial_scores(la, lb)
    np.testing.assert_allclose(sa, 0.0, atol=1e-12)
    np.testing.assert_allclose(sb, 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="same steps"):
        trial_scores(la, lb[:, :1])


def test_detectable_effect_is_at_least_the_threshold_and_grows_with_spread() -> None:
    bound = math.log(1.05)
    small = detectable_log_effect(0.01, 4.0, 0.95, bound)
    large = detectable_log_effect(0.05, 4.0, 0.95, bound)
    assert bound < small < large
    # the t test behind the interval has 80 % power there (noncentral t)
    assert stats.nct.sf(stats.t.ppf(0.975, 4), 4, large / 0.05) == pytest.approx(0.8)
    assert detectable_log_effect(0.0, math.inf, 0.95, bound) == bound
    assert math.isnan(detectable_log_effect(math.nan, 4.0, 0.95, bound))


def test_detectable_effect_has_80_percent_power_in_simulation() -> None:
    """At the stated effect, the 'slower' rule fires about 80 % of the time (normal scores, 5 vs 5)."""
    rng = np.random.default_rng(1)
    sd, n, level, bound = 0.05, 5, 0.95, math.log(1.05)
    se = sd * math.sqrt(2 / n)
    effect = detectable_log_effect(se, 2 * n - 2, level, bound)
    hits = 0
    reps = 4000
    for _ in range(reps):
        a, b = rng.normal(0, sd, n), rng.normal(effect, sd, n)
        iv = welch_interval(a, b, level)
        hits += target_verdict(iv.low, iv.high, iv.estimate, bound) == "slower"
    assert 0.70 < hits / reps < 0.86  # approximate: the sd is estimated from 5 + 5 trials


def test_trials_for_effect() -> None:
    bound = math.log(1.05)
    n = trials_for_effect(0.05, math.log(1.20), bound, 0.95)
    assert n is not None and n >= 2
    assert detectable_log_effect(0.05 * math.sqrt(2 / n), 2 * n - 2, 0.95, bound) <= math.log(1.20)
    assert detectable_log_effect(0.05 * math.sqrt(2 / (n - 1)), 2 * n - 4, 0.95, bound) > math.log(1.20) or n == 2
    assert trials_for_effect(0.05, math.log(1.04), bound, 0.95) is None  # not beyond the threshold
    assert trials_for_effect(math.nan, math.log(1.2), bound, 0.95) is None


@pytest.mark.parametrize(
    ("low", "high", "est", "verdict"),
    [
        (0.01, 0.2, 0.1, "slower"),
        (0.01, 0.2, 0.03, "inconclusive"),
        (-0.2, -0.01, -0.1, "faster"),
        (-0.03, 0.04, 0.0, "within threshold"),
        (-0.2, 0.04, -0.08, "not slower"),
        (-0.1, 0.2, 0.05, "inconclusive"),
    ],
)
def test_target_verdict(low, high, est, verdict) -> None:
    assert target_verdict(low, high, est, math.log(1.05)) == verdict


def test_exit_codes() -> None:
    assert exit_code(True, True, allow_inconclusive=False) == EXIT_REGRESSION  # a regression wins
    assert exit_code(False, True, allow_inconclusive=False) == EXIT_CANNOT_JUDGE
    assert exit_code(False, True, allow_inconclusive=True) == EXIT_OK
    assert exit_code(False, False, allow_inconclusive=False) == EXIT_OK


def test_gate_names_every_target_and_step_it_cannot_judge() -> None:
    rng = np.random.default_rng(5)
    a = synthetic_run("a", rng, trials=1)
    b = synthetic_run("b", rng, trials=1, slowdown=1.5)
    result = compare_runs(a, b)
    target_gate, step_gate = judge(result, "target"), judge(result, "step")
    assert not target_gate.regressions and [n for n, _ in target_gate.blind] == ["greene-linserv", "kubeflow-gcp"]
    assert all("1 trial(s) on a side" in reason for _, reason in target_gate.blind)
    assert len(step_gate.blind) == len(result.steps)


def test_gate_passes_only_what_it_showed() -> None:
    rng = np.random.default_rng(6)
    a = synthetic_run("a", rng, trials=8, design="restart", sd_run=0.01, sd_trial=0.01, sd_step=0.01)
    b = synthetic_run("b", rng, trials=8, design="restart", sd_run=0.01, sd_trial=0.01, sd_step=0.01)
    result = compare_runs(a, b, CompareSettings(threshold_pct=5.0))
    assert {t.verdict for t in result.targets} == {"within threshold"}
    assert judge(result, "target").blind == [] and judge(result, "target").regressions == []
    slow = compare_runs(
        a, synthetic_run("c", rng, trials=8, design="restart", slowdown=1.3, sd_run=0.01, sd_trial=0.01, sd_step=0.01)
    )
    assert judge(slow, "target").regressions == ["greene-linserv", "kubeflow-gcp"]


def test_spread_components_separates_whole_trial_shifts_from_step_noise() -> None:
    from bench.compare.power import spread_components

    rng = np.random.default_rng(9)
    trials, steps = 400, 8
    runs = [
        np.linspace(-1, 1, steps) + rng.normal(0, 0.10, (trials, 1)) + rng.normal(0, 0.03, (trials, steps))
        for _ in range(2)
    ]
    between, within = spread_components(*runs)
    assert between == pytest.approx(0.10, rel=0.1) and within == pytest.approx(0.03, rel=0.1)
    runs[1] = runs[1] + 0.5  # a real change between the runs is not spread
    assert spread_components(*runs) == (pytest.approx(between), pytest.approx(within))
    assert all(math.isnan(v) for v in spread_components(np.zeros((1, 4))))
