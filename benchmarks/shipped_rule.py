"""The per-rate rule shipped before the episode rule (commit 52734a8), kept for comparison.

Why here: the simulation studies (benchmarks/slo_rule_sim.py, benchmarks/capacity_sim.py
``--rule shipped``) put the new rule against the old one on the same seeds; the library
(:mod:`loadgen.slo_evidence`) ships only the new one. The old rule: n and h of all looks
divided by the larger design effect (Geyer's initial positive sequence) of the 0/1 series
"latency > bound" and "latency > 0.25 x bound"; the binomial test at delta / max_looks;
no floor of time; send times ignored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from loadgen.quantile_bounds import effective_sample_size, quantile_ci, slo_decision
from loadgen.slo_evidence import Evidence, SequentialRule

SHIPPED_FRACTION = 0.25


def shipped_design_effect(latencies: np.ndarray, bound_s: float) -> float:
    """The larger design effect of the series over the bound and over a quarter of it (>= 1)."""
    if latencies.size < 4:
        return 1.0
    ess = min(
        effective_sample_size((latencies > bound_s).astype(np.float64)),
        effective_sample_size((latencies > SHIPPED_FRACTION * bound_s).astype(np.float64)),
    )
    return max(1.0, latencies.size / ess) if ess > 0 else 1.0


def shipped_judge(
    looks: Sequence[np.ndarray | Sequence[float]],
    percentile: float,
    bound_s: float,
    rule: SequentialRule,
    sent: object = None,
    cluster_fraction: float | None = None,
) -> Evidence:
    """:func:`loadgen.slo_evidence.judge`'s signature, the old rule's answer (``sent`` ignored)."""
    pooled = np.concatenate([np.asarray(x, dtype=np.float64) for x in looks])
    pooled = pooled[np.isfinite(pooled)]
    n, h = int(pooled.size), int((pooled > bound_s).sum())
    deff = shipped_design_effect(pooled, bound_s) if n else 1.0
    delta = rule.delta_per_look
    test = slo_decision(n / deff, min(h / deff, n / deff), percentile, delta)
    lo, hi = quantile_ci(pooled, percentile / 100.0, alpha=min(2 * delta, 0.99)) if n else (math.nan, math.nan)
    return Evidence(
        decision=test.decision,
        looks=len(looks),
        n=n,
        exceed=h,
        n_effective=n / deff,
        exceed_effective=h / deff,
        p_met=test.p_met,
        p_violated=test.p_violated,
        delta_look=delta,
        confidence=rule.confidence,
        lat_lo_s=lo,
        lat_hi_s=hi,
    )
