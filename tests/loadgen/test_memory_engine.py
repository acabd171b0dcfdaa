"""The in-memory engine and its virtual-time loop: exact times, the engine contract, no sockets."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from loadgen.engine import Engine, EngineError, EngineOptions
from loadgen.engines import engine_class
from loadgen.engines.memory_engine import MemoryEngine, echo
from loadgen.engines.virtual_time import VirtualTimeLoop, is_virtual, run_virtual
from loadgen.request import Request

OPTIONS = EngineOptions(base_url="http://memory.invalid", max_connections=3, timeout_s=1.0)
REQUEST = Request("POST", "/predict", b'{"v": 4}', {"Content-Type": "application/json"})


# -- virtual time ---------------------------------------------------------------------------
def test_virtual_time_jumps_to_each_timer_in_order() -> None:
    async def main() -> tuple[list[tuple[str, float]], float]:
        loop = asyncio.get_running_loop()
        done: list[tuple[str, float]] = []

        async def sleeper(name: str, seconds: float) -> None:
            await asyncio.sleep(seconds)
            done.append((name, loop.time()))

        await asyncio.gather(sleeper("b", 0.2), sleeper("a", 0.1), sleeper("day", 86_400.0))
        return done, loop.time()

    done, end = run_virtual(main())
    assert done == [("a", pytest.approx(0.1)), ("b", pytest.approx(0.2)), ("day", pytest.approx(86_400.0))]
    assert end == pytest.approx(86_400.0)  # a day of loop time; the test itself takes milliseconds


def test_virtual_time_bounds_and_timeouts_are_exact() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(2.5):
                await asyncio.sleep(10)
        return loop.time()

    assert run_virtual(main()) == pytest.approx(2.5)


def test_virtual_loop_still_waits_for_real_work_in_threads() -> None:
    """With no timer pending the loop blocks on real I/O, so a thread's result arrives."""

    def work() -> str:
        time.sleep(0.05)  # real work in a thread: the loop must wait for it, not skip ahead
        return "done"

    async def main() -> tuple[str, float]:
        loop = asyncio.get_running_loop()
        result = await asyncio.to_thread(work)
        return result, loop.time()

    assert run_virtual(main()) == ("done", 0.0)


def test_virtual_clock_stands_still_while_a_thread_runs_even_with_timers_pending() -> None:
    """A pending timer must not fire "during" a thread's real work: the order is the machine's load's otherwise.

    The streamed step writes records in a thread while its deadline and drain timers wait;
    on a loaded CI box the write took long enough for the clock to jump past the deadline.
    """

    def work() -> float:
        time.sleep(0.2)  # longer than any select(0) poll: the old loop jumped to the timer here
        return 1.0

    async def main() -> tuple[list[str], float]:
        loop = asyncio.get_running_loop()
        order: list[str] = []

        async def timer() -> None:
            await asyncio.sleep(0.05)
            order.append(f"timer at {loop.time():g}")

        pending = asyncio.ensure_future(timer())
        await asyncio.to_thread(work)
        order.append(f"thread back at {loop.time():g}")
        await pending
        return order, loop.time()

    order, end = run_virtual(main())
    assert order == ["thread back at 0", "timer at 0.05"]
    assert end == pytest.approx(0.05)


def test_virtual_time_never_goes_back_and_says_what_it_is() -> None:
    loop = VirtualTimeLoop(start=5.0)
    try:
        assert loop.time() == 5.0 and is_virtual(loop)
        loop.advance(1.5)
        assert loop.time() == 6.5
        with pytest.raises(ValueError, match="only moves forward"):
            loop.advance(-1.0)
    finally:
        loop.close()
    plain = asyncio.new_event_loop()
    try:
        assert not is_virtual(plain)
    finally:
        plain.close()


# -- the engine -----------------------------------------------------------------------------
def test_memory_engine_answers_from_the_handler_after_its_latency() -> None:
    def handler(request: Request) -> tuple[int, bytes]:
        return 201, json.dumps({"digit": json.loads(request.body)["v"]}).encode()

    async def main() -> tuple[list, list[float]]:
        async with MemoryEngine(OPTIONS, handler, latency=lambda r: 0.25) as engine:
            engine.prepare([REQUEST])  # the documented no-op default: nothing to pre-build
            responses = [await engine.send(REQUEST) for _ in range(2)]
            return responses, [engine.clock()]

    responses, (clock,) = run_virtual(main())
    assert [(r.status, json.loads(r.body), r.bytes_in) for r in responses] == [(201, {"digit": 4}, 12)] * 2
    assert clock == pytest.approx(0.5)  # two sequential sends of 0.25 s, on the engine's (virtual) clock


def test_memory_engine_holds_the_connection_cap_and_its_wait_counts_in_the_timeout() -> None:
    async def main() -> tuple[list[float], list[str], int, int]:
        loop = asyncio.get_running_loop()
        async with MemoryEngine(OPTIONS, echo, latency=0.3) as engine:  # 3 slots, 1-s timeout

            async def one() -> tuple[float, str]:
                try:
                    await engine.send(REQUEST)
                except EngineError as exc:
                    return loop.time(), exc.error
                return loop.time(), ""

            results = await asyncio.gather(*(one() for _ in range(10)))
        return [t for t, _ in results], [e for _, e in results], engine.peak_in_flight, engine.sent

    times, errors, peak, sent = run_virtual(main())
    assert peak == 3 and sent == 10
    # waves of 3 finish at 0.3, 0.6, 0.9 s; the 10th request waited 0.9 s for a slot and times out at 1.0 s
    assert times == pytest.approx([0.3] * 3 + [0.6] * 3 + [0.9] * 3 + [1.0])
    assert errors == [""] * 9 + ["timeout"]


def test_memory_engine_passes_handler_failures_on() -> None:
    def refused(request: Request) -> tuple[int, bytes]:
        raise EngineError("refused", "nothing listens")

    def broken(request: Request) -> tuple[int, bytes]:
        raise TimeoutError("the handler's own bug, not a request timeout")

    async def main() -> None:
        async with MemoryEngine(OPTIONS, refused) as engine:
            with pytest.raises(EngineError) as excinfo:
                await engine.send(REQUEST)
            assert excinfo.value.error == "refused"
        async with MemoryEngine(OPTIONS, broken) as engine:
            with pytest.raises(TimeoutError, match="handler's own bug"):
                await engine.send(REQUEST)

    run_virtual(main())


def test_memory_engine_refuses_wall_clock_loops_and_bad_arguments() -> None:
    engine = MemoryEngine(OPTIONS)

    async def main() -> None:
        async with engine:
            raise AssertionError("not reached")

    with pytest.raises(RuntimeError, match="virtual time only.*run_virtual"):
        asyncio.run(main())
    with pytest.raises(RuntimeError, match="before open"):
        run_virtual(engine.send(REQUEST))  # the failed open left nothing open
    with pytest.raises(ValueError, match="latency must be seconds >= 0"):
        MemoryEngine(OPTIONS, latency=-1.0)
    with pytest.raises(TypeError, match="handler must be callable"):
        MemoryEngine(OPTIONS, "200 OK")


def test_async_with_closes_the_memory_engine_on_error_and_cancellation() -> None:
    async def main() -> list[str]:
        states = []
        engine = MemoryEngine(OPTIONS)
        with pytest.raises(RuntimeError, match="boom"):
            async with engine:
                raise RuntimeError("boom")
        with pytest.raises(RuntimeError, match="after close"):
            await engine.send(REQUEST)
        states.append("closed after error")

        async def hang() -> None:
            async with engine:
                await asyncio.sleep(3600)

        task = asyncio.create_task(hang())
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(RuntimeError, match="after close"):
            await engine.send(REQUEST)
        states.append("closed after cancellation")
        return states

    assert run_virtual(main()) == ["closed after error", "closed after cancellation"]


def test_memory_engine_is_registered_and_the_base_class_defaults_are_its_own() -> None:
    assert engine_class("memory") is MemoryEngine
    assert MemoryEngine.prepare is Engine.prepare  # it has nothing to pre-build: the documented default
    factory = MemoryEngine.factory(echo, latency=0.1)
    engine = factory(OPTIONS)
    assert isinstance(engine, MemoryEngine) and engine.options is OPTIONS and engine.latency == 0.1
