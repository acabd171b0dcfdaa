"""The three load modes, each producing one step's raw records.

Why these three (DESIGN.md §3, after MLPerf LoadGen and perf_analyzer):

- ``sequential``: one request at a time, N of them -- the study's method (SingleStream).
- ``concurrent``: a closed loop with C requests in flight; each worker sends its next
  request when its previous one completed (C = N: a burst of N).
- ``rate``: an open loop; request ``i`` is launched at its intended time from
  :func:`loadgen.pacing.schedule`, whether or not earlier ones have completed, and its
  latency is counted from that intended time.  A closed loop hides a stalled server
  (the requests it would have sent during the stall are simply not sent: "coordinated
  omission"); the open loop records every one of them as late.

Times: ``sent_s`` is when a request was handed to the engine (after the politeness cap);
any wait inside the engine for a free connection counts as service time, because a
real client would wait there too.  Every time is read from ``engine.clock()``
(``time.perf_counter`` for the network engines; virtual time for the in-memory test
engine, so the same code gives exact times in tests).

Every step is bounded by ``max_duration_s``: when it is reached, requests in flight are
recorded as ``timeout`` and requests never sent as ``other``, each with a detail saying
so -- nothing is silently dropped.

Bounded memory at any length: a step holds only the requests in flight and those completed
since the last drain.  Requests come from ``requests[seq]`` when they are sent (a lazy
sequence is fine) and a ``rate`` step's intended offsets from an
:class:`~loadgen.pacing.OffsetSchedule` a chunk at a time.  Without a ``sink`` the
responses are classified and decoded *after* the step's clock stopped (JSON parsing never
competes with sending) and the step returns its records as a tuple, as it always did.  With
a ``sink`` (:class:`~loadgen.record_columns.RecordSink`) a drain task wakes every
:data:`DRAIN_INTERVAL_S`, turns the completed requests into records in slices of
:data:`DRAIN_SLICE` (yielding to the loop between slices, so sends due meanwhile go out)
and hands them to the sink; the step then returns compact
:class:`~loadgen.record_columns.RecordColumns` for its statistics, not the records.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from enum import StrEnum
from typing import Any

import numpy as np

from loadgen.classify import describe_exception
from loadgen.engine import Engine, EngineError
from loadgen.live import LiveStats, LiveWindow
from loadgen.pacing import OffsetSchedule, as_schedule
from loadgen.record_columns import ColumnBuilder, RecordSink
from loadgen.records import RequestRecord, StepKey, StepResult
from loadgen.request import Request
from loadgen.step_records import (
    AnswerCheck,
    Done,
    check_outcomes,
    completed_record,
    cut_record,
    digit_outcomes,
    sample_of,
)
from loadgen.throttle import make_throttle

__all__ = ["MODES", "AnswerCheck", "Mode", "ProgressCallback", "run_step"]


class Mode(StrEnum):
    """The load modes, in the order every table and figure lists them.

    The one list of modes (bench.toml's ``[sweep] modes``, the sweep, the report's order
    and ``bench compare``'s sort all use it).  A ``StrEnum``: members are the strings
    written to summary.csv, so ``Mode.RATE == "rate"`` and rows read back as plain
    strings compare equal to them.
    """

    SEQUENTIAL = "sequential"
    CONCURRENT = "concurrent"
    RATE = "rate"  # the open loop

    @property
    def open_loop(self) -> bool:
        """Whether requests go out on a schedule whatever the target does (``rate``)."""
        return self is Mode.RATE


#: The mode names as plain strings, in order (derived from :class:`Mode`, not a second list).
MODES: tuple[str, ...] = tuple(m.value for m in Mode)

#: ``on_progress(key, done, total, live)``: requests completed of the step's total, and the
#: live figures over its last seconds (:class:`~loadgen.live.LiveStats`).
ProgressCallback = Callable[[StepKey, int, int, LiveStats], None]
_PROGRESS_INTERVAL_S = 0.05  # at most 20 progress callbacks a second: the display is not the load
#: Seconds between two drains of a streamed step (completed requests -> records -> sink).
DRAIN_INTERVAL_S = 1.0
#: Records built between two yields to the event loop while draining.
DRAIN_SLICE = 256
_OFFSET_CHUNK = 8192  # offsets taken from a schedule at a time
_UNSENT_CHUNK = 8192  # records of never-sent requests built at a time at the step's end


class _Step:
    """The bookkeeping of one running step: requests in flight, completed ones not yet records.

    ``flight[seq]`` holds ``[intended, sent]`` (absolute; ``sent`` None until the request is
    handed to the engine) from the moment a request is launched until it completes; a
    completed request waits in ``finished`` for :meth:`drain`.
    """

    def __init__(
        self,
        engine: Engine,
        key: StepKey,
        requests: Sequence[Request],
        max_rps: float,
        on_progress: ProgressCallback | None,
        build: Callable[[Sequence[Done], float], list[RequestRecord]],
        sink: RecordSink | None,
    ) -> None:
        self.engine = engine
        self.clock = engine.clock
        self.key = key
        self.requests = requests
        self.n = len(requests)
        self.flight: dict[int, list[Any]] = {}
        self.finished: list[Done] = []
        self.launched = 0
        self.completed = 0
        self.last_done = math.nan
        self.throttle = make_throttle(max_rps)
        self.on_progress = on_progress
        self._last_progress = 0.0
        self.build = build
        self.sink = sink
        self.kept: list[RequestRecord] = []  # without a sink: every record, for the tuple
        self.columns = ColumnBuilder() if sink is not None else None
        self.pending_offsets: Iterator[float] = iter(())
        self.waiting: float | None = None  # the offset the open loop is waiting to launch
        self.t0 = math.nan  # the step's start on the engine's clock
        self.pending_write: asyncio.Future[None] | None = None  # the sink's write running in a thread
        self.live = LiveWindow(math.nan)
        self.in_engine = 0  # requests handed to the engine and not yet answered
        self.peak_in_engine = 0  # their most at once: a thinned step's peak in flight

    async def one(self, seq: int, offset: float | None) -> None:
        """Send request ``seq`` at ``offset`` from the step's start (None in closed loops: intended = sent)."""
        slot = self.flight[seq]
        if self.throttle is not None:
            await self.throttle.acquire()
        sent = self.clock()
        slot[0] = sent - self.t0 if offset is None else offset
        slot[1] = sent
        self.in_engine += 1
        self.peak_in_engine = max(self.peak_in_engine, self.in_engine)
        self.live.sent(sent)
        request = self.requests[seq]
        done = Done(seq, slot[0], sent, len(request.body))
        try:
            response = await self.engine.send(request)
        except EngineError as exc:
            done.error, done.detail = exc.error, exc.detail
        except Exception as exc:
            done.error, done.detail = "other", describe_exception(exc)
        else:
            done.status, done.body, done.bytes_in = response.status, response.body, response.bytes_in
        now = self.clock()
        self.in_engine -= 1
        done.done = now
        self.live.done(now, now - self.t0 - slot[0], not done.error and 200 <= done.status < 300)
        del self.flight[seq]
        self.finished.append(done)
        self.last_done = now if math.isnan(self.last_done) else max(self.last_done, now)
        self.completed += 1
        if self.on_progress is not None and (
            now - self._last_progress >= _PROGRESS_INTERVAL_S or self.completed == self.n
        ):
            self._last_progress = now
            self.on_progress(self.key, self.completed, self.n, self.live.stats(now))

    async def closed_loop(self, concurrency: int) -> None:
        """C workers take the next request number as each completes."""

        async def worker() -> None:
            while self.launched < self.n:
                seq = self.launched
                self.launched += 1
                self.flight[seq] = [math.nan, None]
                await self.one(seq, None)

        await asyncio.gather(*(worker() for _ in range(min(concurrency, self.n))))

    async def open_loop(self, t0: float, schedule: OffsetSchedule, tasks: set[asyncio.Task[None]]) -> None:
        """Launch each request at ``t0 + offset`` (or at once if overdue), then wait for all."""
        loop = asyncio.get_running_loop()
        offsets = (float(o) for chunk in schedule.chunks(_OFFSET_CHUNK) for o in chunk)
        self.pending_offsets = offsets
        for offset in offsets:
            self.waiting = offset
            wait = offset - (self.clock() - t0)
            if wait > 0:
                await asyncio.sleep(wait)
            seq = self.launched
            self.launched += 1
            self.waiting = None
            self.flight[seq] = [offset, None]
            task = loop.create_task(self.one(seq, offset))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*list(tasks))

    async def drain_forever(self) -> None:
        """Every :data:`DRAIN_INTERVAL_S`, turn what completed into records for the sink."""
        while True:
            await asyncio.sleep(DRAIN_INTERVAL_S)
            await self.drain()

    async def drain(self, *, final: bool = False) -> None:
        """The completed requests as records, :data:`DRAIN_SLICE` at a time, to the sink (or kept).

        While the step runs, the sink's part (CSV text, and every few seconds a gzip member
        written and fsynced) runs in a worker thread: an fsync can block for 100 ms and more,
        and the sends due meanwhile must not wait for it (``benchmarks/bench_drain_lag.py``).
        """
        while self.finished:
            batch, self.finished = self.finished[:DRAIN_SLICE], self.finished[DRAIN_SLICE:]
            records = self.build(batch, self.t0)
            if final or self.sink is None:
                self.emit(records)
                continue
            assert self.columns is not None
            self.columns.add(records)
            self.pending_write = asyncio.ensure_future(asyncio.to_thread(self.sink.write, records))
            await asyncio.shield(self.pending_write)  # sends due meanwhile go first; a cancel waits in _run

    def emit(self, records: list[RequestRecord]) -> None:
        if self.sink is None:
            self.kept.extend(records)
            return
        assert self.columns is not None
        self.columns.add(records)
        self.sink.write(records)


async def run_step(
    engine: Engine,
    key: StepKey,
    requests: Sequence[Request],
    labels: Sequence[int],
    decode: Callable[[int, bytes], int] | None = None,
    *,
    check: AnswerCheck | None = None,
    samples: Sequence[int] | None = None,
    offsets: OffsetSchedule | np.ndarray | None = None,
    max_duration_s: float = 600.0,
    max_rps: float = 0.0,
    on_progress: ProgressCallback | None = None,
    sink: RecordSink | None = None,
) -> StepResult:
    """Run one step of ``key.mode`` over an opened ``engine`` and return its records.

    ``requests[i]`` is sent as request ``seq = i``; its answer is checked either with
    ``check(i, status, body)`` (a sample's check, :mod:`loadgen.samples`) or, without one,
    against the digit ``labels[i]`` with ``decode`` (a codec's).  ``samples[i]`` is the
    sample number recorded for it (-1 without ``samples``).  ``key.concurrency`` is the number of closed-loop
    workers (1 for ``sequential``); ``rate`` mode needs ``offsets`` (intended send times
    in seconds from the step's start: an array or an :class:`~loadgen.pacing.OffsetSchedule`)
    and relies on the engine's connection cap.  With ``sink`` the records are streamed to it
    while the step runs and the result holds compact columns (module docstring); the sink is
    closed when the step ends, however it ends, and an OSError from it stops the step
    (requests in flight cancelled) and is raised.
    """
    n = len(requests)
    if len(labels) != n:
        raise ValueError(f"{n} requests but {len(labels)} labels")
    if samples is not None and len(samples) != n:
        raise ValueError(f"{n} requests but {len(samples)} sample numbers")
    if (check is None) == (decode is None):
        raise ValueError("run_step needs exactly one of decode (a digit codec) and check (a sample check)")
    if key.mode not in MODES:
        raise ValueError(f"unknown mode {key.mode!r}; modes: {', '.join(MODES)}")
    if not max_duration_s > 0:
        raise ValueError(f"max_duration_s must be > 0, got {max_duration_s}")
    schedule = as_schedule(offsets) if offsets is not None else None
    if key.mode == "rate" and (schedule is None or len(schedule) != n):
        raise ValueError("rate mode needs one intended offset per request")
    if key.mode == "sequential" and key.concurrency != 1:
        raise ValueError(f"sequential mode has concurrency 1, got {key.concurrency}")
    if key.concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {key.concurrency}")

    if check is not None:
        outcome = check_outcomes(check)
    else:
        assert decode is not None
        outcome = digit_outcomes(labels, decode)

    def build(batch: Sequence[Done], t0: float) -> list[RequestRecord]:
        return [completed_record(d, t0, labels, samples, outcome) for d in batch]

    step = _Step(engine, key, requests, max_rps, on_progress, build, sink)
    try:
        return await _run(step, key, schedule, labels, samples, max_duration_s)
    finally:
        if sink is not None:
            sink.close()


async def _run(
    step: _Step,
    key: StepKey,
    schedule: OffsetSchedule | None,
    labels: Sequence[int],
    samples: Sequence[int] | None,
    max_duration_s: float,
) -> StepResult:
    """The timed part of :func:`run_step`, then the records of what was cut off."""
    n = step.n
    step.live = LiveWindow(step.clock(), schedule.duration_s if schedule is not None else math.nan)
    if step.on_progress is not None:
        step.on_progress(key, 0, n, step.live.stats(step.live.t0))
    tasks: set[asyncio.Task[None]] = set()
    stopped_by_deadline = False
    started_at = time.time()
    t0 = step.t0 = step.live.t0 = step.clock()
    loop = asyncio.get_running_loop()
    drainer = loop.create_task(step.drain_forever()) if step.sink is not None else None
    body: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(max_duration_s):
            if drainer is not None:
                body = loop.create_task(_body(step, key, schedule, t0, tasks))
                done, _ = await asyncio.wait({body, drainer}, return_when=asyncio.FIRST_COMPLETED)
                if drainer in done:  # the sink failed: stop sending, raise its error
                    drainer.result()
                await body
            else:
                await _body(step, key, schedule, t0, tasks)
    except TimeoutError:
        stopped_by_deadline = True
    finally:
        for helper in (body, drainer):
            if helper is not None and not helper.done():
                helper.cancel()
                await asyncio.gather(helper, return_exceptions=True)
        if step.pending_write is not None:  # the sink is not thread-safe: its last write ends first
            await asyncio.gather(step.pending_write, return_exceptions=True)
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
    t_stop = step.clock()
    if step.pending_write is not None:
        step.pending_write.result()  # a write that failed as the step ended stops it too
    await step.drain(final=True)
    _cut_off(step, key, t0, t_stop, labels, samples, max_duration_s)
    ends = [t_stop] if stopped_by_deadline else ([] if math.isnan(step.last_done) else [step.last_done])
    total_s = (max(ends) if ends else t_stop) - t0
    if step.columns is not None:
        records: Sequence[RequestRecord] = step.columns.finish(peak_in_flight=step.peak_in_engine)
    else:
        records = tuple(sorted(step.kept, key=lambda r: r.seq))
    return StepResult(key=key, records=records, total_s=total_s, started_at=started_at, streamed=step.sink is not None)


async def _body(
    step: _Step, key: StepKey, schedule: OffsetSchedule | None, t0: float, tasks: set[asyncio.Task[None]]
) -> None:
    if key.mode == "rate":
        assert schedule is not None
        await step.open_loop(t0, schedule, tasks)
    else:
        await step.closed_loop(key.concurrency)


def _cut_off(
    step: _Step,
    key: StepKey,
    t0: float,
    t_stop: float,
    labels: Sequence[int],
    samples: Sequence[int] | None,
    max_duration_s: float,
) -> None:
    """Records of the requests the step's end cut off: in flight (``timeout``) or never sent (``other``)."""
    timeout = f"no response before the step reached max_duration_s={max_duration_s:g} s"
    unsent = f"not sent: the step reached max_duration_s={max_duration_s:g} s first"
    rate = key.mode == "rate"
    batch: list[RequestRecord] = []
    for seq in sorted(step.flight):
        intended, sent = step.flight[seq]  # intended: the offset (rate) or sent - t0 (closed loop), NaN unsent
        if sent is None:
            batch.append(cut_record(seq, intended, labels, samples, unsent))
        else:
            batch.append(
                RequestRecord(
                    seq=seq,
                    intended_s=float(intended),
                    sent_s=float(sent - t0),
                    latency_s=float(t_stop - t0 - intended),
                    service_s=float(t_stop - sent),
                    status=0,
                    error="timeout",
                    error_detail=timeout,
                    bytes_out=len(step.requests[seq].body),
                    bytes_in=0,
                    label=int(labels[seq]),
                    predicted=-1,
                    sample=sample_of(samples, seq),
                    agree=-1,
                )
            )
    step.flight.clear()
    step.emit(batch)
    if rate:
        waiting = [step.waiting] if step.waiting is not None else []
        rest: Iterator[float] = itertools.chain(waiting, step.pending_offsets)
    else:
        rest = (math.nan for _ in range(step.launched, step.n))
    seq = step.launched
    batch = []
    for intended in rest:
        batch.append(cut_record(seq, float(intended), labels, samples, unsent))
        seq += 1
        if len(batch) == _UNSENT_CHUNK:
            step.emit(batch)
            batch = []
    step.emit(batch)
