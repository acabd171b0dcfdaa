"""The closed-loop view of capacity: a concurrency sweep, perf_analyzer style, as a pure driver.

Why beside the open-loop search (:mod:`loadgen.capacity`): a closed loop answers another
question -- "with C requests always in flight, how much does the target serve, and how
slow is each answer?" -- and it is how Triton's perf_analyzer reports serving capacity
(concurrency 1, 2, 4, ... until a latency threshold is crossed). It cannot show a queue
building up (a closed loop waits for the server: coordinated omission), so it never
replaces the open-loop capacity; it shows where throughput stops growing.

Levels are 1, 2, 4, ... up to ``max_concurrency``. The sweep stops at the first level where
the objective's percentile is over the bound, any request failed, or throughput grew less
than :data:`MIN_THROUGHPUT_GAIN` over the best level before it (more in flight only adds
queueing); and when the next level would not fit in ``max_seconds`` (estimated from the
last level's throughput) or the target stopped answering.

Pure: the caller's ``measure(spec) -> LevelOutcome`` does the measuring; elapsed time is
the sum of the outcomes' ``duration_s``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from loadgen.capacity import Objective

__all__ = [
    "MIN_THROUGHPUT_GAIN",
    "ClosedLoopResult",
    "LevelOutcome",
    "LevelRecord",
    "LevelSpec",
    "concurrency_levels",
    "concurrency_sweep",
]

# perf_analyzer's plateau rule, as the issue states it: stop when doubling the
# concurrency adds less than 5 % throughput.
MIN_THROUGHPUT_GAIN = 0.05


@dataclass(frozen=True)
class LevelSpec:
    concurrency: int
    n_requests: int


@dataclass(frozen=True)
class LevelOutcome:
    """One closed-loop level as measured; latencies over successful requests (NaN: none)."""

    concurrency: int
    n_requests: int
    throughput_rps: float  # successful requests / step wall time
    latency_s: float  # the objective's percentile
    p50_s: float
    errors: int
    duration_s: float
    fatal: bool = False
    error_classes: str = ""


@dataclass(frozen=True)
class LevelRecord:
    spec: LevelSpec
    outcome: LevelOutcome
    met: bool  # the objective held at this level (and no request failed)
    stop: str  # why the sweep stopped after this level ("" if it went on)


@dataclass(frozen=True)
class ClosedLoopResult:
    objective: Objective
    levels: tuple[LevelRecord, ...] = field(default_factory=tuple)
    stop_reason: str = ""

    @property
    def best(self) -> LevelRecord | None:
        """The level with the highest throughput among those that met the objective."""
        good = [r for r in self.levels if r.met and not math.isnan(r.outcome.throughput_rps)]
        return max(good, key=lambda r: r.outcome.throughput_rps) if good else None

    @property
    def seconds(self) -> float:
        return float(sum(r.outcome.duration_s for r in self.levels))


def concurrency_levels(max_concurrency: int) -> list[int]:
    """1, 2, 4, ... up to ``max_concurrency`` (which is included even when not a power of 2)."""
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
    levels, c = [], 1
    while c < max_concurrency:
        levels.append(c)
        c *= 2
    return levels + [max_concurrency]


def _requests_for(c: int, last: LevelOutcome | None, min_requests: int, min_seconds: float) -> int:
    """Enough requests for ``min_seconds`` at the last level's throughput, never fewer than
    ``min_requests`` nor than 4 per connection (each connection must be reused)."""
    n = max(min_requests, 4 * c)
    if last is not None and last.throughput_rps > 0 and math.isfinite(last.throughput_rps):
        n = max(n, math.ceil(last.throughput_rps * min_seconds))
    return n


async def concurrency_sweep(
    measure: Callable[[LevelSpec], Awaitable[LevelOutcome]],
    objective: Objective,
    *,
    max_concurrency: int,
    min_requests: int,
    min_seconds: float,
    max_seconds: float,
) -> ClosedLoopResult:
    """Run the levels in order until a stop rule fires (module docstring)."""
    if min_requests < 1 or not min_seconds > 0 or not max_seconds > 0:
        raise ValueError("min_requests must be >= 1, min_seconds and max_seconds > 0")
    records: list[LevelRecord] = []
    last: LevelOutcome | None = None
    best_tput = 0.0
    elapsed = 0.0
    stop = ""
    levels = concurrency_levels(max_concurrency)
    for i, c in enumerate(levels):
        n = _requests_for(c, last, min_requests, min_seconds)
        if last is not None and last.throughput_rps > 0:
            expected = n / last.throughput_rps
            if elapsed + expected > max_seconds:
                stop = (
                    f"time cap of {max_seconds:g} s ({elapsed:.1f} s used; concurrency {c} would need "
                    f"about {expected:.1f} s)"
                )
                records[-1] = dataclasses.replace(records[-1], stop=stop)  # said on the last level measured
                break
        outcome = await measure(LevelSpec(concurrency=c, n_requests=n))
        elapsed += outcome.duration_s
        over = math.isnan(outcome.latency_s) or outcome.latency_s > objective.bound_s
        met = not outcome.errors and not outcome.fatal and not over
        if outcome.fatal:
            stop = f"the target stopped answering at concurrency {c}"
        elif outcome.errors:
            stop = f"{outcome.errors} of {outcome.n_requests} requests failed at concurrency {c}"
        elif over:
            stop = (
                f"{objective.label} {outcome.latency_s * 1000:.4g} ms > {objective.bound_s * 1000:g} ms "
                f"at concurrency {c}"
            )
        elif last is not None and outcome.throughput_rps < best_tput * (1 + MIN_THROUGHPUT_GAIN):
            stop = (
                f"throughput grew < {MIN_THROUGHPUT_GAIN:.0%} at concurrency {c} (best before "
                f"{best_tput:.4g}, now {outcome.throughput_rps:.4g} req/s)"
            )
        elif i == len(levels) - 1:
            stop = f"reached max_concurrency {max_concurrency}"
        records.append(LevelRecord(LevelSpec(c, n), outcome, met, stop))
        best_tput = max(best_tput, outcome.throughput_rps if met else 0.0)
        last = outcome
        if stop:
            break
    return ClosedLoopResult(objective=objective, levels=tuple(records), stop_reason=stop)
