"""The ``fast`` engine: HTTP/1.1 keep-alive on asyncio Protocols, httptools, uvloop.

Why it exists: the client must not be what is measured (DESIGN.md §4, issue 6). httpx
costs ~2 ms of CPU per request and aiohttp ~0.2 ms; a small Protocol that writes
pre-built request bytes and lets ``httptools`` (llhttp, the parser under uvicorn) cut
the responses costs ~0.02 ms, within 1.2-1.5x of wrk. It does only what a benchmark
client needs: one kept-alive connection per in-flight request, full response bodies
(the adapter's ``decode`` still checks every prediction), explicit timeouts, and every
failure classified like the other engines (see :data:`loadgen.records.ErrorClass`):

* ``refused``  -- nothing listens (TCP RST on connect);
* ``reset``    -- the peer closed or reset the connection before a complete response;
* ``timeout``  -- connect or complete response not within the limit (the connection is
  then dropped, never reused: a late answer would be read as the next request's);
* ``protocol`` -- the bytes are not HTTP/1.x (llhttp rejects them);
* ``other``    -- TLS failures and any other OS error (unreachable host, DNS failure),
  the detail says which (the same classes as the httpx/aiohttp engines, through
  :mod:`loadgen.classify`).

Reconnects and retries: an idle connection the server closed (keep-alive timeout,
``keepalive_requests`` reached, ``Connection: close``) is noticed by the event loop and
dropped before reuse, so the request simply goes out on a new connection (a connection
idle for more than 0.5 s gets one loop turn first, so a close already on the wire is
read before a request is written). A request is
re-sent at most once, and only when it went out on a *reused* connection that died
before any response byte arrived *and* its method is idempotent (RFC 9110 §9.2.2, as
browsers and aiohttp do). A POST that met that race is reported as ``reset``, never
silently retried: the server may have run the prediction, and a hidden retry would
hide a real server-side close from the figures.

Where its CPU goes (issue 25; ``benchmarks/engine_overhead.py``, results in
``benchmarks/results/engine_overhead.md``): per request one ``send`` and one ``recv``
syscall (as wrk; no extra epoll calls), then Python: about 2 us is asyncio's floor (a
future, a task wake-up, the caller's clock reads), about 2.5 us this engine's
bookkeeping and about 1.4 us httptools (feeding llhttp and its three callbacks). A
hand-written Content-Length parser was measured at ~0.6 us against llhttp's ~1.0 us,
before validating headers as llhttp does; not worth a second parser whose errors would
have to be classified like llhttp's.

The event loop belongs to whoever runs it. Use :func:`run` (or :func:`new_event_loop`)
to get uvloop where it is installed and the default asyncio loop otherwise; ``bench run``
should call ``fast_engine.run(main())`` instead of ``asyncio.run(main())``. The engine
itself works on any asyncio loop.

Not supported (not needed by any target): HTTP/2, proxies, ``HEAD`` (llhttp would
wait for a body), request pipelining, 101 upgrades.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import weakref
from collections import deque
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httptools

from loadgen.classify import classify_os_error, describe_exception
from loadgen.engine import Engine, EngineError, EngineOptions, Response
from loadgen.engines.fast_http import HttpConnection, build_request_bytes, default_port
from loadgen.request import Request

__all__ = ["FastEngine", "build_request_bytes", "loop_name", "new_event_loop", "run"]

T = TypeVar("T")

_IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "OPTIONS", "TRACE"})
# A connection idle this long may have been closed by the server's keep-alive timeout
# (gunicorn 2 s, uvicorn 5 s, nginx 75 s) with the FIN not yet read: give the loop one
# turn to read it before writing a POST that could otherwise meet the close.
_RECHECK_IDLE_S = 0.5


# -- the event loop ------------------------------------------------------------------------
def new_event_loop() -> asyncio.AbstractEventLoop:
    """A uvloop loop when uvloop is importable, else the default asyncio loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """``"uvloop 0.x"`` or ``"asyncio"``: the loop in use (or the one :func:`run` would use)."""
    if loop is None:
        try:
            import uvloop
        except ImportError:
            return "asyncio"
        return f"uvloop {uvloop.__version__}"
    module = type(loop).__module__
    if module.startswith("uvloop"):
        import uvloop

        return f"uvloop {uvloop.__version__}"
    return "asyncio"


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on :func:`new_event_loop`: how servebench commands run their loop."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)


# -- the engine ----------------------------------------------------------------------------
# Request bytes, built once per (Request object, base_url) and shared by every engine
# instance: the sweep opens a fresh engine per step but re-sends the same blueprints, so
# building lazily per engine would put the build (~10 us) inside the first timed send.
# One dict per base URL, keyed by id(request) (one lookup per send; the entry's weak
# reference is checked by identity, so a reused id misses). Entries leave with their
# Request (the weak reference's callback), so the cache never outlives a sweep and a long
# run that makes new blueprints does not grow it.
_Wire = tuple["weakref.ref[Request]", bytes, bool]  # (the request, its bytes, idempotent)
_WIRE_CACHE: dict[str, dict[int, _Wire]] = {}


class FastEngine(Engine):
    """HTTP/1.1 keep-alive engine; see the module docstring for the rules it follows.

    Timeouts: one repeating timer per engine checks the deadlines of the requests in
    flight every ``tick`` (timeout/20, clamped to 5..50 ms) instead of a timer per
    request (a uvloop ``call_later`` + ``cancel`` costs ~2-3 us, ~15 % of a request
    here). A request therefore times out between ``timeout_s`` and ``timeout_s + tick``.
    """

    name = "fast"

    def __init__(self, options: EngineOptions) -> None:
        super().__init__(options)
        url = urlsplit(options.base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port][/prefix], got {options.base_url!r}")
        self._base_url = options.base_url
        self._host = url.hostname
        self._port = url.port or default_port(url.scheme)
        self._ssl: ssl.SSLContext | None = _ssl_context(options.verify_tls) if url.scheme == "https" else None
        self._server_hostname: str | None = url.hostname if url.scheme == "https" else None
        self._tick_s = min(0.05, max(0.005, options.timeout_s / 20))
        self._idle: list[HttpConnection] = []
        self._wires = _WIRE_CACHE.setdefault(options.base_url, {})  # this base URL's request bytes
        self._open: set[HttpConnection] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._ticker: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # set by open(): the loop the engine serves
        self.connections_made = 0  # for tests and calibration: how often we (re)connected

    @classmethod
    def version(cls) -> str:
        return f"httptools {httptools.__version__}; {loop_name()}"

    async def open(self) -> None:
        await self.close()
        loop = self._loop = asyncio.get_running_loop()  # an engine serves the loop that opened it
        self._ticker = loop.call_later(self._tick_s, self._expire, loop)

    def prepare(self, requests: Iterable[Request]) -> None:
        """Build and cache the bytes of ``requests`` now, outside any timing.

        Without it the bytes are built on a blueprint's first send (once per blueprint
        and base URL for the whole process, not per engine instance).
        """
        for request in requests:
            self._cached(request)

    async def send(self, request: Request) -> Response:
        loop = self._loop
        if loop is None:
            raise RuntimeError("FastEngine.send() called before open() or after close()")
        cached = self._wires.get(id(request))
        if cached is None or cached[0]() is not request:
            cached = self._remember(request)
        wire = cached[1]
        now = loop.time()
        deadline = now + self.options.timeout_s
        idle = self._idle
        conn = idle.pop() if idle else None
        if conn is None or conn.closed or now - conn.idle_since > _RECHECK_IDLE_S:
            # the rare path: no live idle connection at hand, or one idle long enough to recheck
            conn = await self._take(conn, deadline, loop)
        waiter: asyncio.Future[Response] = loop.create_future()
        conn.deadline = deadline
        try:
            conn.start(waiter, wire)
            return await waiter
        except EngineError as exc:
            # a reused connection that died before any response byte: an idempotent request
            # is re-sent once, on another connection (see the module docstring)
            if not (cached[2] and exc.error == "reset" and conn.exchanges > 0 and conn.bytes_in == 0):
                raise
        finally:
            if conn.waiter is waiter:  # cancelled from outside: the exchange is unfinished
                conn._fail("other", "request cancelled")
            self._release(conn)
        conn = await self._take(None, deadline, loop)
        waiter = loop.create_future()
        conn.deadline = deadline
        try:
            conn.start(waiter, wire)
            return await waiter
        finally:
            if conn.waiter is waiter:
                conn._fail("other", "request cancelled")
            self._release(conn)

    async def _take(
        self, candidate: HttpConnection | None, deadline: float, loop: asyncio.AbstractEventLoop
    ) -> HttpConnection:
        """A live connection: ``candidate`` or the next idle one (after one loop turn when it
        sat idle over ``_RECHECK_IDLE_S``, so a close already on the wire is read first),
        else a new one, else the next one released."""
        idle = self._idle
        while True:
            if candidate is not None:
                if not candidate.closed and loop.time() - candidate.idle_since > _RECHECK_IDLE_S:
                    try:
                        await asyncio.sleep(0)  # one loop turn: a close that already arrived is read first
                    except BaseException:  # cancelled meanwhile: the connection goes back, not lost
                        self._release(candidate)
                        raise
                if not candidate.closed:
                    return candidate
                self._open.discard(candidate)
            if not idle:
                return await self._acquire(deadline, loop)
            candidate = idle.pop()

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._loop is None:
            return  # never opened, or already closed
        self._loop = None
        for conn in list(self._open):
            conn._fail("other", "engine closed")
        self._open.clear()
        self._idle.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(EngineError("other", "engine closed while waiting for a connection"))
        await asyncio.sleep(0)  # let the transports run their close callbacks

    # internals -----------------------------------------------------------------------
    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """The ticker: fail every in-flight request past its deadline, then re-arm."""
        now = loop.time()
        timeout = self.options.timeout_s
        for conn in [c for c in self._open if c.waiter is not None and c.deadline <= now]:
            conn.on_timeout(timeout)
        self._ticker = loop.call_later(self._tick_s, self._expire, loop)

    def _cached(self, request: Request) -> _Wire:
        """``request``'s (weak reference, bytes, idempotent), built on first use (``send`` inlines this)."""
        cached = self._wires.get(id(request))
        if cached is None or cached[0]() is not request:
            cached = self._remember(request)
        return cached

    def _remember(self, request: Request) -> _Wire:
        """Build, cache and return ``request``'s (weak reference, bytes, idempotent)."""
        key, wires = id(request), self._wires
        wire = build_request_bytes(request, self._base_url)
        idempotent = request.method.upper() in _IDEMPOTENT
        ref = weakref.ref(request, lambda _ref: wires.pop(key, None))
        cached = wires[key] = (ref, wire, idempotent)
        return cached

    async def _acquire(self, deadline: float, loop: asyncio.AbstractEventLoop) -> HttpConnection:
        idle = self._idle
        while True:
            while idle:
                conn = idle.pop()
                if not conn.closed:
                    return conn
                self._open.discard(conn)
            if len(self._open) < self.options.max_connections:
                return await self._connect(deadline, loop)
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # we were handed a slot we will not use: pass it on
                raise

    async def _connect(self, deadline: float, loop: asyncio.AbstractEventLoop) -> HttpConnection:
        options = self.options
        conn = HttpConnection()
        self._open.add(conn)  # reserve the slot while connecting
        limit = max(0.0, min(options.connect_timeout_s, deadline - loop.time()))
        try:
            async with asyncio.timeout(limit):
                await loop.create_connection(
                    lambda: conn,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._server_hostname,
                )
        except BaseException as exc:
            self._open.discard(conn)
            self._wake_one()
            if isinstance(exc, Exception):
                raise _connect_error(exc, self._host, self._port, limit) from None
            raise
        self.connections_made += 1
        sock = conn.transport.get_extra_info("socket") if conn.transport else None
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        return conn

    def _release(self, conn: HttpConnection) -> None:
        loop = self._loop
        if loop is None:  # the engine closed while this exchange ran: no socket outlives it
            conn._drop()
            self._open.discard(conn)
        elif conn.closed or conn.waiter is not None:
            self._open.discard(conn)
        else:
            conn.idle_since = loop.time()
            self._idle.append(conn)
        if self._waiters:
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def _ssl_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


def _connect_error(exc: Exception, host: str, port: int, limit: float) -> EngineError:
    """Connect failures, classified by the shared rules of :mod:`loadgen.classify`."""
    where = f"{host}:{port}"
    if isinstance(exc, TimeoutError):
        return EngineError("timeout", f"connect to {where} not done within {limit:g} s")
    detail = f"connect to {where}: {describe_exception(exc)}"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return EngineError("other", f"TLS handshake failed: {detail}")  # as aiohttp/httpx engines
    return EngineError(classify_os_error(exc) or "other", detail)
