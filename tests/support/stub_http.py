"""Small real HTTP/1.1 servers on loopback, in threads, for engine tests.

Why hand-written sockets rather than a framework: the tests need servers that misbehave
on purpose (close mid-response, never answer, send garbage, close kept-alive connections)
and that count their connections, which no framework allows. Each accepted connection is
served by its own thread; ``stop()`` closes everything.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["BEHAVIOURS", "ParsedRequest", "StubServer", "digit_of"]


@dataclass
class ParsedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


def digit_of(body: bytes) -> int:
    """The stub "model": a deterministic digit from the request body (same for all engines)."""
    return sum(body) % 10


def _read_request(sock: socket.socket, buffer: bytearray) -> ParsedRequest | None:
    """Read one request (Content-Length bodies only); None when the client closed."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buffer.extend(chunk)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = bytearray(rest)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body.extend(chunk)
    buffer[:] = body[length:]
    return ParsedRequest(method, path, headers, bytes(body[:length]))


def _answer_json(request: ParsedRequest) -> bytes:
    return json.dumps({"predictions": [digit_of(request.body)], "host": request.headers.get("host", "")}).encode()


def _response(body: bytes, *, close: bool = False, status: str = "200 OK") -> bytes:
    extra = "Connection: close\r\n" if close else ""
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def _chunked(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    parts = [body[i : i + 7] for i in range(0, len(body), 7)]
    return head + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


# A behaviour serves one connection: (server, socket) -> None. They loop over requests
# on the connection for as long as keep-alive lasts.
Behaviour = Callable[["StubServer", socket.socket], None]


def _serve_loop(respond: Callable[[ParsedRequest], bytes | None]) -> Behaviour:
    def behaviour(server: StubServer, sock: socket.socket) -> None:
        buffer = bytearray()
        while not server.stopping.is_set():
            request = _read_request(sock, buffer)
            if request is None:
                return
            server.record(request)
            reply = respond(request)
            if reply is None:  # close without a full answer
                return
            sock.sendall(reply)
            if b"Connection: close" in reply.split(b"\r\n\r\n", 1)[0]:
                return

    return behaviour


def _ok(request: ParsedRequest) -> bytes:
    return _response(_answer_json(request))


def _silent(server: StubServer, sock: socket.socket) -> None:
    request = _read_request(sock, bytearray())
    if request is not None:
        server.record(request)
    server.stopping.wait(30)  # hold the connection open, answer nothing


def _garbage(server: StubServer, sock: socket.socket) -> None:
    request = _read_request(sock, bytearray())
    if request is not None:
        server.record(request)
        sock.sendall(b"THIS IS NOT HTTP\r\n\x00\x01\x02 at all\r\n\r\n")
        server.stopping.wait(2)


def _close_after_each(server: StubServer, sock: socket.socket) -> None:
    """Answers keep-alive style (no Connection: close) but closes after each response."""
    request = _read_request(sock, bytearray())
    if request is not None:
        server.record(request)
        sock.sendall(_response(_answer_json(request)))


def _close_mid(server: StubServer, sock: socket.socket) -> None:
    """Headers promise a body; half of it is sent, then the connection is closed."""
    request = _read_request(sock, bytearray())
    if request is not None:
        server.record(request)
        body = _answer_json(request)
        full = _response(body)
        sock.sendall(full[: len(full) - len(body) // 2])


def _no_length(server: StubServer, sock: socket.socket) -> None:
    """HTTP/1.1 response without Content-Length or chunking: the body ends at the close."""
    request = _read_request(sock, bytearray())
    if request is not None:
        server.record(request)
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" + _answer_json(request)
        )


BEHAVIOURS: dict[str, Behaviour] = {
    "ok": _serve_loop(_ok),
    "chunked": _serve_loop(lambda r: _chunked(_answer_json(r))),
    "close_header": _serve_loop(lambda r: _response(_answer_json(r), close=True)),
    "close_mid": _close_mid,
    "error_500": _serve_loop(lambda r: _response(b'{"error": "boom"}', status="500 Internal Server Error")),
    "silent": _silent,
    "garbage": _garbage,
    "close_after_each": _close_after_each,
    "no_length": _no_length,
}


@dataclass
class StubServer:
    """``with StubServer("chunked") as s: s.url``; counts connections and requests."""

    behaviour: str | Behaviour = "ok"
    tls: ssl.SSLContext | None = None
    connections: int = 0
    requests: list[ParsedRequest] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._handler = BEHAVIOURS[self.behaviour] if isinstance(self.behaviour, str) else self.behaviour
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self._socks: list[socket.socket] = []
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def record(self, request: ParsedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def __enter__(self) -> StubServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() (Linux)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, sock: socket.socket) -> None:
        try:
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            with self._lock:
                self._socks.append(sock)
            self._handler(self, sock)
        except (OSError, ValueError):
            pass
        finally:
            try:
                sock.close()
            except OSError:
                pass
