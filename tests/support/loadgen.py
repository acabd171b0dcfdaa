"""Test doubles for the loadgen tests: a tiny real HTTP server, its in-memory twin, a trivial Target.

Why a hand-written asyncio server instead of a framework: the tests need a server that
misbehaves on purpose (never answers, closes mid-response, sends garbage, stalls once),
which frameworks make hard.  It binds 127.0.0.1 on an ephemeral port and runs in the
test's own event loop, so it is gone when the test's ``asyncio.run`` returns.

Tests of what the sweep and modes *record* (counts, order, labels, flags) use the
``memory`` engine instead (:class:`MemoryServer` as its handler, run with
``run_virtual``): no socket, virtual time, the same answers every run.  The real server
stays for what only a network engine can show (resets, refusals, the connection cap).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from loadgen.engine import EngineError
from targets.base import DecodeError, Request, Target, TargetContext

__all__ = [
    "MEMORY_URL",
    "FakeTarget",
    "MemoryServer",
    "SingleWorker",
    "TinyServer",
    "closed_port",
    "digit_answer",
    "digit_images",
    "http_response",
]

MEMORY_URL = "http://memory.invalid"  # FakeTarget's base_url under the memory engine (nothing is contacted)

# handler(path, body, writer) -> None; it writes (or does not write) the response itself
Handler = Callable[[str, bytes, asyncio.StreamWriter], Awaitable[None]]


def http_response(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "X")
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def digit_of(body: bytes) -> int:
    return int(json.loads(body)["v"])


async def answer_digit(path: str, body: bytes, writer: asyncio.StreamWriter) -> None:
    """The well-behaved server: answers the digit the request carries."""
    writer.write(http_response(200, json.dumps({"digit": digit_of(body)}).encode()))


def digit_answer(request: Request) -> tuple[int, bytes]:
    """The well-behaved in-memory server (a memory-engine handler): answers the request's digit."""
    return 200, json.dumps({"digit": digit_of(request.body)}).encode()


class MemoryServer:
    """A memory-engine handler that counts requests; after :meth:`stop` it refuses (a dead target).

    It outlives the engines (the sweep makes one per step), as a real server would.
    """

    def __init__(self, answer: Callable[[Request], Any] = digit_answer) -> None:
        self.answer = answer
        self.requests = 0
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    async def __call__(self, request: Request) -> tuple[int, bytes]:
        if self.stopped:
            raise EngineError("refused", "in-memory server stopped")
        self.requests += 1
        answer = self.answer(request)
        return await answer if asyncio.iscoroutine(answer) else answer


class SingleWorker:
    """A memory-engine handler modelling one sync worker: digits answered one at a time, ``service_s`` each.

    Its capacity is exactly ``1 / service_s`` req/s (virtual time), so an open loop above
    that falls behind by a known amount.
    """

    def __init__(self, service_s: float) -> None:
        self.service_s = service_s
        self.lock = asyncio.Lock()

    async def __call__(self, request: Request) -> tuple[int, bytes]:
        async with self.lock:
            await asyncio.sleep(self.service_s)
        return digit_answer(request)


class TinyServer:
    """HTTP/1.1 keep-alive server on 127.0.0.1:<ephemeral> calling ``handler`` per request."""

    def __init__(self, handler: Handler = answer_digit) -> None:
        self.handler = handler
        self.requests = 0
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        """Client connections the server still holds (a closed engine leaves none)."""
        return len(self._writers)

    async def __aenter__(self) -> TinyServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop listening and drop every open connection (a dying target)."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                self.requests += 1
                await self.handler(path, body, writer)
                if writer.is_closing():
                    return
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def reset_connection(writer: asyncio.StreamWriter) -> None:
    """Close with SO_LINGER 0: the peer sees a TCP RST (ECONNRESET), not a clean FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def closed_port() -> int:
    """A loopback port nothing listens on (bound then released; connect -> refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def digit_images(labels: list[int] | np.ndarray) -> np.ndarray:
    """One fake 28x28 uint8 "image" per label, every pixel equal to the label."""
    labels = np.asarray(labels)
    return np.repeat(labels.astype(np.uint8)[:, None, None], 28, axis=1).repeat(28, axis=2)


class FakeTarget(Target):
    """A test double of an adapter: the request carries the image's label, JSON both ways."""

    adapter = "fake"

    def __init__(self, base_url: str, name: str = "fake") -> None:
        super().__init__(name, None, TargetContext(artifacts_dir=None, log_dir=None))
        self.base_url = base_url
        self.encoded = 0

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    @property
    def is_remote(self) -> bool:
        return True

    def encode(self, image: np.ndarray) -> Request:
        self.encoded += 1
        body = json.dumps({"v": int(image[0, 0])}).encode()
        return Request("POST", "/predict", body, {"Content-Type": "application/json"})

    def decode(self, status: int, body: bytes) -> int:
        try:
            return int(json.loads(body)["digit"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DecodeError(f"not a prediction: {body[:50]!r}") from exc

    def manifests(self) -> dict[str, str]:
        return {}
