"""Mergeable log-bucket latency histograms: percentiles of a window of any size in fixed memory.

Why a histogram and not exact order statistics: a timeline cuts a run into a few hundred
windows, and a window of an hour-long soak can hold millions of requests; keeping every
latency of every window is the whole run in memory again. A histogram of :data:`N_BINS`
geometric buckets per window is a few kB whatever the window holds, and histograms add
(two windows merged = their counts summed), which the drift test needs (batches of
windows). The price is stated, not hidden: buckets are :data:`BIN_RATIO` wide (2 %), and a
percentile is reported as the geometric middle of the bucket holding the order statistic
at rank ``ceil(q n)``, so it is within :data:`RELATIVE_ERROR` (1 %) of that exact order
statistic. Latencies under :data:`LOWEST_S` or over :data:`HIGHEST_S` fall in the edge buckets
(clamped; a report names them as such).

Whether a percentile is shown at all follows the project's percentile-bounds rule
(:func:`loadgen.quantile_bounds.quantile_ci_ranks`): a window's pq is drawn only when its
count of successes gives both 95 % bounds (p99: n >= 368; p50: n >= 6), never a made-up
number from a handful of requests.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from loadgen.quantile_bounds import quantile_ci_ranks

__all__ = [
    "BIN_RATIO",
    "HIGHEST_S",
    "LOWEST_S",
    "N_BINS",
    "RELATIVE_ERROR",
    "bin_index",
    "bin_value",
    "hist_quantile",
    "hist_quantiles",
    "min_count_for",
]

LOWEST_S = 1e-5  # 10 µs: the lowest bucket's lower edge
HIGHEST_S = 1e3  # beyond any timeout servebench allows
BIN_RATIO = 1.02
N_BINS = int(math.ceil(math.log(HIGHEST_S / LOWEST_S) / math.log(BIN_RATIO)))  # 931
#: A reported percentile vs the exact order statistic at its rank: within this fraction.
RELATIVE_ERROR = math.sqrt(BIN_RATIO) - 1.0
_LOG_RATIO = math.log(BIN_RATIO)


def bin_index(latency_s: np.ndarray) -> np.ndarray:
    """The bucket of each latency (seconds, finite); out-of-range values clamp to the edge buckets."""
    values = np.maximum(np.asarray(latency_s, dtype=np.float64), LOWEST_S)
    index = np.floor(np.log(values / LOWEST_S) / _LOG_RATIO).astype(np.int64)
    return np.clip(index, 0, N_BINS - 1)


def bin_value(index: np.ndarray | int) -> np.ndarray:
    """The geometric middle of bucket ``index`` (seconds): what a percentile in it reads as."""
    return LOWEST_S * np.exp((np.asarray(index, dtype=np.float64) + 0.5) * _LOG_RATIO)


@cache
def min_count_for(q: float, alpha: float = 0.05) -> int:
    """The fewest samples at which both distribution-free bounds of the q-quantile exist (p99: 368)."""
    for n in range(1, 100_001):
        lower, upper = quantile_ci_ranks(n, q, alpha)
        if lower is not None and upper is not None:
            return n
    raise ValueError(f"q={q} needs more than 100,000 samples for its bounds; no timeline window shows it")


def hist_quantile(counts: np.ndarray, q: float) -> float:
    """The q-quantile (q in (0, 1)) of one histogram: the bucket middle of rank ``ceil(q n)``; NaN when empty."""
    return float(hist_quantiles(np.asarray(counts)[None, :], q)[0])


def hist_quantiles(counts: np.ndarray, q: float, min_count: int = 1) -> np.ndarray:
    """The q-quantile of every row of ``counts`` (windows x buckets); NaN where a row has fewer
    than ``min_count`` samples (pass :func:`min_count_for` to apply the bounds rule)."""
    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q}")
    counts = np.asarray(counts)
    n = counts.sum(axis=1)
    cum = np.cumsum(counts, axis=1)
    rank = np.ceil(q * n).astype(np.int64)
    rank = np.maximum(rank, 1)
    index = np.array([np.searchsorted(cum[i], rank[i]) for i in range(counts.shape[0])], dtype=np.int64)
    values = bin_value(np.minimum(index, N_BINS - 1))
    return np.where(n >= max(1, min_count), values, np.nan)
