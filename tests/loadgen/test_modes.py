"""The three load modes: closed loops, the open loop, bounds, the saturation flags.

Mode logic is engine-independent, so it runs on the in-memory engine on virtual time
(:mod:`loadgen.engines.virtual_time`): latencies, send times and step durations are exact,
whatever the machine's load.  Real time and real engines remain where they are the point:
the politeness cap (it reads the wall clock) and the stall proof run through every
network engine (marked slow).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from loadgen.engine import EngineOptions
from loadgen.engines import available_engines, engine_class
from loadgen.engines.memory_engine import MemoryEngine
from loadgen.engines.virtual_time import run_virtual
from loadgen.modes import run_step
from loadgen.pacing import schedule
from loadgen.records import StepKey, StepResult
from loadgen.request import Request
from tests.support.loadgen import MEMORY_URL, FakeTarget, SingleWorker, TinyServer, answer_digit, digit_answer

ENGINE = "aiohttp"  # for the real-time tests; engines themselves are covered in test_loadgen_engines


class StallOnce:
    """Answers the digit; request number ``after + 1`` starts a stall of ``seconds``.

    Every request that arrives during the stall is held until it ends -- a server that
    pauses once (a GC pause, a model reload), the case coordinated omission hides.
    """

    def __init__(self, after: int, seconds: float) -> None:
        self.after, self.seconds = after, seconds
        self.count = 0
        self.stall_end: float | None = None

    async def __call__(self, path: str, body: bytes, w: asyncio.StreamWriter) -> None:
        self.count += 1
        now = asyncio.get_running_loop().time()
        if self.stall_end is None and self.count > self.after:
            self.stall_end = now + self.seconds
        if self.stall_end is not None and now < self.stall_end:
            await asyncio.sleep(self.stall_end - now)
        await answer_digit(path, body, w)


class MemoryInFlight:
    """Memory-engine handler: answers after ``delay`` s of virtual time; remembers the most held at once."""

    def __init__(self, delay: float) -> None:
        self.delay, self.now, self.peak = delay, 0, 0

    async def __call__(self, request: Request) -> tuple[int, bytes]:
        self.now += 1
        self.peak = max(self.peak, self.now)
        await asyncio.sleep(self.delay)
        self.now -= 1
        return digit_answer(request)


class MemoryStallOnce:
    """:class:`StallOnce` for the memory engine: request ``after + 1`` starts a stall of ``seconds``."""

    def __init__(self, after: int, seconds: float) -> None:
        self.after, self.seconds = after, seconds
        self.count = 0
        self.stall_end: float | None = None

    async def __call__(self, request: Request) -> tuple[int, bytes]:
        self.count += 1
        now = asyncio.get_running_loop().time()
        if self.stall_end is None and self.count > self.after:
            self.stall_end = now + self.seconds
        if self.stall_end is not None and now < self.stall_end:
            await asyncio.sleep(self.stall_end - now)
        return digit_answer(request)


async def _never(request: Request) -> tuple[int, bytes]:
    await asyncio.sleep(3600)  # virtual time: the step's bound ends it first
    raise AssertionError("unreachable")


def _step_args(mode: str, n: int, concurrency: int, rate: float, base_url: str):
    target = FakeTarget(base_url)
    labels = [i % 10 for i in range(n)]
    requests = [target.encode(np.full((28, 28), d, dtype=np.uint8)) for d in labels]
    cap = concurrency if mode != "rate" else n
    key = StepKey(target="fake", mode=mode, n_requests=n, concurrency=cap, rate=rate, trial=1)
    offsets = schedule(n, rate, "uniform") if mode == "rate" else None
    return target, labels, requests, key, offsets


def _memory_step(
    handler,
    mode: str,
    n: int,
    concurrency: int = 1,
    *,
    rate: float = 0.0,
    timeout_s: float = 10.0,
    max_duration_s: float = 30.0,
    on_progress=None,
) -> StepResult:
    """One step through the memory engine on virtual time: exact times, no socket."""

    async def main() -> StepResult:
        target, labels, requests, key, offsets = _step_args(mode, n, concurrency, rate, MEMORY_URL)
        options = EngineOptions(base_url=target.base_url, max_connections=key.concurrency, timeout_s=timeout_s)
        async with MemoryEngine(options, handler) as engine:
            return await run_step(
                engine,
                key,
                requests,
                labels,
                target.decode,
                offsets=offsets,
                max_duration_s=max_duration_s,
                on_progress=on_progress,
            )

    return run_virtual(main())


def _step(
    handler,
    mode: str,
    n: int,
    concurrency: int = 1,
    *,
    rate: float = 0.0,
    timeout_s: float = 10.0,
    max_duration_s: float = 30.0,
    max_rps: float = 0.0,
    engine_name: str = ENGINE,
) -> StepResult:
    """One step through a network engine against a TinyServer on loopback (real time)."""

    async def main() -> StepResult:
        async with TinyServer(handler) as server:
            target, labels, requests, key, offsets = _step_args(mode, n, concurrency, rate, server.base_url)
            options = EngineOptions(base_url=target.base_url, max_connections=key.concurrency, timeout_s=timeout_s)
            async with engine_class(engine_name)(options) as engine:
                return await run_step(
                    engine,
                    key,
                    requests,
                    labels,
                    target.decode,
                    offsets=offsets,
                    max_duration_s=max_duration_s,
                    max_rps=max_rps,
                )

    return asyncio.run(main())


def test_sequential_sends_one_at_a_time_and_checks_labels() -> None:
    server = MemoryInFlight(0.01)
    calls: list[tuple[int, int]] = []
    step = _memory_step(server, "sequential", 6, on_progress=lambda key, done, total, live: calls.append((done, total)))
    assert server.peak == 1
    assert [r.error for r in step.records] == [""] * 6
    assert all(r.correct for r in step.records)
    assert calls[0] == (0, 6) and calls[-1] == (6, 6)
    assert all(r.intended_s == r.sent_s for r in step.records)
    # one after another: each is sent the moment the previous one completed (virtual time: exactly)
    assert [r.sent_s for r in step.records] == pytest.approx([0.01 * i for i in range(6)])
    assert [r.service_s for r in step.records] == pytest.approx([0.01] * 6)
    assert step.total_s == pytest.approx(6 * 0.01)


def test_concurrent_keeps_c_in_flight_and_a_burst_sends_all_at_once() -> None:
    server = MemoryInFlight(0.1)
    step = _memory_step(server, "concurrent", 12, concurrency=4)
    assert server.peak == 4
    assert step.total_s == pytest.approx(0.3)  # 3 waves of 4
    assert sorted(r.sent_s for r in step.records) == pytest.approx([0.0] * 4 + [0.1] * 4 + [0.2] * 4)
    burst_server = MemoryInFlight(0.2)
    burst = _memory_step(burst_server, "concurrent", 16, concurrency=16)
    assert burst_server.peak == 16
    assert burst.total_s == pytest.approx(0.2)  # one wave, not 16 x 0.2 s
    assert all(r.ok and r.correct for r in burst.records)


def test_max_duration_bounds_a_closed_loop_and_records_every_request() -> None:
    step = _memory_step(_never, "concurrent", 5, concurrency=2, max_duration_s=0.3)
    errors = [r.error for r in step.records]
    assert errors == ["timeout"] * 2 + ["other"] * 3
    assert all("max_duration_s=0.3" in r.error_detail for r in step.records)
    assert step.total_s == pytest.approx(0.3)
    assert [r.service_s for r in step.records[:2]] == pytest.approx([0.3, 0.3])
    assert len(step.records) == 5 and [r.seq for r in step.records] == list(range(5))


def test_max_duration_bounds_the_open_loop_too() -> None:
    step = _memory_step(_never, "rate", 10, rate=10.0, max_duration_s=0.35)  # due at 0.0, 0.1, ... 0.9 s
    errors = [r.error for r in step.records]
    assert errors == ["timeout"] * 4 + ["other"] * 6
    assert [r.intended_s for r in step.records] == pytest.approx(list(np.arange(10) / 10))
    assert [r.latency_s for r in step.records[:4]] == pytest.approx([0.35, 0.25, 0.15, 0.05])


def test_a_request_slower_than_timeout_s_is_a_timeout_and_the_next_one_goes_on() -> None:
    """The engine's per-request timeout, not the step's bound: the step records it and continues."""
    seen: list[Request] = []

    async def handler(request: Request) -> tuple[int, bytes]:
        seen.append(request)
        if len(seen) == 1:  # the first answer takes 5 s
            await asyncio.sleep(5.0)
        return digit_answer(request)

    step = _memory_step(handler, "sequential", 3, timeout_s=2.0)
    assert [r.error for r in step.records] == ["timeout", "", ""]
    assert step.records[0].service_s == pytest.approx(2.0) and step.records[1].sent_s == pytest.approx(2.0)


def test_politeness_cap_limits_the_rate() -> None:
    """Real time and a real engine: the cap (asyncio-throttle) reads the wall clock."""
    step = _step(answer_digit, "sequential", 8, max_rps=5.0)  # 5 per 1-s window
    assert all(r.ok for r in step.records)
    assert max(r.sent_s for r in step.records[:5]) < 0.9
    assert min(r.sent_s for r in step.records[5:]) >= 0.95


def test_open_loop_latency_counts_from_the_intended_time_through_a_stall_exactly() -> None:
    """Issue 3's proof on virtual time: every request due during a 1-s stall waits for its end,
    and its latency is exactly stall_end - intended; a closed loop shows the stall once."""
    rate, n, stall = 50.0, 100, 1.0  # the 26th request (due at 0.5 s) starts the stall, which ends at 1.5 s
    step = _memory_step(MemoryStallOnce(after=25, seconds=stall), "rate", n, rate=rate)
    assert all(r.ok and r.correct for r in step.records)
    intended = np.array([r.intended_s for r in step.records])
    latency = np.array([r.latency_s for r in step.records])
    np.testing.assert_allclose(intended, np.arange(n) / rate)
    np.testing.assert_allclose([r.sent_s for r in step.records], intended, atol=1e-9)  # every send on schedule
    held = np.arange(25, 75)  # due at 0.50 .. 1.48 s
    np.testing.assert_allclose(latency[held], 0.5 + stall - intended[held], atol=1e-9)
    assert np.all(latency[:25] < 1e-9) and np.all(latency[75:] < 1e-9)
    closed = _memory_step(MemoryStallOnce(after=25, seconds=stall), "sequential", n)
    closed_latency = np.array([r.latency_s for r in closed.records])
    assert (closed_latency > 1e-9).sum() == 1 and closed_latency[25] == pytest.approx(stall)


@pytest.mark.slow
@pytest.mark.timing  # a send schedule: run after the parallel pass, with the CPUs to itself
@pytest.mark.parametrize("engine_name", available_engines())
def test_open_loop_counts_latency_from_the_intended_time_through_a_stall(engine_name: str) -> None:
    """Issue 3's proof: a 1-s stall shows up in every request that was due during it."""
    rate, n, stall = 50.0, 100, 1.0  # 2 s of load; the 26th request (due at 0.5 s) starts the stall
    step = _step(StallOnce(after=25, seconds=stall), "rate", n, rate=rate, engine_name=engine_name)
    records = step.records
    assert all(r.ok and r.correct for r in records)
    intended = np.array([r.intended_s for r in records])
    latency = np.array([r.latency_s for r in records])
    sent = np.array([r.sent_s for r in records])
    np.testing.assert_allclose(intended, np.arange(n) / rate)
    # open loop: the requests due during the stall (seq 25..74) left on schedule, whatever
    # the server was doing -- a client that waited for answers would send them 0-1 s late,
    # half a second in the median. The tolerances allow for a client starved of CPU on a busy
    # 2-core machine (the suite runs two workers): a few sends may be late by a fraction of
    # the stall when the held answers arrive together, never most of them.
    late = sent - intended
    assert np.median(late[25:75]) < 0.1, np.round(late[25:75], 3)
    assert late.max() < 0.75, np.round(late, 3)
    # the requests due during the stall (0.5 s .. 1.5 s: seq 25..74) are all held until it
    # ends, so each one's latency is stall_end - intended: ~1 s for the first, decreasing
    # by 1/rate per request.  Seq 68..74 were due in its last 140 ms (jitter margin).
    due = np.arange(25, 68)
    completion = intended[due] + latency[due]
    assert completion.max() - completion.min() < 0.15, completion
    assert completion.mean() == pytest.approx(0.5 + stall, abs=0.15)
    assert latency[25] == pytest.approx(stall, abs=0.15)
    np.testing.assert_allclose(latency[due], completion.mean() - intended[due], atol=0.15)
    assert np.corrcoef(intended[due], latency[due])[0, 1] < -0.95
    # before and after the stall the server answers at once
    assert latency[:25].max() < 0.2 and np.median(latency[76:]) < 0.1
    assert 33 <= (latency > 0.2).sum() <= 45  # ~(1.0 s - 0.2 s) of the stall at 50 req/s
    p90_open = np.percentile(latency, 90)

    # the same server under a closed loop: the stall hits the one request in flight; the
    # ~50 that an open loop would have sent meanwhile are never sent, so they look fast
    closed = _step(StallOnce(after=25, seconds=stall), "sequential", n, engine_name=engine_name)
    closed_latency = np.array([r.latency_s for r in closed.records])
    assert (closed_latency > 0.5).sum() == 1
    assert closed_latency.max() == pytest.approx(stall, abs=0.15)
    assert np.percentile(closed_latency, 90) < 0.2 and p90_open > 0.5


def test_an_open_loop_faster_than_the_target_is_flagged_target_behind() -> None:
    """400 req/s offered to a server that manages at most 50: the answers fall behind the
    sends by seconds, while every request is sent on time (virtual time: exactly)."""
    from loadgen.saturation import FLAG_CLIENT_BEHIND, FLAG_TARGET_BEHIND, analyze_open_loop

    step = _memory_step(SingleWorker(0.02), "rate", 60, rate=400.0)
    assert all(r.ok for r in step.records)
    verdict = analyze_open_loop(step)
    assert verdict is not None and verdict.saturated and FLAG_TARGET_BEHIND in verdict.details
    assert verdict.achieved_rps < 0.5 * verdict.offered_rps
    assert FLAG_CLIENT_BEHIND not in verdict.details
    assert [r.sent_s for r in step.records] == pytest.approx([r.intended_s for r in step.records], abs=1e-9)


def test_a_client_that_cannot_send_the_rate_is_flagged_client_behind() -> None:
    """The politeness cap holds the client to 10 req/s (10 per 1-s window) while the schedule
    asks 1000: the send lag grows by a second while the server answers at once.  Real time
    and a real engine, like the cap test above."""
    from loadgen.saturation import FLAG_CLIENT_BEHIND, FLAG_TARGET_BEHIND, analyze_open_loop

    step = _step(answer_digit, "rate", 20, rate=1000.0, max_rps=10.0)
    assert all(r.ok for r in step.records)
    verdict = analyze_open_loop(step)
    assert verdict is not None and verdict.saturated
    assert FLAG_CLIENT_BEHIND in verdict.details and FLAG_TARGET_BEHIND not in verdict.details
    assert verdict.lag_growth_s > 0.5
