"""The grpc engine: its status map, URL rules, and real calls -- in-process servers for the error
paths, the null gRPC server process for a whole closed-loop and open-loop step."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from grpc import aio

from loadgen.classify import classify_response
from loadgen.engine import EngineError, EngineOptions
from loadgen.engines import engine_class, engine_for_url
from loadgen.engines.grpc_engine import STREAMS_PER_CHANNEL, GrpcEngine, grpc_target, map_status
from loadgen.inference.grpc_messages import MODEL_INFER_METHOD, decode_infer_response
from loadgen.modes import run_step
from loadgen.records import StepKey
from loadgen.request import Request

CODES = grpc.StatusCode


@pytest.mark.parametrize(
    ("code", "details", "expected"),
    [
        (CODES.OK, "", (200, "")),
        (CODES.INVALID_ARGUMENT, "bad input", (400, "")),
        (CODES.NOT_FOUND, "no model", (404, "")),
        (CODES.UNAUTHENTICATED, "", (401, "")),
        (CODES.PERMISSION_DENIED, "", (403, "")),
        (CODES.RESOURCE_EXHAUSTED, "too large", (429, "")),
        (CODES.INTERNAL, "boom", (500, "")),
        (CODES.UNIMPLEMENTED, "", (501, "")),
        (CODES.DEADLINE_EXCEEDED, "Deadline Exceeded", (0, "timeout")),
        (CODES.UNAVAILABLE, "failed to connect to all addresses; Connection refused", (0, "refused")),
        (CODES.UNAVAILABLE, "Ssl handshake failed: CERTIFICATE_VERIFY_FAILED", (0, "other")),
        (CODES.UNAVAILABLE, "Socket closed", (0, "reset")),
        (CODES.CANCELLED, "Received RST_STREAM", (0, "reset")),
    ],
)
def test_status_map(code: grpc.StatusCode, details: str, expected: tuple[int, str]) -> None:
    assert map_status(code, details) == expected


def test_every_status_code_is_mapped() -> None:
    for code in CODES:
        status, error = map_status(code, "")
        assert (status >= 200) != bool(error), code  # an answer with a status, or a failure with a class


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("grpc://127.0.0.1:8081", ("127.0.0.1:8081", False)),
        ("grpcs://example.com", ("example.com:443", True)),
        ("grpc://[::1]:9000/", ("[::1]:9000", False)),
    ],
)
def test_grpc_target(url: str, expected: tuple[str, bool]) -> None:
    assert grpc_target(url) == expected


@pytest.mark.parametrize("url", ["http://127.0.0.1:80", "grpc://host:1/v2", "grpc://u:p@host:1", "grpc://"])
def test_bad_base_urls_are_refused_at_construction(url: str) -> None:
    with pytest.raises(ValueError, match="grpc"):
        GrpcEngine(EngineOptions(url, 1))


def test_tls_without_verification_is_refused() -> None:
    with pytest.raises(ValueError, match="verify_tls"):
        GrpcEngine(EngineOptions("grpcs://example.com:443", 1, verify_tls=False))


@pytest.mark.parametrize(
    ("cap", "channels"), [(1, 1), (STREAMS_PER_CHANNEL, 1), (STREAMS_PER_CHANNEL + 1, 2), (512, 32)]
)
def test_channel_pool_size(cap: int, channels: int) -> None:
    assert GrpcEngine(EngineOptions("grpc://127.0.0.1:1", cap)).channel_count == channels


def test_grpc_urls_pick_the_grpc_engine() -> None:
    http = engine_class("aiohttp")
    factory = engine_for_url(http)
    assert isinstance(factory(EngineOptions("grpc://127.0.0.1:1", 1)), GrpcEngine)
    assert type(factory(EngineOptions("http://127.0.0.1:1", 1))) is http


def test_non_post_blueprints_are_refused_by_prepare() -> None:
    with pytest.raises(ValueError, match="POST"):
        GrpcEngine(EngineOptions("grpc://127.0.0.1:1", 1)).prepare([Request("GET", MODEL_INFER_METHOD, b"")])


# -- an in-process server for the error paths -------------------------------------------------
async def _with_server(handler: Any, body: Any) -> Any:
    """Start a grpc.aio server on loopback answering every method with ``handler``; run ``body(url)``."""

    class AnyMethod(grpc.GenericRpcHandler):
        def service(self, _details: Any) -> Any:
            return grpc.unary_unary_rpc_method_handler(handler)

    server = aio.server(handlers=[AnyMethod()])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        return await body(f"grpc://127.0.0.1:{port}")
    finally:
        await server.stop(grace=None)


def test_server_status_becomes_an_http_like_response() -> None:
    seen: list[tuple[tuple[str, str], ...]] = []

    async def reject(_request: bytes, context: Any) -> bytes:
        seen.append(
            tuple((m.key, m.value) for m in context.invocation_metadata() if not m.key.startswith(("grpc-", ":")))
        )
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "unknown input 'x'")
        return b""

    async def body(url: str) -> Any:
        async with GrpcEngine(EngineOptions(url, 2)) as engine:
            headers = {"Content-Type": "application/json", "Authorization": "Bearer t0ken"}
            return await engine.send(Request("POST", MODEL_INFER_METHOD, b"\x0a\x01m", headers))

    response = asyncio.run(_with_server(reject, body))
    assert response.status == 400 and response.body == b"grpc INVALID_ARGUMENT: unknown input 'x'"
    outcome = classify_response(response.status, response.body, lambda s, b: 0)
    assert outcome.error == "http_4xx" and "INVALID_ARGUMENT" in outcome.detail
    assert ("authorization", "Bearer t0ken") in seen[0] and all(k != "content-type" for k, _ in seen[0])


def test_slow_answer_is_a_timeout() -> None:
    async def slow(_request: bytes, _context: Any) -> bytes:
        await asyncio.sleep(2.0)
        return b""

    async def body(url: str) -> Any:
        async with GrpcEngine(EngineOptions(url, 1, timeout_s=0.2)) as engine:
            return await engine.send(Request("POST", MODEL_INFER_METHOD, b""))

    with pytest.raises(EngineError) as caught:
        asyncio.run(_with_server(slow, body))
    assert caught.value.error == "timeout"


def test_nothing_listening_is_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused

        async def send() -> Any:
            async with GrpcEngine(EngineOptions(f"grpc://127.0.0.1:{port}", 1, timeout_s=5.0)) as engine:
                return await engine.send(Request("POST", MODEL_INFER_METHOD, b""))

        with pytest.raises(EngineError) as caught:
            asyncio.run(send())
    assert caught.value.error == "refused"


# -- the null gRPC server: whole steps -------------------------------------------------------
@pytest.fixture(scope="module")
def null_grpc() -> Iterator[str]:
    from loadgen.null_grpc import NullGrpcEndpoint

    with NullGrpcEndpoint() as endpoint:
        yield endpoint.url


def _digit(status: int, body: bytes) -> int:
    return int(decode_infer_response(body)["logits"].argmax())


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["concurrent", "rate"])
def test_steps_against_the_null_grpc_server(null_grpc: str, mode: str) -> None:
    from loadgen.null_grpc import grpc_payload

    request, _ = grpc_payload()
    n = 40
    key = StepKey("null", mode, n, 8, 200.0 if mode == "rate" else 0.0, 1)
    offsets = np.arange(n) / 200.0 if mode == "rate" else None

    async def step() -> Any:
        async with GrpcEngine(EngineOptions(null_grpc, 8, timeout_s=10.0)) as engine:
            engine.prepare([request])
            return await run_step(engine, key, [request] * n, [0] * n, _digit, offsets=offsets, max_duration_s=30.0)

    result = asyncio.run(step())
    assert len(result.records) == n
    assert all(r.ok and r.predicted == 0 and r.status == 200 for r in result.records), result.records[0]
    assert all(r.bytes_out == len(request.body) and r.bytes_in > 0 for r in result.records)


def test_tls_server_with_an_untrusted_certificate_is_refused(tmp_path) -> None:
    """grpcs:// checks the certificate like HTTPS: a self-signed server fails the handshake (class ``other``)."""
    from tests.loadgen.test_fast_engine import _self_signed

    cert, key = _self_signed(tmp_path)

    async def body() -> Any:
        class AnyMethod(grpc.GenericRpcHandler):
            def service(self, _details: Any) -> Any:
                return grpc.unary_unary_rpc_method_handler(lambda _r, _c: b"")

        server = aio.server(handlers=[AnyMethod()])
        port = server.add_secure_port(
            "127.0.0.1:0", grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
        )
        await server.start()
        try:
            async with GrpcEngine(EngineOptions(f"grpcs://127.0.0.1:{port}", 1, timeout_s=5.0)) as engine:
                return await engine.send(Request("POST", MODEL_INFER_METHOD, b""))
        finally:
            await server.stop(grace=None)

    with pytest.raises(EngineError) as caught:
        asyncio.run(body())
    assert caught.value.error == "other", caught.value.detail
