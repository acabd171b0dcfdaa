"""Send exact bytes to a server and read what it answers: the bad-input suite's client.

Why raw sockets: HTTP clients refuse to send what the bad-input suite must send (a chunk
size of ``zz``, two Content-Lengths, no Host header, a Content-Length whose body never
comes), and they hide how a server ended the exchange (an answer, a close, a reset, or
nothing until a timeout).  :func:`send_raw` writes the request piece by piece while
reading, so a server that answers early (a 413 after the first megabytes) is heard even
when the rest of the body is never accepted, and it stops writing once an answer begins.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RawAnswer", "http_request", "send_raw"]

_SEND_STEP = 256 * 1024


@dataclass
class RawAnswer:
    """How one raw exchange ended.

    ``status`` is 0 when no complete status line came back.  ``closed``: the server
    closed the connection (EOF or reset); ``reset``: it reset it; ``timed_out``: nothing
    ended the exchange within the client's timeout.
    """

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    closed: bool = False
    reset: bool = False
    timed_out: bool = False
    send_error: str = ""
    sent_bytes: int = 0
    elapsed_s: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)

    def describe(self) -> str:
        """One line for assertion messages."""
        how = "timed out" if self.timed_out else "reset" if self.reset else "closed" if self.closed else "answered"
        return (
            f"HTTP {self.status or '-'} ({how} after {self.elapsed_s:.2f} s, {self.sent_bytes} bytes sent"
            f"{', send error ' + self.send_error if self.send_error else ''}) "
            f"content-type={self.headers.get('content-type', '')!r} body={self.body[:300]!r}"
        )


def http_request(
    method: str, path: str, headers: Iterable[tuple[str, str]], body: bytes = b"", *, version: str = "HTTP/1.1"
) -> bytes:
    """A request head (exactly the given header lines, in order) followed by ``body``."""
    lines = [f"{method} {path} {version}", *(f"{k}: {v}" for k, v in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


def _parse_head(data: bytes) -> tuple[int, dict[str, str], int] | None:
    """(status, headers, head length) once the response head is complete, else None."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = data[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, end + 4


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    """A chunked body -> (bytes so far, complete?)."""
    out, pos = bytearray(), 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return bytes(out), False
        size = int(data[pos:eol].split(b";")[0] or b"0", 16)
        if size == 0:
            return bytes(out), True
        if len(data) < eol + 2 + size + 2:
            return bytes(out), False
        out += data[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2


def _complete(data: bytes) -> bool:
    """True when ``data`` holds one whole response (head plus its framed body)."""
    parsed = _parse_head(data)
    if parsed is None:
        return False
    status, headers, start = parsed
    if 100 <= status < 200:  # an interim answer: the real one follows
        return _complete(data[start:])
    if "content-length" in headers and headers["content-length"].isdigit():
        return len(data) - start >= int(headers["content-length"])
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _dechunk(data[start:])[1]
    return False  # read until the server closes


def _final(data: bytes) -> bytes:
    """Skip interim (1xx) answers."""
    while True:
        parsed = _parse_head(data)
        if parsed is None or not 100 <= parsed[0] < 200:
            return data
        data = data[parsed[2] :]


def send_raw(host: str, port: int, pieces: Iterable[bytes], *, timeout: float = 10.0) -> RawAnswer:
    """Write ``pieces`` on a fresh connection while reading; return how it ended.

    Writing stops as soon as answer bytes arrive (or the server stops reading and the
    write fails); reading stops at a complete answer, at EOF/reset, or at ``timeout``.
    The client never half-closes: a server waiting for more body waits until the timeout.
    """
    answer = RawAnswer()
    start = time.monotonic()
    deadline = start + timeout
    received = bytearray()
    source = iter(pieces)
    pending = b""
    sending = True
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.setblocking(False)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                answer.timed_out = True
                break
            writing = sending and not received
            readable, writable, _ = select.select([sock], [sock] if writing else [], [], remaining)
            if readable:
                try:
                    chunk = sock.recv(262144)
                except ConnectionResetError:
                    answer.closed = answer.reset = True
                    break
                if not chunk:
                    answer.closed = True
                    break
                received += chunk
                if _complete(bytes(received)):
                    break
            if writable and writing:
                if not pending:
                    pending = next(source, b"")
                    if not pending:
                        sending = False
                        continue
                try:
                    sent = sock.send(pending[:_SEND_STEP])
                except OSError as exc:  # the server closed or reset while we were writing
                    answer.send_error = type(exc).__name__
                    sending = False
                    continue
                answer.sent_bytes += sent
                pending = pending[sent:]
    answer.elapsed_s = time.monotonic() - start
    data = _final(bytes(received))
    parsed = _parse_head(data)
    if parsed is not None:
        answer.status, answer.headers, body_start = parsed
        body = data[body_start:]
        if "chunked" in answer.headers.get("transfer-encoding", "").lower():
            body = _dechunk(body)[0]
        answer.body = body
    return answer
