"""A target that restarts mid-run (issue 25, deliverable 5): every engine survives it.

Why: a long rate step meets a target process that stops (its connections reset, new
ones refused) and comes back on the same port seconds later.  Required of each engine:
the outage is recorded as errors classified as always (``refused``/``reset``/``timeout``),
the step goes on to its end, and once the target is back requests succeed again -- no
engine stuck on a pool of dead connections, no retry storm, no crash.

How: a real rate step (:func:`loadgen.modes.run_step`, the path ``bench run`` takes)
against loopback :class:`~loadgen.nullserver.NullEndpoint` processes on one fixed port:
the first is stopped (SIGTERM) ~0.6 s into the step and a second started on the same
port right after; the stop and start run in a thread so the loop keeps sending.  One
test per engine, each a few seconds (two process start-ups dominate).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
from typing import Any

import numpy as np
import pytest

from loadgen.engine import EngineError, EngineOptions
from loadgen.engines import EngineUnavailable, engine_class
from loadgen.engines.fast_engine import run
from loadgen.modes import run_step
from loadgen.null_grpc import NullGrpcEndpoint, grpc_payload
from loadgen.nullserver import NullEndpoint
from loadgen.pacing import schedule
from loadgen.records import RequestRecord, StepKey
from loadgen.request import Request

RATE = 100.0  # req/s: bounded, loopback (httpx costs ~2 ms of CPU a request: 20 % of a core)
STOP_AT_S = 0.6  # into the step
#: Step length and settle time (after the new process listens, every request sent later
#: must succeed) per engine: the HTTP engines connect per request, so one round trip;
#: a gRPC channel reconnects on its backoff (grpc_engine.RECONNECT_BACKOFF_MS, at most
#: 1 s +-20 % jitter), and its null server takes ~1 s more to start.  The gRPC outage is
#: held 5 s: with gRPC's default backoff (1 s growing x1.6) the next reconnect would then
#: come ~3 s after the target is back, and this test fails (checked).
DURATION_S = {"grpc": 9.0}
SETTLE_S = {"grpc": 1.5}
HOLD_DOWN_S = {"grpc": 5.0}
FREEZE_S = 1.5  # a hung target, longer than the engines' timeout_s (1 s)
FREEZE_DURATION_S = 5.0
OUTAGE_ERRORS = {"refused", "reset", "timeout"}
REQUEST = Request("POST", "/predict", b'{"instances": [[0]]}', {"Content-Type": "application/json"})
GRPC_REQUEST = grpc_payload()[0]


def _free_port() -> int:
    """A free port below Linux's ephemeral range (32768-60999): the port stays unbound during
    the outage, and a loopback connect to an unbound *ephemeral* port can connect to itself
    (TCP simultaneous open), which then blocks the restarted server's bind."""
    rng = random.Random()
    for _ in range(100):
        port = rng.randrange(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000..31999 on 127.0.0.1")


def _decode(status: int, body: bytes) -> int:
    return int(json.loads(body)["predictions"][0])


def _any_answer(status: int, body: bytes) -> int:
    return 0  # the null gRPC server's fixed answer: only the error classes matter here


def _endpoint(name: str, port: int) -> NullEndpoint | NullGrpcEndpoint:
    return NullGrpcEndpoint(port=port) if name == "grpc" else NullEndpoint("python", port=port)


async def _restarting_step(name: str, how: str = "stop") -> tuple[list[RequestRecord], dict[str, Any]]:
    """One rate step of engine ``name`` while its endpoint is stopped and restarted; records and times.

    ``how``: ``"stop"`` -- SIGTERM, the process exits (its connections close, new ones are
    refused); ``"freeze"`` -- SIGSTOP for ``FREEZE_S`` (requests in flight and new ones
    time out: the kernel still accepts connections), then SIGKILL (what was open is reset).
    """
    factory = engine_class(name)
    port = _free_port()
    first, second = _endpoint(name, port), _endpoint(name, port)
    request, decode = (GRPC_REQUEST, _any_answer) if name == "grpc" else (REQUEST, _decode)
    times: dict[str, Any] = {}
    try:
        await asyncio.to_thread(first.start)
        engine = factory(EngineOptions(base_url=first.url, max_connections=16, timeout_s=1.0, connect_timeout_s=0.5))
        n = int(RATE * (FREEZE_DURATION_S if how == "freeze" else DURATION_S.get(name, 4.0)))
        offsets = schedule(n, RATE)
        requests = [request] * n
        async with engine:
            engine.prepare(requests[:1])
            t0 = engine.clock()

            async def restart() -> None:
                await asyncio.sleep(STOP_AT_S)
                times["stop"] = engine.clock() - t0
                if how == "freeze":
                    assert first._proc is not None
                    os.killpg(first._proc.pid, signal.SIGSTOP)
                    await asyncio.sleep(FREEZE_S)
                    os.killpg(first._proc.pid, signal.SIGKILL)
                await asyncio.to_thread(first.stop)
                times["down"] = engine.clock() - t0
                await asyncio.sleep(HOLD_DOWN_S.get(name, 0.0))
                await asyncio.to_thread(second.start)
                times["up"] = engine.clock() - t0

            restarter = asyncio.create_task(restart())
            result = await run_step(
                engine,
                StepKey("null", "rate", n, 16, RATE, 0),
                requests,
                [0] * n,
                decode,
                offsets=offsets,
                max_duration_s=n / RATE + 10.0,
            )
            await restarter
            times["step_start"] = result.started_at
        times["engine"] = engine
        return list(result.records), times
    finally:
        first.stop()
        second.stop()


def _installed(name: str) -> bool:
    try:
        engine_class(name)
    except EngineUnavailable:
        return False
    return True


ENGINES = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(not _installed(name), reason=f"engine {name} is not installed"),
    )
    for name in ("fast", "aiohttp", "httpx")
] + [
    pytest.param(
        "grpc",
        marks=[
            pytest.mark.slow,  # ~11 s: a 5 s outage, grpc's server start-up and the reconnect backoff
            pytest.mark.skipif(not _installed("grpc"), reason="grpcio is not installed"),
        ],
    )
]


def _check_recovery(name: str, records: list[RequestRecord], times: dict[str, Any], duration_s: float) -> None:
    """The step ran to its end, the outage is classified errors, and the engine recovered."""
    settle = SETTLE_S.get(name, 0.5)
    assert len(records) == int(RATE * duration_s)
    assert all(not np.isnan(r.sent_s) for r in records), "every request went out: the step ran to its end"
    errors = [r for r in records if r.error]
    kinds = {r.error for r in errors}
    assert kinds <= OUTAGE_ERRORS, (
        f"{name}: outage errors classified as {kinds}: "
        f"{[(r.error, r.error_detail) for r in errors if r.error not in OUTAGE_ERRORS][:3]}"
    )
    # the outage was seen: requests sent between the stop and the new process listening
    # (at 100 req/s for the ~0.3 s or more a Python process takes to start) failed
    # (``up`` is when the test saw the new process listening, some time after it began to: a
    # request sent in the last 0.2 s before may already be answered -- seen on a CI run)
    margin = min(0.2, (times["up"] - times["down"]) / 2)
    in_outage = [r for r in records if times["down"] <= r.sent_s < times["up"] - margin]
    assert in_outage and all(r.error for r in in_outage), f"{name}: {times}"
    # before the stop and after the restart settled, everything succeeded
    before = [r for r in records if r.sent_s + r.service_s < times["stop"]]
    after = [r for r in records if r.sent_s >= times["up"] + settle]
    assert before and not [r for r in before if r.error], f"{name}: errors before the stop"
    assert len(after) >= 10, f"{name}: the restart took too long to see the recovery (machine loaded?): {times}"
    late = [(round(r.sent_s, 3), r.error, r.error_detail) for r in after if r.error]
    assert not late, f"{name}: still failing {settle} s after the target came back (at {times['up']:.2f} s): {late[:3]}"
    # no retry storm: errors only from requests sent around the outage
    window = (times["stop"] - 1.0, times["up"] + settle)
    stray = [round(r.sent_s, 3) for r in errors if not window[0] <= r.sent_s < window[1]]
    assert not stray, f"{name}: errors outside the outage window {window}: {stray[:5]}"
    if name == "fast":  # the pool is re-made, not churned: the cap before and after, plus one
        # new connection per timed-out request (a timed-out connection is never reused)
        timeouts = sum(r.error == "timeout" for r in errors)
        assert times["engine"].connections_made <= 2 * 16 + timeouts


@pytest.mark.parametrize("name", ENGINES)
def test_engine_survives_a_target_restart(name: str) -> None:
    records, times = run(_restarting_step(name))
    _check_recovery(name, records, times, DURATION_S.get(name, 4.0))


@pytest.mark.slow  # ~6 s each: a 1.5 s hang before the kill
@pytest.mark.timing  # its outage window needs the client's CPU on time: run alone, after the two-worker pass
@pytest.mark.parametrize("name", ENGINES[:3])
def test_engine_survives_a_hung_then_killed_target(name: str) -> None:
    """The target hangs (requests time out), is killed (open connections reset) and restarts."""
    records, times = run(_restarting_step(name, "freeze"))
    _check_recovery(name, records, times, FREEZE_DURATION_S)
    assert any(r.error == "timeout" for r in records), f"{name}: the hang was not seen as timeouts"


async def _httpx_after_cancellation_churn(churn_s: float) -> tuple[int, int]:
    """httpx engine: 24 senders cancelled by a 12 ms bound against a 0-20 ms server, then 20 sends.

    Returns (successes after the churn, shards given a fresh client).  Before the engine
    replaced a shard's client after a cancelled request, httpcore 1.0.9 kept every slot of
    the pool as an "active" connection with no request (encode/httpcore#1093) and all 20
    later sends timed out against a server answering at once.
    """
    from loadgen.engines.httpx_engine import HttpxEngine

    slow = [True]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                if slow[0]:
                    await asyncio.sleep(random.random() * 0.02)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    engine = HttpxEngine(EngineOptions(base_url=url, max_connections=8, timeout_s=0.012, connect_timeout_s=5.0))
    try:
        async with engine:
            end = asyncio.get_running_loop().time() + churn_s

            async def churn() -> None:
                while asyncio.get_running_loop().time() < end:
                    try:
                        await engine.send(REQUEST)
                    except EngineError:
                        pass

            await asyncio.gather(*(churn() for _ in range(24)))
            slow[0] = False
            engine.options = EngineOptions(base_url=url, max_connections=8, timeout_s=2.0, connect_timeout_s=5.0)
            ok = 0
            for _ in range(20):
                try:
                    ok += (await engine.send(REQUEST)).status == 200
                except EngineError:
                    pass
            return ok, engine.replaced
    finally:
        server.close()


@pytest.mark.skipif(not _installed("httpx"), reason="httpx is not installed")
def test_httpx_engine_recovers_from_cancelled_requests() -> None:
    """Requests cut by the whole-request bound must not leave the engine on a dead pool."""
    ok, replaced = run(_httpx_after_cancellation_churn(1.5))
    assert replaced >= 1  # the churn did cancel requests (else this test shows nothing)
    # the shard clients keep their 12 ms httpx timeouts, which a loaded machine can still
    # exceed now and then; a dead pool fails all 20 (it did: 0 of 20 before the fix)
    assert ok >= 15, f"only {ok} of 20 requests succeeded after the churn against a server answering at once"


def test_httpx_engine_calls_a_transport_gone_under_the_request_a_reset(monkeypatch) -> None:
    """anyio/httpcore asking a just-reset socket for its address ("'NoneType' object has no
    attribute 'getpeername'", seen once in a CI run's hang-then-kill test) is a reset, not 'other';
    any other AttributeError is still a bug and propagates."""
    httpx = pytest.importorskip("httpx")
    from loadgen.engines.httpx_engine import HttpxEngine

    async def main(message: str) -> BaseException:
        engine = HttpxEngine(EngineOptions(base_url="http://127.0.0.1:9", max_connections=1, timeout_s=1.0))
        await engine.open()
        try:

            async def gone(self, request, **kwargs):
                raise AttributeError(message)

            monkeypatch.setattr(httpx.AsyncClient, "send", gone)
            try:
                await engine.send(Request("GET", "/", b"", {}))
            except BaseException as exc:
                return exc
            raise AssertionError("send did not fail")
        finally:
            monkeypatch.undo()
            await engine.close()

    reset = asyncio.run(main("'NoneType' object has no attribute 'getpeername'"))
    assert isinstance(reset, EngineError) and reset.error == "reset" and "getpeername" in reset.detail
    bug = asyncio.run(main("'Foo' object has no attribute 'bar'"))
    assert isinstance(bug, AttributeError)
