"""The data behind the bad-input suite (tests/targets/test_bad_input.py): what to send, what to expect.

Why a table: every stand-in must survive the same garbage, so a kind of bad input is one
:class:`BadCase` here -- a builder for the exact bytes and, per server family, the
expected answer -- and the suite applies each to every target.  Two families:
``flask`` (greene-linserv, k8s-ibm: ``targets/flask/server/app.py`` under gunicorn) and
``kserve`` (kubeflow-gcp, kubeflow-ibm: the KServe ModelServer).  An expectation of
``None`` means the kind does not apply to that family (e.g. KServe V2 bodies to the
Flask app, which has no V2 endpoint).

Expectations are strict: an exact status (or a small set where the RFCs allow either),
a JSON object with a non-empty ``"error"`` message that contains ``needle``
(case-insensitive), and, only where :attr:`Expect.close_ok` says so, a connection closed
without an answer instead.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from tests.support.raw_http import http_request

__all__ = ["CASES", "MAX_BODY", "BadCase", "Ctx", "Expect", "Send"]

#: Both families' request-body limit (targets.flask.server.app.DEFAULT_MAX_BODY,
#: targets.kserve.server.main.DEFAULT_MAX_BODY_BYTES): 4 MiB.
MAX_BODY = 4 * 1024 * 1024


@dataclass(frozen=True)
class Expect:
    """The answer one family must give: a status in ``statuses`` with a JSON error."""

    statuses: tuple[int, ...]
    needle: str = ""
    close_ok: bool = False  # a close without any answer is also acceptable


@dataclass(frozen=True)
class Send:
    """The bytes to write (lazily, piece by piece) and how long to wait for the end."""

    pieces: Callable[[], Iterator[bytes]]
    timeout: float = 10.0


@dataclass(frozen=True)
class Ctx:
    """What builders need about one running target."""

    family: str  # "flask" or "kserve"
    host: str
    port: int
    predict_path: str
    valid_body: bytes  # the target's own valid predict body (JSON)
    v2_path: str = ""  # KServe's V2 infer path (served by both kserve targets)
    model_name: str = "mnist"
    images: dict[str, bytes] = field(default_factory=dict)

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"

    def post(
        self, path: str, body: bytes, content_type: str = "application/json", extra: tuple[tuple[str, str], ...] = ()
    ) -> Send:
        """A well-framed POST (Host, Content-Type, Content-Length) of ``body``."""
        headers = [("Host", self.authority), ("Content-Type", content_type), ("Content-Length", str(len(body)))]
        data = http_request("POST", path, [*headers, *extra, ("Connection", "close")], body)
        return Send(lambda: iter([data]))

    def predict(self, body: bytes, content_type: str = "application/json") -> Send:
        return self.post(self.predict_path, body, content_type)

    def raw(self, *pieces: bytes, timeout: float = 10.0) -> Send:
        return Send(lambda: iter(pieces), timeout)


# -- bodies ------------------------------------------------------------------------------
def _instances(ctx: Ctx) -> list:
    return json.loads(ctx.valid_body)["instances"]


def _with_pixel(ctx: Ctx, literal: str) -> bytes:
    """The valid body with its first pixel replaced by a raw JSON literal."""
    doc = json.loads(ctx.valid_body)
    doc["instances"][0][0][0] = "@@PIXEL@@"
    return json.dumps(doc, separators=(",", ":")).replace('"@@PIXEL@@"', literal).encode()


def _v2(ctx: Ctx, **override: object) -> bytes:
    flat = [v for row in _instances(ctx)[0] for v in row]
    tensor = {"name": "pixels", "shape": [1, 28, 28], "datatype": "FP32", "data": flat}
    tensor.update(override)
    return json.dumps({"inputs": [tensor]}).encode()


def _chunked_head(ctx: Ctx, path: str | None = None, content_type: str = "application/json") -> bytes:
    headers = [
        ("Host", ctx.authority),
        ("Content-Type", content_type),
        ("Transfer-Encoding", "chunked"),
        ("Connection", "close"),
    ]
    return http_request("POST", path or ctx.predict_path, headers)


def _prefix_plus_garbage_chunked(ctx: Ctx, total: int = 60 * 1024 * 1024) -> Send:
    """A valid JSON body padded to exactly the limit, then garbage: ~60 MB, chunked.

    A server that cuts the body at its limit and parses the prefix answers 200; it must
    answer 413.
    """
    valid = ctx.valid_body
    prefix = valid[:-1] + b" " * (MAX_BODY - len(valid)) + valid[-1:]
    piece = b"x" * (1024 * 1024)

    def pieces() -> Iterator[bytes]:
        yield _chunked_head(ctx)
        yield b"%x\r\n" % len(prefix) + prefix + b"\r\n"
        for _ in range((total - len(prefix)) // len(piece)):
            yield b"%x\r\n" % len(piece) + piece + b"\r\n"
        yield b"0\r\n\r\n"

    return Send(pieces, timeout=30.0)


def _oversized_content_length(ctx: Ctx) -> Send:
    valid = ctx.valid_body
    body = valid[:-1] + b" " * (2 * MAX_BODY) + valid[-1:]
    head = http_request(
        "POST",
        ctx.predict_path,
        [
            ("Host", ctx.authority),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ],
    )
    return Send(lambda: iter([head, body]), timeout=30.0)


def _length_only(ctx: Ctx, length: str) -> Send:
    """A head declaring ``length`` bytes of body, and then nothing: the client waits."""
    head = http_request(
        "POST",
        ctx.predict_path,
        [
            ("Host", ctx.authority),
            ("Content-Type", "application/json"),
            ("Content-Length", length),
            ("Connection", "close"),
        ],
    )
    return ctx.raw(head)


def _bad_chunk(ctx: Ctx, size_line: bytes) -> Send:
    return ctx.raw(_chunked_head(ctx) + size_line + b"\r\n" + b"{}" + b"\r\n0\r\n\r\n")


def _headers_then(
    ctx: Ctx,
    headers: list[tuple[str, str]],
    body: bytes | None = None,
    method: str = "POST",
    path: str | None = None,
    version: str = "HTTP/1.1",
) -> Send:
    body = ctx.valid_body if body is None else body
    return ctx.raw(http_request(method, path or ctx.predict_path, headers, body, version=version))


def _std_headers(ctx: Ctx, body: bytes | None = None) -> list[tuple[str, str]]:
    body = ctx.valid_body if body is None else body
    return [
        ("Host", ctx.authority),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("Connection", "close"),
    ]


def _multipart(filename: str, content_type: str, data: bytes, field_name: str = "file") -> tuple[bytes, str]:
    boundary = "servebench-bad-input-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


# -- images ------------------------------------------------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` x ``height`` grey pixels (a few hundred bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096, 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def make_images(digit: np.ndarray) -> dict[str, bytes]:
    """One MNIST digit (uint8 28x28), as a photo would be: dark ink on light paper, 4x larger."""
    from PIL import Image

    photo = Image.fromarray(255 - digit).resize((112, 112), Image.Resampling.NEAREST)
    out: dict[str, bytes] = {}
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"):
        buf = io.BytesIO()
        photo.save(buf, format=fmt)
        out[fmt.lower()] = buf.getvalue()
    out["svg"] = (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="28" height="28">'
        b'<text x="8" y="20">7</text></svg>'
    )
    out["png-truncated"] = out["png"][: len(out["png"]) // 2]
    # 100000 x 100000: Pillow's own bomb check (2 x MAX_IMAGE_PIXELS) fires at open;
    # 5000 x 5000: under Pillow's limit, over the app's (4096 x 4096).
    out["png-bomb-huge"] = png_bomb(100_000, 100_000)
    out["png-bomb-5000"] = png_bomb(5000, 5000)
    return out


# -- the cases ---------------------------------------------------------------------------
def E(*statuses: int, needle: str = "", close_ok: bool = False) -> Expect:
    return Expect(tuple(statuses), needle, close_ok)


@dataclass(frozen=True)
class BadCase:
    """One kind of bad input: its id, its group, its bytes, its expected answer per family."""

    id: str
    group: str
    build: Callable[[Ctx], Send]
    flask: Expect | None
    kserve: Expect | None

    def expect(self, family: str) -> Expect | None:
        return self.flask if family == "flask" else self.kserve


def _case(
    id: str, group: str, build: Callable[[Ctx], Send], flask: Expect | None, kserve: Expect | None = ...
) -> BadCase:
    """``kserve`` defaults to the same expectation as ``flask``."""
    return BadCase(id, group, build, flask, flask if kserve is ... else kserve)


def _v2_case(id: str, build: Callable[[Ctx], bytes], kserve: Expect) -> BadCase:
    """A V2 infer body: KServe only (the Flask app has no V2 endpoint)."""
    return BadCase(id, "v2", lambda c: c.post(c.v2_path, build(c)), None, kserve)


#: Over the body limit: the Flask app says "body too large: the limit is N bytes",
#: the KServe stand-in "request body ... exceeds the limit of N bytes".
TOO_LARGE = E(413, needle="too large")
OVER_LIMIT = E(413, needle="limit")

CASES: list[BadCase] = [
    # -- JSON syntax ---------------------------------------------------------------------
    _case(
        "json-truncated",
        "json",
        lambda c: c.predict(c.valid_body[: len(c.valid_body) // 2]),
        E(400, needle="malformed JSON"),
        E(400),
    ),
    _case(
        "json-trailing-garbage",
        "json",
        lambda c: c.predict(c.valid_body + b"}}garbage"),
        E(400, needle="malformed JSON"),
        E(400),
    ),
    _case("json-not-utf8", "json", lambda c: c.predict(b'{"instances": ["\xff\xfe\xfd"]}'), E(400)),
    _case("json-empty-body", "json", lambda c: c.predict(b""), E(400, needle="empty body"), E(400)),
    _case("json-deep-nesting", "json", lambda c: c.predict(b"[" * 100_000 + b"]" * 100_000), E(400)),
    _case("json-top-level-array", "json", lambda c: c.predict(b"[1, 2, 3]"), E(400, needle="JSON object"), E(400)),
    # -- types and shapes ------------------------------------------------------------------
    _case(
        "no-instances-key",
        "shape",
        lambda c: c.predict(b'{"pixels": []}'),
        E(400, needle="instances"),
        E(400, needle="instances"),
    ),
    _case(
        "instances-not-a-list",
        "shape",
        lambda c: c.predict(b'{"instances": "seven"}'),
        E(400, needle="list"),
        E(400, needle="list"),
    ),
    _case("instances-empty", "shape", lambda c: c.predict(b'{"instances": []}'), E(400, needle="empty")),
    _case(
        "wrong-shape-27x28",
        "shape",
        lambda c: c.predict(json.dumps({"instances": [_instances(c)[0][:27]]}).encode()),
        E(400, needle="shape"),
        E(400, needle="shape"),
    ),
    _case(
        "ragged-rows",
        "shape",
        lambda c: c.predict(json.dumps({"instances": [[_instances(c)[0][0][:5], *_instances(c)[0][1:]]]}).encode()),
        E(400),
        E(400),
    ),
    _case("strings-as-pixels", "shape", lambda c: c.predict(_with_pixel(c, '"seven"')), E(400), E(400)),
    _case("null-pixel", "shape", lambda c: c.predict(_with_pixel(c, "null")), E(400), E(400)),
    _case(
        "too-many-instances",
        "shape",
        lambda c: c.predict(
            json.dumps(
                {"instances": _instances(c) * (65 if c.family == "flask" else 513)}, separators=(",", ":")
            ).encode()
        ),
        E(413, needle="too many"),
        E(400, needle="at most 512"),
    ),
    # -- numeric extremes ------------------------------------------------------------------
    _case("nan-literal", "numbers", lambda c: c.predict(_with_pixel(c, "NaN")), E(400, needle="NaN"), E(400)),
    _case("infinity-literal", "numbers", lambda c: c.predict(_with_pixel(c, "-Infinity")), E(400), E(400)),
    _case("overflow-1e400", "numbers", lambda c: c.predict(_with_pixel(c, "1e400")), E(400, needle="infinite"), E(400)),
    _case(
        "overflow-float32-1e39",
        "numbers",
        lambda c: c.predict(_with_pixel(c, "1e39")),
        E(400),
        E(400, needle="float32"),
    ),
    _case("huge-int-10e30", "numbers", lambda c: c.predict(_with_pixel(c, "1" + "0" * 30)), E(400), E(400)),
    _case("int-5000-digits", "numbers", lambda c: c.predict(_with_pixel(c, "9" * 5000)), E(400), E(400)),
    # -- body size limits under every framing ----------------------------------------------
    _case("oversized-content-length", "size", _oversized_content_length, TOO_LARGE, OVER_LIMIT),
    _case("oversized-chunked-60MB-valid-prefix", "size", _prefix_plus_garbage_chunked, TOO_LARGE, OVER_LIMIT),
    _case(
        "content-length-over-limit-never-sent",
        "size",
        lambda c: _length_only(c, str(60 * 1024 * 1024)),
        TOO_LARGE,
        OVER_LIMIT,
    ),
    _case("content-length-10e30", "size", lambda c: _length_only(c, "1" + "0" * 30), TOO_LARGE, OVER_LIMIT),
    _case("chunk-size-2e80", "size", lambda c: _bad_chunk(c, b"%x" % (2**80)), TOO_LARGE, OVER_LIMIT),
    # The body never completes: the Flask worker answers 408 at its body deadline (10 s).
    # KServe (uvicorn) has no body deadline -- it waits as long as the client does,
    # without blocking other requests -- so the kind does not apply to it.
    _case(
        "body-never-completes",
        "size",
        lambda c: Send(
            lambda: iter([http_request("POST", c.predict_path, _std_headers(c)), c.valid_body[:100]]), timeout=25.0
        ),
        E(408, needle="did not arrive"),
        None,
    ),
    # -- HTTP framing ----------------------------------------------------------------------
    _case("chunk-size-zz", "framing", lambda c: _bad_chunk(c, b"zz"), E(400, needle="chunk")),
    _case("chunk-size-negative", "framing", lambda c: _bad_chunk(c, b"-5"), E(400, needle="chunk")),
    _case(
        "chunk-data-longer-than-size",
        "framing",
        lambda c: c.raw(_chunked_head(c) + b"2\r\n{}}}}\r\n0\r\n\r\n"),
        E(400, needle="chunk"),
    ),
    _case(
        "content-length-not-a-number",
        "framing",
        lambda c: _headers_then(
            c,
            [
                ("Host", c.authority),
                ("Content-Type", "application/json"),
                ("Content-Length", "12abc"),
                ("Connection", "close"),
            ],
        ),
        E(400, needle="content-length"),
    ),
    _case("content-length-negative", "framing", lambda c: _length_only(c, "-1"), E(400, needle="content-length")),
    _case(
        "content-length-twice-different",
        "framing",
        lambda c: _headers_then(c, [*_std_headers(c), ("Content-Length", "3")]),
        E(400, needle="content-length"),
    ),
    _case(
        "content-length-and-chunked",
        "framing",
        lambda c: c.raw(
            http_request("POST", c.predict_path, [*_std_headers(c), ("Transfer-Encoding", "chunked")])
            + b"2\r\n{}\r\n0\r\n\r\n"
        ),
        E(400),
    ),
    _case(
        "transfer-encoding-gzip",
        "framing",
        lambda c: _headers_then(
            c,
            [
                ("Host", c.authority),
                ("Content-Type", "application/json"),
                ("Transfer-Encoding", "gzip"),
                ("Connection", "close"),
            ],
        ),
        E(400, needle="transfer-encoding"),
    ),
    _case("garbage-request-line", "framing", lambda c: c.raw(b"HELLO THERE\r\n\r\n"), E(400)),
    _case("http-version-9.9", "framing", lambda c: _headers_then(c, _std_headers(c), version="HTTP/9.9"), E(400)),
    # -- headers ---------------------------------------------------------------------------
    _case(
        "huge-header-100KB", "headers", lambda c: _headers_then(c, [*_std_headers(c), ("X-Big", "a" * 100_000)]), E(431)
    ),
    _case(
        "too-many-headers-500",
        "headers",
        lambda c: _headers_then(c, [*_std_headers(c), *[(f"X-H{i}", "v") for i in range(500)]]),
        E(431),
    ),
    _case("missing-host", "headers", lambda c: _headers_then(c, _std_headers(c)[1:]), E(400, needle="host")),
    _case(
        "header-name-with-space", "headers", lambda c: _headers_then(c, [*_std_headers(c), ("Bad Name", "x")]), E(400)
    ),
    _case(
        "header-obs-fold",
        "headers",
        lambda c: c.raw(
            http_request("POST", c.predict_path, _std_headers(c)).replace(
                b"Connection: close\r\n", b"Connection: close\r\nX-Folded: a\r\n  continued\r\n"
            )
            + c.valid_body
        ),
        E(400),
    ),
    # -- methods and paths ---------------------------------------------------------------------
    _case(
        "get-on-predict",
        "methods",
        lambda c: c.raw(http_request("GET", c.predict_path, [("Host", c.authority), ("Connection", "close")])),
        E(405),
    ),
    _case(
        "delete-on-predict",
        "methods",
        lambda c: c.raw(http_request("DELETE", c.predict_path, [("Host", c.authority), ("Connection", "close")])),
        E(405),
    ),
    _case("unknown-path", "methods", lambda c: c.post("/no/such/path", c.valid_body), E(404)),
    _case("path-traversal", "methods", lambda c: c.post("/../../etc/passwd", c.valid_body), E(404, 400)),
    _case(
        "url-10KB", "methods", lambda c: c.post(c.predict_path + "?" + "a" * 10_000, c.valid_body), E(414), E(414, 431)
    ),
    _case(
        "invalid-method-token",
        "methods",
        lambda c: c.raw(http_request("PO(ST", c.predict_path, _std_headers(c), c.valid_body)),
        E(400),
    ),
    _case(
        "wrong-content-type", "methods", lambda c: c.predict(c.valid_body, "text/plain"), E(415, needle="content-type")
    ),
    # -- images (the Flask app's upload path; KServe accepts JSON only) -------------------------
    _case(
        "gif-declared-png", "images", lambda c: c.predict(c.images["gif"], "image/png"), E(415, needle="GIF"), E(415)
    ),
    _case(
        "bmp-declared-png", "images", lambda c: c.predict(c.images["bmp"], "image/png"), E(415, needle="BMP"), E(415)
    ),
    _case(
        "tiff-declared-png", "images", lambda c: c.predict(c.images["tiff"], "image/png"), E(415, needle="TIFF"), E(415)
    ),
    _case(
        "webp-declared-jpeg",
        "images",
        lambda c: c.predict(c.images["webp"], "image/jpeg"),
        E(415, needle="WEBP"),
        E(415),
    ),
    _case(
        "svg-declared-png", "images", lambda c: c.predict(c.images["svg"], "image/png"), E(415, needle="SVG"), E(415)
    ),
    _case(
        "jpeg-declared-png", "images", lambda c: c.predict(c.images["jpeg"], "image/png"), E(400, needle="JPEG"), E(415)
    ),
    _case(
        "png-truncated",
        "images",
        lambda c: c.predict(c.images["png-truncated"], "image/png"),
        E(400, needle="cannot decode"),
        E(415),
    ),
    _case(
        "png-bomb-100000x100000",
        "images",
        lambda c: c.predict(c.images["png-bomb-huge"], "image/png"),
        E(413, needle="too large"),
        E(415),
    ),
    _case(
        "png-bomb-5000x5000",
        "images",
        lambda c: c.predict(c.images["png-bomb-5000"], "image/png"),
        E(413, needle="too large"),
        E(415),
    ),
    _case(
        "multipart-gif-declared-png",
        "images",
        lambda c: c.predict(*_multipart("digit.png", "image/png", c.images["gif"])),
        E(415, needle="GIF"),
        E(415),
    ),
    _case(
        "multipart-svg",
        "images",
        lambda c: c.predict(*_multipart("digit.svg", "image/svg+xml", c.images["svg"])),
        E(415, needle="SVG"),
        E(415),
    ),
    _case(
        "multipart-without-file-field",
        "images",
        lambda c: c.predict(*_multipart("digit.png", "image/png", c.images["png"], field_name="photo")),
        E(400, needle="'file'"),
        E(415),
    ),
    # -- V2 (Open Inference Protocol) infer bodies: KServe only ---------------------------------
    _v2_case("v2-no-inputs", lambda c: b'{"outputs": []}', E(400, 422, needle="inputs")),
    _v2_case("v2-inputs-not-a-list", lambda c: b'{"inputs": {"name": "pixels"}}', E(400, 422, needle="inputs")),
    _v2_case("v2-datatype-bytes", lambda c: _v2(c, datatype="BYTES"), E(400, needle="datatype")),
    _v2_case("v2-shape-data-mismatch", lambda c: _v2(c, shape=[1, 28, 27]), E(400, needle="shape")),
    _v2_case("v2-wrong-shape", lambda c: _v2(c, shape=[1, 784 // 2, 2]), E(400, needle="shape")),
    _v2_case("v2-negative-dimension", lambda c: _v2(c, shape=[-1, 28, 28]), E(400, needle="negative")),
    _v2_case("v2-strings-in-data", lambda c: _v2(c, data=["seven"] * 784), E(400)),
    _v2_case("v2-overflow-1e39", lambda c: _v2(c, data=[1e39] * 784), E(400, needle="float32")),
    BadCase(
        "v2-unknown-model",
        "v2",
        lambda c: c.post("/v2/models/no-such-model/infer", _v2(c)),
        None,
        E(404, needle="no-such-model"),
    ),
    # Last: on a stand-in that does not refuse it, this unloads the model.
    BadCase("v2-repository-index", "v2", lambda c: c.post("/v2/repository/index", b"{}"), None, E(403, 404)),
    BadCase(
        "v2-repository-unload",
        "v2",
        lambda c: c.post(f"/v2/repository/models/{c.model_name}/unload", b""),
        None,
        E(403, 404),
    ),
]
