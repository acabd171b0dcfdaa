"""A gunicorn sync worker that reads each request in full, with deadlines, before the app runs.

Use: ``gunicorn --worker-class targets.flask.server.worker.BufferingSyncWorker ...``.

Why: gunicorn's sync worker handles one connection at a time and reads it with blocking
``recv`` calls, so one client that sends its head one byte a second holds the worker for
as long as it likes (a valid request waited 19.6 s behind a 20 s slow client, and a
chunk size of 2**80 or an announced body that never comes blocked it until gunicorn
killed it).  The study's linserv had Apache in front, which absorbs such clients; this
worker does the same job inside the worker process, in pure Python, so it needs nothing
installed and keeps the stand-in's processes, ports and per-request model loading as
they were:

* connections are accepted and read on non-blocking sockets in one ``selectors`` loop,
  each against a deadline (head within ``header_timeout_s``, body within
  ``body_timeout_s``); a slow or silent client only holds a connection slot, never the
  worker, and is answered 408 (or closed, if it sent nothing) when its time is up;
* :class:`targets.flask.server.framing.RequestFramer` checks the framing as bytes arrive, so an
  oversized body is refused with 413 when announced (Content-Length, or a chunk size
  past the limit) without reading it, and malformed framing gets 400 -- JSON
  ``{"error": ...}``, like the app's own errors;
* a complete request is handed to gunicorn's ordinary sync path (its parser, the WSGI
  app) from memory, so the app never waits on the network; one request runs at a time,
  exactly like the sync worker, so per-request model loading is measured as before;
* after each answer the connection is half-closed and drained in the loop (bounded in
  time and bytes) instead of in a blocking linger, so a client that does not close
  cannot hold the worker either.

A worker takes new connections only while no complete request is waiting in it, so with
``--workers`` > 1 an idle worker gets the next connection rather than a busy one
hoarding it.  At most ``max_pending`` connections are read at once per worker (memory:
up to ``max_pending`` x the body limit); beyond that they wait in the listen backlog,
as they did for the plain sync worker.  TLS is not supported (the stand-ins speak plain
HTTP on loopback; behind a load balancer or nginx TLS ends there).

Settings come from the environment, shared with the app: ``SERVEBENCH_MAX_BODY_BYTES``,
``SERVEBENCH_HEADER_TIMEOUT_S``, ``SERVEBENCH_BODY_TIMEOUT_S``, ``SERVEBENCH_REPLICA``.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import socket
import time
from collections import deque
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any

from gunicorn import http
from gunicorn.http import errors as http_errors
from gunicorn.workers.sync import SyncWorker

from targets.flask.server.framing import FramingError, Limits, RequestFramer

__all__ = ["BufferingSyncWorker", "WorkerSettings", "error_response", "settings_from_env"]

_LISTENER, _WAKEUP = object(), object()
_READING, _READY, _WRITING, _LINGERING = range(4)
_RECV = 256 * 1024


@dataclass(frozen=True)
class WorkerSettings:
    """Deadlines and bounds of the buffering worker (see the module docstring)."""

    limits: Limits = Limits()
    header_timeout_s: float = 5.0
    body_timeout_s: float = 10.0
    write_timeout_s: float = 10.0
    linger_s: float = 5.0
    linger_bytes: int = 128 * 1024 * 1024
    max_pending: int = 64
    replica: str = ""


def _env_number(name: str, default: float, kind: type = float) -> Any:
    raw = os.environ.get("SERVEBENCH_" + name, "")
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"SERVEBENCH_{name} must be a {kind.__name__}, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"SERVEBENCH_{name} must be > 0, got {raw!r}")
    return value


def settings_from_env() -> WorkerSettings:
    """The worker's settings from ``SERVEBENCH_*`` variables (the same ones the app reads)."""
    base = WorkerSettings()
    return replace(
        base,
        limits=replace(base.limits, max_body_bytes=_env_number("MAX_BODY_BYTES", base.limits.max_body_bytes, int)),
        header_timeout_s=_env_number("HEADER_TIMEOUT_S", base.header_timeout_s),
        body_timeout_s=_env_number("BODY_TIMEOUT_S", base.body_timeout_s),
        replica=os.environ.get("SERVEBENCH_REPLICA", ""),
    )


def error_response(status: int, message: str, replica: str = "") -> bytes:
    """A complete ``Connection: close`` answer with a JSON ``{"error": message}`` body."""
    body = json.dumps({"error": message}).encode()
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if replica:
        lines.append(f"X-Replica: {replica}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _gunicorn_error(exc: BaseException) -> tuple[int, str]:
    """gunicorn's parse errors (for requests the framer let through) -> (status, message)."""
    detail = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in str(exc))[:200]
    if isinstance(exc, http_errors.LimitRequestLine):
        return 414, f"request line too long: {detail}"
    if isinstance(exc, http_errors.LimitRequestHeaders):
        return 431, f"request headers too large: {detail}"
    if isinstance(exc, http_errors.ExpectationFailed):
        return 417, f"unsupported Expect: {detail}"
    if isinstance(exc, http_errors.ParseException):
        return 400, f"malformed request ({type(exc).__name__}): {detail}"
    return 500, f"internal error: {type(exc).__name__}"


class _PrefetchedSocket:
    """The client socket, except that reads return the request already read into memory.

    gunicorn's parser reads through ``recv``; once the prefetched request is used up it
    sees end-of-input, so nothing in the sync path ever waits on the network for input.
    Writes and everything else go to the real socket (blocking, with a write timeout).
    """

    def __init__(self, sock: socket.socket, data: bytes) -> None:
        self._sock = sock
        self._data = memoryview(data)
        self._pos = 0

    def recv(self, size: int, flags: int = 0) -> bytes:
        chunk = bytes(self._data[self._pos : self._pos + size])
        self._pos += len(chunk)
        return chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Conn:
    """One accepted connection and where it is in its life."""

    __slots__ = ("sock", "addr", "listener", "framer", "state", "deadline", "out", "drained", "continued")

    def __init__(self, sock: socket.socket, addr: Any, listener: Any, limits: Limits, deadline: float) -> None:
        self.sock = sock
        self.addr = addr
        self.listener = listener
        self.framer = RequestFramer(limits)
        self.state = _READING
        self.deadline = deadline
        self.out = b""
        self.drained = 0
        self.continued = False


class BufferingSyncWorker(SyncWorker):
    """gunicorn's sync worker with every request read in full, under deadlines, first."""

    settings: WorkerSettings

    def init_process(self) -> None:
        self.settings = settings_from_env()
        super().init_process()

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> None:
        if self.cfg.is_ssl:
            self.log.warning("BufferingSyncWorker does not do TLS; running gunicorn's plain sync worker")
            super().run()
            return
        for listener in self.sockets:
            listener.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.PIPE[0], selectors.EVENT_READ, _WAKEUP)
        self._conns: dict[int, _Conn] = {}
        self._ready: deque[_Conn] = deque()
        self._accepting = False
        self._scratch = bytearray(_RECV)
        try:
            while self.alive:
                self.notify()
                self._set_accepting(not self._ready and self._reading() < self.settings.max_pending)
                self._poll(0.0 if self._ready else self._wait_s())
                self._expire(time.monotonic())
                if self._ready and self.alive:
                    self._serve(self._ready.popleft())
                if not self.is_parent_alive():
                    break
        finally:
            for conn in list(self._conns.values()):
                self._close(conn)
            self._sel.close()

    def _reading(self) -> int:
        return sum(1 for c in self._conns.values() if c.state in (_READING, _READY))

    def _wait_s(self) -> float:
        wait = min(float(self.timeout or 1.0), 1.0)
        if self._conns:
            wait = min(wait, max(0.0, min(c.deadline for c in self._conns.values()) - time.monotonic()))
        return wait

    def _set_accepting(self, on: bool) -> None:
        if on == self._accepting:
            return
        for listener in self.sockets:
            if on:
                self._sel.register(listener, selectors.EVENT_READ, _LISTENER)
            else:
                self._sel.unregister(listener)
        self._accepting = on

    def _poll(self, timeout: float) -> None:
        try:
            events = self._sel.select(timeout)
        except InterruptedError:
            return
        for key, _mask in events:
            if key.data is _WAKEUP:
                try:
                    while os.read(self.PIPE[0], 4096):
                        pass
                except OSError:
                    pass
            elif key.data is _LISTENER:
                if self._accepting and not self._ready:
                    self._accept(key.fileobj)
            elif key.fd in self._conns:
                conn = self._conns[key.fd]
                if conn.state == _READING:
                    self._read(conn)
                elif conn.state == _WRITING:
                    self._write(conn)
                else:
                    self._drain(conn)

    def _expire(self, now: float) -> None:
        for conn in [c for c in self._conns.values() if c.deadline <= now and c.state != _READY]:
            if conn.state != _READING:
                self._close(conn)
            elif conn.framer.received == 0:
                self._close(conn)  # connected and said nothing: nobody to answer
            elif not conn.framer.head_done:
                self._refuse(
                    conn,
                    408,
                    f"request timeout: the request head did not arrive within {self.settings.header_timeout_s:g} s",
                )
            else:
                self._refuse(
                    conn,
                    408,
                    f"request timeout: the request body did not arrive within {self.settings.body_timeout_s:g} s",
                )

    # -- reading a request -------------------------------------------------------------
    def _accept(self, listener: Any) -> None:
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED):
                raise
            return
        sock.setblocking(False)
        conn = _Conn(sock, addr, listener, self.settings.limits, time.monotonic() + self.settings.header_timeout_s)
        self._conns[sock.fileno()] = conn
        self._sel.register(sock, selectors.EVENT_READ)

    def _read(self, conn: _Conn) -> None:
        try:
            n = conn.sock.recv_into(self._scratch)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if n == 0:  # the client gave up before its request was complete
            self._close(conn)
            return
        had_head = conn.framer.head_done
        try:
            conn.framer.feed(bytes(self._scratch[:n]))
        except FramingError as exc:
            self._refuse(conn, exc.status, exc.message)
            return
        if conn.framer.head_done and not had_head:
            conn.deadline = time.monotonic() + self.settings.body_timeout_s
        if conn.framer.done:
            self._sel.unregister(conn.sock)
            conn.state = _READY
            self._ready.append(conn)
        elif conn.framer.expect_continue and not conn.continued:
            conn.continued = True
            try:
                conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            except OSError:
                self._close(conn)

    # -- answering -----------------------------------------------------------------------
    def _serve(self, conn: _Conn) -> None:
        """Run the complete request through gunicorn's sync path (parser, WSGI app)."""
        del self._conns[conn.sock.fileno()]
        sock = conn.sock
        sock.settimeout(self.settings.write_timeout_s)  # bounds writes; reads come from memory
        client = _PrefetchedSocket(sock, conn.framer.request_bytes())
        req = None
        try:
            parser = http.RequestParser(self.cfg, client, conn.addr)
            req = next(parser)
            self.handle_request(conn.listener, req, client, conn.addr)
        except (http_errors.NoMoreData, StopIteration):
            pass
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN) and not isinstance(exc, TimeoutError):
                self.log.exception("Socket error processing request.")
        except BaseException as exc:  # gunicorn's own policy: any failure becomes an error answer
            self.handle_error(req, client, conn.addr, exc)
        if sock.fileno() < 0:  # gunicorn closed it (an app error after the answer had begun)
            return
        sock.setblocking(False)
        self._conns[sock.fileno()] = conn
        self._sel.register(sock, selectors.EVENT_READ)
        self._start_linger(conn)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Like gunicorn's, but the answer is JSON ``{"error": ...}`` as the app's own errors."""
        status, message = _gunicorn_error(exc)
        where = addr[0] if isinstance(addr, tuple) and addr else "unix"
        if status >= 500:
            self.log.exception("Error handling request from %s", where)
        else:
            self.log.warning("Invalid request from ip=%s: %s", where, message)
        try:
            client.sendall(error_response(status, message, self.settings.replica))
        except OSError:
            self.log.debug("Failed to send error message.")

    def _refuse(self, conn: _Conn, status: int, message: str) -> None:
        """Answer a request refused before the app (4xx JSON), then linger and close."""
        self.log.info("refused request from %s: %d %s", conn.addr[0] if conn.addr else "?", status, message)
        conn.out = error_response(status, message, self.settings.replica)
        conn.state = _WRITING
        conn.deadline = time.monotonic() + self.settings.write_timeout_s
        self._sel.modify(conn.sock, selectors.EVENT_WRITE)
        self._write(conn)

    def _write(self, conn: _Conn) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        conn.out = conn.out[sent:]
        if not conn.out:
            self._sel.modify(conn.sock, selectors.EVENT_READ)
            self._start_linger(conn)

    # -- closing ---------------------------------------------------------------------------
    def _start_linger(self, conn: _Conn) -> None:
        """Half-close, then read and discard what the client still sends, in the loop.

        Closing a socket with unread bytes makes the kernel send a reset, and the client
        may then lose the answer it has not read yet (a 413 while it is still sending).
        """
        conn.state = _LINGERING
        conn.deadline = time.monotonic() + self.settings.linger_s
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)

    def _drain(self, conn: _Conn) -> None:
        try:
            n = conn.sock.recv_into(self._scratch)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            n = 0
        conn.drained += n
        if n == 0 or conn.drained > self.settings.linger_bytes:
            self._close(conn)

    def _close(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        if fd >= 0:
            self._conns.pop(fd, None)
            try:
                self._sel.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
        conn.sock.close()
