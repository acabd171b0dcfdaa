"""Error classification: the one place where a request's outcome gets its error class.

Why one module: every engine (httpx, aiohttp, fast) must classify the same failure the
same way, or comparing engines -- and runs made with different engines -- would compare
their exception hierarchies instead of the targets.  Engines map their library's
exceptions to an :class:`~loadgen.engine.EngineError` with the helpers here and return
every HTTP status as a :class:`~loadgen.engine.Response`; :func:`classify_response` then
turns a response into ``("", digit)`` or an error class, for all engines alike.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from loadgen.samples import Answer

__all__ = [
    "DETAIL_LIMIT",
    "AnswerOutcome",
    "Outcome",
    "classify_answer",
    "classify_os_error",
    "classify_response",
    "classify_status",
    "describe_exception",
    "snippet",
]

DETAIL_LIMIT = 200  # characters of detail kept per record: enough to diagnose, not a dump

_REFUSED_ERRNOS = {errno.ECONNREFUSED}
_RESET_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ESHUTDOWN, errno.ENOTCONN}
_TIMEOUT_ERRNOS = {errno.ETIMEDOUT}


class Outcome(NamedTuple):
    """One response's verdict; ``error == ""`` means success."""

    error: str
    detail: str
    predicted: int  # -1 when no digit was decoded


def snippet(data: bytes | str, limit: int = DETAIL_LIMIT) -> str:
    """A printable, bounded excerpt of a body or message for ``error_detail``."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes | bytearray) else str(data)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_exception(exc: BaseException) -> str:
    """``TypeName: message`` (bounded); an empty message is filled from the cause chain.

    Client libraries wrap and re-wrap (httpx.ReadError <- httpcore.ReadError <-
    ConnectionResetError), often with empty messages; the first non-empty one is kept.
    """
    message = str(exc)
    seen = {id(exc)}
    cause = exc.__cause__ or exc.__context__
    while not message and cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if not isinstance(cause, asyncio.CancelledError) and str(cause):
            message = f"{type(cause).__name__}: {cause}"
        cause = cause.__cause__ or cause.__context__
    return snippet(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


def classify_os_error(exc: BaseException) -> str | None:
    """Error class of a low-level failure, or None when it is not recognisably one.

    Walks the ``__cause__``/``__context__`` chain because client libraries wrap the
    OS error (httpx's ConnectError wraps ConnectionRefusedError, aiohttp's
    ClientConnectorError carries it as ``os_error``).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "refused"
        if isinstance(current, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
            return "reset"
        if isinstance(current, TimeoutError | asyncio.TimeoutError):
            return "timeout"
        if isinstance(current, OSError) and current.errno is not None:
            if current.errno in _REFUSED_ERRNOS:
                return "refused"
            if current.errno in _RESET_ERRNOS:
                return "reset"
            if current.errno in _TIMEOUT_ERRNOS:
                return "timeout"
        nxt = getattr(current, "os_error", None)  # aiohttp.ClientConnectorError
        if not isinstance(nxt, BaseException):
            nxt = current.__cause__ or current.__context__
        current = nxt
    return None


def classify_status(status: int) -> str:
    """HTTP status -> error class; ``""`` for 2xx (the body still has to decode)."""
    if 200 <= status < 300:
        return ""
    if 400 <= status < 500:
        return "http_4xx"
    if 500 <= status < 600:
        return "http_5xx"
    return "http_other"


def classify_response(status: int, body: bytes, decode: Callable[[int, bytes], int]) -> Outcome:
    """Classify one HTTP response and, for a 2xx, decode it into a digit.

    ``decode`` is the target's ``decode``; *any* exception from it (not only
    DecodeError: an adapter may trip over a body it never expected) makes the request
    ``undecodable``, as does a result that is not a digit 0..9.  A wrong digit is *not*
    an error: it is recorded as predicted and lowers accuracy.
    """
    error = classify_status(status)
    if error:
        return Outcome(error, snippet(f"HTTP {status}: ".encode() + body[:DETAIL_LIMIT]), -1)
    try:
        predicted = decode(status, body)
    except Exception as exc:
        return Outcome("undecodable", describe_exception(exc), -1)
    if isinstance(predicted, bool) or not isinstance(predicted, int) or not 0 <= predicted <= 9:
        # numpy integers are fine; anything else is the adapter's bug, recorded, not raised
        try:
            as_int = int(predicted)
        except (TypeError, ValueError):
            as_int = -1
        if isinstance(predicted, bool) or as_int != predicted or not 0 <= as_int <= 9:
            return Outcome("undecodable", snippet(f"decode returned {predicted!r}, not a digit 0..9"), -1)
        predicted = as_int
    return Outcome("", "", int(predicted))


class AnswerOutcome(NamedTuple):
    """One response's verdict under a sample's check; ``error == ""`` means success."""

    error: str
    detail: str
    predicted: int  # -1 when no digit or class was decoded
    agree: int  # 1 agreed, 0 disagreed, -1 not checked (always -1 for an error)


def classify_answer(status: int, body: bytes, check: Callable[[int, bytes], Answer]) -> AnswerOutcome:
    """Classify one HTTP response and, for a 2xx, check it with the sample's ``check``.

    As :func:`classify_response`: *any* exception from ``check`` makes the request
    ``undecodable`` with the exception as its detail (a malformed answer: wrong shape or
    dtype, not JSON); a well-formed answer that disagrees is a success with ``agree`` 0.
    """
    error = classify_status(status)
    if error:
        return AnswerOutcome(error, snippet(f"HTTP {status}: ".encode() + body[:DETAIL_LIMIT]), -1, -1)
    try:
        answer = check(status, body)
    except Exception as exc:
        return AnswerOutcome("undecodable", describe_exception(exc), -1, -1)
    return AnswerOutcome("", "", int(answer.predicted), int(answer.agree))
