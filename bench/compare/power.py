"""How sure a per-target ratio is, and how big a slow-down the runs could have seen (pure).

Why a t interval on per-trial scores and not a bootstrap (issue 21): a bootstrap over 3
trials per side has at most 100 distinct resamples, no small-sample correction, and in
simulation its nominal 95 % interval held the truth about 82 % of the time (88 % at 5
trials, 93 % at 10). With one score per trial -- the trial's mean log latency over the
target's steps, each step centred first so a trial missing a step is not biased -- the
difference of the two runs' means has a Welch t interval with Satterthwaite degrees of
freedom, which is exact for normal scores with unequal spreads and close to nominal
already at 2-3 trials per side (benchmarks/compare_coverage.py shows it). It is only as
good as the trials are replicates: scores of trials inside one start of a stand-in vary
less than runs do, which is why ``bench run`` restarts the stand-in per trial
(:mod:`bench.run.trial_design`) and why ``bench compare`` keeps a noise floor for runs whose
trials were not restarted.

The power figures answer "could this comparison have seen it?": the "slower" verdict
needs the interval above 1 *and* the estimate beyond the threshold, so a true log
slow-down d is flagged with probability about 80 % when the t test behind the interval
has 80 % power at d (noncentral t) and d >= log(1 + threshold) + se * t_0.8
(:func:`detectable_log_effect`);
:func:`trials_for_effect` inverts that for a slow-down the user names (equal trials per
side, the runs' own spread). Both are normal-theory approximations, checked by simulation
in benchmarks/compare_coverage.py.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

__all__ = [
    "POWER",
    "spread_components",
    "WelchInterval",
    "detectable_log_effect",
    "trial_scores",
    "trials_for_effect",
    "welch_interval",
]

POWER = 0.8  # the power the detectable slow-down and the suggested trial counts are stated at
MAX_SUGGESTED_TRIALS = 1000  # beyond this "trials needed" is reported as out of reach


@dataclass(frozen=True)
class WelchInterval:
    """mean(B) - mean(A) of per-trial log scores, its two-sided interval, standard error and dof."""

    estimate: float
    low: float
    high: float
    se: float
    dof: float
    sd: float  # pooled within-side sd of the scores (the runs' own trial-to-trial spread)
    level: float


def trial_scores(logs_a: np.ndarray, logs_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One score per trial: the mean over steps of the trial's log values, each step centred
    on its mean over both runs' trials, so a trial that lacks a step (NaN) is not shifted.

    ``logs_a``/``logs_b``: trials x steps matrices with the same steps in the same order.
    With no missing values, mean(score_b) - mean(score_a) is the mean over steps of the log
    ratio, i.e. the log of the geometric-mean ratio B/A.
    """
    la, lb = np.asarray(logs_a, dtype=np.float64), np.asarray(logs_b, dtype=np.float64)
    if la.ndim != 2 or lb.ndim != 2 or la.shape[1] != lb.shape[1] or la.shape[1] == 0:
        raise ValueError("logs_a and logs_b must be trials x steps matrices with the same steps")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # an all-NaN row or column is NaN on purpose
        centre = np.nanmean(np.vstack([la, lb]), axis=0)
        score_a = np.nanmean(la - centre, axis=1)
        score_b = np.nanmean(lb - centre, axis=1)
    return score_a[np.isfinite(score_a)], score_b[np.isfinite(score_b)]


def spread_components(*runs: np.ndarray) -> tuple[float, float]:
    """(between-trial sd, within-trial sd) of log values, pooled over ``runs`` (trials x steps each).

    A two-way split without replication: what moves a whole trial -- every step of it --
    (for fresh starts: the spread between restarts; for trials of one start: between passes
    of one start) against the step-by-step noise inside a trial (the within-run spread).
    Each run's own trial and step means are removed, so a real A/B change does not count.
    Steps missing in some trial are left out; NaN when no run has 2 trials x 2 steps.
    """
    within_ss = within_df = between_ss = between_df = 0.0
    n_steps = []
    for logs in runs:
        x = np.asarray(logs, dtype=np.float64)
        x = x[:, ~np.isnan(x).any(axis=0)] if x.size else x
        if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
            continue
        rows, cols = x.shape
        resid = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + x.mean()
        within_ss += float(np.sum(resid**2))
        within_df += (rows - 1) * (cols - 1)
        row_means = x.mean(axis=1)
        between_ss += float(np.sum((row_means - row_means.mean()) ** 2))
        between_df += rows - 1
        n_steps.append(cols)
    if not within_df or not between_df:
        return math.nan, math.nan
    within_var = within_ss / within_df
    steps = float(np.mean(n_steps))
    between_var = max(between_ss / between_df - within_var / steps, 0.0)  # the row mean carries within/steps
    return math.sqrt(between_var), math.sqrt(within_var)


def welch_interval(score_a: np.ndarray, score_b: np.ndarray, level: float) -> WelchInterval:
    """Welch t interval of mean(score_b) - mean(score_a) at two-sided ``level``.

    Needs >= 2 scores per side (ValueError otherwise). When neither side varies the
    interval is the point (no spread was measured; the caller should say so).
    """
    a, b = np.asarray(score_a, dtype=np.float64), np.asarray(score_b, dtype=np.float64)
    if a.size < 2 or b.size < 2:
        raise ValueError(f"a Welch interval needs >= 2 trials per side, got {a.size} and {b.size}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    va, vb = float(np.var(a, ddof=1)), float(np.var(b, ddof=1))
    estimate = float(b.mean() - a.mean())
    pooled = math.sqrt(((a.size - 1) * va + (b.size - 1) * vb) / (a.size + b.size - 2))
    se2 = va / a.size + vb / b.size
    if se2 == 0:
        return WelchInterval(estimate, estimate, estimate, 0.0, math.inf, 0.0, level)
    dof = se2**2 / ((va / a.size) ** 2 / (a.size - 1) + (vb / b.size) ** 2 / (b.size - 1))
    half = float(stats.t.ppf(1 - (1 - level) / 2, dof)) * math.sqrt(se2)
    return WelchInterval(estimate, estimate - half, estimate + half, math.sqrt(se2), dof, pooled, level)


def _ncp_for_power(t_crit: float, dof: float, power: float) -> float:
    """The noncentrality at which a one-sided t test at ``t_crit`` rejects with probability ``power``."""
    if math.isinf(dof):
        return t_crit + float(stats.norm.ppf(power))
    return float(optimize.brentq(lambda ncp: float(stats.nct.sf(t_crit, dof, ncp)) - power, 0.0, t_crit + 50.0))


def detectable_log_effect(se: float, dof: float, level: float, bound_log: float, power: float = POWER) -> float:
    """The smallest true log slow-down flagged "slower" with probability ~``power``.

    "Slower" needs the interval's low end above 0 -- a t test at the interval's level,
    whose power at a true effect d is the noncentral t's tail at ncp d / se -- and the
    estimate above ``bound_log`` (log(1 + threshold)), which has probability ``power`` at
    d = bound_log + se * t_power. The larger of the two. NaN when the spread is unknown;
    0 spread gives ``bound_log`` itself (any effect beyond the threshold would show).
    """
    if not (math.isfinite(se) and se >= 0) or math.isnan(dof):
        return math.nan
    if se == 0:
        return bound_log
    t_crit = float(stats.t.ppf(1 - (1 - level) / 2, dof))
    t_power = float(stats.t.ppf(power, dof))
    return max(se * _ncp_for_power(t_crit, dof, power), bound_log + se * t_power)


def trials_for_effect(sd: float, effect_log: float, bound_log: float, level: float, power: float = POWER) -> int | None:
    """Trials per side (both runs alike) to flag a true log slow-down ``effect_log`` with ``power``.

    ``sd``: the per-trial score spread (as measured between fresh starts). None when no
    count up to :data:`MAX_SUGGESTED_TRIALS` suffices -- always so when the effect is not
    beyond the threshold, since "slower" also needs the estimate beyond it.
    """
    if not (math.isfinite(sd) and sd >= 0) or effect_log <= bound_log:
        return None

    def enough(n: int) -> bool:
        return detectable_log_effect(sd * math.sqrt(2 / n), 2 * n - 2, level, bound_log, power) <= effect_log

    if not enough(MAX_SUGGESTED_TRIALS):
        return None
    low, high = 1, MAX_SUGGESTED_TRIALS  # enough(high); the detectable effect shrinks as n grows
    while high - low > 1:
        mid = (low + high) // 2
        if enough(mid):
            high = mid
        else:
            low = mid
    return high
