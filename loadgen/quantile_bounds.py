"""How sure a percentile is: distribution-free bounds and the SLO exceedance test.

Pure functions of counts and sorted samples (no I/O). They rest on one fact: for n
independent latencies with true q-quantile xi_q, the number of them at or below xi_q is
Binomial(n, q), whatever the latency distribution. Hence

- **Percentile bounds** (:func:`quantile_ci_ranks`, :func:`quantile_ci`): the order
  statistics X_(l) <= xi_q <= X_(u) with ranks chosen from the binomial tails hold the
  true percentile with probability >= 1 - alpha (each side <= alpha/2). At small n a side
  may not exist: with 64 requests nothing bounds the true p99 from above (the largest of
  64 is over the true p99 only with probability 1 - 0.99**64 = 47 %), and the caller must
  show "≥ x" or "—", never a number.
- **SLO test** (:func:`slo_decision`): for an objective "pq <= bound", count the h
  successful requests over the bound out of n. The objective is **met** at confidence
  1 - delta when Binomial(n, 1 - q/100) <= h has probability <= delta (so many samples
  with so few exceedances would be unlikely if the true exceedance rate were 1 - q/100 or
  more); **violated** when Binomial(n, 1 - q/100) >= h has probability <= delta (so many
  exceedances would be unlikely if the objective held); **undecided** otherwise. With
  h = 0, p99 is met at delta = 1 % from n >= 459 on (0.99**459 < 0.01).

Independence is an assumption: latencies near a server's knee are autocorrelated (a
queue builds and drains), which makes a run of n requests worth fewer independent
samples. Callers that judge such data divide n (and h) by a design effect; see
:func:`effective_sample_size`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from scipy import stats

__all__ = [
    "SloDecision",
    "SloTest",
    "effective_sample_size",
    "min_requests_to_meet",
    "quantile_ci",
    "quantile_ci_ranks",
    "slo_decision",
]


def quantile_ci_ranks(n: int, q: float, alpha: float = 0.05) -> tuple[int | None, int | None]:
    """1-based ranks (l, u) of the order statistics bounding the q-quantile (q in (0, 1)).

    P(X_(l) > xi_q) <= alpha/2 and P(X_(u) < xi_q) <= alpha/2 for continuous data. A side
    that no rank in 1..n achieves is ``None`` (no bound exists at this n).
    """
    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n < 1:
        return None, None
    if n > _FULL_CDF_MAX_N:
        ranks = _ranks_near_crossings(n, q, alpha)
        if ranks is not None:
            return ranks
    return _ranks_from_cdf(np.arange(n), stats.binom.cdf(np.arange(n), n, q), alpha)


# Above this many samples the binomial cdf is evaluated only around its two crossings
# (found with the binomial's ppf, then checked): over every k, 1 M samples cost 0.2 s per
# quantile; around the crossings, well under a millisecond. The ranks are the same.
_FULL_CDF_MAX_N = 10_000
_HALF_WIDTH = 4


def _ranks_from_cdf(k: np.ndarray, cdf: np.ndarray, alpha: float) -> tuple[int | None, int | None]:
    """The 1-based ranks from cdf[k] = P(#{X_i <= xi_q} <= k) over k = 0..n-1."""
    # lower: X_(l) > xi_q  <=>  at most l-1 samples <= xi_q: probability cdf[l-1] <= alpha/2
    ok_low = np.flatnonzero(cdf <= alpha / 2)
    lower = int(k[ok_low[-1]]) + 1 if ok_low.size else None
    # upper: X_(u) < xi_q  <=>  at least u samples below: probability 1 - cdf[u-1] <= alpha/2
    ok_up = np.flatnonzero(1.0 - cdf <= alpha / 2)
    upper = int(k[ok_up[0]]) + 1 if ok_up.size else None
    return lower, upper


def _ranks_near_crossings(n: int, q: float, alpha: float) -> tuple[int | None, int | None] | None:
    """The ranks from the cdf near where it crosses alpha/2 and 1 - alpha/2; None when a
    window does not hold its crossing (then the caller evaluates every k)."""
    a = alpha / 2
    ranks: list[int | None] = []
    for level, side in ((a, "lower"), (1.0 - a, "upper")):
        centre = int(stats.binom.ppf(level, n, q))
        first, last = max(0, centre - _HALF_WIDTH), min(n - 1, centre + _HALF_WIDTH)
        k = np.arange(first, last + 1)
        cdf = stats.binom.cdf(k, n, q)
        if side == "lower":  # cdf <= a on a prefix of 0..n-1: the prefix must end inside the window
            if (first > 0 and cdf[0] > a) or (last < n - 1 and cdf[-1] <= a):
                return None
            ranks.append(_ranks_from_cdf(k, cdf, alpha)[0] if cdf[0] <= a else None)
        else:  # 1 - cdf <= a on a suffix: the suffix must start inside the window
            if (first > 0 and 1.0 - cdf[0] <= a) or (last < n - 1 and 1.0 - cdf[-1] > a):
                return None
            ranks.append(_ranks_from_cdf(k, cdf, alpha)[1])
    return ranks[0], ranks[1]


def quantile_ci(values: Sequence[float] | np.ndarray, q: float, alpha: float = 0.05) -> tuple[float, float]:
    """(lo, hi) distribution-free bounds of the q-quantile of ``values``; NaN where none exists.

    ``values`` need not be sorted. ``hi`` NaN means "the true percentile may be above the
    largest sample": show it as ``≥ max``.
    """
    data = np.sort(np.asarray(values, dtype=np.float64))
    data = data[np.isfinite(data)]
    lower, upper = quantile_ci_ranks(int(data.size), q, alpha)
    lo = float(data[lower - 1]) if lower is not None else math.nan
    hi = float(data[upper - 1]) if upper is not None else math.nan
    return lo, hi


class SloDecision(StrEnum):
    """What n requests say about an objective pq <= bound, at a stated confidence."""

    MET = "met"
    VIOLATED = "violated"
    UNDECIDED = "undecided"


@dataclass(frozen=True)
class SloTest:
    """The evidence behind a decision: h of n over the bound, and both one-sided p-values."""

    decision: SloDecision
    n: float
    exceed: float
    p_met: float  # P(Binom(n, 1-q) <= h): small means "met" is supported
    p_violated: float  # P(Binom(n, 1-q) >= h): small means "violated" is supported


def slo_decision(n: float, exceed: float, percentile: float, delta: float) -> SloTest:
    """Decide "p``percentile`` <= bound" from ``exceed`` of ``n`` samples over the bound.

    ``n`` and ``exceed`` may be fractional (effective counts after a design effect); the
    binomial tails are then evaluated through the regularized incomplete beta function.
    """
    if not 0 < percentile < 100:
        raise ValueError(f"percentile must be in (0, 100), got {percentile}")
    if not 0 < delta < 0.5:
        raise ValueError(f"delta must be in (0, 0.5), got {delta}")
    if n <= 0:
        return SloTest(SloDecision.UNDECIDED, n, exceed, 1.0, 1.0)
    if not 0 <= exceed <= n:
        raise ValueError(f"exceed must be in [0, n], got {exceed} of {n}")
    p_tail = 1.0 - percentile / 100.0
    p_met = _binom_cdf(exceed, n, p_tail)
    p_violated = _binom_sf_incl(exceed, n, p_tail)
    if p_met <= delta:
        decision = SloDecision.MET
    elif p_violated <= delta:
        decision = SloDecision.VIOLATED
    else:
        decision = SloDecision.UNDECIDED
    return SloTest(decision, n, exceed, p_met, p_violated)


def _binom_cdf(k: float, n: float, p: float) -> float:
    """P(Binom(n, p) <= k), continuous in k and n (I_{1-p}(n-k, k+1))."""
    if k >= n:
        return 1.0
    return float(stats.beta.cdf(1.0 - p, n - k, k + 1))


def _binom_sf_incl(k: float, n: float, p: float) -> float:
    """P(Binom(n, p) >= k), continuous in k and n (I_p(k, n-k+1)); 1 for k <= 0."""
    if k <= 0:
        return 1.0
    return float(stats.beta.cdf(p, k, n - k + 1))


def min_requests_to_meet(percentile: float, delta: float, exceed: int = 0) -> int:
    """Fewest requests with ``exceed`` over the bound that show "met" at 1 - delta.

    p99, delta = 1 %, no exceedance: 459. Probe lengths come from this, not a fixed count.
    """
    n = max(exceed + 1, 1)
    while slo_decision(n, exceed, percentile, delta).decision is not SloDecision.MET:
        n = n * 2 if n < 1_000_000 else n + 1
        if n > 100_000_000:
            raise ValueError("no feasible request count")
    lo, hi = max(exceed + 1, n // 2), n
    while lo < hi:  # smallest n that meets (monotone in n for fixed exceed)
        mid = (lo + hi) // 2
        if slo_decision(mid, exceed, percentile, delta).decision is SloDecision.MET:
            hi = mid
        else:
            lo = mid + 1
    return lo


def effective_sample_size(indicators: Sequence[float] | np.ndarray, max_lag: int | None = None) -> float:
    """n divided by the design effect of autocorrelated 0/1 (or real) values.

    Uses the initial positive sequence of autocorrelations (Geyer): ESS = n / (1 + 2 * sum
    rho_k), summing lags while consecutive pairs stay positive. Independent values give
    about n; a queue that makes exceedances come in bursts gives much less. A constant
    series (no variance) is taken as independent: it carries no evidence of clustering.
    """
    x = np.asarray(indicators, dtype=np.float64)
    n = x.size
    if n < 4:
        return float(n)
    x = x - x.mean()
    var = float(np.dot(x, x)) / n
    if var == 0:
        return float(n)
    max_lag = min(max_lag or n // 4, n - 1)
    nfft = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(x, nfft)
    acov = np.fft.irfft(f * np.conj(f), nfft)[: max_lag + 1] / n
    rho = acov / var
    total = 0.0
    k = 1
    while k + 1 <= max_lag:
        pair = rho[k] + rho[k + 1]
        if pair <= 0:
            break
        total += pair
        k += 2
    design_effect = max(1.0, 1.0 + 2.0 * total)
    return float(n / design_effect)
