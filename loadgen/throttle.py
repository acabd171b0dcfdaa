"""The optional politeness cap (``[loadgen] max_rps``), on top of asyncio-throttle.

Why: remote endpoints can have quotas; the cap keeps a sweep under them in every mode.
asyncio-throttle's ``Throttler`` allows ``rate_limit`` (an int) acquisitions per sliding
``period``; a fractional cap such as 0.5 or 2.5 req/s is expressed exactly on average by
``rate_limit = max(1, round(max_rps))`` and ``period = rate_limit / max_rps``.  Within one
window a burst of up to ``rate_limit`` requests may still go out back to back.

In ``rate`` mode a cap below the schedule delays sends; those delays count in latency
(latency is measured from the intended time), which is the honest reading: the client,
not the target, was the bottleneck -- so do not set a cap on local runs.
"""

from __future__ import annotations

import math

from asyncio_throttle import Throttler

__all__ = ["make_throttle", "throttle_params"]


def throttle_params(max_rps: float) -> tuple[int, float]:
    """``(rate_limit, period_s)`` for asyncio-throttle that average ``max_rps``."""
    if not max_rps > 0 or not math.isfinite(max_rps):
        raise ValueError(f"max_rps must be a finite number > 0, got {max_rps}")
    rate_limit = max(1, round(max_rps))
    return rate_limit, rate_limit / max_rps


def make_throttle(max_rps: float) -> Throttler | None:
    """A fresh throttler for one step, or None when ``max_rps`` is 0 (no cap)."""
    if max_rps == 0:
        return None
    rate_limit, period = throttle_params(max_rps)
    return Throttler(rate_limit=rate_limit, period=period, retry_interval=min(0.01, period / 10))
