"""The wall-clock barrier of a sharded run: when each step starts, and how late it really did.

Why a schedule and not a message: shards may run on different machines (pods of a
Kubernetes Indexed Job) that share nothing but a clock synchronised by NTP.  So every
shard is given the same schedule -- step ``k`` (in plan order, 0-based) starts at
``start_at + k * interval_s`` -- and waits for it by its own clock.  A shard runs each
step's warm-up first, then sleeps until the step's instant, then measures.  A shard that
is still busy when a step's instant comes (its previous step, or its warm-up, took longer
than the interval; or the pod started after ``start_at``) starts as soon as it can: never
earlier than the schedule, and never skipping a step.  Nothing is hidden: each shard
records every step's scheduled and actual start (``late_s`` = actual minus scheduled),
and ``bench merge`` records the spread of the actual starts across shards (the start
skew) beside the merged step.  How far apart the shards' clocks themselves are is outside
what a shard can measure alone; each records its kernel's NTP estimate
(:mod:`ground.clock`).

Without ``start_at`` there is no barrier: each step starts when the shard gets there,
and the skew is still recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loadgen.records import StepKey, StepResult
from loadgen.shard import ShardSpec, StepShare, step_share

__all__ = ["MAX_SLEEP_CHUNK_S", "ShardRun", "StartSchedule", "sleep_until"]

# The barrier sleeps in pieces no longer than this, re-reading the wall clock after each,
# so a clock stepped by NTP while waiting moves the wake-up with it.
MAX_SLEEP_CHUNK_S = 0.25


@dataclass(frozen=True)
class StartSchedule:
    """Step ``k`` starts at ``start_at + k * interval_s`` (Unix seconds); no barrier when ``start_at`` is None."""

    start_at: float | None = None
    interval_s: float = 0.0

    def __post_init__(self) -> None:
        if self.start_at is not None and not (math.isfinite(self.start_at) and self.start_at > 0):
            raise ValueError(f"start_at must be Unix seconds > 0, got {self.start_at}")
        if not (math.isfinite(self.interval_s) and self.interval_s >= 0):
            raise ValueError(f"interval_s must be a finite number >= 0, got {self.interval_s}")

    def scheduled(self, index: int) -> float | None:
        """The instant step ``index`` is due, or None without a barrier."""
        if self.start_at is None:
            return None
        return self.start_at + index * self.interval_s

    def describe(self) -> dict[str, Any]:
        return {"start_at": self.start_at, "step_interval_s": self.interval_s}


async def sleep_until(epoch: float, clock: Callable[[], float] = time.time) -> float:
    """Sleep until the wall clock reads ``epoch`` (at once if it has passed); return the seconds waited."""
    began = clock()
    while True:
        remaining = epoch - clock()
        if remaining <= 0:
            return max(0.0, clock() - began)
        await asyncio.sleep(min(remaining, MAX_SLEEP_CHUNK_S))


@dataclass
class ShardRun:
    """One shard at work: its share of every step, the barrier, and the measured starts.

    ``starts`` is appended as steps run (one dict per step, see :meth:`finish`); the caller
    may hold on to the list and write it out whenever it likes (bench puts it in meta.json).
    """

    spec: ShardSpec
    schedule: StartSchedule = field(default_factory=StartSchedule)
    starts: list[dict[str, Any]] = field(default_factory=list)
    _waited: dict[int, float] = field(default_factory=dict, repr=False)

    def share(self, plan: Any, key: StepKey) -> StepShare:
        return step_share(plan, self.spec, key)

    async def wait(self, index: int) -> None:
        """Wait for step ``index``'s instant (no-op without a barrier)."""
        due = self.schedule.scheduled(index)
        self._waited[index] = 0.0 if due is None else await sleep_until(due)

    def finish(self, index: int, share: StepShare, result: StepResult) -> StepResult:
        """The shard's result of step ``index`` under the plan's step, and its start recorded.

        The records keep their own times (from this shard's start of the step) and are
        numbered within the whole step (``seq`` from ``share.first``). The key is the
        plan's step (its N and rate) with this shard's own in-flight limit / connection
        cap as ``concurrency`` -- the limit this shard's requests were under.
        """
        due = self.schedule.scheduled(index)
        records = tuple(dataclasses.replace(r, seq=r.seq + share.first) for r in result.records)
        self.starts.append({
            "step": index,
            **share.describe(),
            "scheduled_at": due,
            "started_at": float(result.started_at),
            "late_s": None if due is None else result.started_at - due,
            "waited_s": self._waited.pop(index, 0.0),
            "total_s": float(result.total_s),
        })
        key = dataclasses.replace(share.key, concurrency=share.sent.concurrency)
        return StepResult(key=key, records=records, total_s=result.total_s, started_at=result.started_at)
