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
so -- nothing is silently dropped.  Responses are classified and decoded *after* the
step's clock stopped, so JSON parsing never competes with sending.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from enum import StrEnum

import numpy as np

from loadgen.classify import AnswerOutcome, classify_answer, classify_response, describe_exception
from loadgen.engine import Engine, EngineError
from loadgen.pacing import pace
from loadgen.records import RequestRecord, StepKey, StepResult
from loadgen.request import Request
from loadgen.samples import Answer
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

ProgressCallback = Callable[[StepKey, int, int], None]
#: ``check(seq, status, body)``: request ``seq``'s 2xx answer checked (raise when malformed).
AnswerCheck = Callable[[int, int, bytes], Answer]
_Outcomes = Callable[[int, int, bytes], AnswerOutcome]
_PROGRESS_INTERVAL_S = 0.05  # at most 20 progress callbacks a second: the display is not the load


class _Step:
    """Mutable per-request bookkeeping of one running step (times from ``engine.clock()``)."""

    def __init__(
        self,
        engine: Engine,
        key: StepKey,
        requests: Sequence[Request],
        max_rps: float,
        on_progress: ProgressCallback | None,
    ) -> None:
        n = len(requests)
        self.engine = engine
        self.clock = engine.clock
        self.key = key
        self.requests = requests
        self.intended = np.full(n, np.nan)
        self.sent = np.full(n, np.nan)
        self.done = np.full(n, np.nan)
        self.status = [0] * n
        self.body: list[bytes] = [b""] * n
        self.bytes_in = [0] * n
        self.error = [""] * n
        self.detail = [""] * n
        self.completed = 0
        self.throttle = make_throttle(max_rps)
        self.on_progress = on_progress
        self._last_progress = 0.0

    async def one(self, seq: int, intended: float | None) -> None:
        """Send request ``seq``; ``intended`` is None in closed loops (intended = sent)."""
        if self.throttle is not None:
            await self.throttle.acquire()
        sent = self.clock()
        self.sent[seq] = sent
        self.intended[seq] = sent if intended is None else intended
        try:
            response = await self.engine.send(self.requests[seq])
        except EngineError as exc:
            self.error[seq], self.detail[seq] = exc.error, exc.detail
        except Exception as exc:
            self.error[seq], self.detail[seq] = "other", describe_exception(exc)
        else:
            self.status[seq], self.body[seq], self.bytes_in[seq] = response.status, response.body, response.bytes_in
        now = self.clock()
        self.done[seq] = now
        self.completed += 1
        if self.on_progress is not None and (
            now - self._last_progress >= _PROGRESS_INTERVAL_S or self.completed == len(self.requests)
        ):
            self._last_progress = now
            self.on_progress(self.key, self.completed, len(self.requests))

    async def closed_loop(self, concurrency: int) -> None:
        """C workers share one iterator of request numbers: a new send as each completes."""
        numbers = iter(range(len(self.requests)))

        async def worker() -> None:
            for seq in numbers:
                await self.one(seq, None)

        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(self.requests)))))

    async def open_loop(self, t0: float, offsets: np.ndarray, tasks: set[asyncio.Task[None]]) -> None:
        """Launch each request at ``t0 + offsets[i]`` (or at once if overdue), then wait for all."""
        loop = asyncio.get_running_loop()
        for seq in range(len(self.requests)):
            wait, stop = pace(offsets, self.clock() - t0, seq)
            if stop:
                break
            if wait > 0:
                await asyncio.sleep(wait)
            task = loop.create_task(self.one(seq, t0 + float(offsets[seq])))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*list(tasks))


async def run_step(
    engine: Engine,
    key: StepKey,
    requests: Sequence[Request],
    labels: Sequence[int],
    decode: Callable[[int, bytes], int] | None = None,
    *,
    check: AnswerCheck | None = None,
    samples: Sequence[int] | None = None,
    offsets: np.ndarray | None = None,
    max_duration_s: float = 600.0,
    max_rps: float = 0.0,
    on_progress: ProgressCallback | None = None,
) -> StepResult:
    """Run one step of ``key.mode`` over an opened ``engine`` and return its records.

    ``requests[i]`` is sent as request ``seq = i``; its answer is checked either with
    ``check(i, status, body)`` (a sample's check, :mod:`loadgen.samples`) or, without one,
    against the digit ``labels[i]`` with ``decode`` (a codec's).  ``samples[i]`` is the
    sample number recorded for it (-1 without ``samples``).  ``key.concurrency`` is the number of closed-loop
    workers (1 for ``sequential``); ``rate`` mode needs ``offsets`` (intended send times
    in seconds from the step's start) and relies on the engine's connection cap.
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
    if key.mode == "rate" and (offsets is None or len(offsets) != n):
        raise ValueError("rate mode needs one intended offset per request")
    if key.mode == "sequential" and key.concurrency != 1:
        raise ValueError(f"sequential mode has concurrency 1, got {key.concurrency}")
    if key.concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {key.concurrency}")

    step = _Step(engine, key, requests, max_rps, on_progress)
    if on_progress is not None:
        on_progress(key, 0, n)
    tasks: set[asyncio.Task[None]] = set()
    stopped_by_deadline = False
    started_at = time.time()
    t0 = step.clock()
    try:
        async with asyncio.timeout(max_duration_s):
            if key.mode == "rate":
                assert offsets is not None
                await step.open_loop(t0, offsets, tasks)
            else:
                await step.closed_loop(key.concurrency)
    except TimeoutError:
        stopped_by_deadline = True
    finally:
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
    t_stop = step.clock()
    if check is not None:
        outcome = _check_outcomes(check)
    else:
        assert decode is not None
        outcome = _digit_outcomes(labels, decode)
    numbers = samples if samples is not None else [-1] * n
    records = _records(
        step, labels, numbers, outcome, t0, t_stop, offsets if key.mode == "rate" else None, max_duration_s
    )
    ends = [t_stop] if stopped_by_deadline else [t for t in step.done if not math.isnan(t)]
    total_s = (max(ends) if ends else t_stop) - t0
    return StepResult(key=key, records=tuple(records), total_s=total_s, started_at=started_at)


def _digit_outcomes(labels: Sequence[int], decode: Callable[[int, bytes], int]) -> _Outcomes:
    """Outcomes from a digit decoder (:func:`classify_response`): agree = the digit is ``labels[seq]``."""

    def outcome(seq: int, status: int, body: bytes) -> AnswerOutcome:
        error, detail, predicted = classify_response(status, body, decode)
        agree = -1 if error else int(predicted == int(labels[seq]))
        return AnswerOutcome(error, detail, predicted, agree)

    return outcome


def _check_outcomes(check: AnswerCheck) -> _Outcomes:
    """Outcomes from a sample check (:func:`classify_answer`)."""

    def outcome(seq: int, status: int, body: bytes) -> AnswerOutcome:
        return classify_answer(status, body, lambda st, b: check(seq, st, b))

    return outcome


def _records(
    step: _Step,
    labels: Sequence[int],
    samples: Sequence[int],
    outcome: _Outcomes,
    t0: float,
    t_stop: float,
    offsets: np.ndarray | None,
    max_duration_s: float,
) -> list[RequestRecord]:
    """Turn the step's bookkeeping into records, classifying and decoding each response."""
    records = []
    for seq, request in enumerate(step.requests):
        intended = step.intended[seq] - t0 if offsets is None else float(offsets[seq])
        sent, done = step.sent[seq], step.done[seq]
        status, bytes_out, bytes_in, predicted, agree = step.status[seq], len(request.body), step.bytes_in[seq], -1, -1
        if math.isnan(sent):
            error = "other"
            detail = f"not sent: the step reached max_duration_s={max_duration_s:g} s first"
            sent_s = latency = service = math.nan
            bytes_out = 0
        elif math.isnan(done):
            error = "timeout"
            detail = f"no response before the step reached max_duration_s={max_duration_s:g} s"
            sent_s = sent - t0
            latency, service = t_stop - t0 - intended, t_stop - sent
        else:
            sent_s = sent - t0
            latency, service = done - t0 - intended, done - sent
            if step.error[seq]:
                error, detail = step.error[seq], step.detail[seq]
            else:
                error, detail, predicted, agree = outcome(seq, status, step.body[seq])
        records.append(
            RequestRecord(
                seq=seq,
                intended_s=float(intended),
                sent_s=float(sent_s),
                latency_s=float(latency),
                service_s=float(service),
                status=int(status),
                error=error,
                error_detail=detail,
                bytes_out=bytes_out,
                bytes_in=int(bytes_in),
                label=int(labels[seq]),
                predicted=int(predicted),
                sample=int(samples[seq]),
                agree=int(agree),
            )
        )
    return records
