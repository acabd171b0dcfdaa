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

On one machine (``bench run --clients N``) there is a better channel than the clock: a
folder the parent and its shards share.  With a :class:`StepGate`, a shard that has
finished step ``k``'s warm-up says so (a file ``ready-k-I``) and waits; the parent, when all
N have said so, writes ``go-k`` holding an instant a moment ahead (:data:`GATE_LEAD_S`), and
every shard starts step ``k`` at that instant.  No step interval has to be guessed: each
step starts as soon as the slowest shard is ready for it.  The parent side is
:func:`release_ready_steps`.

Without ``start_at`` or a gate there is no barrier: each step starts when the shard gets
there, and the skew is still recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen.record_columns import RecordColumns, RecordSink
from loadgen.records import RequestRecord, StepKey, StepResult
from loadgen.shard import ShardSpec, StepShare, step_share

__all__ = [
    "GATE_LEAD_S",
    "GATE_POLL_S",
    "MAX_SLEEP_CHUNK_S",
    "ShardRun",
    "StartSchedule",
    "StepGate",
    "release_ready_steps",
    "sleep_until",
]

# The barrier sleeps in pieces no longer than this, re-reading the wall clock after each,
# so a clock stepped by NTP while waiting moves the wake-up with it.
MAX_SLEEP_CHUNK_S = 0.25
#: How far ahead of "all shards ready" the parent sets a gated step's start: longer than a
#: shard takes to notice the go file (:data:`GATE_POLL_S`) on a busy host, so all start together.
GATE_LEAD_S = 0.25
#: How often a shard waiting at the gate looks for its go file.
GATE_POLL_S = 0.01


@dataclass(frozen=True)
class StepGate:
    """A folder shared by the ``--clients`` parent and its shards on one machine: per step, ready and go files.

    ``ready-K-I`` (empty): shard I has warmed up for step K and waits.  ``go-K``: the Unix
    time at which every shard starts step K (written whole by an atomic rename).
    """

    folder: Path

    def ready_path(self, step: int, shard: int) -> Path:
        return self.folder / f"ready-{step}-{shard}"

    def go_path(self, step: int) -> Path:
        return self.folder / f"go-{step}"

    async def wait(self, step: int, shard: int, poll_s: float = GATE_POLL_S) -> float:
        """Say shard ``shard`` is ready for ``step``, wait for the go, then for its instant; return the instant."""
        self.ready_path(step, shard).touch()
        go = self.go_path(step)
        while not go.exists():
            await asyncio.sleep(poll_s)
        instant = float(go.read_text())
        await sleep_until(instant)
        return instant


def release_ready_steps(
    gate: StepGate,
    count: int,
    released: Collection[int],
    *,
    lead_s: float = GATE_LEAD_S,
    clock: Callable[[], float] = time.time,
) -> list[int]:
    """The parent's side of a :class:`StepGate`: write ``go-K`` for every step all ``count`` shards are ready for.

    ``released``: steps already let go (not looked at again).  Returns the steps released
    now.  The go instant is ``lead_s`` ahead of the clock, written to a temporary file and
    renamed, so a shard never reads half a number.
    """
    waiting: dict[int, set[int]] = {}
    for path in gate.folder.glob("ready-*-*"):
        _, step_text, shard_text = path.name.split("-")
        waiting.setdefault(int(step_text), set()).add(int(shard_text))
    now = []
    for step in sorted(waiting):
        if step in released or len(waiting[step]) < count:
            continue
        tmp = gate.folder / f".go-{step}.tmp"
        tmp.write_text(repr(clock() + lead_s))
        os.replace(tmp, gate.go_path(step))
        now.append(step)
    return now


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
    gate: StepGate | None = None  # one machine: the parent says when each step starts (instead of the schedule)
    _waited: dict[int, float] = field(default_factory=dict, repr=False)
    _due: dict[int, float | None] = field(default_factory=dict, repr=False)

    def share(self, plan: Any, key: StepKey) -> StepShare:
        return step_share(plan, self.spec, key)

    async def wait(self, index: int) -> None:
        """Wait for step ``index``'s instant: the gate's go, else the schedule's (no-op without either)."""
        began = time.time()
        if self.gate is not None:
            self._due[index] = await self.gate.wait(index, self.spec.index)
            self._waited[index] = time.time() - began
            return
        due = self._due[index] = self.schedule.scheduled(index)
        self._waited[index] = 0.0 if due is None else await sleep_until(due)

    def finish(self, index: int, share: StepShare, result: StepResult) -> StepResult:
        """The shard's result of step ``index`` under the plan's step, and its start recorded.

        The records keep their own times (from this shard's start of the step) and are
        numbered within the whole step (``seq`` from ``share.first``). The key is the
        plan's step (its N and rate) with this shard's own in-flight limit / connection
        cap as ``concurrency`` -- the limit this shard's requests were under.
        """
        due = self._due.pop(index) if index in self._due else self.schedule.scheduled(index)
        records: Sequence[RequestRecord]
        if isinstance(result.records, RecordColumns):  # streamed: on disk renumbered already (ShardSink)
            records = result.records.renumbered(share.first)
        else:
            records = tuple(dataclasses.replace(r, seq=r.seq + share.first) for r in result.records)
        self.starts.append(
            {
                "step": index,
                **share.describe(),
                "scheduled_at": due,
                "started_at": float(result.started_at),
                "late_s": None if due is None else result.started_at - due,
                "waited_s": self._waited.pop(index, 0.0),
                "total_s": float(result.total_s),
            }
        )
        return StepResult(
            key=recorded_key(share),
            records=records,
            total_s=result.total_s,
            started_at=result.started_at,
            streamed=result.streamed,
        )

    def sink(self, share: StepShare, make: Callable[[StepKey], RecordSink]) -> RecordSink:
        """Where this shard's records of ``share`` stream as the step runs: ``make``'s sink for
        the step they are recorded under, numbered within the whole step (``seq + first``)."""
        return ShardSink(make(recorded_key(share)), share.first)


def recorded_key(share: StepShare) -> StepKey:
    """The step a shard's records and row are recorded under: the plan's (whole N, rate) with
    this shard's own in-flight limit / connection cap as ``concurrency``."""
    return dataclasses.replace(share.key, concurrency=share.sent.concurrency)


class ShardSink:
    """A :class:`~loadgen.record_columns.RecordSink` that numbers a shard's records within the
    whole step (``seq + first``) on their way to ``inner``: a shard's step streams to disk as
    a one-client step does, so a sharded soak is bounded too."""

    def __init__(self, inner: RecordSink, first: int) -> None:
        self.inner, self.first = inner, first

    def write(self, records: Sequence[RequestRecord]) -> None:
        first = self.first
        self.inner.write([dataclasses.replace(r, seq=r.seq + first) for r in records] if first else records)

    def close(self) -> None:
        self.inner.close()
