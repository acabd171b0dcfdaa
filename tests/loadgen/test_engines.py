"""Every engine classifies the same failure the same way (tiny real servers on loopback)."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from loadgen.engine import EngineOptions
from loadgen.engines import ENGINE_NAMES, PROTOCOL_ENGINE_NAMES, TEST_ENGINE_NAMES, available_engines, engine_class
from loadgen.modes import run_step
from loadgen.records import StepKey
from targets.base import Request
from tests.support.loadgen import FakeTarget, TinyServer, answer_digit, closed_port, http_response, reset_connection

ENGINES = available_engines()


async def _never(path: str, body: bytes, w: asyncio.StreamWriter) -> None:
    await asyncio.sleep(30)


async def _error_500(path: str, body: bytes, w: asyncio.StreamWriter) -> None:
    w.write(http_response(500, b'{"error": "model exploded"}'))


async def _error_404(path: str, body: bytes, w: asyncio.StreamWriter) -> None:
    w.write(http_response(404, b'{"error": "no such model"}'))


async def _not_json(path: str, body: bytes, w: asyncio.StreamWriter) -> None:
    w.write(http_response(200, b"<html>hello</html>", "text/html"))


async def _not_a_digit(path: str, body: bytes, w: asyncio.StreamWriter) -> None:
    w.write(http_response(200, b'{"digit": 42}'))


async def _close_mid_body(path: str, body: bytes, w: asyncio.StreamWriter) -> None:
    w.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"digit":')
    await w.drain()
    w.close()


async def _close_without_answer(path: str, body: bytes, w: asyncio.StreamWriter) -> None:
    w.close()


async def _tcp_reset(path: str, body: bytes, w: asyncio.StreamWriter) -> None:
    reset_connection(w)


async def _garbage(path: str, body: bytes, w: asyncio.StreamWriter) -> None:
    w.write(b"HELLO, THIS IS NOT HTTP\r\n\r\n")


CASES = {
    "ok": (answer_digit, ""),
    "timeout": (_never, "timeout"),
    "http_5xx": (_error_500, "http_5xx"),
    "http_4xx": (_error_404, "http_4xx"),
    "undecodable_body": (_not_json, "undecodable"),
    "undecodable_digit": (_not_a_digit, "undecodable"),
    "reset_mid_body": (_close_mid_body, "reset"),
    "reset_no_answer": (_close_without_answer, "reset"),
    "reset_tcp_rst": (_tcp_reset, "reset"),
    "protocol_garbage": (_garbage, "protocol"),
}


async def _run(engine_name: str, base_url: str, n: int = 3, timeout_s: float = 0.4):
    target = FakeTarget(base_url)
    requests = [target.encode(np.full((28, 28), d, dtype=np.uint8)) for d in range(n)]
    options = EngineOptions(base_url=base_url, max_connections=1, timeout_s=timeout_s, connect_timeout_s=0.4)
    async with engine_class(engine_name)(options) as engine:
        key = StepKey(target="fake", mode="sequential", n_requests=n, concurrency=1, rate=0.0, trial=1)
        return await run_step(engine, key, requests, list(range(n)), target.decode, max_duration_s=10.0)


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("case", list(CASES))
def test_failures_are_classified_alike(engine_name: str, case: str) -> None:
    handler, expected = CASES[case]

    async def main():
        async with TinyServer(handler) as server:
            return await _run(engine_name, server.base_url)

    step = asyncio.run(main())
    assert [r.error for r in step.records] == [expected] * 3, [r.error_detail for r in step.records]
    for r in step.records:
        assert r.predicted == (r.label if expected == "" else -1)
        assert (r.error_detail == "") == (expected == "")
        if expected.startswith("http_"):
            assert r.status in (404, 500) and "HTTP" in r.error_detail
        if expected == "timeout":
            assert 0.39 <= r.service_s < 1.0


@pytest.mark.parametrize("engine_name", ENGINES)
def test_connection_refused_on_a_closed_port(engine_name: str) -> None:
    step = asyncio.run(_run(engine_name, f"http://127.0.0.1:{closed_port()}"))
    assert [r.error for r in step.records] == ["refused"] * 3
    assert all(r.status == 0 and r.bytes_in == 0 for r in step.records)


@pytest.mark.parametrize("engine_name", ENGINES)
def test_engine_sends_the_blueprint_as_is_and_reuses_the_connection(engine_name: str) -> None:
    seen: list[tuple[str, bytes]] = []

    async def handler(path: str, body: bytes, w: asyncio.StreamWriter) -> None:
        seen.append((path, body))
        await answer_digit(path, body, w)

    async def main():
        async with TinyServer(handler) as server:
            request = Request("POST", "/v1/models/m:predict?x=1", json.dumps({"v": 7}).encode(), {"X-Test": "1"})
            engine = engine_class(engine_name)(EngineOptions(base_url=server.base_url, max_connections=1))
            engine.prepare([request])  # before open(): allowed, and the same blueprint is then sent as is
            async with engine:
                engine.prepare([request])  # and again after: idempotent
                responses = [await engine.send(request) for _ in range(5)]
            return responses, server.connections

    responses, connections = asyncio.run(main())
    assert all(r.status == 200 and json.loads(r.body) == {"digit": 7} for r in responses)
    assert all(r.bytes_in > len(r.body) for r in responses)  # headers counted
    assert seen == [("/v1/models/m:predict?x=1", b'{"v": 7}')] * 5
    assert connections == 1  # keep-alive


def test_registry_names_and_errors() -> None:
    assert set(ENGINE_NAMES) == {"fast", "aiohttp", "httpx"}
    assert {"httpx", "aiohttp"} <= set(ENGINES)
    for name in (*ENGINES, *TEST_ENGINE_NAMES):
        cls = engine_class(name)
        assert cls.name == name and cls.version()
    # the in-memory engine is selectable by name but is never a candidate for measuring a target
    assert TEST_ENGINE_NAMES == ("memory",) and "memory" not in ENGINES
    # the grpc engine is reached by a grpc:// URL, never chosen as the run's HTTP engine
    assert PROTOCOL_ENGINE_NAMES == ("grpc",) and "grpc" not in ENGINES and engine_class("grpc").name == "grpc"
    with pytest.raises(ValueError, match="known engines: fast, aiohttp, httpx, grpc, memory"):
        engine_class("curl")


@pytest.mark.parametrize("engine_name", ENGINES)
def test_engine_honours_the_connection_cap(engine_name: str) -> None:
    """C in flight means C connections at most (httpx spreads them over several clients)."""
    state = {"now": 0, "peak": 0}

    async def slow(path: str, body: bytes, w: asyncio.StreamWriter) -> None:
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.05)
        state["now"] -= 1
        await answer_digit(path, body, w)

    async def main():
        async with TinyServer(slow) as server:
            target = FakeTarget(server.base_url)
            labels = [i % 10 for i in range(60)]
            requests = [target.encode(np.full((28, 28), d, dtype=np.uint8)) for d in labels]
            async with engine_class(engine_name)(EngineOptions(base_url=server.base_url, max_connections=20)) as engine:
                # 60 requests all at once through a 20-connection engine: the rest queue in the pool
                key = StepKey(target="fake", mode="concurrent", n_requests=60, concurrency=60, rate=0.0, trial=1)
                step = await run_step(engine, key, requests, labels, target.decode)
            return step, server.connections

    step, connections = asyncio.run(main())
    assert all(r.ok and r.correct for r in step.records)
    assert state["peak"] == 20 and connections == 20


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (dict(base_url="", max_connections=1), "base_url must be a non-empty URL"),
        (dict(base_url="http://127.0.0.1:1", max_connections=0), "max_connections must be an integer >= 1"),
        (dict(base_url="http://127.0.0.1:1", max_connections=2.5), "max_connections must be an integer >= 1"),
        (dict(base_url="http://127.0.0.1:1", max_connections=1, timeout_s=0), "timeout_s must be a finite number > 0"),
        (
            dict(base_url="http://127.0.0.1:1", max_connections=1, connect_timeout_s=float("inf")),
            "connect_timeout_s must be a finite number > 0",
        ),
    ],
)
def test_bad_options_fail_when_made_not_when_used(options: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        EngineOptions(**options)


@pytest.mark.parametrize("engine_name", ENGINES)
def test_options_are_given_once_at_construction(engine_name: str) -> None:
    cls = engine_class(engine_name)
    options = EngineOptions(base_url="http://127.0.0.1:1", max_connections=3, timeout_s=2.0)
    assert cls(options).options is options
    with pytest.raises(TypeError, match="takes an EngineOptions"):
        cls({"base_url": "http://127.0.0.1:1", "max_connections": 3})


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("ending", ["error", "cancel"])
def test_async_with_closes_the_connections_on_error_and_on_cancellation(engine_name: str, ending: str) -> None:
    """The server sees the engine's kept-alive connections closed however the block ends."""
    entered = asyncio.Event()

    async def main() -> tuple[int, int, bool]:
        async with TinyServer(answer_digit) as server:
            options = EngineOptions(base_url=server.base_url, max_connections=2)
            request = Request("POST", "/predict", json.dumps({"v": 3}).encode())

            async def use() -> None:
                async with engine_class(engine_name)(options) as engine:
                    await asyncio.gather(engine.send(request), engine.send(request))
                    entered.set()
                    if ending == "error":
                        raise RuntimeError("boom")
                    await asyncio.sleep(3600)  # cancelled here

            task = asyncio.create_task(use())
            await entered.wait()
            held = server.open_connections
            if ending == "cancel":
                task.cancel()
            with pytest.raises(RuntimeError if ending == "error" else asyncio.CancelledError):
                await task
            for _ in range(200):  # the server notices the close within a few loop turns
                if server.open_connections == 0:
                    break
                await asyncio.sleep(0.01)
            return held, server.open_connections, task.done()

    held, left, done = asyncio.run(main())
    assert held >= 1 and left == 0 and done


@pytest.mark.parametrize("engine_name", ENGINES)
def test_send_needs_an_open_engine_and_close_is_idempotent(engine_name: str) -> None:
    async def main() -> None:
        engine = engine_class(engine_name)(EngineOptions(base_url="http://127.0.0.1:1", max_connections=1))
        await engine.close()  # never opened: nothing to do
        with pytest.raises(RuntimeError, match="before open"):
            await engine.send(Request("GET", "/", b""))
        async with engine:
            pass
        await engine.close()
        with pytest.raises(RuntimeError, match="after close"):
            await engine.send(Request("GET", "/", b""))

    asyncio.run(main())
