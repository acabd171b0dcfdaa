"""Decides what the KServe stand-in's HTTP layer refuses before kserve sees a request, and words the answers.

These are the *rules* -- limits, RFC 9112 framing requirements,
the wording of each refusal -- as pure functions of a parsed request head or of the
parser's error, testable without a socket or an event loop.  The *mechanics* (counting
bytes before the parser, stopping the parser, when to answer a pipelined connection,
discarding what follows) are :mod:`targets.kserve.server.http_protocol`'s.

uvicorn's own httptools protocol accepts an HTTP/1.1 request without ``Host``, waits for
the whole body of a request whose Content-Length is over the body limit before anything
can answer it, and answers every framing error llhttp finds -- a chunk size of ``zz``,
two Content-Lengths, Content-Length plus chunked, ``Transfer-Encoding: gzip``, a garbage
request line -- with a text/plain "Invalid HTTP request received.".  Here each is a
:class:`Refused` with a status and a message naming the problem, answered as
``{"error": "<message>"}`` JSON with ``Connection: close`` (after a framing error the
rest of the stream cannot be trusted, so the connection always ends).
"""

from __future__ import annotations

import http
import json
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_HEADER_BYTES",
    "DEFAULT_MAX_HEADER_COUNT",
    "DEFAULT_MAX_TARGET_BYTES",
    "HttpLimits",
    "Refused",
    "check_head",
    "head_too_large",
    "refusal_for_parser_error",
]

#: 4 MiB, as the Flask app: room for MAX_INSTANCES (512) images at ~6.3 KB of JSON each.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
#: 64 KiB for the request line and all headers together, about Envoy's default (60 KiB):
#: what an Istio ingress in front of a real InferenceService lets through anyway.
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
#: Header fields per request: Envoy's default ``max_headers_count`` (and gunicorn's
#: ``limit_request_fields``, which the Flask stand-ins use).
DEFAULT_MAX_HEADER_COUNT = 100
#: The request target (path and query): nginx's and Apache's default request-line limit
#: (8 KiB).  An inference path is a few dozen bytes.
DEFAULT_MAX_TARGET_BYTES = 8 * 1024

#: The HTTP versions served; llhttp also parses ``HTTP/0.9`` and ``HTTP/2.0`` request lines.
_VERSIONS = ("1.1", "1.0")

#: llhttp's reasons for a length that does not fit in 64 bits: a body over any limit.
_OVERFLOW = {
    "Content-Length overflow": "a Content-Length of 2**64 bytes or more",
    "Chunk size overflow": "a chunk size of 2**64 bytes or more",
}


@dataclass(frozen=True)
class HttpLimits:
    """The limits one server applies; set on uvicorn's Config and pickled into every worker."""

    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_header_count: int = DEFAULT_MAX_HEADER_COUNT
    max_target_bytes: int = DEFAULT_MAX_TARGET_BYTES

    def __post_init__(self) -> None:
        for name in ("max_header_bytes", "max_body_bytes", "max_header_count", "max_target_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


class Refused(Exception):
    """A request the HTTP layer answers itself: ``status`` and a message naming the problem.

    An exception so that a parser callback can raise it: httptools stops parsing and
    re-raises it as the ``__context__`` of its ``HttpParserCallbackError``.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> bytes:
        """The whole answer on the wire: JSON ``{"error": ...}``, then the connection closes."""
        body = json.dumps({"error": self.message}).encode()
        head = (
            f"HTTP/1.1 {self.status} {http.HTTPStatus(self.status).phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        return head.encode("ascii") + body


def head_too_large(limits: HttpLimits) -> Refused:
    """The refusal for a request line plus headers over ``limits.max_header_bytes``."""
    return Refused(
        431,
        f"request line and headers exceed the limit of {limits.max_header_bytes} bytes "
        "(431 Request Header Fields Too Large)",
    )


def check_head(
    headers: list[tuple[bytes, bytes]], target: bytes, http_version: str, limits: HttpLimits
) -> Refused | None:
    """The refusal for a parsed request head (names lower-cased), or None to serve it.

    Runs once per request, before kserve starts on it, so it is one pass over the few
    headers a request has.  llhttp has already refused malformed Content-Length values,
    duplicates and Content-Length together with chunked.
    """
    if http_version not in _VERSIONS:
        return Refused(505, f"HTTP version {http_version[:10]} is not supported: send HTTP/1.1")
    if len(target) > limits.max_target_bytes:
        return Refused(
            414, f"request target of {len(target)} bytes exceeds the limit of {limits.max_target_bytes} bytes"
        )
    if len(headers) > limits.max_header_count:
        return Refused(
            431,
            f"{len(headers)} header fields exceed the limit of {limits.max_header_count} (431 Request "
            "Header Fields Too Large)",
        )
    hosts = 0
    for name, value in headers:
        if name == b"host":
            hosts += 1
        elif name == b"content-length":
            refusal = _check_content_length(value, limits)
            if refusal is not None:
                return refusal
        elif name == b"transfer-encoding":
            refusal = _check_transfer_encoding(value)
            if refusal is not None:
                return refusal
    if hosts == 0 and http_version == "1.1":
        return Refused(400, "missing Host header: every HTTP/1.1 request must carry one (RFC 9112, section 3.2)")
    if hosts > 1:
        return Refused(400, f"{hosts} Host headers: a request must carry exactly one (RFC 9112, section 3.2)")
    return None


def _check_content_length(value: bytes, limits: HttpLimits) -> Refused | None:
    """A declared body over the limit is refused now, not after it has been read."""
    try:
        length = int(value)  # llhttp admits digits only; this is a second wall
    except ValueError:
        return Refused(400, f"invalid Content-Length {value[:30].decode('latin-1')!r}")
    if length > limits.max_body_bytes:
        return Refused(413, f"request body of {length} bytes exceeds the limit of {limits.max_body_bytes} bytes")
    return None


def _check_transfer_encoding(value: bytes) -> Refused | None:
    """Only plain ``chunked`` is served (no compression codings)."""
    codings = [c.strip().lower() for c in value.decode("latin-1").split(",")]
    shown = value.decode("latin-1")[:40]
    if codings[-1] != "chunked":
        # RFC 9112 section 6.3: the body length cannot be determined -> 400, then close.
        return Refused(
            400,
            f"Transfer-Encoding {shown!r} does not end in chunked: the body length cannot be determined; "
            "send Content-Length or Transfer-Encoding: chunked",
        )
    if len(codings) > 1:
        # RFC 9112 section 6.1: a transfer coding the server does not understand -> 501.
        return Refused(501, f"Transfer-Encoding {shown!r} is not implemented: only chunked is accepted")
    return None


def refusal_for_parser_error(exc: BaseException, limits: HttpLimits) -> Refused:
    """llhttp's error (raised by httptools' ``feed_data``) -> the answer to give.

    A :class:`Refused` raised by a parser callback arrives as the ``__context__`` of
    httptools' ``HttpParserCallbackError`` and is answered as it is.  An overflowing
    length is a body over the limit (413); every other error is a malformed request
    (400), named by llhttp's own reason ("Invalid character in chunk size", "Duplicate
    Content-Length", "Invalid header token", ...).
    """
    context = exc.__context__
    if isinstance(context, Refused):
        return context
    reason = str(exc) or type(exc).__name__
    if reason in _OVERFLOW:
        return Refused(
            413, f"request body declared with {_OVERFLOW[reason]} exceeds the limit of {limits.max_body_bytes} bytes"
        )
    if context is not None:  # a callback of ours or uvicorn's failed: a bug, not the client's fault
        return Refused(500, "internal server error while reading the request (details in the server log)")
    return Refused(400, f"malformed HTTP request: {reason[:120]}; the connection is closed")
