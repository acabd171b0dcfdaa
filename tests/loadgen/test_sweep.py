"""The sweep API: plan, order, warm-up, seeded images, label checks, a target that dies.

What the sweep records (counts, order, labels, schedules) is checked with the in-memory
engine on virtual time (no socket, nothing timed by the machine); how a *network* engine
sees a target die (refused, reset) is checked against a real loopback server.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from bench.config import LoadgenConfig
from loadgen.engine import EngineOptions
from loadgen.engines import engine_class
from loadgen.engines.memory_engine import MemoryEngine
from loadgen.engines.virtual_time import run_virtual
from loadgen.records import StepResult
from loadgen.stats import summarize
from loadgen.sweep import SweepPlan, run_sweep
from loadgen.sweep_settings import SweepSettings
from tests.support.loadgen import MEMORY_URL, FakeTarget, MemoryServer, TinyServer, answer_digit, digit_images, digit_of

LABELS = np.random.default_rng(5).integers(0, 10, size=40)
IMAGES = digit_images(LABELS)


def _memory_sweep(server: MemoryServer, plan: SweepPlan, latency: float = 0.001) -> tuple[list[StepResult], FakeTarget]:
    """Run a sweep through the memory engine on virtual time (``latency`` s per request)."""

    async def main() -> list[StepResult]:
        return [
            step
            async for step in run_sweep(target, MemoryEngine.factory(server, latency=latency), plan, IMAGES, LABELS)
        ]

    target = FakeTarget(MEMORY_URL)
    return run_virtual(main()), target


def _sweep(handler, plan: SweepPlan, engine: str = "aiohttp", stop_after: int | None = None):
    """Run a sweep against a TinyServer; ``stop_after`` steps, the server dies."""

    async def main() -> tuple[list[StepResult], TinyServer, FakeTarget]:
        async with TinyServer(handler) as server:
            target = FakeTarget(server.base_url)
            results = []
            async for step in run_sweep(target, engine_class(engine), plan, IMAGES, LABELS):
                results.append(step)
                if stop_after is not None and len(results) == stop_after:
                    await server.stop()
            return results, server, target

    return asyncio.run(main())


def test_plan_from_config_with_overrides() -> None:
    loadgen = LoadgenConfig(timeout_s=7.0, max_rps=3.0)
    plan = SweepPlan.from_config(SweepSettings(), loadgen, n_requests=[1, 4], trials=None)
    assert plan.n_requests == (1, 4) and plan.trials == 1 and plan.modes == ("sequential", "concurrent")
    assert plan.timeout_s == 7.0 and plan.max_rps == 3.0 and plan.warmup == 5
    assert plan.describe()["n_requests"] == [1, 4]
    with pytest.raises(TypeError, match="unknown SweepPlan field"):
        SweepPlan.from_config(SweepSettings(), LoadgenConfig(), requests=[1])
    with pytest.raises(ValueError, match="unknown mode"):
        SweepPlan(n_requests=(1,), modes=("burst",))
    with pytest.raises(ValueError, match="n_requests"):
        SweepPlan(n_requests=(0,))


def test_plan_steps_order_and_concurrency() -> None:
    plan = SweepPlan(n_requests=(1, 8), modes=("sequential", "concurrent", "rate"), trials=2, rate_rps=20.0)
    keys = plan.steps("t")
    assert len(keys) == 12
    assert [(k.trial, k.mode, k.n_requests) for k in keys[:6]] == [
        (1, "sequential", 1),
        (1, "sequential", 8),
        (1, "concurrent", 1),
        (1, "concurrent", 8),
        (1, "rate", 1),
        (1, "rate", 8),
    ]
    assert [k.concurrency for k in keys[:6]] == [1, 1, 1, 8, 1, 8]
    assert [k.rate for k in keys[:6]] == [0, 0, 0, 0, 20.0, 20.0]
    capped = SweepPlan(n_requests=(2, 100), modes=("concurrent",), concurrency=16)
    assert [k.concurrency for k in capped.steps("t")] == [2, 16]


def test_plan_seeds_are_separate_and_reproducible() -> None:
    plan = SweepPlan(n_requests=(5,), arrival="poisson", seed=1)
    np.testing.assert_array_equal(plan.image_order(40, 1), plan.image_order(40, 1))
    assert not np.array_equal(plan.image_order(40, 1), plan.image_order(40, 2))
    np.testing.assert_array_equal(plan.offsets(5, 1), plan.offsets(5, 1))
    assert not np.array_equal(plan.offsets(5, 1), plan.offsets(5, 2))
    other = SweepPlan(n_requests=(5,), arrival="poisson", seed=2)
    assert not np.array_equal(plan.image_order(40, 1), other.image_order(40, 1))


def test_sweep_runs_every_step_with_warmup_and_checks_every_label() -> None:
    plan = SweepPlan(
        n_requests=(1, 4, 50),
        modes=("sequential", "concurrent", "rate"),
        trials=2,
        warmup=3,
        rate_rps=400.0,
        arrival="poisson",
        seed=3,
    )
    server = MemoryServer()
    results, target = _memory_sweep(server, plan)
    assert [r.key for r in results] == plan.steps("fake")
    assert server.requests == 2 * 3 * (1 + 4 + 50) + len(results) * 3  # warm-up excluded but sent
    for step in results:
        assert len(step.records) == step.key.n_requests
        assert all(r.ok and r.correct for r in step.records), step.key
        row = summarize(step)
        assert row["accuracy"] == 1.0 and row["errors"] == 0 and row["flags"] == ""
        # virtual time: no step queues (C = N, or one at a time), so every latency is the 1 ms service time
        assert [r.latency_s for r in step.records] == pytest.approx([0.001] * step.key.n_requests), step.key
    # every mode of a trial sends the same images (labels) for the same N, in a seeded order
    by_key = {(s.key.trial, s.key.mode, s.key.n_requests): [r.label for r in s.records] for s in results}
    order = plan.image_order(len(IMAGES), 1)
    expected = [int(LABELS[order[i % len(order)]]) for i in range(50)]
    for mode in plan.modes:
        assert by_key[(1, mode, 50)] == expected
    assert by_key[(2, "sequential", 50)] != expected
    # N=50 > 40 images: cyclic; blueprints encoded once per image for the whole sweep
    assert target.encoded <= len(IMAGES)
    # open loop: intended times follow the plan's schedule
    rate_step = next(s for s in results if s.key == plan.steps("fake")[-1])
    np.testing.assert_allclose([r.intended_s for r in rate_step.records], plan.offsets(50, 2))
    np.testing.assert_allclose([r.sent_s for r in rate_step.records], plan.offsets(50, 2), atol=1e-9)  # on time


def test_a_wrong_digit_lowers_accuracy_and_is_not_an_error() -> None:
    def sometimes_wrong(request) -> tuple[int, bytes]:
        digit = digit_of(request.body)
        answer = (digit + 1) % 10 if digit % 2 else digit
        return 200, json.dumps({"digit": answer}).encode()

    plan = SweepPlan(n_requests=(40,), modes=("concurrent",), warmup=0, concurrency=8)
    (step,), _ = _memory_sweep(MemoryServer(sometimes_wrong), plan)
    row = summarize(step)
    odd = sum(1 for r in step.records if r.label % 2)
    assert row["errors"] == 0 and row["n_ok"] == 40
    assert row["accuracy"] == pytest.approx((40 - odd) / 40) and 0 < odd < 40
    for r in step.records:
        assert r.predicted == ((r.label + 1) % 10 if r.label % 2 else r.label)
        assert r.correct == (r.label % 2 == 0)


@pytest.mark.parametrize("engine", ["httpx", "aiohttp"])
def test_a_dying_target_yields_refused_records_and_the_sweep_goes_on(engine: str) -> None:
    plan = SweepPlan(n_requests=(3, 5), modes=("sequential", "concurrent"), warmup=1, timeout_s=2.0)
    results, _, _ = _sweep(answer_digit, plan, engine=engine, stop_after=1)
    assert len(results) == 4
    assert all(r.ok for r in results[0].records)
    for step in results[1:]:
        assert {r.error for r in step.records} == {"refused"}, step.key
        assert summarize(step)["errors_by_class"] == f"refused:{step.key.n_requests}"


def test_sweep_refuses_an_unstarted_target_or_mismatched_labels() -> None:
    plan = SweepPlan(n_requests=(1,))
    target = FakeTarget("")

    async def first(images, labels):
        async for step in run_sweep(target, MemoryEngine, plan, images, labels):
            return step

    with pytest.raises(ValueError, match="start it"):
        run_virtual(first(IMAGES, LABELS))
    target.base_url = MEMORY_URL
    with pytest.raises(ValueError, match="one label per image"):
        run_virtual(first(IMAGES, LABELS[:3]))


@pytest.mark.parametrize("engine", ["httpx", "aiohttp"])
def test_a_target_dying_mid_step_fails_fast_and_is_recorded(engine: str) -> None:
    """The server dies while answering request 5: reset for it, refused for the rest."""
    box: dict[str, TinyServer] = {}

    async def dies_at_five(path: str, body: bytes, w: asyncio.StreamWriter) -> None:
        if box["server"].requests == 5:
            await box["server"].stop()
            return
        await answer_digit(path, body, w)

    async def main() -> StepResult:
        async with TinyServer(dies_at_five) as server:
            box["server"] = server
            target = FakeTarget(server.base_url)
            plan = SweepPlan(n_requests=(10,), modes=("sequential",), warmup=0, timeout_s=5.0)
            async for step in run_sweep(target, engine_class(engine), plan, IMAGES, LABELS):
                return step
        raise AssertionError("no step")

    step = asyncio.run(main())
    errors = [r.error for r in step.records]
    assert errors == [""] * 4 + ["reset"] + ["refused"] * 5, [r.error_detail for r in step.records]
    assert step.total_s < 2.0  # fails fast: no timeouts


def test_rate_steps_sized_by_duration_and_bounded() -> None:
    from loadgen.sweep_settings import requests_for

    assert requests_for(1500.0, 2.0) == 3000 and requests_for(0.1, 30.0) == 3 and requests_for(5.0, 0.5) == 3
    plan = SweepPlan(n_requests=(1, 4), modes=("sequential", "rate"), rate_rps=200.0, duration_s=0.25)
    assert plan.rate_counts() == (50,) and plan.counts_for("sequential") == (1, 4)
    assert [(k.mode, k.n_requests, k.concurrency) for k in plan.steps("t")] == [
        ("sequential", 1, 1),
        ("sequential", 4, 1),
        ("rate", 50, 50),
    ]
    assert plan.total_requests() == 1 + 4 + 50 + 3 * plan.warmup
    assert plan.describe()["duration_s"] == 0.25
    assert SweepPlan.from_config(SweepSettings(duration_s=2.0), LoadgenConfig()).duration_s == 2.0
    # without rate mode the duration sizes nothing, and nothing is checked against it
    assert SweepPlan(n_requests=(1,), duration_s=10_000.0).rate_counts() == (500_000,)
    for bad, match in [
        (dict(rate_rps=float("inf")), "rate_rps must be a finite number > 0"),
        (dict(rate_rps=0.1, duration_s=1.0), r"round\(0.1 x 1\) = 0 requests; it must send at least 1"),
        (dict(duration_s=-1.0), "duration_s: must be a finite duration >= 0"),
        (dict(duration_s="2x"), "duration_s: '2x' is not a duration"),
        (dict(rate_rps=1.0, max_duration_s=10.0, duration_s=20.0), "longer than max_duration_s = 10 s"),
        (dict(rate_rps=1.0, max_duration_s="10s", duration_s="20s"), "longer than max_duration_s = 10 s"),
    ]:
        with pytest.raises(ValueError, match=match):
            SweepPlan(**{"n_requests": (1,), "modes": ("rate",), **bad})


def test_long_steps_are_no_longer_capped_by_a_request_count() -> None:
    # the old MAX_STEP_REQUESTS (100,000) is gone: a soak of an hour at 1,000 req/s is a plan,
    # bounded by the disk (loadgen.run_limits) and by a max_duration_s that follows it
    plan = SweepPlan(n_requests=(1,), modes=("rate",), rate_rps=1000.0, duration_s="1h")
    assert plan.rate_counts() == (3_600_000,) and plan.duration_s == 3600.0
    assert plan.max_duration_s > 3600.0  # "auto": not cut at the old 600 s
    assert SweepPlan(n_requests=(100_001,), modes=("sequential",)).steps("t")[0].n_requests == 100_001


def test_a_duration_sized_rate_step_runs_round_r_times_s_requests() -> None:
    plan = SweepPlan(
        n_requests=(3,), modes=("sequential", "rate"), rate_rps=400.0, duration_s=0.1, warmup=1, concurrency=4
    )
    server = MemoryServer()
    results, _ = _memory_sweep(server, plan)
    assert server.requests == 3 + 40 + 2 * plan.warmup
    assert [(s.key.mode, s.key.n_requests) for s in results] == [("sequential", 3), ("rate", 40)]
    rate_step = results[1]
    assert rate_step.key.concurrency == 4 and rate_step.key.rate == 400.0
    assert all(r.ok for r in rate_step.records)
    np.testing.assert_allclose([r.intended_s for r in rate_step.records], plan.offsets(40, 1))
    row = summarize(rate_step)
    assert row["offered_rps"] > 0 and row["achieved_rps"] > 0
    assert row["send_lag_max_s"] == pytest.approx(0.0, abs=1e-9) and not row["saturated"]  # 1 ms answers keep up


class _RecordingEngine(MemoryEngine):
    """The memory engine, noting what the sweep asks of the engine interface."""

    made: list[_RecordingEngine] = []

    def __init__(self, options: EngineOptions, handler) -> None:
        super().__init__(options, handler, latency=0.001)
        self.prepared = 0
        self.state = "made"
        _RecordingEngine.made.append(self)

    def prepare(self, requests) -> None:
        assert self.state == "open", "the sweep prepares an opened engine, before its step"
        self.prepared += len(list(requests))

    async def open(self) -> None:
        await super().open()
        self.state = "open"

    async def close(self) -> None:
        await super().close()
        self.state = "closed"


def _recording_factory(handler):
    _RecordingEngine.made = []
    return lambda options: _RecordingEngine(options, handler)


def test_each_step_gets_a_fresh_engine_made_with_its_options_prepared_and_closed() -> None:
    plan = SweepPlan(
        n_requests=(2, 6),
        modes=("sequential", "concurrent"),
        warmup=3,
        concurrency=4,
        timeout_s=7.0,
        connect_timeout_s=2.0,
        verify_tls=False,
    )

    async def main() -> list[StepResult]:
        factory = _recording_factory(MemoryServer())
        return [step async for step in run_sweep(FakeTarget(MEMORY_URL), factory, plan, IMAGES, LABELS)]

    results = run_virtual(main())
    engines = _RecordingEngine.made
    assert len(engines) == len(results) == 4 and len({id(e) for e in engines}) == 4
    for engine, step in zip(engines, results, strict=False):
        assert engine.options == EngineOptions(
            base_url=MEMORY_URL,
            max_connections=step.key.concurrency,
            timeout_s=7.0,
            connect_timeout_s=2.0,
            verify_tls=False,
        )
        assert engine.prepared == step.key.n_requests + plan.warmup  # warm-up and step, before either runs
        assert engine.state == "closed"
        assert engine.sent == step.key.n_requests + plan.warmup


def test_a_step_that_fails_or_is_cancelled_still_closes_its_engine() -> None:
    plan = SweepPlan(n_requests=(3,), modes=("sequential", "concurrent"), warmup=0)

    def fail_in_second_step(key, done: int, total: int, live) -> None:
        if key.mode == "concurrent":
            raise RuntimeError("display broke")

    async def failing() -> None:
        factory = _recording_factory(MemoryServer())
        async for _ in run_sweep(
            FakeTarget(MEMORY_URL), factory, plan, IMAGES, LABELS, on_progress=fail_in_second_step
        ):
            pass

    with pytest.raises(RuntimeError, match="display broke"):
        run_virtual(failing())
    assert [e.state for e in _RecordingEngine.made] == ["closed", "closed"]

    reached = asyncio.Event()

    async def hangs_on_fifth(request) -> tuple[int, bytes]:
        if server.requests == 5:  # the second step's second request: nobody answers it
            reached.set()
            await asyncio.sleep(3600)
        return 200, json.dumps({"digit": digit_of(request.body)}).encode()

    server = MemoryServer(hangs_on_fifth)

    async def cancelled() -> bool:
        factory = _recording_factory(server)

        async def consume() -> None:
            async for _ in run_sweep(FakeTarget(MEMORY_URL), factory, plan, IMAGES, LABELS):
                pass

        task = asyncio.create_task(consume())
        await reached.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return True

    assert run_virtual(cancelled())
    assert [e.state for e in _RecordingEngine.made] == ["closed", "closed"]
    assert [e.in_flight for e in _RecordingEngine.made] == [0, 0]


def test_a_shards_steps_stream_to_its_sink_numbered_within_the_whole_step() -> None:
    """A shard's records go to disk as they complete, as a one-client step's do (a sharded
    soak is bounded too), under the step's recorded key and renumbered from the shard's first."""
    from loadgen.barrier import ShardRun
    from loadgen.shard import ShardSpec

    plan = SweepPlan(
        n_requests=(30,), modes=("concurrent", "rate"), trials=1, warmup=0, concurrency=4, rate_rps=200.0, seed=2
    )

    class Sink:
        def __init__(self, key) -> None:
            self.key, self.records, self.closed = key, [], False

        def write(self, records) -> None:
            self.records.extend(records)

        def close(self) -> None:
            self.closed = True

    def sweep(spec: ShardSpec, streamed: bool) -> tuple[list[StepResult], list[Sink]]:
        sinks: list[Sink] = []

        def make(key) -> Sink:
            sinks.append(Sink(key))
            return sinks[-1]

        async def main() -> list[StepResult]:
            factory = MemoryEngine.factory(MemoryServer(), latency=0.001)
            run = ShardRun(spec)
            return [
                s
                async for s in run_sweep(
                    target, factory, plan, IMAGES, LABELS, shard=run, record_sink=make if streamed else None
                )
            ]

        target = FakeTarget(MEMORY_URL)
        return run_virtual(main()), sinks

    for index in (0, 1):
        kept, _ = sweep(ShardSpec(index, 2), streamed=False)
        streamed, sinks = sweep(ShardSpec(index, 2), streamed=True)
        first = 0 if index == 0 else 15
        for old, new, sink in zip(kept, streamed, sinks, strict=True):
            assert not old.streamed and new.streamed and sink.closed
            assert new.key == old.key == sink.key and new.key.concurrency == 2  # the plan's step, this shard's cap
            assert [r.seq for r in new.records] == [r.seq for r in old.records] == list(range(first, first + 15))
            assert sorted(r.seq for r in sink.records) == list(range(first, first + 15))
            assert [r.label for r in new.records] == [r.label for r in old.records]
            assert summarize(new)["n_ok"] == summarize(old)["n_ok"] == 15
