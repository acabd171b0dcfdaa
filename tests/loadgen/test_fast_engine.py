"""The ``fast`` engine against real loopback servers that behave and misbehave on purpose."""

from __future__ import annotations

import asyncio
import datetime
import gc
import ipaddress
import json
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from loadgen.engine import EngineError, EngineOptions, Response
from loadgen.engines.fast_engine import FastEngine, build_request_bytes, loop_name, new_event_loop, run
from targets.base import Request
from tests.support.stub_http import ParsedRequest, StubServer, digit_of

BODY = json.dumps({"instances": [[0.5] * 784]}).encode()
POST = Request("POST", "/predict", BODY, {"Content-Type": "application/json"})


def _run(coro: Awaitable[object], loop: str = "default") -> object:
    if loop == "asyncio":
        with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
            return runner.run(coro)
    return run(coro)


async def _with_engine(url: str, body: Callable[[FastEngine], Awaitable[object]], **options: object) -> object:
    options = EngineOptions(base_url=url, **{"max_connections": 4, "timeout_s": 5.0, **options})
    async with FastEngine(options) as engine:
        return await body(engine)


def _send_one(url: str, request: Request = POST, loop: str = "default", **options: object) -> Response:
    async def body(engine: FastEngine) -> Response:
        return await engine.send(request)

    return _run(_with_engine(url, body, **options), loop)


def _error_of(url: str, request: Request = POST, **options: object) -> EngineError:
    with pytest.raises(EngineError) as info:
        _send_one(url, request, **options)
    return info.value


@pytest.mark.parametrize("loop", ["default", "asyncio"])
def test_content_length_response_on_both_loops(loop: str) -> None:
    with StubServer("ok") as server:
        response = _send_one(server.url, loop=loop)
    assert response.status == 200
    assert json.loads(response.body)["predictions"] == [digit_of(BODY)]
    assert response.bytes_in > len(response.body)  # headers counted too
    assert server.requests[0].body == BODY
    assert server.requests[0].headers["content-length"] == str(len(BODY))


def test_default_loop_is_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")
    loop = new_event_loop()
    try:
        assert loop_name(loop).startswith("uvloop")
    finally:
        loop.close()
    assert "httptools" in FastEngine.version()


def test_chunked_response_is_reassembled() -> None:
    with StubServer("chunked") as server:
        response = _send_one(server.url)
    assert response.status == 200
    assert json.loads(response.body)["predictions"] == [digit_of(BODY)]


def test_body_delimited_by_close() -> None:
    with StubServer("no_length") as server:
        response = _send_one(server.url)
    assert json.loads(response.body)["predictions"] == [digit_of(BODY)]


def test_http_error_status_is_a_response_not_an_exception() -> None:
    with StubServer("error_500") as server:
        response = _send_one(server.url)
    assert response.status == 500
    assert b"boom" in response.body


def test_keep_alive_reuses_one_connection_sequentially() -> None:
    async def body(engine: FastEngine) -> list[Response]:
        return [await engine.send(POST) for _ in range(25)]

    with StubServer("ok") as server:
        responses = _run(_with_engine(server.url, body))
    assert [r.status for r in responses] == [200] * 25
    assert server.connections == 1
    assert len(server.requests) == 25


def test_pool_never_exceeds_max_connections() -> None:
    async def body(engine: FastEngine) -> list[Response]:
        return await asyncio.gather(*(engine.send(POST) for _ in range(40)))

    with StubServer("ok") as server:
        responses = _run(_with_engine(server.url, body, max_connections=3))
    assert all(r.status == 200 for r in responses)
    assert 1 <= server.connections <= 3
    assert len(server.requests) == 40


def test_connection_close_header_means_new_connection_each_time() -> None:
    async def body(engine: FastEngine) -> tuple[list[Response], int]:
        responses = [await engine.send(POST) for _ in range(5)]
        return responses, engine.connections_made

    with StubServer("close_header") as server:
        responses, made = _run(_with_engine(server.url, body))
    assert all(r.status == 200 for r in responses)
    assert server.connections == 5 and made == 5


def test_reconnects_after_server_closed_an_idle_kept_alive_connection() -> None:
    async def body(engine: FastEngine) -> list[Response]:
        out = []
        for _ in range(4):
            out.append(await engine.send(POST))
            await asyncio.sleep(0.2)  # the server's close arrives while the connection is idle
        return out

    with StubServer("close_after_each") as server:
        responses = _run(_with_engine(server.url, body))
    assert [r.status for r in responses] == [200] * 4
    assert server.connections == 4  # one fresh connection per request, no error


def test_close_that_arrived_while_the_loop_was_busy_is_read_before_reuse() -> None:
    """The keep-alive race: the server's FIN sits unread while the loop was blocked."""

    def answer_then_close(server: StubServer, sock: socket.socket) -> None:
        from tests.support.stub_http import _read_request, _response

        request = _read_request(sock, bytearray())
        if request is not None:
            server.record(request)
            sock.sendall(_response(b'{"predictions": [3]}'))
            time.sleep(0.1)  # idle keep-alive timeout, server side

    async def body(engine: FastEngine) -> list[Response]:
        first = await engine.send(POST)
        time.sleep(0.8)  # blocks the event loop: the FIN arrives but is not read yet
        return [first, await engine.send(POST)]

    with StubServer(answer_then_close) as server:
        responses = _run(_with_engine(server.url, body, max_connections=1))
    assert [r.status for r in responses] == [200, 200]
    assert server.connections == 2


def _stale_behaviour(server: StubServer, sock: socket.socket) -> None:
    """First connection: answers one request, then takes the next and closes silently."""
    from tests.support.stub_http import BEHAVIOURS, _read_request, _response

    if server.connections > 1:
        BEHAVIOURS["ok"](server, sock)
        return
    buffer = bytearray()
    first = _read_request(sock, buffer)
    assert first is not None
    server.record(first)
    sock.sendall(_response(b'{"predictions": [1]}'))
    second = _read_request(sock, buffer)
    if second is not None:
        server.record(second)  # ...and close without a byte: the keep-alive race


@pytest.mark.parametrize(("method", "retried"), [("GET", True), ("PUT", True), ("POST", False)])
def test_stale_reused_connection_retries_only_idempotent_methods(method: str, retried: bool) -> None:
    request = Request(method, "/predict", BODY if method != "GET" else b"")

    async def body(engine: FastEngine) -> tuple[Response, Response | EngineError]:
        first = await engine.send(request)
        try:
            second: Response | EngineError = await engine.send(request)
        except EngineError as exc:
            second = exc
        return first, second

    with StubServer(_stale_behaviour) as server:
        first, second = _run(_with_engine(server.url, body, max_connections=1))
    assert first.status == 200
    if retried:
        assert isinstance(second, Response) and second.status == 200
        assert server.connections == 2 and len(server.requests) == 3
    else:
        assert isinstance(second, EngineError) and second.error == "reset"
        assert "before any response byte" in second.detail
        assert server.connections == 1 and len(server.requests) == 2


def test_server_closing_mid_response_is_reset() -> None:
    with StubServer("close_mid") as server:
        error = _error_of(server.url)
    assert error.error == "reset"
    assert "after" in error.detail and "response bytes" in error.detail


def test_server_never_answering_is_timeout_within_the_limit() -> None:
    with StubServer("silent") as server:
        started = time.monotonic()
        error = _error_of(server.url, timeout_s=0.3)
        elapsed = time.monotonic() - started
    assert error.error == "timeout"
    assert 0.25 <= elapsed < 3.0


def test_timed_out_connection_is_not_reused() -> None:
    answered = []

    def slow_then_fast(server: StubServer, sock: socket.socket) -> None:
        from tests.support.stub_http import _read_request, _response

        buffer = bytearray()
        while True:
            request = _read_request(sock, buffer)
            if request is None:
                return
            server.record(request)
            if len(server.requests) == 1:
                time.sleep(0.5)  # answer the first request too late
            answered.append(len(server.requests))
            sock.sendall(_response(b'{"predictions": [%d]}' % len(server.requests)))

    async def body(engine: FastEngine) -> tuple[EngineError | None, Response]:
        try:
            await engine.send(POST)
            late = None
        except EngineError as exc:
            late = exc
        await asyncio.sleep(0.6)
        return late, await engine.send(POST)

    with StubServer(slow_then_fast) as server:
        late, second = _run(_with_engine(server.url, body, timeout_s=0.2, max_connections=1))
    assert late is not None and late.error == "timeout"
    assert json.loads(second.body)["predictions"] == [2]  # its own answer, not the late first one
    assert server.connections == 2


def test_garbage_is_protocol_error() -> None:
    with StubServer("garbage") as server:
        error = _error_of(server.url)
    assert error.error == "protocol"
    assert "malformed" in error.detail


def test_refused_port_is_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = _error_of(f"http://127.0.0.1:{port}")
    assert error.error == "refused"
    assert str(port) in error.detail


def test_host_header_default_and_override() -> None:
    with StubServer("ok") as server:
        _send_one(server.url)
        routed = Request("POST", "/v1/models/mnist:predict", BODY, {"Host": "mnist.kubeflow.example.com"})
        response = _send_one(server.url, routed)
    assert server.requests[0].headers["host"] == f"127.0.0.1:{server.port}"
    assert server.requests[1].headers["host"] == "mnist.kubeflow.example.com"
    assert server.requests[1].path == "/v1/models/mnist:predict"
    assert json.loads(response.body)["host"] == "mnist.kubeflow.example.com"


def test_request_bytes_are_built_once_per_blueprint() -> None:
    async def body(engine: FastEngine) -> tuple[bytes, bytes, bytes]:
        first = engine._cached(POST)[1]
        again = engine._cached(POST)[1]
        other = engine._cached(Request("POST", "/predict", BODY, {"Content-Type": "application/json"}))[1]
        return first, again, other

    first, again, other = _run(_with_engine("http://127.0.0.1:9", body))
    assert first is again  # cached by identity of the frozen Request
    assert other == first and other is not first


def test_request_bytes_leave_the_cache_with_their_blueprint() -> None:
    """A long run that makes new blueprints must not grow the cache: entries die with them."""
    engine = FastEngine(EngineOptions(base_url="http://127.0.0.1:9", max_connections=1))
    requests = [Request("POST", f"/predict/{i}", BODY, {}) for i in range(3)]
    engine.prepare(requests)
    keys = {id(r) for r in requests}
    assert keys <= set(engine._wires)
    del requests
    gc.collect()
    assert not keys & set(engine._wires)


def test_fast_response_objects_equal_ordinary_ones() -> None:
    """The engine's cheaper Response construction must give exactly a Response."""
    from loadgen.engines.fast_http import _make_response, _plain_fields

    assert _plain_fields(Response)  # else the engine silently uses the ordinary constructor
    made, plain = _make_response(200, b"{}", 42), Response(200, b"{}", 42)
    assert type(made) is Response and made == plain and hash(made) == hash(plain) and repr(made) == repr(plain)
    with pytest.raises(AttributeError):
        made.status = 500  # still frozen


def test_build_request_bytes_layout_and_validation() -> None:
    wire = build_request_bytes(POST, "http://localhost:8080/prefix/")
    head, _, body = wire.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /prefix/predict HTTP/1.1"
    assert "Host: localhost:8080" in lines
    assert f"Content-Length: {len(BODY)}" in lines
    assert body == BODY
    assert b"Host: example.org\r\n" in build_request_bytes(POST, "https://example.org:443")
    with pytest.raises(ValueError, match="line break"):
        build_request_bytes(Request("POST", "/p", b"", {"X-Evil": "a\r\nInjected: 1"}), "http://h")
    with pytest.raises(ValueError, match="base_url"):
        build_request_bytes(POST, "ftp://h")


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    crypto = pytest.importorskip("cryptography", reason="the cryptography package is needed to make a test cert")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_against_a_self_signed_server(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with StubServer("ok", tls=context) as server:
        assert server.url.startswith("https://")
        response = _send_one(server.url, verify_tls=False)
        assert json.loads(response.body)["predictions"] == [digit_of(BODY)]
        error = _error_of(server.url, verify_tls=True)  # not signed by a trusted CA
    assert error.error == "other"
    assert "TLS" in error.detail and "certificate" in error.detail.lower()


def test_cancelled_send_drops_its_connection_and_the_engine_recovers() -> None:
    def slow(server: StubServer, sock: socket.socket) -> None:
        from tests.support.stub_http import BEHAVIOURS

        if server.connections == 1:
            server.stopping.wait(2)  # first connection: never answers
            return
        BEHAVIOURS["ok"](server, sock)

    async def body(engine: FastEngine) -> Response:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await engine.send(POST)
        return await engine.send(POST)

    with StubServer(slow) as server:
        response = _run(_with_engine(server.url, body, max_connections=1))
    assert response.status == 200
    assert server.connections == 2


def test_send_before_open_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="before open"):
        _run(FastEngine(EngineOptions(base_url="http://127.0.0.1:1", max_connections=1)).send(POST))
    with pytest.raises(ValueError, match="max_connections"):
        FastEngine(EngineOptions(base_url="http://127.0.0.1:1", max_connections=0))
    with pytest.raises(ValueError, match="base_url must be http"):  # checked when the engine is made
        FastEngine(EngineOptions(base_url="ftp://127.0.0.1:1", max_connections=1))


def test_stub_server_records_requests() -> None:
    # guards the helper the other tests rely on
    with StubServer("ok") as server:
        _send_one(server.url)
    assert isinstance(server.requests[0], ParsedRequest)
    assert server.requests[0].method == "POST"
