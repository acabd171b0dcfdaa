"""The HTTP/1.1 pieces of the ``fast`` engine: request bytes and one client connection.

Why a module of its own: these are the parts that touch the wire -- how a
:class:`~targets.base.Request` becomes bytes (once, then re-sent), and how a response is
cut out of the byte stream by ``httptools`` (llhttp) and handed over complete, or turned
into a classified :class:`~loadgen.engine.EngineError`. The pool, retries and timeouts
live in :mod:`loadgen.engines.fast_engine`.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from urllib.parse import urlsplit

import httptools

from loadgen.engine import EngineError, Response
from loadgen.request import Request

__all__ = ["HttpConnection", "build_request_bytes", "default_port"]

_USER_AGENT = f"servebench-fast (httptools/{httptools.__version__})"


# -- request bytes -------------------------------------------------------------------------
def default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _check_header(text: str, what: str) -> str:
    if "\r" in text or "\n" in text:
        raise ValueError(f"{what} contains a line break: {text!r}")
    return text


@functools.lru_cache(maxsize=64)
def _base_parts(base_url: str) -> tuple[str, str]:
    """(path prefix, default Host value) of a base URL; cached: urlsplit is ~10 us."""
    url = urlsplit(base_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValueError(f"base_url must be http(s)://host[:port][/prefix], got {base_url!r}")
    host = url.hostname if ":" not in url.hostname else f"[{url.hostname}]"
    if url.port is not None and url.port != default_port(url.scheme):
        host = f"{host}:{url.port}"
    return url.path.rstrip("/"), host


def build_request_bytes(request: Request, base_url: str, *, user_agent: str = _USER_AGENT) -> bytes:
    """Request line + headers + body, exactly as sent.

    The path is appended to ``base_url``'s own path (``http://h/prefix`` + ``/v1/x`` ->
    ``/prefix/v1/x``). ``Host`` comes from ``request.headers`` when given (Istio
    routing), else from ``base_url``; ``Content-Length`` is always computed here.
    """
    prefix, default_host = _base_parts(base_url)
    path = request.path if request.path.startswith("/") else "/" + request.path
    target = prefix + path
    method = _check_header(request.method.upper(), "method")
    if " " in method or not method:
        raise ValueError(f"bad HTTP method {request.method!r}")
    if method == "HEAD":
        raise ValueError("the fast engine does not support HEAD requests")
    headers: dict[str, str] = {}
    host = None
    for name, value in request.headers.items():
        lowered = name.lower()
        if lowered == "host":
            host = value
        elif lowered in ("content-length", "transfer-encoding"):
            continue  # framing is ours: the body is sent whole with its length
        else:
            headers[_check_header(name, "header name")] = _check_header(str(value), f"header {name}")
    if host is None:
        host = default_host
    lines = [f"{method} {_check_header(target, 'path')} HTTP/1.1", f"Host: {_check_header(host, 'Host')}"]
    if not any(name.lower() == "user-agent" for name in headers):
        lines.append(f"User-Agent: {user_agent}")
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    if request.body or method not in ("GET", "DELETE", "OPTIONS", "TRACE"):
        lines.append(f"Content-Length: {len(request.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body


# -- responses -----------------------------------------------------------------------------
def _plain_fields(cls: type) -> bool:
    """Whether ``cls`` instances keep (status, body, bytes_in) in a plain ``__dict__``."""
    fields = getattr(cls, "__dataclass_fields__", None)
    return fields is not None and tuple(fields) == ("status", "body", "bytes_in") and "__slots__" not in vars(cls)


def _make_response(status: int, body: bytes, bytes_in: int) -> Response:
    """``Response(status, body, bytes_in)`` at half the cost (~0.4 us saved per request).

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``;
    filling the new instance's ``__dict__`` gives an equal object (same fields, ``==``,
    hash and repr; tests/loadgen/test_fast_engine.py checks) without the three calls.
    """
    response = _new(Response)
    response.__dict__.update(status=status, body=body, bytes_in=bytes_in)
    return response


_new = object.__new__
if not _plain_fields(Response):  # Response changed shape: build it the ordinary way
    _make_response = Response


# -- one connection ------------------------------------------------------------------------
class HttpConnection(asyncio.Protocol):
    """One kept-alive connection; at most one request in flight on it.

    ``__slots__``: its attributes are read and written several times per request, and
    slot access is cheaper than a per-instance dict (measured in benchmarks/results/
    bench_engines.md).
    """

    __slots__ = (
        "parser",
        "transport",
        "waiter",
        "chunks",
        "bytes_in",
        "closed",
        "exchanges",
        "keep_alive",
        "headers_done",
        "head",
        "deadline",
        "idle_since",
    )

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Response] | None = None
        self.chunks: list[bytes] = []
        self.bytes_in = 0
        self.closed = False
        self.exchanges = 0  # completed request/response pairs: > 0 means "reused"
        self.keep_alive = True
        self.headers_done = False
        self.head: list[bytes] = []  # raw bytes of the response until its headers are complete
        self.deadline = 0.0  # loop time by which the exchange in flight must be complete
        self.idle_since = 0.0  # loop time when it last went back to the pool

    # asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for: this connection is unusable
            self._drop()
            return
        self.bytes_in += len(data)
        if not self.headers_done:
            self.head.append(data)  # kept only for the rare body-until-close check
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail("protocol", "server switched protocols (upgrade), not supported")
        except httptools.HttpParserError as exc:
            self._fail("protocol", f"malformed HTTP response: {exc}")

    def eof_received(self) -> bool:
        self.closed = True  # never hand this connection out again
        return False  # close the transport; connection_lost finishes the story

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.headers_done and exc is None and not _is_framed(b"".join(self.head)):
            self._complete(self.parser.get_status_code())  # body delimited by the close (RFC 9112 §6.3 rule 8)
            return
        if isinstance(exc, ssl.SSLError):
            self._fail("other", f"TLS error: {exc}")
            return
        got = f"after {self.bytes_in} response bytes" if self.bytes_in else "before any response byte"
        reason = f" ({type(exc).__name__}: {exc})" if exc else ""
        self._fail("reset", f"connection closed by the server {got}{reason}")

    # httptools callbacks (no on_header: 5 Python calls per response saved) -----------
    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        if 100 <= status < 200:  # interim response (100 Continue, 103): the real one follows
            self.chunks.clear()
            self.headers_done = False
            return
        self.keep_alive = parser.should_keep_alive()
        self._complete(status)

    # the engine's side ---------------------------------------------------------------
    def start(self, waiter: asyncio.Future[Response], wire: bytes) -> None:
        self.waiter = waiter
        self.chunks.clear()  # the last body was taken out (or joined) by _complete
        self.bytes_in = 0
        self.headers_done = False
        self.head.clear()
        self.transport.write(wire)

    def on_timeout(self, timeout_s: float) -> None:
        self._fail("timeout", f"no complete response within {timeout_s:g} s ({self.bytes_in} bytes received)")

    def _complete(self, status: int) -> None:
        waiter, self.waiter = self.waiter, None
        self.exchanges += 1
        if waiter is not None and not waiter.done():
            chunks = self.chunks
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            waiter.set_result(_make_response(status, body, self.bytes_in))
        if not self.keep_alive:
            self._drop()

    def _fail(self, error: str, detail: str) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(EngineError(error, detail))
        self._drop()

    def _drop(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _is_framed(raw: bytes) -> bool:
    """Whether the (last) response head in ``raw`` sets Content-Length or chunked coding.

    Only called when a connection closes after a response's headers: without either, the
    close ends the body (a complete response); with one, the close cut the body short.
    """
    start = raw.rfind(b"HTTP/1.")
    head = raw[max(start, 0) :].split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
            return True
    return False
