"""What one offered rate's latencies say about an objective, and how a probe is extended.

Why a module of its own: the capacity search (:mod:`loadgen.capacity`) must not call a
rate "met" because ~200 requests happened to hold at most 2 exceedances (a server whose
true p99 is 50 % over the bound does that often). Here the judgement is a test with a
stated error rate, built on :func:`loadgen.quantile_bounds.slo_decision`:

- **Evidence** (:func:`judge`): the successful requests' latencies at one rate, in the
  order they were sent, possibly in several *looks* (chunks). Count the h of n over the
  bound. Exceedances near a server's knee come in bursts (a queue builds and drains), so
  n and h of all looks together are divided by the design effect of their 0/1 exceedance series
  (:func:`loadgen.quantile_bounds.effective_sample_size`), or of the series "over a
  quarter of the bound" if that is larger (:data:`CLUSTER_FRACTION`: a queue clusters
  before it exceeds), before the binomial test. The simulation study
  (benchmarks/capacity_sim.py) checks the error rate that leaves on a queue at its knee.
- **Sequential sampling** (:class:`SequentialRule`): an undecided look is extended, up to
  ``max_looks`` looks at cumulative sizes n1, 2 n1, 4 n1, ... The error is spent by
  Bonferroni: each look is tested at ``delta / max_looks``, so the chance that *any* look
  wrongly says "met" (or wrongly "violated") is at most ``delta``, whatever the
  correlation between looks -- no joint distribution of a discrete, design-effect-adjusted
  statistic is needed, at the price of a slightly longer first look (p99 at 95 % over
  three looks: 408 requests instead of 299). A rate still undecided after the last look
  stays **undecided**: it is never rounded to met.
- The first look is the shortest that *can* show "met" at the per-look level
  (:func:`loadgen.quantile_bounds.min_requests_to_meet`), so probe lengths follow the
  objective and the confidence, not a fixed count.

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

__all__ = ["CLUSTER_FRACTION", "Evidence", "SequentialRule", "design_effect", "judge"]


@dataclass(frozen=True)
class SequentialRule:
    """Confidence of a verdict and how many looks a rate may take to reach it."""

    confidence: float = 0.95
    max_looks: int = 3

    def __post_init__(self) -> None:
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0.5, 1), got {self.confidence}")
        if self.max_looks < 1:
            raise ValueError(f"max_looks must be >= 1, got {self.max_looks}")

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


@dataclass(frozen=True)
class Evidence:
    """The cumulative evidence at one rate after some looks, and the test's answer."""

    decision: SloDecision
    looks: int
    n: int  # successful requests judged, all looks
    exceed: int  # of them over the bound
    n_effective: float  # n over the design effect of all looks together
    exceed_effective: float
    p_met: float  # P(Binom(n_eff, 1-q) <= h_eff): "met" when <= delta_look
    p_violated: float  # P(Binom(n_eff, 1-q) >= h_eff): "violated" when <= delta_look
    delta_look: float  # the level each look was tested at
    confidence: float  # 1 - delta of the whole sequential test
    lat_lo_s: float  # distribution-free bounds of the percentile (NaN: none at this n)
    lat_hi_s: float

    def describe(self, label: str, bound_ms: float) -> str:
        """``2 of 459 over 100 ms (p99 95 % bounds 3.1-151 ms)`` for reasons and progress lines."""
        eff = "" if math.isclose(self.n_effective, self.n) else f", {self.n_effective:.0f} effective"
        lo = "-" if math.isnan(self.lat_lo_s) else f"{self.lat_lo_s * 1000:.4g}"
        hi = ">= max" if math.isnan(self.lat_hi_s) else f"{self.lat_hi_s * 1000:.4g}"
        return (
            f"{self.exceed} of {self.n} over {bound_ms:g} ms{eff}; {label} in [{lo}, {hi}] ms at {self.confidence:.0%}"
        )


CLUSTER_FRACTION = 0.25
"""Where :func:`design_effect` looks for queueing that has not (yet) crossed the bound: the
0/1 series "latency > CLUSTER_FRACTION x bound".

Why a second series at all: a queue at its knee may show no exceedance in a look while
already clustering, and a constant 0/1 exceedance series would then claim independence.
Why a quarter of the bound and not the latencies' ranks (the rule before): the ranks also
see drift of the *bulk* far below the bound (a shared host's p50 moving 11 -> 17 ms under a
100 ms bound), which says nothing about the tail, and counted e.g. 816 requests with none
over the bound as ~165 independent ones -- no stand-in ever got a VALID capacity. Latencies
over a quarter of the bound are the queue's excursions toward the bound; the bulk's drift
stays under it. A quarter is the value checked by the simulation study
(benchmarks/capacity_sim.py, results/capacity_sim.md), not derived: a larger fraction
sees less of a queue's clustering before it reaches the bound, a smaller one sees more of
the bulk's drift.
"""


def design_effect(latencies: np.ndarray, bound_s: float, cluster_fraction: float | None = None) -> float:
    """How many requests one independent sample is worth in this look (>= 1).

    The larger of two design effects: that of the 0/1 exceedance series "latency > bound"
    (bursts of exceedances), and that of the 0/1 series "latency > CLUSTER_FRACTION x
    bound" (a queue that builds and drains makes runs of long latencies before any
    exceeds the bound; see :data:`CLUSTER_FRACTION` for why not the latencies' ranks).
    0/1 series, so one huge latency does not dominate the autocorrelation and ties do not
    fake a trend.

    ``cluster_fraction`` overrides :data:`CLUSTER_FRACTION` (the simulation study compares
    fractions; 1.0 = the exceedance series alone).
    """
    fraction = CLUSTER_FRACTION if cluster_fraction is None else cluster_fraction
    if not 0 < fraction <= 1:
        raise ValueError(f"cluster_fraction must be in (0, 1], got {fraction}")
    n = latencies.size
    if n < 4:
        return 1.0
    over = (latencies > bound_s).astype(np.float64)
    near = (latencies > fraction * bound_s).astype(np.float64)
    ess = min(effective_sample_size(over), effective_sample_size(near))
    return max(1.0, n / ess) if ess > 0 else 1.0


def judge(
    looks: Sequence[np.ndarray | Sequence[float]],
    percentile: float,
    bound_s: float,
    rule: SequentialRule,
    cluster_fraction: float | None = None,
) -> Evidence:
    """The test after ``len(looks)`` looks: each look's successful latencies in send order.

    ``percentile`` in (0, 100), ``bound_s`` > 0. The looks are concatenated (they are
    consecutive probes at one rate) and n and h are divided by the design effect of the
    whole series. Not per look: pooling n_i / deff_i and h_i / deff_i weighs a quiet look
    (deff 1, nothing over the bound) fully and discounts the look holding a burst, which
    biases the pooled exceedance rate down -- the simulation study
    (benchmarks/slo_rule_sim.py) measured a false "met" on a queue at the bound in 25 % of
    rates with that pooling. The percentile's bounds are the iid order
    statistic bounds of all latencies at the per-look level (shown, not used to decide).
    ``cluster_fraction``: see :func:`design_effect` (None: :data:`CLUSTER_FRACTION`).
    """
    if not looks:
        raise ValueError("judge needs at least one look")
    if len(looks) > rule.max_looks:
        raise ValueError(f"{len(looks)} looks exceed the rule's max_looks={rule.max_looks}")
    arrays = [np.asarray(x, dtype=np.float64) for x in looks]
    arrays = [a[np.isfinite(a)] for a in arrays]
    pooled = np.concatenate(arrays)
    n, h = int(pooled.size), int((pooled > bound_s).sum())
    deff = design_effect(pooled, bound_s, cluster_fraction) if n else 1.0
    n_eff, h_eff = n / deff, h / deff
    delta = rule.delta_per_look
    test = slo_decision(n_eff, min(h_eff, n_eff), percentile, delta)
    lo, hi = (
        quantile_ci(pooled, percentile / 100.0, alpha=min(2 * delta, 0.99)) if pooled.size else (math.nan, math.nan)
    )
    return Evidence(
        decision=test.decision,
        looks=len(arrays),
        n=n,
        exceed=h,
        n_effective=n_eff,
        exceed_effective=h_eff,
        p_met=test.p_met,
        p_violated=test.p_violated,
        delta_look=delta,
        confidence=rule.confidence,
        lat_lo_s=lo,
        lat_hi_s=hi,
    )
