"""The ``grpc`` engine: the Open Inference Protocol over gRPC (``grpc.aio``), pre-serialized messages.

Why: KServe and Triton serve the same inference API over gRPC, and many production
deployments use it because it is cheaper per request than JSON over HTTP.  This engine
lets ``bench run`` measure that protocol with the same records, error classes,
statistics, open-loop scheduling and calibration as the HTTP engines: it takes the same
:class:`~loadgen.request.Request` blueprints and returns the same
:class:`~loadgen.engine.Response`, so nothing above it knows the wire.

How a :class:`Request` carries a gRPC call (gRPC *is* an HTTP/2 POST to ``/package.Service/Method``):

* ``path`` is the RPC's full method name, e.g. ``/inference.GRPCInferenceService/ModelInfer``
  (:data:`loadgen.inference.grpc_messages.MODEL_INFER_METHOD`); ``method`` must be POST;
* ``body`` is the serialized request message (``grpc_messages.encode_infer_request``):
  the engine sends the bytes as they are (``unary_unary`` with no serializer) and hands
  back the serialized answer, so encoding stays outside the measured time;
* ``headers`` become gRPC metadata (keys lower-cased): ``Authorization`` and ``Cookie``
  travel exactly as over HTTPS; ``Content-Type``, ``Content-Length`` and other HTTP/1
  framing headers are dropped (gRPC sets its own); ``Host`` becomes the channel's
  ``:authority`` (Istio routing), so one engine serves one Host.

``base_url`` is ``grpc://host:port`` (plaintext HTTP/2) or ``grpcs://host:port`` (TLS,
the certificate checked against the system's roots, like the HTTPS engines; gRPC cannot
skip the check, so ``verify_tls=False`` with ``grpcs`` is refused when the engine is made).
No proxy is taken from the environment (``grpc.enable_http_proxy`` = 0), as the HTTP engines.

``max_connections`` is the cap on RPCs in flight (a request waiting for a free slot is
inside its ``timeout_s``, as a request waiting for a free connection is in the HTTP
engines).  The RPCs share a pool of ``ceil(max_connections / 16)`` channels (each its own
HTTP/2 connection: ``grpc.use_local_subchannel_pool``), round-robin.  Why not one
connection per request as over HTTP/1.1: HTTP/2 multiplexes, and a client opening one
per request would measure something no gRPC client does; why not one for all: a single
connection funnels every stream through one socket and one server thread, and servers
limit concurrent streams per connection (commonly 100-250), so 16 per connection stays
below any of those.

Error map (gRPC status -> :data:`loadgen.records.ErrorClass`; a status the server sent
becomes a :class:`Response` with the HTTP status grpc-gateway maps it to, so the usual
classification applies and ``status`` stays an HTTP-like number; failures of the
transport raise :class:`EngineError`):

============================================================  ==========  =====================
gRPC status                                                    status      error class
============================================================  ==========  =====================
OK                                                             200         "" (then decoded)
INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE            400         http_4xx
UNAUTHENTICATED / PERMISSION_DENIED / NOT_FOUND                401/403/404 http_4xx
ALREADY_EXISTS, ABORTED / RESOURCE_EXHAUSTED                   409 / 429   http_4xx
UNKNOWN, INTERNAL, DATA_LOSS / UNIMPLEMENTED                   500 / 501   http_5xx
UNAVAILABLE, cannot connect ("failed to connect", "refused")   0           refused
UNAVAILABLE, TLS handshake failure                             0           other
UNAVAILABLE, otherwise (connection closed, GOAWAY, reset)      0           reset
DEADLINE_EXCEEDED                                              0           timeout
CANCELLED (not by us)                                          0           reset
============================================================  ==========  =====================
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from urllib.parse import urlsplit

import grpc
from grpc import aio

from loadgen.classify import snippet
from loadgen.engine import Engine, EngineError, EngineOptions, Response
from loadgen.request import Request

__all__ = ["GRPC_SCHEMES", "STREAMS_PER_CHANNEL", "GrpcEngine", "grpc_target", "map_status"]

#: URL schemes this engine serves: plaintext and TLS.
GRPC_SCHEMES = ("grpc", "grpcs")
#: RPCs in flight per channel (HTTP/2 connection) before another channel is added.
STREAMS_PER_CHANNEL = 16
#: A channel's reconnect backoff after its connection failed (ms): first wait, longest wait.
#: gRPC's defaults (1 s growing to 120 s) left a restarted target unreached for minutes.
RECONNECT_BACKOFF_MS = (250, 1000)
#: HTTP/1 framing headers that have no meaning as gRPC metadata.
_DROPPED_HEADERS = frozenset({"content-type", "content-length", "connection", "transfer-encoding", "te", "host"})

_HTTP_EQUIVALENT: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}


def grpc_target(base_url: str) -> tuple[str, bool]:
    """``grpc[s]://host:port`` -> (``host:port`` for grpc, whether TLS); ValueError otherwise."""
    parts = urlsplit(base_url)
    if parts.scheme not in GRPC_SCHEMES or not parts.hostname:
        raise ValueError(f"the grpc engine needs a grpc://host:port or grpcs://host:port base_url, got {base_url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(
            f"a gRPC base_url is scheme://host:port only (no path, query or credentials), got {base_url!r}"
        )
    tls = parts.scheme == "grpcs"
    port = parts.port or (443 if tls else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}", tls


def map_status(code: grpc.StatusCode, details: str) -> tuple[int, str]:
    """A gRPC status -> (HTTP-equivalent status, "") for an answer, or (0, error class) for a failure."""
    if code in _HTTP_EQUIVALENT:
        return _HTTP_EQUIVALENT[code], ""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return 0, "timeout"
    if code == grpc.StatusCode.UNAVAILABLE:
        text = details.lower()
        if "ssl" in text or "tls" in text or "handshake" in text or "certificate" in text:
            return 0, "other"
        if "failed to connect" in text or "refused" in text or "connect failed" in text:
            return 0, "refused"
        return 0, "reset"
    return 0, "reset"  # CANCELLED by the peer or the channel


class GrpcEngine(Engine):
    """``grpc.aio`` channels sending pre-serialized unary RPCs; see the module docstring."""

    name = "grpc"

    def __init__(self, options: EngineOptions) -> None:
        super().__init__(options)
        self._target, self._tls = grpc_target(options.base_url)
        if self._tls and not options.verify_tls:
            raise ValueError(
                "verify_tls = false is not possible over gRPC with TLS (grpcs://): grpc cannot skip "
                "certificate verification; install the CA in the system roots instead"
            )
        self._channels: list[aio.Channel] = []
        self._calls: list[aio.UnaryUnaryMultiCallable] = []
        self._slots: asyncio.Semaphore | None = None
        self._next = 0
        self._path = ""  # the one RPC method this engine calls, fixed by its first request
        self._authority = ""
        self._metadata: dict[int, tuple[tuple[str, str], ...]] = {}  # id(headers) -> metadata

    @classmethod
    def version(cls) -> str:
        return grpc.__version__

    @property
    def channel_count(self) -> int:
        """How many channels (HTTP/2 connections) the pool holds for ``max_connections``."""
        return max(1, math.ceil(self.options.max_connections / STREAMS_PER_CHANNEL))

    async def open(self) -> None:
        await self.close()
        self._slots = asyncio.Semaphore(self.options.max_connections)

    def _open_channels(self, path: str) -> None:
        options = [
            ("grpc.use_local_subchannel_pool", 1),  # each channel its own connection
            ("grpc.enable_http_proxy", 0),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", -1),
            ("grpc.enable_retries", 0),  # a failure is recorded, never hidden by a retry
            # reconnects after the target went away: gRPC's default backoff (1 s growing x1.6
            # to 120 s) kept every call failing for up to two minutes after a restarted
            # target was back; capped here, one channel tries at most ~4 times a second
            ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[0]),
            ("grpc.max_reconnect_backoff_ms", RECONNECT_BACKOFF_MS[1]),
        ]
        if self._authority:
            options.append(("grpc.default_authority", self._authority))
        for _ in range(self.channel_count):
            if self._tls:
                channel = aio.secure_channel(self._target, grpc.ssl_channel_credentials(), options=options)
            else:
                channel = aio.insecure_channel(self._target, options=options)
            self._channels.append(channel)
            self._calls.append(channel.unary_unary(path))  # no serializers: bytes in, bytes out
        self._path = path

    def _metadata_of(self, request: Request) -> tuple[tuple[str, str], ...]:
        key = id(request.headers)
        metadata = self._metadata.get(key)
        if metadata is None:
            pairs = []
            for name, value in request.headers.items():
                lower = name.lower()
                if lower == "host":
                    if self._authority and value != self._authority:
                        raise EngineError(
                            "other", f"one grpc engine serves one Host, got {self._authority!r} and {value!r}"
                        )
                    self._authority = value
                elif lower not in _DROPPED_HEADERS:
                    pairs.append((lower, value))
            metadata = self._metadata[key] = tuple(pairs)
        return metadata

    def prepare(self, requests: Iterable[Request]) -> None:
        """Check each blueprint is a POST and turn its headers into metadata, outside the timing."""
        for request in requests:
            if request.method.upper() != "POST" or not request.path.startswith("/"):
                raise ValueError(
                    f"a gRPC request is POST /package.Service/Method, got {request.method} {request.path!r}"
                )
            self._metadata_of(request)

    async def send(self, request: Request) -> Response:
        slots = self._slots
        if slots is None:
            raise RuntimeError("GrpcEngine.send() called before open() or after close()")
        metadata = self._metadata_of(request)
        if not self._channels:
            self._open_channels(request.path)
        elif request.path != self._path:
            raise EngineError("other", f"one grpc engine calls one method, got {self._path!r} and {request.path!r}")
        index = self._next
        self._next = (index + 1) % len(self._calls)
        timeout = self.options.timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            async with asyncio.timeout(timeout):  # waiting for a slot counts, as in the HTTP engines
                await slots.acquire()
        except TimeoutError:
            raise EngineError("timeout", f"no free slot within timeout_s={timeout:g} s") from None
        try:
            call = self._calls[index](request.body, timeout=max(deadline - loop.time(), 0.001), metadata=metadata)
            body = await call
            return Response(status=200, body=body, bytes_in=len(body) + 5)  # + gRPC's 5-byte message prefix
        except aio.AioRpcError as exc:
            code, details = exc.code(), exc.details() or ""
            status, error = map_status(code, details)
            text = f"grpc {code.name}: {details}"
            if error:
                raise EngineError(error, snippet(text)) from None
            return Response(status=status, body=text.encode(), bytes_in=len(text))
        finally:
            slots.release()

    async def close(self) -> None:
        channels, self._channels, self._calls = self._channels, [], []
        self._slots = None
        for channel in channels:
            await channel.close(grace=None)
