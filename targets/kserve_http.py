"""A request-head size limit for the KServe stand-in's uvicorn (HTTP/1.1 over httptools).

Why: uvicorn's httptools protocol -- what kserve's ``uvicorn.Config(http="auto")`` picks
when httptools is installed, as in kserve's images -- has no limit on the request line or
the headers.  httptools joins a header value's pieces by concatenation, so one 64 MB
header cost a worker ~4-10 s of CPU and ~130 MB of memory and then got a 200.  uvicorn's
only knob, ``h11_max_incomplete_event_size``, applies to its pure-Python h11 protocol,
which is slower per request and would change what the benchmark measures.

:class:`HeadLimitedHttpToolsProtocol` is uvicorn's httptools protocol with one addition:
the bytes of each request head (request line + header lines, up to the blank line) are
counted *before* they reach the parser; past the limit the client gets a 431 JSON error
with ``Connection: close``, the rest of what it sends is discarded unparsed (so it can
read the answer instead of a connection reset), and the connection closes.  Both a single
huge header and many small ones count towards the same limit.  A head that starts in the
same TCP read as the end of a previous pipelined request is counted from the next read,
so the limit holds to within one read (at most 256 KiB).

Without httptools uvicorn falls back to h11; :func:`limit_request_heads` then sets
``h11_max_incomplete_event_size`` instead (h11 answers an oversized head with a plain 400).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["DEFAULT_MAX_HEADER_BYTES", "HeadLimitedHttpToolsProtocol", "limit_request_heads"]

#: 64 KiB for the request line and all headers together, about Envoy's default (60 KiB):
#: what an Istio ingress in front of a real InferenceService lets through anyway.
DEFAULT_MAX_HEADER_BYTES = 64 * 1024

#: After a 431, at most this much more of the refused request is read and dropped.
_DISCARD_CAP = 64 * 1024 * 1024
#: ... and for at most this long, then the connection is closed regardless.
_DISCARD_SECONDS = 30.0

_CONFIG_ATTR = "servebench_max_header_bytes"

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - httptools not installed: limit_request_heads uses h11
    _Base = None  # type: ignore[assignment,misc]


def limit_request_heads(config: Any, max_header_bytes: int) -> None:
    """Make the uvicorn ``config`` refuse request heads over ``max_header_bytes``.

    Sets the protocol class (or h11's event-size limit) on the Config object itself, which
    kserve pickles into every spawned worker, so each worker serves with the limit.
    """
    if max_header_bytes < 1:
        raise ValueError(f"max_header_bytes must be >= 1, got {max_header_bytes}")
    setattr(config, _CONFIG_ATTR, max_header_bytes)
    if _Base is not None and config.http in ("auto", "httptools"):
        config.http = HeadLimitedHttpToolsProtocol
    else:
        config.h11_max_incomplete_event_size = max_header_bytes


def _answer_431(limit: int) -> bytes:
    body = json.dumps(
        {"error": f"request line and headers exceed the limit of {limit} bytes (431 Request Header Fields Too Large)"}
    ).encode()
    head = (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n"
    )
    return head + body


if _Base is not None:

    class HeadLimitedHttpToolsProtocol(_Base):  # type: ignore[misc,valid-type]
        """uvicorn's httptools protocol that answers 431 to an oversized request head."""

        def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(config, *args, **kwargs)
            self.max_header_bytes: int = getattr(config, _CONFIG_ATTR, DEFAULT_MAX_HEADER_BYTES)
            self._head_bytes: int | None = 0  # bytes of the current head so far; None in a body
            self._tail = b""  # last 3 bytes seen, to find a blank line split across reads
            self._discarded: int | None = None  # set once refused: bytes dropped since
            self._answer_pending = False  # refused while an earlier response was in flight

        def data_received(self, data: bytes) -> None:
            if self._discarded is not None:
                self._discarded += len(data)
                if self._discarded > _DISCARD_CAP:
                    self.transport.close()
                return
            if self._head_bytes is not None and self._head_too_large(data):
                self._refuse()
                return
            super().data_received(data)

        def _head_too_large(self, data: bytes) -> bool:
            """Count ``data`` towards the current head; True once it passes the limit."""
            assert self._head_bytes is not None
            window = self._tail + data
            end = window.find(b"\r\n\r\n")
            if end < 0:
                self._head_bytes += len(data)
                self._tail = window[-3:]
                return self._head_bytes > self.max_header_bytes
            # The head ends in this read: count up to its blank line only (a body may follow).
            return self._head_bytes + end + 4 - len(self._tail) > self.max_header_bytes

        def _refuse(self) -> None:
            self.logger.warning("refused a request head over %d bytes (431)", self.max_header_bytes)
            self._discarded = 0
            if self.pipeline or (self.cycle is not None and not self.cycle.response_complete):
                # Answers go out in request order: after the earlier one (on_response_complete).
                self._answer_pending = True
                return
            self._answer()

        def _answer(self) -> None:
            self.transport.write(_answer_431(self.max_header_bytes))
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(_DISCARD_SECONDS, self.transport.close)

        # Parser callbacks: where a head ends and the next one starts.
        def on_headers_complete(self) -> None:
            self._head_bytes, self._tail = None, b""
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._head_bytes, self._tail = 0, b""
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            idle = not self.pipeline and (self.cycle is None or self.cycle.response_complete)
            if self._answer_pending and idle and not self.transport.is_closing():
                self._answer_pending = False
                self._answer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._discarded = None
            super().connection_lost(exc)

else:  # pragma: no cover
    HeadLimitedHttpToolsProtocol = None  # type: ignore[assignment,misc]
