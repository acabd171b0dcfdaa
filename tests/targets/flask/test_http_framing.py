"""targets.flask.server.framing: where a request ends and which framing is refused, byte by byte.

Quick (no sockets): the buffering gunicorn worker feeds the framer whatever ``recv``
returns, so every request is also fed one byte at a time and must end at the same byte
with the same verdict.
"""

from __future__ import annotations

import pytest

from targets.flask.server.framing import FramingError, Limits, RequestFramer

LIMITS = Limits(max_body_bytes=1000)
HOST = b"Host: x\r\n"


def _feed(data: bytes, *, bytewise: bool = False, limits: Limits = LIMITS) -> RequestFramer:
    framer = RequestFramer(limits)
    if bytewise:
        for i in range(len(data)):
            framer.feed(data[i : i + 1])
    else:
        framer.feed(data)
    return framer


def _refused(data: bytes, limits: Limits = LIMITS) -> FramingError:
    """The verdict must be the same whichever way the bytes arrive."""
    verdicts = []
    for bytewise in (False, True):
        with pytest.raises(FramingError) as info:
            _feed(data, bytewise=bytewise, limits=limits)
        verdicts.append((info.value.status, info.value.message))
    assert verdicts[0] == verdicts[1]
    return info.value


@pytest.mark.parametrize("bytewise", [False, True])
def test_content_length_request_ends_at_its_last_byte(bytewise: bool) -> None:
    request = b"POST /predict HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\n\r\nhello"
    framer = _feed(request, bytewise=bytewise)
    assert framer.done and framer.request_bytes() == request
    partial = _feed(request[:-1], bytewise=bytewise)
    assert partial.head_done and not partial.done


@pytest.mark.parametrize("bytewise", [False, True])
def test_chunked_request_with_extension_and_trailer(bytewise: bool) -> None:
    request = (
        b"POST /p HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    framer = _feed(request + b"GET /next HTTP/1.1\r\n", bytewise=bytewise)  # a pipelined request is not served
    assert framer.done and framer.request_bytes() == request


def test_request_without_body_and_leading_empty_lines() -> None:
    framer = _feed(b"\r\n\r\nGET /healthz HTTP/1.1\r\n" + HOST + b"\r\n")
    assert framer.done and framer.request_bytes() == b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n"
    assert _feed(b"GET / HTTP/1.0\r\n\r\n").done  # HTTP/1.0 needs no Host


def test_expect_100_continue_is_flagged_and_dropped() -> None:
    framer = _feed(b"POST /p HTTP/1.1\r\n" + HOST + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert framer.expect_continue and not framer.done
    framer.feed(b"{}")
    assert framer.request_bytes() == b"POST /p HTTP/1.1\r\n" + HOST + b"Content-Length: 2\r\n\r\n{}"
    assert _refused(b"POST /p HTTP/1.1\r\n" + HOST + b"Expect: teapot\r\n\r\n").status == 417


@pytest.mark.parametrize(
    ("request_bytes", "status", "needle"),
    [
        # Size: refused when announced, before any body byte.
        (b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", 413, "limit is 1000"),
        (b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 1" + b"0" * 30 + b"\r\n\r\n", 413, "too large"),
        (b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % 2**80, 413, "too large"),
        (
            b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n" + b"a" * 1000 + b"\r\n1\r\n",
            413,
            "too large",
        ),
        # Chunk framing.
        (b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "chunk size 'zz'"),
        (b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n", 400, "chunk size '-5'"),
        (b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}}}\r\n", 400, "chunk"),
        (b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;=\r\n", 400, "chunk extension"),
        (b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 5000, 400, "too long"),
        # Body framing headers.
        (b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n", 400, "content-length"),
        (b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "content-length"),
        (b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n", 400, "content-length"),
        (b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "together"),
        (b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400, "transfer-encoding"),
        (b"POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "transfer-encoding"),
        # Request line and headers.
        (b"HELLO\r\n\r\n", 400, "request line"),
        (b"GE(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "request line"),
        (b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", 400, "HTTP version"),
        (b"GET / HTTP/1.1\r\n\r\n", 400, "Host"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "Host"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", 400, "folding"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", 400, "malformed header"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n", 400, "malformed header"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400, "control characters"),
        (b"GET / HTTP/1.1\nHost: x\n\n", 400, "CRLF"),
        (b"GET /" + b"a" * 9000, 414, "request line too long"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40_000, 431, "headers too large"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-H: v\r\n" * 101 + b"\r\n", 431, "too many header"),
    ],
)
def test_refusals(request_bytes: bytes, status: int, needle: str) -> None:
    error = _refused(request_bytes)
    assert error.status == status
    assert needle.lower() in error.message.lower(), error.message
    assert "0x" not in error.message and "object" not in error.message


def test_client_bytes_in_messages_are_short_and_printable() -> None:
    error = _refused(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"\xfe\xff" * 50 + b"\r\n\r\n")
    assert error.status == 400
    assert "\\x" not in error.message and "..." in error.message and len(error.message) < 120


def test_request_bytes_before_completion_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not complete"):
        _feed(b"GET / HTTP/1.1\r\n").request_bytes()
