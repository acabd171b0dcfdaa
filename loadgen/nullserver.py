"""A fast null HTTP endpoint on loopback, in its own process: what calibration measures against.

Why: to measure a client's own ceiling the server must cost (almost) nothing and must
not share the client's core. Two kinds:

* ``python`` -- works everywhere servebench runs: uvloop (when installed) + an
  ``httptools`` request parser, answering every request with the same small JSON body,
  HTTP/1.1 keep-alive; ~0.01 ms of its own CPU per request at 64 in flight (measured).
* ``nginx`` -- a throw-away nginx (``master_process off``, one process) with a temp
  config that ``return``s the same body: a native server, the endpoint the issue's
  reference figures were measured against; ``auto`` uses it when installed.

Both bind 127.0.0.1 only, run in a new session (own process group) pinned to the CPUs
given, and are always stopped: SIGTERM to the group, then SIGKILL. The Python child also
exits by itself when its parent dies (it polls its parent pid), so a crashed benchmark
leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from ground.cpus import pin_current_process, pin_process

__all__ = ["NGINX_DIRS", "NULL_BODY", "NullEndpoint", "nginx_available", "serve_forever"]

NULL_BODY = b'{"predictions": [0]}'
_READY = "NULLSERVER READY"


# -- the server (runs in the child process) ------------------------------------------------
def _response(body: bytes, keep_alive: bool, status: bytes = b"200 OK") -> bytes:
    connection = b"keep-alive" if keep_alive else b"close"
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: "
        + connection
        + b"\r\n\r\n"
        + body
    )


class _NullProtocol(asyncio.Protocol):
    """Parses requests only to find where each one ends, then answers the fixed body."""

    def __init__(self, keep: bytes, close: bytes, bad: bytes) -> None:
        import httptools

        self._parser = httptools.HttpRequestParser(self)
        self._error = httptools.HttpParserError
        self._keep, self._close, self._bad = keep, close, bad
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except self._error:
            if self._transport is not None:
                self._transport.write(self._bad)
                self._transport.close()

    def on_message_complete(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if self._parser.should_keep_alive():
            transport.write(self._keep)
        else:
            transport.write(self._close)
            transport.close()


def serve_forever(host: str = "127.0.0.1", port: int = 0, cpus: Sequence[int] = (), body: bytes = NULL_BODY) -> None:
    """Run the null server in this process until SIGTERM or until the parent dies.

    Prints ``NULLSERVER READY <port>`` on stdout once listening (the parent waits for it).
    """
    pin_current_process(cpus)
    from loadgen.engines.fast_engine import run

    run(_serve(host, port, body))


async def _serve(host: str, port: int, body: bytes) -> None:
    loop = asyncio.get_running_loop()
    keep, close = _response(body, True), _response(body, False)
    bad = _response(b'{"error": "malformed HTTP request"}', False, b"400 Bad Request")
    server = await loop.create_server(lambda: _NullProtocol(keep, close, bad), host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    sys.stdout.write(f"{_READY} {bound}\n")  # the start-up handshake the parent waits for
    sys.stdout.flush()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    loop.add_signal_handler(signal.SIGINT, lambda: stop.done() or stop.set_result(None))
    parent = os.getppid()

    def watch_parent() -> None:
        if os.getppid() != parent and not stop.done():
            stop.set_result(None)  # orphaned: our starter died without stopping us
        else:
            loop.call_later(0.5, watch_parent)

    loop.call_later(0.5, watch_parent)
    async with server:
        await stop


# -- the parent's handle -------------------------------------------------------------------
#: Where nginx is installed when it is not on PATH: Debian/Ubuntu (/usr/sbin, often missing
#: from a non-root user's PATH), a local package (/usr/local/sbin), a source build's default.
NGINX_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin")


def nginx_available() -> str | None:
    """Path of the nginx binary (PATH first, then :data:`NGINX_DIRS`), or None."""
    return shutil.which("nginx") or next(
        (path for path in (f"{d}/nginx" for d in NGINX_DIRS) if os.access(path, os.X_OK)), None
    )


_NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    client_body_buffer_size 64k;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        location / {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}
}}
"""


class SpawnedEndpoint:
    """A null endpoint in a child process: ``with`` starts it and stops it however the block ends.

    Subclasses implement ``start()`` (idempotent) and ``stop()`` (safe after a failed start);
    a start that fails half-way is stopped before the error propagates.
    """

    def start(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class NullEndpoint(SpawnedEndpoint):
    """A null endpoint process: ``with NullEndpoint("auto", cpus=(0,)) as ep: ep.url``.

    ``kind``: ``"python"``, ``"nginx"``, or ``"auto"`` (nginx when installed).  ``port``:
    0 (the default) picks a free one; a fixed port lets a test stop the endpoint and start
    another on the same address (a target restarting mid-run).
    """

    def __init__(
        self, kind: str = "python", *, cpus: Sequence[int] = (), body: bytes = NULL_BODY, port: int = 0
    ) -> None:
        if kind == "auto":
            kind = "nginx" if nginx_available() else "python"
        if kind not in ("python", "nginx"):
            raise ValueError(f"null endpoint kind must be 'python', 'nginx' or 'auto', got {kind!r}")
        if kind == "nginx" and not nginx_available():
            raise RuntimeError("nginx is not installed (apt-get install nginx), use kind='python'")
        if b"'" in body or b"\\" in body:
            raise ValueError("the null body must not contain quotes or backslashes")
        self.kind = kind
        self.cpus = tuple(cpus)
        self.body = body
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer in 0..65535, got {port!r}")
        self._fixed_port = port
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def describe(self) -> dict[str, Any]:
        if self.kind == "python":
            import httptools

            from loadgen.engines.fast_engine import loop_name

            version = f"python {sys.version.split()[0]}, httptools {httptools.__version__}, {loop_name()}"
        else:
            out = subprocess.run([nginx_available() or "nginx", "-v"], capture_output=True, text=True, check=False)
            version = (out.stderr or out.stdout).strip().rpartition("/")[2]
        return {
            "kind": self.kind,
            "version": version,
            "url": self.url,
            "cpus": list(self.cpus),
            "body_bytes": len(self.body),
        }

    def start(self, ready_timeout_s: float = 15.0) -> str:
        """Spawn the server, wait until it accepts connections; return its URL."""
        if self._proc is not None:
            return self.url
        if self.kind == "python":
            self._start_python(ready_timeout_s)
        else:
            self._start_nginx(ready_timeout_s)
        return self.url

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after 3 s; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop_group(proc)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # internals ---------------------------------------------------------------------
    def _popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL, **kwargs)
        pin_process(proc.pid, self.cpus)  # False when it died at once; start() reports that
        return proc

    def _start_python(self, ready_timeout_s: float) -> None:
        code = (
            "from loadgen.nullserver import serve_forever; "
            f"serve_forever('127.0.0.1', {self._fixed_port}, {list(self.cpus)!r}, {self.body!r})"
        )
        self._proc = self._popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = _read_line(self._proc, ready_timeout_s)
        if not line.startswith(_READY):
            err = self._proc.stderr.read().decode(errors="replace")[-2000:] if self._proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"null server did not start (got {line!r}); stderr: {err}")
        self.port = int(line.split()[-1])

    def _start_nginx(self, ready_timeout_s: float) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="servebench-nginx-")
        tmp = self._tmp.name
        self.port = self._fixed_port or _free_port()
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(tmp=tmp, port=self.port, body=self.body.decode()))
        log = open(Path(tmp) / "stderr.log", "wb")
        binary = nginx_available() or "nginx"
        self._proc = self._popen(
            [binary, "-p", tmp, "-c", str(conf), "-e", f"{tmp}/error.log"], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                text = (Path(tmp) / "stderr.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"nginx exited at start-up: {text}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on 127.0.0.1:{self.port} within {ready_timeout_s:g} s")


def _read_line(proc: subprocess.Popen[bytes], timeout_s: float) -> str:
    """First stdout line of ``proc`` within ``timeout_s`` ("" on timeout or exit)."""
    import selectors

    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            return ""
    return proc.stdout.readline().decode(errors="replace").strip()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop_group(proc: subprocess.Popen[bytes], grace_s: float = 3.0) -> None:
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
