"""Decides where one HTTP/1.1 request ends, and whether its framing is acceptable -- before any app runs.

Why this exists: a gunicorn *sync* worker reads a request with blocking ``recv`` calls
while the request is being handled, so one client that sends slowly (or declares a body
it never sends, or a chunk of 2**80 bytes) holds the only worker, and a chunked body is
only checked when the app reads it (too late to refuse it cleanly).
:class:`targets.flask.server.worker.BufferingSyncWorker` instead reads every request in full
on a non-blocking socket first; this module is its pure, socket-free half: feed it bytes
as they arrive and it says when a whole request is in, or raises :class:`FramingError`
with the 4xx to answer, as early as the bytes allow:

* request line over ``max_request_line`` -> 414; head over ``max_head_bytes`` or more than
  ``max_headers`` header lines -> 431;
* a malformed request line, header line (obs-fold, bare LF, control characters, a
  space before the colon), a missing or repeated Host (HTTP/1.1), an invalid or repeated
  Content-Length, Content-Length together with Transfer-Encoding, any transfer coding
  other than ``chunked``, a bad chunk-size line or chunk terminator -> 400;
* a declared Content-Length over ``max_body_bytes``, or chunks whose sizes add up past
  it -> 413 at once, without reading (or waiting for) the body; a body is never cut;
* an ``Expect`` other than ``100-continue`` -> 417.

The accepted request is handed on byte for byte (gunicorn parses it again; an
``Expect: 100-continue`` line is dropped because the worker has answered it already).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FramingError", "Limits", "RequestFramer"]

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN)
_QUOTED = rb'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
#: RFC 9112 section 7.1.1: ``*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )``.
_CHUNK_EXT_RE = re.compile(
    rb"(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?)*"
)
_HEX_RE = re.compile(rb"[0-9A-Fa-f]+")
_VERSION_RE = re.compile(rb"HTTP/1\.[01]")
#: Field values: visible ASCII, obs-text, space and tab (RFC 9110 section 5.5).
_BAD_VALUE_RE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_TARGET_BAD_RE = re.compile(rb"[\x00-\x20\x7f]")


class FramingError(Exception):
    """A request refused on its framing: ``status`` (4xx) and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    """What one request may be.  Defaults follow nginx (8 KiB line, 32 KiB head) and gunicorn (100 headers)."""

    max_body_bytes: int = 4 * 1024 * 1024
    max_request_line: int = 8 * 1024
    max_head_bytes: int = 32 * 1024
    max_headers: int = 100
    max_chunk_line: int = 4 * 1024
    max_trailer_bytes: int = 8 * 1024


def _shown(raw: bytes, limit: int = 40) -> str:
    """Client bytes quoted for an error message: printable, short, never a Python repr of an object."""
    text = raw[:limit].decode("latin-1")
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)
    return f"'{text}{'...' if len(raw) > limit else ''}'"


_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _TRAILERS, _DONE = range(6)


class RequestFramer:
    """Incremental framing of ONE request: call :meth:`feed` with each piece received.

    After a feed, :attr:`done` says the whole request is in (:meth:`request_bytes`);
    :attr:`expect_continue` says the client waits for ``100 Continue`` before its body.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._buf = bytearray()
        self._state = _HEAD
        self._pos = 0  # parse position in _buf
        self._head_end = 0
        self._head_lines: list[bytes] = []
        self._drop_expect = False
        self._remaining = 0  # body bytes still due (Content-Length) or of the current chunk
        self._decoded = 0  # body bytes so far (chunk data, without framing)
        self._end = 0
        self.method = b""
        self.expect_continue = False

    # -- state -----------------------------------------------------------------------
    @property
    def received(self) -> int:
        return len(self._buf)

    @property
    def head_done(self) -> bool:
        return self._state != _HEAD

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def request_bytes(self) -> bytes:
        """The whole request as the app's server should parse it (only after :attr:`done`)."""
        if not self.done:
            raise RuntimeError("the request is not complete")
        if not self._drop_expect:
            return bytes(self._buf[: self._end])
        lines = [ln for ln in self._head_lines if not ln.lower().startswith(b"expect:")]
        return b"\r\n".join(lines) + b"\r\n\r\n" + bytes(self._buf[self._head_end : self._end])

    # -- parsing ---------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Take the next bytes from the client; raises :class:`FramingError` on a refusal."""
        if self._state == _DONE:
            return  # bytes after the request (pipelining) are not served: one request per connection
        self._buf += data
        if self._state == _HEAD:
            self._parse_head()
        if self._state == _LENGTH:
            if len(self._buf) - self._head_end >= self._remaining:
                self._end = self._head_end + self._remaining
                self._state = _DONE
        while self._state in (_CHUNK_SIZE, _CHUNK_DATA, _TRAILERS):
            if not self._step_chunked():
                break

    def _parse_head(self) -> None:
        lim = self.limits
        while self._buf.startswith(b"\r\n"):  # RFC 9112 2.2: empty lines before the request line
            del self._buf[:2]
        line_end = self._buf.find(b"\n")
        if (line_end < 0 and len(self._buf) > lim.max_request_line) or line_end > lim.max_request_line:
            raise FramingError(414, f"request line too long: the limit is {lim.max_request_line} bytes")
        end = self._buf.find(b"\r\n\r\n")
        bare = self._buf.find(b"\n\n")
        if bare >= 0 and (end < 0 or bare < end):
            raise FramingError(400, "malformed request head: lines must end with CRLF")
        if end < 0:
            if len(self._buf) > lim.max_head_bytes:
                raise FramingError(431, f"request headers too large: the limit is {lim.max_head_bytes} bytes")
            return
        if end + 4 > lim.max_head_bytes:
            raise FramingError(431, f"request headers too large: the limit is {lim.max_head_bytes} bytes")
        head = bytes(self._buf[:end])
        if head.count(b"\n") != head.count(b"\r\n"):
            raise FramingError(400, "malformed request head: lines must end with CRLF")
        self._head_lines = head.split(b"\r\n")
        self._head_end = end + 4
        self._check_head(self._head_lines)

    def _check_head(self, lines: list[bytes]) -> None:
        lim = self.limits
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not _TOKEN_RE.fullmatch(parts[0]) or not parts[1] or _TARGET_BAD_RE.search(parts[1]):
            raise FramingError(400, f"malformed request line {_shown(lines[0])}: expected 'METHOD /path HTTP/1.1'")
        method, _target, version = parts
        if not _VERSION_RE.fullmatch(version):
            raise FramingError(400, f"unsupported HTTP version {_shown(version)}: use HTTP/1.1 or HTTP/1.0")
        self.method = method
        fields = lines[1:]
        if len(fields) > lim.max_headers:
            raise FramingError(431, f"too many header fields: {len(fields)} > {lim.max_headers}")
        values: dict[bytes, list[bytes]] = {}
        for line in fields:
            if line[:1] in (b" ", b"\t"):
                raise FramingError(400, "obsolete header line folding is not accepted")
            name, colon, value = line.partition(b":")
            if not colon or not _TOKEN_RE.fullmatch(name):
                raise FramingError(400, f"malformed header line {_shown(line)}")
            value = value.strip(b" \t")
            if _BAD_VALUE_RE.search(value):
                raise FramingError(400, f"header {_shown(name)} contains control characters")
            values.setdefault(name.lower(), []).append(value)
        if version == b"HTTP/1.1" and len(values.get(b"host", [])) != 1:
            raise FramingError(400, "an HTTP/1.1 request needs exactly one Host header")
        self._body_framing(values, version)
        expect = values.get(b"expect", [])
        if expect:
            if len(expect) != 1 or expect[0].lower() != b"100-continue":
                raise FramingError(417, f"unsupported Expect {_shown(b', '.join(expect))}: only 100-continue")
            self._drop_expect = True
            self.expect_continue = self._state != _DONE and version == b"HTTP/1.1"

    def _body_framing(self, values: dict[bytes, list[bytes]], version: bytes) -> None:
        lim = self.limits
        lengths = values.get(b"content-length", [])
        codings = values.get(b"transfer-encoding", [])
        if codings:
            if lengths:
                raise FramingError(400, "Content-Length and Transfer-Encoding together are ambiguous: send one")
            if version != b"HTTP/1.1" or len(codings) != 1 or codings[0].lower() != b"chunked":
                raise FramingError(400, f"unsupported Transfer-Encoding {_shown(b', '.join(codings))}: only chunked")
            self._state = _CHUNK_SIZE
            self._pos = self._head_end
            return
        if not lengths:
            self._end, self._state = self._head_end, _DONE
            return
        if len(lengths) != 1 or not lengths[0].isdigit():
            raise FramingError(400, f"invalid Content-Length {_shown(b', '.join(lengths))}: one decimal number")
        digits = lengths[0].lstrip(b"0") or b"0"
        if len(digits) > 18 or int(digits) > lim.max_body_bytes:
            raise FramingError(413, f"body too large: the limit is {lim.max_body_bytes} bytes")
        self._remaining = int(digits)
        self._state = _LENGTH

    def _step_chunked(self) -> bool:
        """Advance one chunked-body step; False when more bytes are needed."""
        lim, buf = self.limits, self._buf
        if self._state == _CHUNK_SIZE:
            eol = buf.find(b"\r\n", self._pos)
            if eol < 0:
                if len(buf) - self._pos > lim.max_chunk_line:
                    raise FramingError(400, "invalid chunk: chunk-size line too long")
                return False
            line = bytes(buf[self._pos : eol])
            size_part, ext = line, b""
            semi = line.find(b";")
            if semi >= 0:
                size_part, ext = line[:semi], line[semi:]
            size_part = size_part.rstrip(b" \t")
            if not _HEX_RE.fullmatch(size_part):
                raise FramingError(400, f"invalid chunk size {_shown(size_part)}: expected hexadecimal digits")
            if ext and not _CHUNK_EXT_RE.fullmatch(ext):
                raise FramingError(400, "invalid chunk extension")
            digits = size_part.lstrip(b"0") or b"0"
            if len(digits) > 15 or self._decoded + int(digits, 16) > lim.max_body_bytes:
                raise FramingError(413, f"body too large: the limit is {lim.max_body_bytes} bytes")
            size = int(digits, 16)
            self._pos = eol + 2
            if size == 0:
                self._state = _TRAILERS
            else:
                self._remaining, self._state = size, _CHUNK_DATA
            return True
        if self._state == _CHUNK_DATA:
            need = self._pos + self._remaining + 2
            if len(buf) < need:
                return False
            if buf[need - 2 : need] != b"\r\n":
                raise FramingError(400, "invalid chunk: chunk data longer than its size, or not followed by CRLF")
            self._decoded += self._remaining
            self._pos, self._state = need, _CHUNK_SIZE
            return True
        # Trailer section: an empty line, or header lines and an empty line.
        if buf[self._pos : self._pos + 2] == b"\r\n":
            self._end, self._state = self._pos + 2, _DONE
            return True
        end = buf.find(b"\r\n\r\n", self._pos)
        if end < 0:
            if len(buf) - self._pos > lim.max_trailer_bytes:
                raise FramingError(431, f"chunked trailers too large: the limit is {lim.max_trailer_bytes} bytes")
            return False
        for line in bytes(buf[self._pos : end]).split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if not colon or not _TOKEN_RE.fullmatch(name) or _BAD_VALUE_RE.search(value.strip(b" \t")):
                raise FramingError(400, f"malformed trailer line {_shown(line)}")
        self._end, self._state = end + 4, _DONE
        return True
