"""What one offered rate's latencies say about an objective, and how a probe is extended.

Why a module of its own: the capacity search (:mod:`loadgen.capacity`) must not call a
rate "met" because a few hundred requests happened to hold no exceedance -- a server whose
true p99 is over the bound does that often when its slow requests come in bursts (a queue
at its knee, a stall). Here the judgement is a test with a stated error rate, built on
:func:`loadgen.quantile_bounds.slo_decision`:

- **Episodes, not requests, are the unit of "met"** (:func:`judge`). Requests over the
  bound that were in flight at overlapping times (a chain of overlapping [sent, sent +
  latency] intervals) are one *episode*: one burst of a queue, one stall. Episodes are
  what a server's bursts make independent; requests inside one are not. The mean episode
  size m (requests per episode) is measured twice -- over the bound, and over
  :data:`CLUSTER_FRACTION` x the bound, where a queue's excursions are seen before they
  reach the bound -- and the larger taken. "Met" at 1 - delta: with n / m effective
  requests, the binomial says so few *episodes* over the bound would be unlikely if the
  objective failed. "Violated": the exceedance *share* is too high at n / d effective
  requests, d the larger of the episode size over the bound and the exceedance series'
  autocorrelation design effect (:func:`loadgen.quantile_bounds.effective_sample_size`),
  so a burst is not counted as many independent failures either.
- **A floor of time for "met"** (:attr:`SequentialRule.min_met_seconds`): a server's
  hidden state (a GC pause, a co-tenant, a timer job) may make bursts that no look of two
  seconds sees. "Met" needs the looks' arrivals to span at least this many seconds: a
  burst recurring at least every min_met_seconds / ln(1 / delta_look) seconds (about
  1 s at the defaults) is then seen with probability >= 1 - delta_look.
- **Sequential sampling** (:class:`SequentialRule`): an undecided look is extended, up to
  ``max_looks`` looks at cumulative sizes n1, 2 n1, 4 n1, ... The error is spent by
  Bonferroni: each look is tested at ``delta / max_looks``, so the chance that *any* look
  wrongly says "met" (or "violated") is at most ``delta`` whatever the correlation between
  looks. A rate still undecided after the last look stays **undecided**: it is never
  rounded to met.

What the rule does not promise, measured by benchmarks/slo_rule_sim.py (results/
slo_rule_sim.md): on a fast single-server queue, a rate whose p99 is half the bound is
often left undecided within the default budget -- a few seconds of such a queue look like
a calm stretch of the same queue at its knee, and no count in the window tells them apart.

Pure: arrays in, frozen records out.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loadgen.quantile_bounds import (
    SloDecision,
    effective_sample_size,
    min_requests_to_meet,
    quantile_ci,
    slo_decision,
)

__all__ = ["CLUSTER_FRACTION", "Episodes", "Evidence", "SequentialRule", "count_episodes", "judge"]


@dataclass(frozen=True)
class SequentialRule:
    """Confidence of a verdict, how many looks a rate may take, and the time "met" needs."""

    confidence: float = 0.95
    max_looks: int = 3
    min_met_seconds: float = 4.0

    def __post_init__(self) -> None:
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0.5, 1), got {self.confidence}")
        if self.max_looks < 1:
            raise ValueError(f"max_looks must be >= 1, got {self.max_looks}")
        if not (self.min_met_seconds >= 0 and math.isfinite(self.min_met_seconds)):
            raise ValueError(f"min_met_seconds must be a finite time >= 0, got {self.min_met_seconds}")

    @property
    def delta(self) -> float:
        """The error rate of a verdict on one rate: 1 - confidence."""
        return 1.0 - self.confidence

    @property
    def delta_per_look(self) -> float:
        """Bonferroni: each of ``max_looks`` tests at ``delta / max_looks``."""
        return self.delta / self.max_looks

    def first_look(self, percentile: float) -> int:
        """Fewest requests that can show "met" at the per-look level (no exceedance)."""
        return _first_look(percentile, self.delta_per_look)

    def look_size(self, look: int, first: int) -> int:
        """Requests of look ``look`` (1-based): n1, then n1, 2 n1, ... so the cumulative
        sizes double (n1, 2 n1, 4 n1)."""
        if look < 1:
            raise ValueError(f"look must be >= 1, got {look}")
        return first if look == 1 else first * 2 ** (look - 2)


@functools.lru_cache(maxsize=256)
def _first_look(percentile: float, delta: float) -> int:
    return min_requests_to_meet(percentile, delta)


CLUSTER_FRACTION = 0.3
"""Where :func:`judge` also measures episode sizes: requests over CLUSTER_FRACTION x bound.

Why a second level at all: a look with no exceedance has no episode over the bound to
measure, and a queue at its knee may be in a calm stretch; its excursions toward the bound
still come in long episodes, and those say how large the bursts over the bound would be.
Why 0.3: the simulation study (benchmarks/slo_rule_sim.py, results/slo_rule_sim.md) put the
fractions 0.3 to 0.5 against queues at their knee (M/M/1, M/H2/1, M/M/2, M/M/4): above
~0.35 a four-server queue at the bound gets a false "met" more often than delta allows; a
smaller fraction sees more of the bulk far below the bound and costs power.
"""


@dataclass(frozen=True)
class Episodes:
    """One look's counts: requests and episodes over the bound and over the cluster level."""

    n: int
    exceed: int
    episodes: int  # chains of overlapping over-bound requests
    near: int  # requests over cluster_fraction x bound
    near_episodes: int
    span_s: float  # seconds of arrivals: (last - first send) x n / (n - 1) (NaN: send times unknown)


def count_episodes(over: np.ndarray, sent_s: np.ndarray | None, latencies: np.ndarray) -> int:
    """Episodes among the requests flagged ``over``: chains of overlapping in-flight intervals.

    Request j joins the episode of the flagged requests before it (in send order) when it
    was sent before the latest of their completions. Without send times, a run of
    consecutive flagged requests is one episode (the same idea on the send order alone).
    """
    idx = np.flatnonzero(over)
    if idx.size == 0:
        return 0
    if sent_s is None:
        return int(over[idx[0]]) + int(np.count_nonzero(np.diff(idx) > 1))
    starts = sent_s[idx]
    ends = starts + latencies[idx]
    latest = np.concatenate(([-np.inf], np.maximum.accumulate(ends)[:-1]))
    return int(np.count_nonzero(starts >= latest))


def _look_counts(latencies: np.ndarray, sent_s: np.ndarray | None, bound_s: float, fraction: float) -> Episodes:
    over = latencies > bound_s
    near = latencies > fraction * bound_s
    span = math.nan
    if sent_s is not None:  # n arrivals span n gaps: (last - first) x n / (n - 1)
        span = float(sent_s[-1] - sent_s[0]) * sent_s.size / (sent_s.size - 1) if sent_s.size > 1 else 0.0
    return Episodes(
        n=int(latencies.size),
        exceed=int(over.sum()),
        episodes=count_episodes(over, sent_s, latencies),
        near=int(near.sum()),
        near_episodes=count_episodes(near, sent_s, latencies),
        span_s=span,
    )


@dataclass(frozen=True)
class Evidence:
    """The cumulative evidence at one rate after some looks, and the test's answer."""

    decision: SloDecision
    looks: int
    n: int  # successful requests judged, all looks
    exceed: int  # of them over the bound
    n_effective: float  # n over the episode size: the "met" test's sample
    exceed_effective: float  # episodes over the bound: the "met" test's count
    p_met: float  # P(Binom(n_eff, 1-q) <= episodes): "met" when <= delta_look (and span >= floor)
    p_violated: float  # P(Binom(n/d, 1-q) >= exceed/d): "violated" when <= delta_look
    delta_look: float  # the level each look was tested at
    confidence: float  # 1 - delta of the whole sequential test
    lat_lo_s: float  # distribution-free bounds of the percentile (NaN: none at this n)
    lat_hi_s: float
    episodes: int = 0  # chains of overlapping over-bound requests
    cluster_size: float = 1.0  # m: requests per episode, the larger of the two levels
    span_s: float = math.nan  # seconds of arrivals the looks spanned (NaN: no send times)
    min_met_seconds: float = 0.0

    @property
    def short_of_time(self) -> bool:
        """The counts say "met" but the looks spanned less than the rule's floor of time."""
        return self.p_met <= self.delta_look and self.decision is not SloDecision.MET and not self.violated_by_counts

    @property
    def violated_by_counts(self) -> bool:
        return self.p_violated <= self.delta_look

    def describe(self, label: str, bound_s_ms: float) -> str:
        """``2 of 459 over 100 ms in 1 episode; p99 in [3.1, 151] ms at 95 %`` for reasons and progress lines."""
        ep = f" in {self.episodes} episode{'s' if self.episodes != 1 else ''}" if self.exceed else ""
        size = f", bursts of {self.cluster_size:.1f}" if self.cluster_size > 1.05 else ""
        eff = f" ({self.n_effective:.0f} effective)" if not math.isclose(self.n_effective, self.n) else ""
        lo = "-" if math.isnan(self.lat_lo_s) else f"{self.lat_lo_s * 1000:.4g}"
        hi = ">= max" if math.isnan(self.lat_hi_s) else f"{self.lat_hi_s * 1000:.4g}"
        short = (
            f"; met by the counts but only {self.span_s:.1f} s of arrivals (needs {self.min_met_seconds:g} s)"
            if self.short_of_time
            else ""
        )
        return (
            f"{self.exceed} of {self.n} over {bound_s_ms:g} ms{ep}{size}{eff}; "
            f"{label} in [{lo}, {hi}] ms at {self.confidence:.0%}{short}"
        )


def judge(
    looks: Sequence[np.ndarray | Sequence[float]],
    percentile: float,
    bound_s: float,
    rule: SequentialRule,
    sent: Sequence[np.ndarray | Sequence[float]] | None = None,
    cluster_fraction: float | None = None,
) -> Evidence:
    """The test after ``len(looks)`` looks: each look's successful latencies in send order.

    ``sent``: each look's send offsets in seconds (same order and length as its latencies;
    each look may start its own clock). Without them an episode is a run of consecutive
    requests over the level and the floor of time is not applied (``span_s`` NaN).
    ``percentile`` in (0, 100), ``bound_s`` > 0. ``cluster_fraction``: see
    :data:`CLUSTER_FRACTION` (None: the module's value).
    """
    if not looks:
        raise ValueError("judge needs at least one look")
    if len(looks) > rule.max_looks:
        raise ValueError(f"{len(looks)} looks exceed the rule's max_looks={rule.max_looks}")
    if sent is not None and len(sent) != len(looks):
        raise ValueError(f"sent has {len(sent)} looks, latencies {len(looks)}")
    fraction = CLUSTER_FRACTION if cluster_fraction is None else cluster_fraction
    if not 0 < fraction <= 1:
        raise ValueError(f"cluster_fraction must be in (0, 1], got {fraction}")
    counts: list[Episodes] = []
    kept: list[np.ndarray] = []
    for i, look in enumerate(looks):
        lat = np.asarray(look, dtype=np.float64)
        times = None if sent is None else np.asarray(sent[i], dtype=np.float64)
        if times is not None and times.shape != lat.shape:
            raise ValueError(f"look {i + 1}: {times.size} send times for {lat.size} latencies")
        ok = np.isfinite(lat) if times is None else np.isfinite(lat) & np.isfinite(times)
        lat = lat[ok]
        times = None if times is None else times[ok]
        if times is not None and times.size > 1 and np.any(np.diff(times) < 0):
            order = np.argsort(times, kind="stable")
            lat, times = lat[order], times[order]
        kept.append(lat)
        counts.append(_look_counts(lat, times, bound_s, fraction))
    pooled = np.concatenate(kept)
    n = sum(c.n for c in counts)
    h = sum(c.exceed for c in counts)
    episodes = sum(c.episodes for c in counts)
    near, near_episodes = sum(c.near for c in counts), sum(c.near_episodes for c in counts)
    size = max(1.0, h / episodes if episodes else 1.0, near / near_episodes if near_episodes else 1.0)
    span = sum(c.span_s for c in counts)
    delta = rule.delta_per_look
    n_eff = n / size
    met = slo_decision(n_eff, min(float(episodes), n_eff), percentile, delta) if n else None
    # "violated" counts the exceedances themselves: their own episodes and autocorrelation
    # (the cluster level's episodes would also merge independent slow requests that overlap
    # by chance, which costs this direction power and buys it nothing)
    bursts = h / episodes if episodes else 1.0
    deff = max(1.0, bursts, n / effective_sample_size((pooled > bound_s).astype(np.float64))) if n else 1.0
    violated = slo_decision(n / deff, min(h / deff, n / deff), percentile, delta) if n else None
    p_met = met.p_met if met else 1.0
    p_violated = violated.p_violated if violated else 1.0
    long_enough = math.isnan(span) or span >= rule.min_met_seconds
    if p_met <= delta and long_enough:
        decision = SloDecision.MET
    elif p_violated <= delta:
        decision = SloDecision.VIOLATED
    else:
        decision = SloDecision.UNDECIDED
    lo, hi = (
        quantile_ci(pooled, percentile / 100.0, alpha=min(2 * delta, 0.99)) if pooled.size else (math.nan, math.nan)
    )
    return Evidence(
        decision=decision,
        looks=len(kept),
        n=n,
        exceed=h,
        n_effective=n_eff,
        exceed_effective=float(episodes),
        p_met=p_met,
        p_violated=p_violated,
        delta_look=delta,
        confidence=rule.confidence,
        lat_lo_s=lo,
        lat_hi_s=hi,
        episodes=episodes,
        cluster_size=size,
        span_s=span,
        min_met_seconds=rule.min_met_seconds,
    )
