"""A log-bucket histogram of latencies: fixed memory, mergeable, every value within a stated relative error.

Why: a step longer than :data:`loadgen.record_columns.EXACT_RECORDS` requests no longer keeps
every latency (its memory would grow with the run: issue 25).  Its percentiles then come
from this histogram, as HdrHistogram's do for wrk and vegeta: bucket ``i`` holds the values
in ``[LOWEST * g**i, LOWEST * g**(i+1))`` with ``g = 1 + 2 * RELATIVE_ERROR`` and stands for
the midpoint of that interval, which is within :data:`RELATIVE_ERROR` (0.1 %) of every
value in it.  The count of every bucket is exact, so the *rank* of an order statistic is
exact and only its value carries the 0.1 %: a percentile and its distribution-free
confidence bounds (:mod:`loadgen.quantile_bounds`) are read at the same ranks as from the
sorted latencies.  The minimum and maximum are kept exactly (ranks 1 and n read back as
them), and every value read back is clamped to them.

Values below :data:`LOWEST` (1 ns: a virtual-time test's instant answer) count in an
underflow bucket read back as the exact minimum; above :data:`HIGHEST` (a day) in an
overflow bucket read back as the exact maximum.  ~15,000 buckets of int64: 120 KB.

The report's timeline has its own, coarser histogram (:mod:`bench.report.timeline_hist`:
2 % buckets, 931 per window, for hundreds of windows at once, read at 1 %); this one
serves one step's summary row, whose percentiles are compared across runs and where
0.1 % is the difference between one latency and the next.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["HIGHEST", "LOWEST", "RELATIVE_ERROR", "LogHistogram"]

#: Every value read back is within this fraction of a value that was recorded in its bucket.
RELATIVE_ERROR = 0.001
LOWEST = 1e-9
HIGHEST = 86_400.0
_GROWTH = 1.0 + 2.0 * RELATIVE_ERROR
_LOG_GROWTH = math.log(_GROWTH)
_BUCKETS = math.ceil(math.log(HIGHEST / LOWEST) / _LOG_GROWTH)


class LogHistogram:
    """Counts of non-negative values in log-spaced buckets (see the module docstring)."""

    def __init__(self) -> None:
        # index 0: underflow (< LOWEST); 1.._BUCKETS: the log buckets; _BUCKETS + 1: overflow
        self.counts = np.zeros(_BUCKETS + 2, dtype=np.int64)
        self.minimum = math.inf
        self.maximum = -math.inf
        self.total = 0.0

    def __len__(self) -> int:
        return int(self.counts.sum())

    def add(self, values: np.ndarray) -> None:
        """Count ``values`` (finite and >= 0; NaN or negative raise: a latency is neither)."""
        data = np.asarray(values, dtype=np.float64)
        if data.size == 0:
            return
        if not np.all(np.isfinite(data)) or np.any(data < 0):
            raise ValueError("a histogram of latencies takes finite values >= 0")
        self.counts += np.bincount(_bucket_of(data), minlength=self.counts.size)
        self.minimum = min(self.minimum, float(data.min()))
        self.maximum = max(self.maximum, float(data.max()))
        self.total += float(data.sum())

    def merge(self, other: LogHistogram) -> None:
        """Add ``other``'s counts to these (a histogram of both samples)."""
        self.counts += other.counts
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        self.total += other.total

    def value_at_ranks(self, ranks: np.ndarray) -> np.ndarray:
        """The ``k``-th smallest value (1-based) for each rank, within :data:`RELATIVE_ERROR`."""
        n = len(self)
        wanted = np.asarray(ranks, dtype=np.int64)
        if np.any((wanted < 1) | (wanted > n)):
            raise ValueError(f"ranks must be within 1..{n}")
        bucket = np.searchsorted(np.cumsum(self.counts), wanted, side="left")
        edges = LOWEST * np.power(_GROWTH, bucket - 1.0)
        values = edges * (1.0 + _GROWTH) / 2.0  # the bucket's midpoint
        values = np.where(bucket == 0, self.minimum, values)
        values = np.where(bucket == self.counts.size - 1, self.maximum, values)
        values = np.where(wanted == 1, self.minimum, np.where(wanted == n, self.maximum, values))
        return np.clip(values, self.minimum, self.maximum)

    def percentiles(self, qs: np.ndarray) -> np.ndarray:
        """Percentiles ``qs`` (0..100) by numpy's ``linear`` rule, each order statistic from the buckets."""
        n = len(self)
        if n == 0:
            return np.full(np.shape(qs), np.nan)
        position = (n - 1) * np.asarray(qs, dtype=np.float64) / 100.0
        below = np.floor(position).astype(np.int64)
        above = np.minimum(below + 1, n - 1)
        low, high = self.value_at_ranks(below + 1), self.value_at_ranks(above + 1)
        return low + (position - below) * (high - low)


def _bucket_of(data: np.ndarray) -> np.ndarray:
    """Index of each value's bucket (0 underflow, last overflow)."""
    with np.errstate(divide="ignore"):
        index = np.floor(np.log(np.maximum(data, LOWEST) / LOWEST) / _LOG_GROWTH).astype(np.int64) + 1
    index = np.where(data < LOWEST, 0, index)
    return np.where(data >= HIGHEST, _BUCKETS + 1, np.minimum(index, _BUCKETS))
