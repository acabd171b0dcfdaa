"""The load modes and the summary as they were before records streamed (commit 52734a8), kept as a test oracle.

Why: streaming changed how a step keeps its requests and records (:mod:`loadgen.modes`,
:mod:`loadgen.record_columns`) and how the summary reads them; the tests run the same step
through this copy and through the new code and compare every record and every summary cell.
Nothing here is used outside the tests.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from loadgen.classify import AnswerOutcome, classify_answer, classify_response, describe_exception
from loadgen.engine import Engine, EngineError
from loadgen.modes import MODES, AnswerCheck, ProgressCallback
from loadgen.pacing import pace
from loadgen.records import RequestRecord, StepKey, StepResult
from loadgen.request import Request
from loadgen.saturation import (
    FLAG_CLIENT_BEHIND,
    FLAG_CONNECTION_CAP,
    FLAG_TARGET_BEHIND,
    OpenLoopVerdict,
    _growth,
    _peak_in_flight,
    _quarters,
    _rate_between_quarters,
    lag_tolerance,
)
from loadgen.stats import (
    FLAG_SATURATED,
    SUMMARY_COLUMNS,
    error_counts,
    format_error_counts,
    format_flags,
    latency_stats,
    step_flags,
)
from loadgen.throttle import make_throttle

_Outcomes = Callable[[int, int, bytes], AnswerOutcome]
_PROGRESS_INTERVAL_S = 0.05


def _open_loop_stats(step: StepResult) -> dict[str, Any]:
    verdict = analyze_open_loop(step)
    if verdict is None:
        nan = float("nan")
        return {
            "offered_rps": nan,
            "achieved_rps": nan,
            "send_lag_p50_s": nan,
            "send_lag_max_s": nan,
            "lag_growth_s": nan,
            "saturated": False,
            "flags": "",
        }
    flags = ((FLAG_SATURATED,) if verdict.saturated else ()) + verdict.details
    return {**verdict.columns(), "flags": format_flags(flags)}


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


def _unfinished(step: StepResult, records: list[RequestRecord]) -> np.ndarray:
    """Requests still unanswered when the step ended: never sent, or cut off at its deadline
    (``timeout`` recorded at the step's end by :func:`loadgen.modes.run_step`)."""
    end = step.total_s - 1e-6
    return np.array(
        [
            math.isnan(r.sent_s)
            or math.isnan(r.latency_s)
            or (r.error == "timeout" and r.intended_s + r.latency_s >= end)
            for r in records
        ]
    )


def analyze_open_loop(step: StepResult) -> OpenLoopVerdict | None:
    """The open-loop verdict of a ``rate`` step; None for closed-loop modes (nothing is offered)."""
    if step.key.mode != "rate":
        return None
    records = sorted(step.records, key=lambda r: (r.intended_s, r.seq))
    intended = np.array([r.intended_s for r in records], dtype=np.float64)
    sent = np.array([r.sent_s for r in records], dtype=np.float64)
    latency = np.array([r.latency_s for r in records], dtype=np.float64)
    was_sent = ~np.isnan(sent)
    unfinished = _unfinished(step, records)
    due = was_sent | (intended < step.total_s)  # a request due after the step ended was never late
    inf, nan = math.inf, math.nan
    send_lag = np.where(was_sent, sent - intended, inf)  # never sent: later than the whole step
    answer_lag = np.where(unfinished, inf, latency)
    service = answer_lag - np.where(was_sent, send_lag, 0.0)

    growth_send = growth_answer = growth_service = span = nan
    if due.sum() >= 2:
        first, last = _quarters(int(due.sum()))
        due_intended = intended[due]
        span = float(np.median(due_intended[last]) - np.median(due_intended[first]))
        growth_send = _growth(send_lag[due])
        growth_answer = _growth(answer_lag[due])
    if was_sent.sum() >= 2:  # over the requests actually sent: the others were never served
        growth_service = _growth(service[was_sent])
    tolerance = lag_tolerance(span) if not math.isnan(span) else nan

    ok = [r for r in records if r.ok]
    if len(records) < 2:
        achieved = nan
    elif ok:
        achieved = _rate_between_quarters(np.array([r.intended_s + r.latency_s for r in ok], dtype=np.float64))
    else:
        achieved = 0.0

    done = np.where(np.isnan(latency), step.total_s, intended + latency)
    peak = _peak_in_flight(sent[was_sent], done[was_sent])
    details: list[str] = []
    saturated = False
    if not math.isnan(tolerance):
        client = growth_send > tolerance
        saturated = client or growth_service > tolerance or growth_answer > tolerance
        if client:  # a client that cannot send on time times the answers badly too: no verdict on the target
            details.append(FLAG_CLIENT_BEHIND)
        elif saturated and growth_service >= growth_send:
            details.append(FLAG_TARGET_BEHIND)
            if peak > step.key.concurrency:
                details.append(FLAG_CONNECTION_CAP)
        elif saturated:  # neither alone past the tolerance, together past it: the larger share
            details.append(FLAG_CLIENT_BEHIND)
    actual_lags = (sent - intended)[was_sent]
    return OpenLoopVerdict(
        offered_rps=_rate_between_quarters(intended[due]),
        achieved_rps=achieved,
        send_lag_p50_s=float(np.median(actual_lags)) if actual_lags.size else nan,
        send_lag_max_s=float(np.max(actual_lags)) if actual_lags.size else nan,
        lag_growth_s=growth_send,
        answer_lag_growth_s=growth_answer,
        service_growth_s=growth_service,
        span_s=span,
        tolerance_s=tolerance,
        peak_in_flight=peak,
        saturated=bool(saturated),
        details=tuple(details),
    )


def summarize(step: StepResult) -> dict[str, Any]:
    """One summary row (keys :data:`SUMMARY_COLUMNS`, in that order) for a step."""
    records = step.records
    n = len(records)
    ok_latencies = np.array([r.latency_s for r in records if r.ok], dtype=np.float64)
    n_ok = int(ok_latencies.size)
    n_correct = sum(1 for r in records if r.correct)
    labelled = any(r.label >= 0 for r in records)
    n_checked = sum(1 for r in records if r.agree >= 0)
    n_agree = sum(1 for r in records if r.agree == 1)
    counts = error_counts(records)
    key = step.key
    row: dict[str, Any] = {
        "target": key.target,
        "mode": key.mode,
        "n_requests": key.n_requests,
        "concurrency": key.concurrency,
        "rate": key.rate,
        "trial": key.trial,
        "started_at": step.started_at,
        "total_s": step.total_s,
        "throughput_rps": n_ok / step.total_s if step.total_s > 0 else float("nan"),
        "n_ok": n_ok,
        "errors": n - n_ok,
        "errors_by_class": format_error_counts(counts),
        **latency_stats(ok_latencies),
        "n_correct": n_correct,
        "accuracy": n_correct / n if n and labelled else float("nan"),
        "accuracy_ok": n_correct / n_ok if n_ok and labelled else float("nan"),
        "n_agree": n_agree,
        "agreement": n_agree / n if n_checked else float("nan"),
        "bytes_out": sum(r.bytes_out for r in records),
        "bytes_in": sum(r.bytes_in for r in records),
        **_open_loop_stats(step),
    }
    row["flags"] = format_flags(step_flags(row))
    assert tuple(row) == SUMMARY_COLUMNS, "summary row and SUMMARY_COLUMNS drifted apart"
    return row
