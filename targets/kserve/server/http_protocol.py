"""The KServe stand-in's uvicorn HTTP/1.1 protocol (httptools) with limits and JSON refusals.

Why: uvicorn's httptools protocol -- what kserve's ``uvicorn.Config(http="auto")`` picks
when httptools is installed, as in kserve's images -- has no limit on the request line or
the headers (one 64 MB header cost a worker ~4-10 s of CPU and ~130 MB of memory and then
got a 200), accepts HTTP/1.1 without ``Host``, answers a Content-Length over the body
limit only once the body has arrived (never, if it never comes), and answers every
framing error with text/plain "Invalid HTTP request received.".  uvicorn's only knob,
``h11_max_incomplete_event_size``, applies to its pure-Python h11 protocol, which is
slower per request and would change what the benchmark measures.

:class:`GuardedHttpToolsProtocol` is uvicorn's httptools protocol with three additions;
what is refused and the wording live in :mod:`targets.kserve.server.http_rules`:

* the bytes of each request head (request line + header lines, up to the blank line) are
  counted *before* they reach the parser: past the limit, 431.  A head that starts in the
  same TCP read as the end of a previous pipelined request is counted from the next read,
  so the limit holds to within one read (at most 256 KiB);
* when a head is complete, before kserve starts on it, it is checked
  (:func:`~targets.kserve.server.http_rules.check_head`): target length (414), header count
  (431), ``Host`` (400), a Content-Length over the body limit (413 at once, without
  waiting for the body), Transfer-Encoding other than chunked (400/501), HTTP version;
* a parser error becomes a JSON answer naming llhttp's reason (400), or 413 for a
  Content-Length or chunk size beyond 64 bits.

Every refusal is ``{"error": "<message>"}`` with ``Connection: close``.  It goes out after
the answers to earlier pipelined requests (in request order); a request whose body broke
the framing is abandoned (kserve sees a disconnect and its answer is dropped).  After a
refusal nothing more is parsed: what the client still sends is read and discarded (so it
can read the answer instead of a connection reset) up to 64 MiB or 30 s, then the
connection closes.  The per-request cost on a valid request is one pass over its headers.

Without httptools uvicorn falls back to h11; :func:`guard_http` then sets only
``h11_max_incomplete_event_size`` (h11 answers an oversized head with a plain 400, and the
ASGI guards in :mod:`targets.kserve.server.guards` still enforce the body limit).
"""

from __future__ import annotations

from typing import Any

from targets.kserve.server.http_rules import (
    DEFAULT_MAX_HEADER_BYTES,
    HttpLimits,
    Refused,
    check_head,
    head_too_large,
    refusal_for_parser_error,
)

__all__ = ["DEFAULT_MAX_HEADER_BYTES", "GuardedHttpToolsProtocol", "HttpLimits", "guard_http"]

#: After a refusal, at most this much more of the connection is read and dropped.
_DISCARD_CAP = 64 * 1024 * 1024
#: ... and for at most this long, then the connection is closed regardless.
_DISCARD_SECONDS = 30.0

_CONFIG_ATTR = "servebench_http_limits"

try:
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - httptools not installed: guard_http uses h11
    _Base = None


def guard_http(config: Any, limits: HttpLimits) -> None:
    """Make the uvicorn ``config`` serve with :class:`GuardedHttpToolsProtocol` and ``limits``.

    Sets the protocol class (or h11's event-size limit) on the Config object itself, which
    kserve pickles into every spawned worker, so each worker serves with the limits.
    """
    setattr(config, _CONFIG_ATTR, limits)
    if _Base is not None and config.http in ("auto", "httptools"):
        config.http = GuardedHttpToolsProtocol
    else:
        config.h11_max_incomplete_event_size = limits.max_header_bytes


if _Base is not None:

    class GuardedHttpToolsProtocol(_Base):
        """uvicorn's httptools protocol that refuses bad requests itself, in JSON (module doc)."""

        def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(config, *args, **kwargs)
            self.limits: HttpLimits = getattr(config, _CONFIG_ATTR, None) or HttpLimits()
            self._head_bytes: int | None = 0  # bytes of the current head so far; None in a body
            self._tail = b""  # last 3 bytes seen, to find a blank line split across reads
            self._discarded: int | None = None  # set once refused: bytes dropped since
            self._answer: bytes | None = None  # a refusal waiting for earlier answers to go out
            self._active: Any = None  # the RequestResponseCycle whose ASGI task was started last

        # -- reading ---------------------------------------------------------------------
        def data_received(self, data: bytes) -> None:
            if self._discarded is not None:
                self._discarded += len(data)
                if self._discarded > _DISCARD_CAP:
                    self.transport.close()
                return
            if self._head_bytes is not None and self._head_too_large(data):
                self._refuse(head_too_large(self.limits))
                return
            self._unset_keepalive_if_required()
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade:  # as uvicorn does
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
            except httptools.HttpParserError as exc:
                refusal = refusal_for_parser_error(exc, self.limits)
                if refusal.status >= 500:
                    self.logger.error("error in a parser callback", exc_info=exc.__context__)
                self._refuse(refusal)

        def _head_too_large(self, data: bytes) -> bool:
            """Count ``data`` towards the current head; True once it passes the limit."""
            assert self._head_bytes is not None
            window = self._tail + data
            end = window.find(b"\r\n\r\n")
            if end < 0:
                self._head_bytes += len(data)
                self._tail = window[-3:]
                return self._head_bytes > self.limits.max_header_bytes
            # The head ends in this read: count up to its blank line only (a body may follow).
            return self._head_bytes + end + 4 - len(self._tail) > self.limits.max_header_bytes

        # -- parser callbacks: where a head ends and the next one starts ----------------------
        def on_headers_complete(self) -> None:
            self._head_bytes, self._tail = None, b""
            refusal = check_head(self.headers, self.url, self.parser.get_http_version(), self.limits)
            if refusal is not None:
                raise refusal  # stops the parser; data_received answers it
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._head_bytes, self._tail = 0, b""
            super().on_message_complete()

        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            self._active = cycle
            super()._start_asgi_task(cycle, app)

        # -- refusing ----------------------------------------------------------------------
        def _refuse(self, refusal: Refused) -> None:
            """Stop parsing, answer ``refusal`` once earlier answers are out, then close."""
            self.logger.warning("refused a request (%d): %s", refusal.status, refusal.message)
            self._discarded = 0
            self.flow.resume_reading()  # keep reading (and dropping) so the client is not stuck
            if not self._abandon_unfinished_request():
                self.transport.close()
                return
            self._answer = refusal.response()
            if not self._busy():
                self._send_answer()

        def _abandon_unfinished_request(self) -> bool:
            """Drop the request whose body was being read when the framing broke.

            Its ASGI task sees a disconnect and nothing it sends is written.  False when it
            had already started answering: then no answer of ours can follow it.
            """
            cycle = self.cycle
            if cycle is None or not cycle.more_body or cycle.response_complete:
                return True  # no request in its body: the refused one never got a cycle
            queued = [entry for entry in self.pipeline if entry[0] is cycle]
            for entry in queued:
                self.pipeline.remove(entry)
            if not queued and cycle.response_started:
                cycle.disconnected = True
                return False
            cycle.disconnected = True
            cycle.message_event.set()
            return True

        def _busy(self) -> bool:
            """True while an earlier request's answer is still to be written."""
            active = self._active
            return bool(self.pipeline) or (
                active is not None and not active.response_complete and not active.disconnected
            )

        def _send_answer(self) -> None:
            if self._answer is None or self.transport.is_closing():
                return
            self.transport.write(self._answer)
            self._answer = None
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(_DISCARD_SECONDS, self.transport.close)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self._answer is not None and not self._busy():
                self._send_answer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._discarded = None
            self._answer = None
            super().connection_lost(exc)

else:  # pragma: no cover
    GuardedHttpToolsProtocol = None
