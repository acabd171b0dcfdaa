"""Open-loop pacing as pure functions: when each request of a ``rate`` step is due.

Why pure: the schedule decides every latency in ``rate`` mode (latency is counted from
the *intended* time), so it must be testable without a clock or a network, and
reproducible from a seed (vegeta's ``Pacer.Pace``; MLPerf LoadGen keeps a schedule seed
separate from the sample-choice seed, and so do we).

Definitions:

- ``uniform``: request ``i`` is due at ``i / rate`` seconds (the first one at 0).
- ``poisson``: a Poisson process of intensity ``rate``: inter-arrival gaps are i.i.d.
  exponential with mean ``1 / rate``; the first request is due at 0 (so a step never
  starts with an idle gap) and request ``i`` at the sum of the first ``i`` gaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = ["ARRIVALS", "Arrival", "pace", "schedule"]

Arrival = Literal["uniform", "poisson"]
ARRIVALS: tuple[str, ...] = ("uniform", "poisson")


def schedule(n: int, rate_rps: float, arrival: Arrival = "uniform", seed: int | Sequence[int] | None = 0) -> np.ndarray:
    """Intended send offsets (seconds from the step's start) of ``n`` requests, ascending.

    ``seed`` only matters for ``poisson``; it seeds a generator of its own (anything
    ``numpy.random.default_rng`` accepts, e.g. ``[seed, trial]``), so the arrival pattern
    does not change when the image order (another seed) does.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not rate_rps > 0 or not np.isfinite(rate_rps):
        raise ValueError(f"rate_rps must be a finite number > 0, got {rate_rps}")
    if arrival == "uniform":
        return np.arange(n, dtype=np.float64) / rate_rps
    if arrival == "poisson":
        if n == 0:
            return np.zeros(0)
        gaps = np.random.default_rng(seed).exponential(1.0 / rate_rps, size=n - 1)
        return np.concatenate(([0.0], np.cumsum(gaps)))
    raise ValueError(f"arrival must be one of {', '.join(ARRIVALS)}, got {arrival!r}")


def pace(offsets: np.ndarray, elapsed: float, hits: int) -> tuple[float, bool]:
    """vegeta's ``Pace(elapsed, hits) -> (wait, stop)`` over a precomputed schedule.

    ``hits`` requests have been launched and ``elapsed`` seconds have passed since the
    step started: return how long to wait before launching the next one (0 when it is
    already due or overdue -- an open loop never skips a request to catch up, it sends
    it late and its latency counts from the intended time) and whether the schedule is
    exhausted.
    """
    if hits < 0:
        raise ValueError(f"hits must be >= 0, got {hits}")
    if hits >= len(offsets):
        return 0.0, True
    return max(0.0, float(offsets[hits]) - elapsed), False
