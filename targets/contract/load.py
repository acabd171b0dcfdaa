"""The contract checks a real deployment needs under load: a burst, keep-alive, and a latency floor.

Why: a target around Python's ``http.server`` passed every functional check, then lost
298 of 512 requests at concurrent N=512 (its listen backlog of 5 overflowed: the kernel
drops the SYNs, clients retry after 1 s, 3 s, ... and time out) and answered every
sequential request in a flat 44 ms (Nagle's algorithm holding the body until the client's
delayed ACK of the headers, up to 40 ms later).  None of that shows with one request on a
fresh connection, which is all the functional checks send.  So:

* ``burst:N`` (:func:`check_burst`): N connections opened at once, one request each; all
  must be answered with the right kind of answer within the benchmark's request timeout,
  and no connection may have had a packet retransmitted (the kernel's own count,
  ``TCP_INFO.tcpi_total_retrans`` of the client socket).  On loopback nothing is lost in
  transit: a retransmission means the server's listen queue was full and the kernel dropped
  the SYN (or the handshake's last ACK), and the client waited 1 s, 3 s, ... to retry.  The
  kernel completes handshakes for the server while its accept queue has room, so a slow
  model causes no retransmission -- a full listen queue does.  (The handshake's duration is
  shown too, but not judged: on a loaded host the client's own event loop inflates it.)  A
  failure names the listen backlog the server asked for (``ss``'s Send-Q of its listening
  socket).
* ``keep-alive`` (:func:`check_keep_alive`): requests in a row on one connection are all
  answered; a server that closes after every answer and says so (``Connection: close``,
  gunicorn's sync worker) passes with that noted; one that keeps the connection open and
  then fails the next request on it fails.
* ``latency`` (:func:`check_latency`): the Nagle / delayed-ACK floor.  The same request is
  timed, alternately, on fresh connections (the client ACKs at once while a connection is
  new, so a held body is released at once) and on one reused connection (where the
  client's ACKs are delayed, up to 40 ms).  A server without TCP_NODELAY that writes
  headers and body apart is :data:`NAGLE_EXCESS_S` or more slower on the reused connection
  in the median, *and* slower in at least :data:`NAGLE_PAIR_SHARE` of the alternating
  fresh/reused pairs, whatever its model costs; a legitimately slow model is slow on both,
  and a burst of host noise slows both members of a pair alike, so the *differences*, not
  the latency itself, are judged (a sign test: with no floor, 15 or more of 20 pairs one
  way happens with probability 2 %).
  Skipped when the server does not keep connections.

The client is a raw socket speaking HTTP/1.1 through ``h11`` (what the checks need to see --
connect time apart from answer time, which connection a request used -- no HTTP library
hides).  Nothing here prints.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import statistics
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import h11

from targets.base import Request, Target
from targets.contract.tools import ContractFailure, ContractSkip, listening_backlogs

__all__ = [
    "BURST_SIZES",
    "KEEP_ALIVE_REQUESTS",
    "LATENCY_REQUESTS",
    "NAGLE_EXCESS_S",
    "NAGLE_PAIR_SHARE",
    "Answer",
    "check_burst",
    "check_keep_alive",
    "check_latency",
]

#: Connections opened at once by the ``burst:N`` checks (the study's largest concurrent steps).
BURST_SIZES: tuple[int, ...] = (128, 512)
#: ``struct tcp_info``: offset of ``tcpi_total_retrans`` (8 one-byte fields, then 23 u32 before it)
#: and the bytes to ask for (linux/tcp.h; stable since Linux 2.6).
_TCPI_TOTAL_RETRANS_AT, _TCPI_SIZE = 100, 104
#: Requests in a row on one connection for ``keep-alive``.
KEEP_ALIVE_REQUESTS = 10
#: Requests timed on fresh connections and on one reused connection for ``latency``.
LATENCY_REQUESTS = 20
#: Median on a reused connection this much above the median on fresh ones: a body held back by
#: Nagle until a delayed ACK (Linux delays ACKs by 40 ms at least, TCP_DELACK_MIN).
NAGLE_EXCESS_S = 0.025
# Share of alternating (reused, fresh) pairs in which the reused answer must be the slower one. The
# fastest reused answer is no test: a delayed-ACK timer already running fires early, so a floor
# can leave single answers 10-15 ms slow only (seen on a busy host: 49.6 ms median, 14.6 ms fastest).
NAGLE_PAIR_SHARE = 0.75


@dataclass(frozen=True)
class Answer:
    """One request's outcome on the wire: times in seconds, the status and body, or what went wrong."""

    connect_s: float
    answer_s: float
    status: int | None
    body: bytes
    keep_alive: bool
    error: str = ""
    retransmits: int | None = None  # the client socket's TCP_INFO total_retrans (None: not read)


def total_retransmits(sock: socket.socket | None) -> int | None:
    """Packets the kernel retransmitted on ``sock`` so far (SYNs included), or None where TCP_INFO is missing."""
    if sock is None or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCPI_SIZE)
    except OSError:
        return None
    return struct.unpack_from("I", info, _TCPI_TOTAL_RETRANS_AT)[0] if len(info) >= _TCPI_SIZE else None


def _address(target: Target) -> tuple[str, int]:
    parts = urlsplit(target.base_url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def _h11_request(target: Target, request: Request, *, close: bool) -> h11.Request:
    host, port = _address(target)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length", "connection")}
    pairs = [("Host", f"{host}:{port}"), *headers.items(), ("Content-Length", str(len(request.body)))]
    if close:
        pairs.append(("Connection", "close"))
    return h11.Request(method=request.method, target=request.path, headers=pairs)


def _wire_bytes(target: Target, request: Request, *, close: bool) -> tuple[h11.Connection, bytes]:
    """A fresh client-side h11 state machine and the whole request in one buffer (sent with one write)."""
    conn = h11.Connection(h11.CLIENT)
    data = conn.send(_h11_request(target, request, close=close)) or b""
    data += conn.send(h11.Data(data=request.body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    return conn, data


def _next_response(conn: h11.Connection, receive: Callable[[], bytes]) -> tuple[int, bytes]:
    """Read one response with ``receive`` (b"" = the peer closed); (status, body)."""
    status, chunks = 0, []
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(receive())
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            return status, b"".join(chunks)
        elif isinstance(event, h11.ConnectionClosed):
            raise ConnectionError("the server closed the connection before a complete answer")


def _keeps_alive(conn: h11.Connection) -> bool:
    return conn.our_state is h11.DONE and conn.their_state is h11.DONE


# -- the burst: asyncio, one connection per request, all opened at once -----------------------
async def _one_async(host: str, port: int, conn: h11.Connection, data: bytes, timeout_s: float) -> Answer:
    """One connection of the burst: the answer, with the socket's retransmission count read before it closes."""
    holder: list[Any] = []
    answer = await _exchange(host, port, conn, data, timeout_s, time.perf_counter(), holder)
    if holder:
        writer = holder[0]
        answer = dataclasses.replace(answer, retransmits=total_retransmits(writer.get_extra_info("socket")))
        writer.close()
    return answer


async def _exchange(
    host: str, port: int, conn: h11.Connection, data: bytes, timeout_s: float, t0: float, holder: list[Any]
) -> Answer:
    """Connect, send, read one answer; the writer goes into ``holder`` (to be read and closed by the caller)."""
    connect_s = 0.0
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        holder.append(writer)
        connect_s = time.perf_counter() - t0
        writer.write(data)
        await writer.drain()
        status, body = 0, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                left = timeout_s - (time.perf_counter() - t0)
                if left <= 0:
                    raise TimeoutError
                conn.receive_data(await asyncio.wait_for(reader.read(65536), left))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("closed before a complete answer")
        return Answer(connect_s, time.perf_counter() - t0 - connect_s, status, body, False)
    except TimeoutError:
        return Answer(
            connect_s or time.perf_counter() - t0,
            0.0,
            None,
            b"",
            False,
            f"no answer within {timeout_s:g} s" + ("" if connect_s else " (not even connected)"),
        )
    except (OSError, ConnectionError, h11.ProtocolError) as exc:
        return Answer(connect_s, 0.0, None, b"", False, f"{type(exc).__name__}: {exc}")


async def _burst(target: Target, request: Request, n: int, timeout_s: float) -> list[Answer]:
    host, port = _address(target)
    wires = [_wire_bytes(target, request, close=True) for _ in range(n)]  # built before the first connect
    return list(await asyncio.gather(*(_one_async(host, port, conn, data, timeout_s) for conn, data in wires)))


def _summary(answers: list[Answer]) -> str:
    times = sorted(a.connect_s + a.answer_s for a in answers if not a.error)
    if not times:
        return "none answered"
    return f"slowest answer {times[-1]:.2f} s, median {statistics.median(times) * 1000:.1f} ms"


def check_burst(target: Target, image: Any, n: int, *, timeout_s: float, pids: set[int]) -> str:
    """``n`` connections at once, one request each: all answered right, none waiting a SYN retry.

    ``timeout_s``: each request's deadline (the benchmark's own, ``[loadgen] timeout_s``).
    ``pids``: the stand-in's processes, whose listening sockets' backlog a failure names.
    """
    request = target.encode(image)
    answers = asyncio.run(_burst(target, request, n, timeout_s))
    failed: list[str] = []
    for answer in answers:
        if answer.error:
            failed.append(answer.error)
            continue
        try:
            target.decode(answer.status or 0, answer.body)
        except Exception as exc:
            failed.append(f"HTTP {answer.status}: {type(exc).__name__}: {str(exc)[:80]}")
    retried = [a for a in answers if a.retransmits]
    unread = sum(a.retransmits is None for a in answers)
    slowest_connect = max(a.connect_s for a in answers)
    seen = (
        f"{n} connections at once: {n - len(failed)} answered ({_summary(answers)}; slowest handshake "
        f"{slowest_connect * 1000:.0f} ms)"
    )
    if not failed and not retried:
        return seen + ("; no retransmission" if not unread else f"; retransmissions unread on {unread} connections")
    problems = []
    if failed:
        common = max(set(failed), key=failed.count)
        problems.append(f"{len(failed)} failed (e.g. {common})")
    if retried:
        problems.append(
            f"{len(retried)} had packets retransmitted on loopback (TCP_INFO): the server's listen "
            "queue was full and the kernel dropped their SYNs, retried after 1 s, 3 s, ..."
        )
    backlogs = listening_backlogs(pids)
    small = [b for b in backlogs if b < n]
    if retried or small:
        queue = (
            f"the server listens with a backlog of {', '.join(map(str, sorted(set(backlogs))))}"
            if backlogs
            else "the server's listen backlog could not be read"
        )
        advice = (
            f"{queue} (ss Send-Q): a burst beyond the listen queue is dropped -- raise the listen backlog "
            f"to >= {n} (http.server: request_queue_size; gunicorn/uvicorn: --backlog; socket.listen(n)) "
            "and net.core.somaxconn if lower"
        )
    else:
        advice = "the listen backlog is large enough: look at the server's log for why it failed"
    raise ContractFailure(f"{seen}; " + "; ".join(problems) + f"; {advice}")


# -- one connection at a time: blocking sockets ---------------------------------------------------
class _Connection:
    """One blocking client connection speaking HTTP/1.1 through h11, with TCP_NODELAY on our side."""

    def __init__(self, target: Target, timeout_s: float) -> None:
        self.target = target
        t0 = time.perf_counter()
        self.sock = socket.create_connection(_address(target), timeout=timeout_s)
        self.connect_s = time.perf_counter() - t0
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = h11.Connection(h11.CLIENT)

    def ask(self, request: Request, *, close: bool = False) -> Answer:
        """Send ``request`` (one write) and read its answer; the time from the write to the last byte."""
        data = self.conn.send(_h11_request(self.target, request, close=close)) or b""
        data += self.conn.send(h11.Data(data=request.body)) or b""
        data += self.conn.send(h11.EndOfMessage()) or b""
        t0 = time.perf_counter()
        self.sock.sendall(data)
        status, body = _next_response(self.conn, lambda: self.sock.recv(65536))
        answer_s = time.perf_counter() - t0
        alive = _keeps_alive(self.conn)
        if alive:
            self.conn.start_next_cycle()
        return Answer(self.connect_s, answer_s, status, body, alive)

    def close(self) -> None:
        self.sock.close()


def _fresh(target: Target, request: Request, timeout_s: float) -> Answer:
    connection = _Connection(target, timeout_s)
    try:
        return connection.ask(request, close=True)
    finally:
        connection.close()


def check_keep_alive(target: Target, image: Any, *, timeout_s: float, n: int = KEEP_ALIVE_REQUESTS) -> str:
    """``n`` requests in a row on one connection are all answered (or the server says it closes)."""
    request = target.encode(image)
    connection = _Connection(target, timeout_s)
    try:
        for i in range(n):
            try:
                answer = connection.ask(request)
            except (OSError, ConnectionError, h11.ProtocolError) as exc:
                raise ContractFailure(
                    f"request {i + 1} of {n} on one kept-alive connection failed ({type(exc).__name__}: "
                    f"{exc}): the server kept the connection open after answer {i} without saying "
                    "`Connection: close`, then did not answer on it"
                ) from None
            target.decode(answer.status or 0, answer.body)
            if not answer.keep_alive:
                if i == 0:
                    return (
                        "the server closes the connection after each answer (`Connection: close`): every "
                        "request pays a new TCP handshake -- allowed, but keep-alive is cheaper under load"
                    )
                return f"{i + 1} requests on one connection, then the server closed it, saying so"
    finally:
        connection.close()
    return f"{n} requests answered on one connection (keep-alive)"


def check_latency(target: Target, image: Any, *, timeout_s: float, n: int = LATENCY_REQUESTS) -> str:
    """No Nagle / delayed-ACK floor: the reused connection's median answer is not
    :data:`NAGLE_EXCESS_S` or more above the fresh connections' while the reused answer is the
    slower one in at least :data:`NAGLE_PAIR_SHARE` of the pairs.

    Fresh and reused requests alternate, so a burst of other work on the host slows both
    members of a pair alike; a floor makes nearly every reused answer the slower one.  Raises
    ContractSkip when the server does not keep connections.
    """
    request = target.encode(image)
    connection = _Connection(target, timeout_s)
    fresh: list[float] = []
    reused: list[float] = []
    try:
        for i in range(n + 2):  # the first two only warm the connection (and use up the client's quick ACKs)
            answer = connection.ask(request)
            if not answer.keep_alive:
                raise ContractSkip(
                    f"the server closed the connection after answer {i + 1}: no reused connection "
                    f"to time (a fresh connection's answer: {answer.answer_s * 1000:.1f} ms)"
                )
            if i >= 2:
                reused.append(answer.answer_s)
                fresh.append(_fresh(target, request, timeout_s).answer_s)
    finally:
        connection.close()
    fresh_med, reused_med = statistics.median(fresh), statistics.median(reused)
    excess = reused_med - fresh_med
    slower = sum(r > f for r, f in zip(reused, fresh, strict=False))
    seen = (
        f"median answer {fresh_med * 1000:.1f} ms on {n} fresh connections, {reused_med * 1000:.1f} ms on one "
        f"reused connection (fastest {min(fresh) * 1000:.1f} / {min(reused) * 1000:.1f} ms; the reused one "
        f"slower in {slower} of {len(reused)} alternating pairs)"
    )
    if excess >= NAGLE_EXCESS_S and slower >= NAGLE_PAIR_SHARE * len(reused):
        raise ContractFailure(
            f"{seen}: {excess * 1000:.0f} ms more once the connection is reused, in nearly "
            f"every pair -- the signature of Nagle's algorithm meeting the client's delayed ACK "
            "(40 ms): the server writes headers and body separately without TCP_NODELAY; set "
            "TCP_NODELAY on its sockets (http.server: disable_nagle_algorithm = True) or write each "
            "response in one send"
        )
    return seen
