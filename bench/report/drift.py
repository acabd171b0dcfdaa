"""Drift within one long step: its last quarter's p50/p99 against its first, as an interval.

What: a step of at least :data:`DRIFT_MIN_S` is cut, after a warm-up of its first
:data:`WARMUP_FRACTION` (10 %), into :data:`N_BATCHES` equal stretches of send time; the
first :data:`BATCHES_PER_QUARTER` are the first quarter, the last as many the last quarter.
Each batch keeps a latency histogram of its successful requests
(:mod:`bench.report.timeline_hist`) and its count of sends. A percentile is computed per
batch, and the ratio last/first is estimated as exp of the difference of the mean log
batch percentiles, with Welch's t interval over the batches at 1 - alpha/2 per percentile
(Bonferroni over p50 and p99: the pair holds at 1 - alpha).

Why batches and not requests: latencies are autocorrelated (a queue builds and drains, a
pause hits hundreds of requests at once), so n requests are worth far fewer independent
samples and a per-request interval is too narrow -- it raises alarms on steady runs
(``benchmarks/drift_sim.py`` measures both). Batch percentiles of long stretches are close
to independent (batch means, as in simulation output analysis), and their spread carries
the autocorrelation in.

The verdict is stricter than ``bench compare``'s (docs/compare.md), and for a measured
reason: **slower** only when the *whole* interval lies above 1 + threshold (10 %) -- the
drift is shown to exceed the threshold, not merely to exist; **faster** mirrored;
**steady** when the whole interval lies within 1/(1 + threshold) .. 1 + threshold;
otherwise **cannot tell**. compare's rule (interval excludes 1 and the ratio beyond the
threshold) flagged 3.9-11.6 % of steady simulated runs here, because 5 batches per
quarter are few and neighbouring batches stay correlated when the latency wanders slowly;
this one flags 0.3 % (short-memory latencies), 0.5 % (an M/M/1 queue at 80 %) and 4.6 %
(95 % upper bound 5.8 %) when the latency level wanders with a 20 s correlation time, the
batches then being too few and too correlated (``benchmarks/results/drift_sim.md``). Not compared at all when a
batch has too few successes for the percentile's bounds
(:func:`bench.report.timeline_hist.min_count_for`) or when the offered rate of the two
quarters differs by more than :data:`RATE_TOLERANCE` (a ramp is not a drift). Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import stats

from bench.report.timeline_hist import N_BINS, bin_index, hist_quantiles, min_count_for

__all__ = [
    "BATCHES_PER_QUARTER",
    "DRIFT_MIN_S",
    "DRIFT_THRESHOLD",
    "N_BATCHES",
    "WARMUP_FRACTION",
    "DriftBatches",
    "DriftResult",
    "DriftVerdict",
    "drift_of",
]

DRIFT_MIN_S = 60.0
WARMUP_FRACTION = 0.10
N_BATCHES = 20  # over the step after warm-up: a quarter is 5 batches
BATCHES_PER_QUARTER = N_BATCHES // 4
DRIFT_THRESHOLD = 0.10
RATE_TOLERANCE = 0.10
ALPHA = 0.05
QUANTILES = (0.50, 0.99)


class DriftVerdict(StrEnum):
    SLOWER = "slower"
    FASTER = "faster"
    STEADY = "steady"
    CANNOT_TELL = "cannot tell"
    NOT_COMPARED = "not compared"


@dataclass(frozen=True)
class DriftResult:
    """One percentile of one step: last quarter / first quarter, its interval and verdict."""

    q: float
    verdict: DriftVerdict
    ratio: float = math.nan
    low: float = math.nan
    high: float = math.nan
    first: float = math.nan  # the percentile over the whole first quarter (merged batches), s
    last: float = math.nan
    reason: str = ""
    level: float = 1 - ALPHA / len(QUANTILES)  # the interval's confidence

    @property
    def flagged(self) -> bool:
        return self.verdict in (DriftVerdict.SLOWER, DriftVerdict.FASTER)

    def describe(self) -> str:
        name = f"p{self.q * 100:g}"
        if self.verdict == DriftVerdict.NOT_COMPARED:
            return f"{name}: not compared ({self.reason})"
        interval = f"x{self.ratio:.2f} ({self.level:.1%} interval {self.low:.2f}-{self.high:.2f})"
        where = f"{self.first * 1000:.3g} ms -> {self.last * 1000:.3g} ms"
        return f"{name}: {self.verdict} {interval}, {where}"


class DriftBatches:
    """The histograms of one step's batches, filled by :meth:`add` as its rows stream in."""

    def __init__(self, total_s: float) -> None:
        self.warmup_s = WARMUP_FRACTION * total_s
        self.batch_s = (total_s - self.warmup_s) / N_BATCHES
        self.hist = np.zeros((N_BATCHES, N_BINS), np.int64)
        self.sent = np.zeros(N_BATCHES, np.int64)

    def add(self, intended_s: np.ndarray, latency_s: np.ndarray, ok: np.ndarray) -> None:
        """Rows of the step: send times (s from the step's start), latencies, success mask."""
        position = (np.asarray(intended_s, np.float64) - self.warmup_s) / self.batch_s
        inside = (position >= 0) & (position < N_BATCHES)
        batch = np.floor(np.where(inside, position, 0)).astype(np.int64)
        self.sent += np.bincount(batch[inside], minlength=N_BATCHES)
        good = inside & ok
        flat = batch[good] * N_BINS + bin_index(np.asarray(latency_s)[good])
        self.hist += np.bincount(flat, minlength=N_BATCHES * N_BINS).reshape(N_BATCHES, N_BINS)

    def results(self, threshold: float = DRIFT_THRESHOLD, alpha: float = ALPHA) -> list[DriftResult]:
        return drift_of(self.hist, self.sent, threshold, alpha)


def drift_of(
    hist: np.ndarray, sent: np.ndarray, threshold: float = DRIFT_THRESHOLD, alpha: float = ALPHA
) -> list[DriftResult]:
    """p50 and p99 drift from the batch histograms (N_BATCHES x bins) and sends per batch."""
    k = BATCHES_PER_QUARTER
    first, last = slice(0, k), slice(N_BATCHES - k, N_BATCHES)
    rate_first, rate_last = float(sent[first].sum()), float(sent[last].sum())
    if rate_first <= 0 or rate_last <= 0:
        return [DriftResult(q, DriftVerdict.NOT_COMPARED, reason="no requests in a quarter") for q in QUANTILES]
    if abs(rate_last / rate_first - 1.0) > RATE_TOLERANCE:
        reason = (
            f"the offered rate changed: {rate_last / rate_first:.2f}x as many sends in the last quarter as in "
            "the first (a ramp, not a drift)"
        )
        return [DriftResult(q, DriftVerdict.NOT_COMPARED, reason=reason) for q in QUANTILES]
    return [_one(hist, q, first, last, threshold, alpha / len(QUANTILES)) for q in QUANTILES]


def _one(hist: np.ndarray, q: float, first: slice, last: slice, threshold: float, alpha: float) -> DriftResult:
    need = min_count_for(q)
    counts = hist.sum(axis=1)
    if (counts[first] < need).any() or (counts[last] < need).any():
        fewest = int(min(counts[first].min(), counts[last].min()))
        return DriftResult(
            q,
            DriftVerdict.NOT_COMPARED,
            reason=f"a batch has {fewest} successes; p{q * 100:g} needs {need} for its bounds",
        )
    a = np.log(hist_quantiles(hist[first], q))
    b = np.log(hist_quantiles(hist[last], q))
    whole = hist_quantiles(np.stack([hist[first].sum(axis=0), hist[last].sum(axis=0)]), q)
    diff = float(b.mean() - a.mean())
    va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    se = math.sqrt(va + vb)
    if se > 0:
        df = se**4 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1)) if va > 0 and vb > 0 else a.size - 1
        half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    else:  # every batch in the same histogram bucket: no spread to measure
        half = 0.0
    ratio, low, high = math.exp(diff), math.exp(diff - half), math.exp(diff + half)
    up, down = 1.0 + threshold, 1.0 / (1.0 + threshold)
    if low > up:
        verdict = DriftVerdict.SLOWER
    elif high < down:
        verdict = DriftVerdict.FASTER
    elif down <= low and high <= up:
        verdict = DriftVerdict.STEADY
    else:
        verdict = DriftVerdict.CANNOT_TELL
    return DriftResult(q, verdict, ratio, low, high, float(whole[0]), float(whole[1]), level=1 - alpha)
