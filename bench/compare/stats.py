"""The statistics behind ``bench compare``: pure functions of numbers, nothing about runs.

Why these and not a per-request test: the unit of repetition in a benchmark is the
*trial* (one pass of the sweep), not the request. Requests of one trial share its
process placement, caches and neighbours, so thousands of them are not thousands of
independent samples; treating them so (Mann-Whitney over pooled requests) made
identical back-to-back runs "differ" significantly half of the time. Everything here
works on one number per trial, on the log scale (a slow-down is a ratio, and on the log
scale a ratio is a difference whose spread does not grow with the latency).

- :func:`welch_log_p`: Welch's t-test on log values -- with 2-5 trials per side a rank
  or permutation test cannot reach p < 0.05 at all (3 vs 3 has 20 orderings, so the
  smallest two-sided p is 0.1), a t-test can.
- :func:`holm_adjust` (used) and :func:`bh_adjust`: multiple-comparison corrections
  over all steps (docs/compare.md says why Holm is the default).
- :func:`pooled_log_sd` and :func:`noise_floor_pct`: the ratio two *single* trials of
  identical code reach by chance, from the spread measured between trials.
- :func:`bootstrap_mean_diff_ci`: a seeded cluster bootstrap over whole trials of the
  mean log ratio across steps (the per-target geometric mean).
- :func:`mannwhitney_p`: the old per-request test, kept only as a detail column.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from scipy import special, stats

__all__ = [
    "MIN_TRIALS",
    "bh_adjust",
    "bootstrap_mean_diff_ci",
    "holm_adjust",
    "mannwhitney_p",
    "noise_floor_pct",
    "pooled_log_sd",
    "welch_log_p",
]

# Fewest trials per side for any test: one trial has no spread to compare a difference with.
MIN_TRIALS = 2


def _finite_logs(values: Sequence[float] | np.ndarray) -> np.ndarray:
    data = np.asarray(values, dtype=np.float64)
    data = data[np.isfinite(data) & (data > 0)]
    return np.log(data)


def welch_log_p(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Two-sided Welch t-test p-value of log(a) vs log(b); NaN with < MIN_TRIALS on a side.

    When neither side varies the difference is exact: p = 1 if the values are equal, else
    0 (scipy would return NaN).
    """
    la, lb = _finite_logs(a), _finite_logs(b)
    if la.size < MIN_TRIALS or lb.size < MIN_TRIALS:
        return math.nan
    va, vb = np.var(la, ddof=1) / la.size, np.var(lb, ddof=1) / lb.size
    if va + vb == 0:
        return 1.0 if la[0] == lb[0] else 0.0
    # Welch-Satterthwaite degrees of freedom; the same as scipy.stats.ttest_ind(equal_var=False)
    # (checked in the tests) without its per-call overhead, which dominates A/A simulations.
    t = (lb.mean() - la.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (la.size - 1) + vb**2 / (lb.size - 1))
    return float(2 * special.stdtr(dof, -abs(t)))


def _tested_in_order(p_values: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p as floats, NaN-filled output, indices of the tested p-values sorted ascending)."""
    p = np.asarray(p_values, dtype=np.float64)
    idx = np.flatnonzero(~np.isnan(p))
    return p, np.full(p.shape, np.nan), idx[np.argsort(p[idx], kind="stable")]


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN entries stay NaN and do not count in m).

    Sorted ascending p_(1) <= ... <= p_(m): adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
    Rejecting where adj < alpha keeps the chance of *any* false rejection <= alpha under
    any dependence between the tests.
    """
    p, out, order = _tested_in_order(p_values)
    m = order.size
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def bh_adjust(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values; NaN entries stay NaN).

    adj_(i) = min_{j >= i} min(1, m / j * p_(j)). Controls the expected share of false
    discoveries among the rejections (valid for independent or positively dependent tests).
    """
    p, out, order = _tested_in_order(p_values)
    m = order.size
    running = 1.0
    for rank in range(m - 1, -1, -1):
        i = order[rank]
        running = min(running, min(1.0, m / (rank + 1) * p[i]))
        out[i] = running
    return out.tolist()


def pooled_log_sd(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Pooled within-side standard deviation of log values (NaN with fewer than 3 values).

    Pools the squared deviations from each side's own mean, so a real A/B difference does
    not inflate it.
    """
    la, lb = _finite_logs(a), _finite_logs(b)
    dof = (la.size - 1 if la.size else 0) + (lb.size - 1 if lb.size else 0)
    if dof < 1:
        return math.nan
    ss = float(np.sum((la - la.mean()) ** 2) if la.size else 0.0) + float(
        np.sum((lb - lb.mean()) ** 2) if lb.size else 0.0
    )
    return math.sqrt(ss / dof)


def noise_floor_pct(sd_a: float, sd_b: float, alpha: float) -> float:
    """The slow-down (%) that one trial of B vs one trial of A reaches by chance.

    With per-trial log standard deviations ``sd_a`` and ``sd_b`` the log ratio of two
    single trials has spread sqrt(sd_a**2 + sd_b**2); its two-sided 1 - alpha bound is
    z * that. A whole run is one draw of its environment (placement, caches, neighbours),
    so a difference smaller than what two single trials show is not evidence of a change
    in the code, whatever a test over trials says. NaN when either spread is unknown.
    """
    if math.isnan(sd_a) or math.isnan(sd_b):
        return math.nan
    z = float(stats.norm.ppf(1 - alpha / 2))
    return (math.exp(z * math.sqrt(sd_a**2 + sd_b**2)) - 1) * 100


@contextmanager
def _quiet_nanmean() -> Iterator[None]:
    """Silence numpy's 'Mean of empty slice' warning: an all-missing column is NaN on purpose."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        yield


def bootstrap_mean_diff_ci(
    logs_a: np.ndarray, logs_b: np.ndarray, *, level: float, resamples: int, seed: Sequence[int] | int
) -> tuple[float, float, float]:
    """(estimate, low, high) of mean over steps of (mean log B - mean log A), percentile CI.

    ``logs_a``/``logs_b`` are trials x steps matrices (same steps, same column order; NaN
    = that trial lacks that step). Whole trials are resampled with replacement on each side
    independently -- the trial is the unit of repetition, and resampling rows keeps the
    correlation between the steps of one trial. A resample that leaves a step without any
    value uses that step's full-sample mean. ``seed`` makes the interval repeatable.
    exp() of the three numbers gives the geometric-mean ratio B/A and its interval.
    """
    la = np.asarray(logs_a, dtype=np.float64)
    lb = np.asarray(logs_b, dtype=np.float64)
    if la.ndim != 2 or lb.ndim != 2 or la.shape[1] != lb.shape[1] or la.shape[1] == 0:
        raise ValueError("logs_a and logs_b must be trials x steps matrices with the same steps")
    if not 0 < level < 1 or resamples < 1:
        raise ValueError(f"level must be in (0, 1) and resamples >= 1, got {level}, {resamples}")
    with _quiet_nanmean():
        mean_a, mean_b = np.nanmean(la, axis=0), np.nanmean(lb, axis=0)
        estimate = float(np.mean(mean_b - mean_a))
        rng = np.random.default_rng(seed)
        rep_a = _resampled_means(la, mean_a, rng, resamples)
        rep_b = _resampled_means(lb, mean_b, rng, resamples)
    diffs = np.mean(rep_b - rep_a, axis=1)
    low, high = np.quantile(diffs, [(1 - level) / 2, 1 - (1 - level) / 2])
    return estimate, float(low), float(high)


def _resampled_means(logs: np.ndarray, fallback: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    trials = logs.shape[0]
    rows = rng.integers(0, trials, size=(resamples, trials))
    means = np.nanmean(logs[rows], axis=1)  # resamples x steps
    return np.where(np.isnan(means), fallback[np.newaxis, :], means)


def mannwhitney_p(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value of pooled per-request latencies (a detail, never a verdict)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if x.size == 0 or y.size == 0 or x.size + y.size < 3:
        return math.nan
    x, y = np.sort(x), np.sort(y)
    if np.array_equal(x, y):
        return 1.0
    if x.size + y.size > LEAN_MWU_SIZE and min(x.size, y.size) > 8:
        return _mannwhitney_sorted_p(x, y)
    try:
        return float(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)
    except ValueError:  # every value identical across both samples
        return 1.0


#: Above this many latencies in all, :func:`mannwhitney_p` counts U from the two sorted samples
#: instead of ranking their concatenation (scipy's way needs about 80 bytes per value: 640 MB
#: for 4 M against 4 M); same normal approximation, tie and continuity correction as scipy's
#: ``method="asymptotic"``, which scipy itself uses at these sizes.
LEAN_MWU_SIZE = 100_000
_MWU_CHUNK = 1 << 20


def _distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of sorted ``values`` and their counts (no copy when all are distinct,
    the usual case for measured latencies)."""
    if not np.any(values[1:] == values[:-1]):
        return values, np.ones(values.size, dtype=np.int8)
    return np.unique(values, return_counts=True)


def _tie_cubes(counts: np.ndarray) -> float:
    c = counts.astype(np.float64)
    return float(np.sum(c**3 - c))


def _mannwhitney_sorted_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided asymptotic Mann-Whitney p of sorted ``x`` and ``y``, in memory of the order of one
    chunk: U1 = sum over x of (#y below + half #y equal); tie term over the combined sample."""
    n1, n2 = x.size, y.size
    u1 = 0.0
    for start in range(0, n1, _MWU_CHUNK):
        part = x[start : start + _MWU_CHUNK]
        left = np.searchsorted(y, part, side="left")
        right = np.searchsorted(y, part, side="right")
        u1 += float(left.sum()) + 0.5 * float((right - left).sum())
    ux, cx = _distinct(x)
    uy, cy = _distinct(y)
    ties = _tie_cubes(cx) + _tie_cubes(cy)
    for start in range(0, uy.size, _MWU_CHUNK):  # values in both samples form one tie group
        values, counts = uy[start : start + _MWU_CHUNK], cy[start : start + _MWU_CHUNK]
        at = np.minimum(np.searchsorted(ux, values), ux.size - 1)
        shared = ux[at] == values
        both = cx[at[shared]] + counts[shared]
        ties += _tie_cubes(both) - _tie_cubes(cx[at[shared]]) - _tie_cubes(counts[shared])
    n = n1 + n2
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    if sigma == 0:
        return 1.0
    z = (max(u1, n1 * n2 - u1) - n1 * n2 / 2 - 0.5) / sigma
    return float(np.clip(2 * special.ndtr(-z), 0.0, 1.0))
