"""The three load modes on a tiny real loopback server: closed loops, the open loop, bounds."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from loadgen_helpers import FakeTarget, TinyServer, answer_digit

from loadgen.engine import EngineOptions
from loadgen.engines import available_engines, engine_class
from loadgen.modes import run_step
from loadgen.pacing import schedule
from loadgen.records import StepKey, StepResult

ENGINE = "aiohttp"  # mode logic is engine-independent; engines are covered in test_loadgen_engines


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


class InFlight:
    """Answers after ``delay`` seconds and remembers the most requests it held at once."""

    def __init__(self, delay: float) -> None:
        self.delay, self.now, self.peak = delay, 0, 0

    async def __call__(self, path: str, body: bytes, w: asyncio.StreamWriter) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        await asyncio.sleep(self.delay)
        self.now -= 1
        await answer_digit(path, body, w)


def _step(handler, mode: str, n: int, concurrency: int = 1, *, rate: float = 0.0, timeout_s: float = 10.0,
          max_duration_s: float = 30.0, max_rps: float = 0.0, base_url: str | None = None,
          on_progress=None, engine_name: str = ENGINE) -> StepResult:  # fmt: skip
    async def main() -> StepResult:
        async with TinyServer(handler) as server:
            target = FakeTarget(base_url or server.base_url)
            labels = [i % 10 for i in range(n)]
            requests = [target.encode(np.full((28, 28), d, dtype=np.uint8)) for d in labels]
            cap = concurrency if mode != "rate" else n
            engine = engine_class(engine_name)()
            await engine.open(EngineOptions(base_url=target.base_url, max_connections=cap, timeout_s=timeout_s))
            key = StepKey(target="fake", mode=mode, n_requests=n, concurrency=cap, rate=rate, trial=1)
            offsets = schedule(n, rate, "uniform") if mode == "rate" else None
            try:
                return await run_step(engine, key, requests, labels, target.decode, offsets=offsets,
                                      max_duration_s=max_duration_s, max_rps=max_rps, on_progress=on_progress)
            finally:
                await engine.close()

    return asyncio.run(main())


def test_sequential_sends_one_at_a_time_and_checks_labels() -> None:
    server = InFlight(0.01)
    calls: list[tuple[int, int]] = []
    step = _step(server, "sequential", 6, on_progress=lambda key, done, total: calls.append((done, total)))
    assert server.peak == 1
    assert [r.error for r in step.records] == [""] * 6
    assert all(r.correct for r in step.records)
    assert calls[0] == (0, 6) and calls[-1] == (6, 6)
    sent = [r.sent_s for r in step.records]
    assert sent == sorted(sent) and all(r.intended_s == r.sent_s for r in step.records)
    # one after another: each is sent after the previous one completed
    for prev, nxt in zip(step.records, step.records[1:]):
        assert nxt.sent_s >= prev.sent_s + prev.service_s - 1e-6
    assert step.total_s >= 6 * 0.01


def test_concurrent_keeps_c_in_flight_and_a_burst_sends_all_at_once() -> None:
    server = InFlight(0.1)
    step = _step(server, "concurrent", 12, concurrency=4)
    assert server.peak == 4
    assert 0.3 <= step.total_s < 0.6  # 3 waves of 4 (upper bound loose: shared CI cores)
    burst_server = InFlight(0.2)
    burst = _step(burst_server, "concurrent", 16, concurrency=16)
    assert burst_server.peak == 16
    assert 0.2 <= burst.total_s < 1.0  # one wave, not 16 x 0.2 s
    assert all(r.ok and r.correct for r in burst.records)


def test_max_duration_bounds_a_closed_loop_and_records_every_request() -> None:
    async def never(path: str, body: bytes, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    step = _step(never, "concurrent", 5, concurrency=2, max_duration_s=0.3)
    errors = [r.error for r in step.records]
    assert errors.count("timeout") == 2 and errors.count("other") == 3
    assert all("max_duration_s=0.3" in r.error_detail for r in step.records)
    assert 0.29 <= step.total_s < 0.6
    assert len(step.records) == 5 and [r.seq for r in step.records] == list(range(5))


def test_max_duration_bounds_the_open_loop_too() -> None:
    async def never(path: str, body: bytes, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    step = _step(never, "rate", 10, rate=10.0, max_duration_s=0.35)  # due at 0.0, 0.1, ... 0.9 s
    errors = [r.error for r in step.records]
    assert errors == ["timeout"] * 4 + ["other"] * 6
    assert [r.intended_s for r in step.records] == pytest.approx(list(np.arange(10) / 10))


def test_politeness_cap_limits_the_rate() -> None:
    step = _step(answer_digit, "sequential", 8, max_rps=5.0)  # 5 per 1-s window
    assert all(r.ok for r in step.records)
    assert max(r.sent_s for r in step.records[:5]) < 0.9
    assert min(r.sent_s for r in step.records[5:]) >= 0.95


@pytest.mark.slow
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
    # open loop: every request left on schedule, whatever the server was doing (the
    # tolerances allow for a client starved of CPU on a busy 2-core machine; the effect
    # measured is a 1-s stall)
    assert np.all(sent - intended < 0.25), (sent - intended).max()
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


class OneAtATime:
    """Answers the digit after ``service_s``, one request at a time (a single sync worker)."""

    def __init__(self, service_s: float) -> None:
        self.service_s = service_s
        self.lock = asyncio.Lock()

    async def __call__(self, path: str, body: bytes, w: asyncio.StreamWriter) -> None:
        async with self.lock:
            await asyncio.sleep(self.service_s)
        await answer_digit(path, body, w)


def test_an_open_loop_faster_than_the_target_is_flagged_target_behind() -> None:
    """400 req/s offered to a server that manages at most 50: the answers fall behind the
    sends by seconds (the margin is 8x, so a busy machine does not change the verdict)."""
    from loadgen.saturation import FLAG_TARGET_BEHIND, analyze_open_loop

    step = _step(OneAtATime(0.02), "rate", 60, rate=400.0)
    assert all(r.ok for r in step.records)
    verdict = analyze_open_loop(step)
    assert verdict is not None and verdict.saturated and FLAG_TARGET_BEHIND in verdict.details
    assert verdict.achieved_rps < 0.5 * verdict.offered_rps


def test_a_client_that_cannot_send_the_rate_is_flagged_client_behind() -> None:
    """The politeness cap holds the client to 10 req/s (10 per 1-s window) while the schedule
    asks 1000: the send lag grows by a second while the server answers at once."""
    from loadgen.saturation import FLAG_CLIENT_BEHIND, FLAG_TARGET_BEHIND, analyze_open_loop

    step = _step(answer_digit, "rate", 20, rate=1000.0, max_rps=10.0)
    assert all(r.ok for r in step.records)
    verdict = analyze_open_loop(step)
    assert verdict is not None and verdict.saturated
    assert FLAG_CLIENT_BEHIND in verdict.details and FLAG_TARGET_BEHIND not in verdict.details
    assert verdict.lag_growth_s > 0.5
