"""Fast tests of the KServe stand-in's HTTP layer: uvicorn's httptools protocol with limits.

Bytes are fed to :class:`targets.kserve.server.http_protocol.GuardedHttpToolsProtocol` through a fake
transport around a tiny ASGI app (no socket, no kserve, no TensorFlow), so each rule is
pinned down exactly: what is refused, with which status and JSON message, that the
refusal closes the connection and comes after earlier pipelined answers, and that the
app never runs for a refused head (or sees a disconnect when the framing breaks inside a
body it is reading).  The rules alone (pure functions) are tested at the end.  What real
stand-ins answer on a socket is tests/targets/test_bad_input.py (slow).
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from targets.kserve.server.http_rules import HttpLimits, Refused, check_head, refusal_for_parser_error


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = self.eof = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "written after close"
        self.out += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@dataclass
class Served:
    """What one fed connection produced."""

    out: bytes
    transport: _Transport
    paths: list[str] = field(default_factory=list)  # requests the app started on
    bodies: list[bytes] = field(default_factory=list)  # bodies it read whole
    disconnects: int = 0  # requests whose body ended in a disconnect

    def responses(self) -> list[tuple[int, bytes, bytes]]:
        """(status, lower-cased head, body) of each response in ``out``, in order."""
        found, rest = [], self.out
        while rest:
            head, _, rest = rest.partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
            found.append((status, head.lower(), rest[:length]))
            rest = rest[length:]
        return found

    def answers(self) -> list[tuple[int, bytes]]:
        """(status, body) of each response, in order."""
        return [(status, body) for status, _, body in self.responses()]

    def refusal(self) -> tuple[int, str]:
        """The last answer, which must be a JSON refusal closing the connection."""
        status, head, body = self.responses()[-1]
        assert b"connection: close" in head and b"content-type: application/json" in head, head
        assert self.transport.eof, "a refusal half-closes, so the client reads it instead of a reset"
        return status, json.loads(body)["error"]


def _serve(chunks: list[bytes], limits: HttpLimits | None = None) -> Served:
    """Feed ``chunks`` (one read each) to the guarded protocol around an app that reads bodies."""
    import uvicorn
    from uvicorn.server import ServerState

    from targets.kserve.server.http_protocol import GuardedHttpToolsProtocol, guard_http

    served = Served(b"", _Transport())

    async def app(scope, receive, send):
        served.paths.append(scope["path"])
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                served.disconnects += 1
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        served.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    async def run() -> None:
        config = uvicorn.Config(app, log_config=None, lifespan="off")
        guard_http(config, limits or HttpLimits())
        config.load()
        assert config.http_protocol_class is GuardedHttpToolsProtocol
        protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
        protocol.connection_made(served.transport)
        for chunk in chunks:
            protocol.data_received(chunk)
            await asyncio.sleep(0.01)  # let the app tasks run (no real I/O: scheduling only)
        await asyncio.sleep(0.01)

    asyncio.run(run())
    served.out = bytes(served.transport.out)
    return served


def _post(body: bytes, *extra: bytes, path: bytes = b"/a", host: bytes = b"Host: x\r\n") -> bytes:
    return (
        b"POST "
        + path
        + b" HTTP/1.1\r\n"
        + host
        + b"Content-Type: application/json\r\n"
        + b"".join(extra)
        + b"Content-Length: %d\r\n\r\n" % len(body)
        + body
    )


def _chunked(*pieces: bytes) -> bytes:
    return b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + b"".join(pieces)


# -- valid requests are served as before ------------------------------------------------------
def test_valid_requests_are_served_keep_alive_and_pipelined() -> None:
    get = b"GET /g HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 900 + b"\r\n\r\n"
    served = _serve([get[:500], get[500:], _post(b'{"a": 1}') + _chunked(b"2\r\n{}\r\n0\r\n\r\n")])
    assert [a[0] for a in served.answers()] == [200, 200, 200]
    assert served.paths == ["/g", "/a", "/a"] and served.bodies == [b"", b'{"a": 1}', b"{}"]
    assert not served.transport.eof and not served.transport.closed


def test_http_1_0_without_host_is_served() -> None:
    served = _serve([b"GET /a HTTP/1.0\r\n\r\n"])
    assert served.answers()[0][0] == 200 and served.paths == ["/a"]


# -- the request-head byte limit (431 before parsing) -------------------------------------------
@pytest.mark.parametrize(
    "chunks",
    [
        [b"GET /a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000],  # one huge header, in one read
        [b"GET /a HTTP/1.1\r\nHost: x\r\n"] + [b"X-H: " + b"b" * 100 + b"\r\n"] * 12,  # many small ones
        [b"GET /a?" + b"q" * 2000 + b" HTTP/1.1\r\n"],  # a huge request line
        [b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /b HTTP/1.1\r\nX-Big: " + b"a" * 3000, b"a" * 3000],
    ],
    ids=["one-header", "many-headers", "request-line", "second-keep-alive-request"],
)
def test_oversized_head_gets_431_json_and_is_not_parsed(chunks: list[bytes]) -> None:
    served = _serve(chunks + [b"c" * 10000, b"\r\n\r\n"], HttpLimits(max_header_bytes=1024))
    status, message = served.refusal()
    assert status == 431 and "1024 bytes" in message
    assert "/b" not in served.paths and "/a" not in served.paths[1:]


# -- heads refused when complete, before the app starts ----------------------------------------
@pytest.mark.parametrize(
    ("data", "status", "needle"),
    [
        (_post(b"{}", host=b""), 400, "missing Host header"),
        (_post(b"{}", host=b"Host: x\r\nHost: y\r\n"), 400, "2 Host headers"),
        (b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413, "5000 bytes exceeds the limit of 4096"),
        (_post(b"{}", *[b"X-H%d: v\r\n" % i for i in range(20)]), 431, "23 header fields exceed the limit of 10"),
        (_post(b"{}", path=b"/a?" + b"q" * 300), 414, "request target of 303 bytes exceeds the limit of 256"),
        (b"GET /a HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP version 2.0"),
        (b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n{}", 400, "does not end in chunked"),
        (_chunked(b"0\r\n\r\n").replace(b": chunked", b": gzip, chunked"), 501, "not implemented"),
    ],
    ids=[
        "no-host",
        "two-hosts",
        "content-length-over-limit",
        "too-many-headers",
        "long-target",
        "http-2.0",
        "te-gzip",
        "te-gzip-chunked",
    ],
)
def test_bad_head_is_refused_before_the_app_runs(data: bytes, status: int, needle: str) -> None:
    limits = HttpLimits(max_body_bytes=4096, max_header_count=10, max_target_bytes=256)
    served = _serve([data], limits)
    got_status, message = served.refusal()
    assert got_status == status and needle in message, message
    assert served.paths == [], "the app must not start on a refused head"


def test_content_length_over_the_limit_is_answered_without_waiting_for_the_body() -> None:
    served = _serve([b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 60000000\r\n\r\n"])  # and nothing more
    assert served.refusal()[0] == 413 and served.paths == []


# -- framing errors llhttp finds: JSON, named by its reason ---------------------------------------
@pytest.mark.parametrize(
    ("data", "status", "needle"),
    [
        (_chunked(b"zz\r\n{}\r\n0\r\n\r\n"), 400, "chunk size"),
        (_chunked(b"-5\r\n{}\r\n0\r\n\r\n"), 400, "chunk size"),
        (_chunked(b"2\r\n{}}}}\r\n0\r\n\r\n"), 400, "chunk data"),
        (_chunked(b"%x\r\n{}\r\n" % 2**80), 413, "chunk size of 2**64 bytes or more exceeds the limit"),
        (_post(b"{}").replace(b"Content-Length: 2", b"Content-Length: 12abc"), 400, "Content-Length"),
        (_post(b"{}").replace(b"Content-Length: 2", b"Content-Length: -1"), 400, "Content-Length"),
        (
            _post(b"{}").replace(b"Content-Length: 2", b"Content-Length: 1" + b"0" * 30),
            413,
            "Content-Length of 2**64 bytes or more exceeds the limit",
        ),
        (_post(b"{}", b"Content-Length: 3\r\n"), 400, "Duplicate Content-Length"),
        (_post(b"{}", b"Transfer-Encoding: chunked\r\n"), 400, "Transfer-Encoding"),
        (b"HELLO THERE\r\n\r\n", 400, "method"),
        (b"PO(ST /a HTTP/1.1\r\nHost: x\r\n\r\n", 400, "method"),
        (b"GET /a HTTP/9.9\r\nHost: x\r\n\r\n", 400, "HTTP version"),
        (_post(b"{}", b"Bad Name: x\r\n"), 400, "header token"),
        (_post(b"{}", b"X-Folded: a\r\n  continued\r\n"), 400, "whitespace"),
    ],
    ids=[
        "chunk-zz",
        "chunk-negative",
        "chunk-data-too-long",
        "chunk-2e80",
        "cl-not-a-number",
        "cl-negative",
        "cl-10e30",
        "cl-twice",
        "cl-and-chunked",
        "garbage-line",
        "bad-method",
        "http-9.9",
        "header-space",
        "obs-fold",
    ],
)
def test_framing_error_is_a_json_refusal_naming_it(data: bytes, status: int, needle: str) -> None:
    served = _serve([data])
    got_status, message = served.refusal()
    assert got_status == status and needle.lower() in message.lower(), message
    assert len(served.answers()) == 1, "only the refusal: an abandoned request's answer is not written"
    assert served.bodies == [], "no request body reached the app whole"


def test_framing_error_inside_a_body_being_read_disconnects_that_request() -> None:
    head = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    served = _serve([head + b"2\r\n{}\r\n", b"zz\r\n"])  # the app is waiting for more body
    assert served.paths == ["/a"] and served.disconnects == 1
    assert [a[0] for a in served.answers()] == [400]


def test_refusal_comes_after_the_answers_to_earlier_pipelined_requests() -> None:
    served = _serve([_post(b'{"n": 1}') + _post(b'{"n": 2}') + _chunked(b"zz\r\n")])
    assert [a[0] for a in served.answers()] == [200, 200, 400]
    assert served.bodies == [b'{"n": 1}', b'{"n": 2}']
    assert served.transport.eof


def test_what_follows_a_refusal_is_discarded_unparsed() -> None:
    served = _serve([b"HELLO\r\n\r\n", b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n"])
    assert [a[0] for a in served.answers()] == [400] and served.paths == []


# -- the rules alone ---------------------------------------------------------------------------------
def test_check_head_accepts_an_ordinary_request() -> None:
    headers = [(b"host", b"x"), (b"content-type", b"application/json"), (b"content-length", b"4096")]
    assert check_head(headers, b"/v1/models/mnist:predict", "1.1", HttpLimits(max_body_bytes=4096)) is None


def test_a_refusal_is_a_complete_json_answer() -> None:
    data = Refused(413, 'too "big"').response()
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 413 ") and b"connection: close" in head
    assert json.loads(body) == {"error": 'too "big"'} and b"content-length: %d" % len(body) in head


def test_an_error_in_a_callback_that_is_not_a_refusal_is_a_500() -> None:
    import httptools

    exc = httptools.HttpParserCallbackError("the on_headers_complete callback failed")
    exc.__context__ = KeyError("bug")
    refusal = refusal_for_parser_error(exc, HttpLimits())
    assert refusal.status == 500 and "bug" not in refusal.message


@pytest.mark.parametrize("field_name", ["max_header_bytes", "max_body_bytes", "max_header_count", "max_target_bytes"])
def test_limits_reject_nonsense(field_name: str) -> None:
    with pytest.raises(ValueError, match=field_name):
        HttpLimits(**{field_name: 0})
