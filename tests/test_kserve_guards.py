"""Fast tests of the KServe stand-in's hardening pieces, without TensorFlow or a server.

What a real stand-in does with them is in tests/test_kserve_hardening.py (slow); here
each piece is pinned down on its own: the endpoint guard (403/404/405/500 as JSON), the
repository extension that refuses, the request-head limit on uvicorn's httptools
protocol (fed bytes through a fake transport), the V2 validation-error rewriting, the
input validation for overflow/non-finite/shape/datatype/nesting, and the V2 metadata.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from targets.kserve_guards import EndpointGuard, RepositoryDisabled, allowed_methods, is_repository_path

_REPR = re.compile(r"Traceback|object at 0x|0x[0-9a-f]{6,}|\b[A-Z]\w*(Error|Exception)\b")


def assert_clear(message: str) -> None:
    """An error message for a client: text, no traceback, no Python repr or address."""
    assert isinstance(message, str) and message, message
    assert not _REPR.search(message), message
    assert len(message) < 400, message


# -- the endpoint guard -----------------------------------------------------------------
def _call(guard_app: Any, method: str, path: str) -> tuple[int, dict[str, str], dict[str, Any], bool]:
    """Run EndpointGuard around ``guard_app`` for one request -> (status, headers, JSON, app ran)."""
    ran = False

    async def app(scope, receive, send):  # noqa: ANN001 - ASGI
        nonlocal ran
        ran = True
        await guard_app(scope, receive, send)

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    asyncio.run(EndpointGuard(app)(scope, receive, send))
    headers = {k.decode(): v.decode() for k, v in sent[0].get("headers", [])}
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], headers, json.loads(body), ran


async def _ok_app(scope, receive, send):  # noqa: ANN001 - ASGI
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b'{"ok": true}'})


@pytest.mark.parametrize(
    "path",
    ["/v2/repository/index", "/v2/repository/models/mnist/load", "/v2/repository/models/mnist/unload",
     "/v2/repository/models/mnist/unload/", "/v1/models/mnist:load", "/v1/models/mnist/unload", "/v2/repository"],
)  # fmt: skip
@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
def test_repository_extension_is_403_for_any_method(method: str, path: str) -> None:
    status, _, doc, ran = _call(_ok_app, method, path)
    assert (status, ran) == (403, False)
    assert "repository extension" in doc["error"] and "disabled" in doc["error"]
    assert is_repository_path(path)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/models/mnist:predict", "POST"),
        ("PUT", "/v1/models/mnist:predict", "POST"),
        ("GET", "/v2/models/mnist/infer", "POST"),
        ("DELETE", "/v2/models/mnist/infer", "POST"),
        ("POST", "/v2/health/ready", "GET, HEAD"),
        ("POST", "/v2/models/mnist", "GET, HEAD"),
    ],
)
def test_wrong_method_is_405_with_allow(method: str, path: str, allow: str) -> None:
    status, headers, doc, ran = _call(_ok_app, method, path)
    assert (status, headers["allow"], ran) == (405, allow, False)
    assert method in doc["error"] and allow in doc["error"]
    assert_clear(doc["error"])


@pytest.mark.parametrize(
    "path", ["/openapi.json", "/docs", "/v1/models/mnist:explain", "/v2/models/mnist/versions/1/infer", "/nope"]
)
def test_paths_outside_the_inference_protocol_are_404(path: str) -> None:
    status, _, doc, ran = _call(_ok_app, "GET", path)
    assert (status, ran) == (404, False)
    assert "inference protocol" in doc["error"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/models/mnist:predict"), ("POST", "/v2/models/mnist/infer"), ("GET", "/v2/models/mnist"),
     ("HEAD", "/v2/health/ready"), ("GET", "/v1/models/mnist"), ("GET", "/"), ("GET", "/metrics")],
)  # fmt: skip
def test_inference_protocol_passes_through(method: str, path: str) -> None:
    assert allowed_methods(path) is not None and not is_repository_path(path)
    assert _call(_ok_app, method, path)[0::3] == (200, True)


def test_an_unexpected_exception_becomes_a_500_json_without_repr() -> None:
    async def broken(scope, receive, send):  # noqa: ANN001 - ASGI
        raise OverflowError("int too large to convert to float <object at 0xdeadbeef>")

    status, _, doc, ran = _call(broken, "POST", "/v2/models/mnist/infer")
    assert (status, ran) == (500, True)
    assert_clear(doc["error"])
    assert "deadbeef" not in doc["error"]


def test_inference_only_repository_refuses_and_keeps_the_model() -> None:
    from kserve.model_repository import ModelRepository

    from targets.kserve_loopback import InferenceOnlyRepository

    class Stub:
        name, ready = "mnist", True

    registry = ModelRepository()
    registry.update(Stub())
    extension = InferenceOnlyRepository(model_registry=registry)
    for call in (extension.unload, extension.load):
        with pytest.raises(RepositoryDisabled):
            asyncio.run(call("mnist"))
    assert registry.get_model("mnist") is not None


# -- FastAPI's errors in the {"error"} shape --------------------------------------------
def test_v2_validation_errors_become_one_clear_400() -> None:
    from targets.kserve_loopback import _validation_error_handler

    class Exc:
        def errors(self) -> list[dict[str, Any]]:
            return [
                {"loc": ("body", "InferenceRequest", "inputs", 0, "data"), "msg": "Input should be a valid list"},
                {"loc": ("body", "bytes"), "msg": "Input should be a valid bytes"},
            ]

    response = asyncio.run(_validation_error_handler(None, Exc()))
    doc = json.loads(response.body)
    assert response.status_code == 400
    assert doc == {"error": "invalid inference request: inputs.0.data: Input should be a valid list"}


# -- the request-head limit (uvicorn's httptools protocol, fake transport) --------------
class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = self.eof = False

    def write(self, data: bytes) -> None:
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


def _serve_bytes(chunks: list[bytes], limit: int = 1024) -> tuple[bytes, _Transport, list[str]]:
    """Feed ``chunks`` to a head-limited protocol around a tiny app -> (answer bytes, transport, paths seen)."""
    import uvicorn
    from uvicorn.server import ServerState

    from targets.kserve_http import HeadLimitedHttpToolsProtocol, limit_request_heads

    seen: list[str] = []

    async def app(scope, receive, send):  # noqa: ANN001 - ASGI
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})

    async def run() -> _Transport:
        config = uvicorn.Config(app, log_config=None, lifespan="off")
        limit_request_heads(config, limit)
        config.load()
        assert config.http_protocol_class is HeadLimitedHttpToolsProtocol
        protocol = config.http_protocol_class(config=config, server_state=ServerState(), app_state={})
        transport = _Transport()
        protocol.connection_made(transport)
        for chunk in chunks:
            protocol.data_received(chunk)
            await asyncio.sleep(0.01)  # let the app task answer
        return transport

    transport = asyncio.run(run())
    return bytes(transport.out), transport, seen


def test_head_within_the_limit_is_served() -> None:
    head = b"GET /a HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 900 + b"\r\n\r\n"
    out, transport, seen = _serve_bytes([head[:500], head[500:]])
    assert out.startswith(b"HTTP/1.1 200") and seen == ["/a"] and not transport.eof


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
    out, transport, seen = _serve_bytes(chunks + [b"c" * 10000, b"\r\n\r\n"])
    answers = re.findall(rb"HTTP/1\.1 (\d{3})", out)
    assert answers[-1] == b"431", out[:200]
    assert b"/b" not in b"".join(s.encode() for s in seen) and "/a" not in seen[1:]
    head, body = out[out.rindex(b"HTTP/1.1 431"):].split(b"\r\n\r\n", 1)
    assert b"connection: close" in head.lower() and b"application/json" in head
    assert "1024 bytes" in json.loads(body)["error"]
    assert transport.eof, "the refusal half-closes, so the client reads it instead of a reset"


def test_limit_request_heads_rejects_a_nonsense_limit() -> None:
    import uvicorn

    from targets.kserve_http import limit_request_heads

    with pytest.raises(ValueError, match="max_header_bytes"):
        limit_request_heads(uvicorn.Config(_ok_app), 0)


# -- input validation: every bad value is InvalidInput with a clear message -------------
def _v2(data: Any, shape: list[Any] | None = None, datatype: str = "FP32", name: str = "pixels") -> Any:
    from kserve.protocol.infer_type import InferInput, InferRequest

    tensor = InferInput(name=name, shape=shape if shape is not None else [1, 28, 28], datatype=datatype, data=data)
    return InferRequest(model_name="mnist", infer_inputs=[tensor])


_FLAT = [0.5] * 784

V2_BAD = {
    "integer 10**400": (_v2([10**400] + _FLAT[1:]), "too large to convert"),
    "float inf (1e400 parses to it)": (_v2([float("inf")] + _FLAT[1:]), "infinite"),
    "nan": (_v2([float("nan")] + _FLAT[1:]), "NaN"),
    "beyond float32": (_v2([1e39] + _FLAT[1:]), "beyond"),
    "INT8 out of range": (_v2([1000] + [0] * 783, datatype="INT8"), "-128..127"),
    "UINT8 negative": (_v2([-1] + [0] * 783, datatype="UINT8"), "0..255"),
    "INT32 fraction": (_v2([0.5] * 784, datatype="INT32"), "non-integer"),
    "FP16 overflow": (_v2([70000.0] + _FLAT[1:], datatype="FP16"), "FP16"),
    "huge shape field": (_v2(_FLAT, shape=[1, 10**400, 28]), "<401-digit number>"),
    "negative shape": (_v2(_FLAT, shape=[-1, 28, 28]), "expected [N, 28, 28]"),
    "4-d shape": (_v2(_FLAT, shape=[1, 1, 28, 28]), "expected [N, 28, 28]"),
    "too many images": (_v2(_FLAT, shape=[513, 784]), "from 1 to 512"),
    "count mismatch": (_v2(_FLAT[:10]), "10 values"),
    "string datatype": (_v2(["a"] * 784, datatype="BYTES"), "numeric type"),
    "bool datatype": (_v2([True] * 784, datatype="BOOL"), "numeric type"),
    "strings in FP32": (_v2(["0.5"] * 784), "not strings"),
    "booleans in FP32": (_v2([True] * 784), "not booleans"),
    "nulls": (_v2([None] * 784), "null"),
    "objects": (_v2([{"a": 1}] * 784), "numbers only"),
    "ragged": (_v2([[0.5] * 28] * 27 + [[0.5] * 27]), "rectangular"),
    "deep nesting": (_v2(json.loads("[" * 900 + "0.5" + "]" * 900)), "nested more than 3"),
    "wrong input name": (_v2(_FLAT, name="x" * 500), "model's input is 'pixels'"),
}


@pytest.mark.parametrize("case", list(V2_BAD))
def test_v2_bad_input_is_invalid_input_with_a_clear_message(case: str) -> None:
    from kserve.errors import InvalidInput

    from targets.kserve_inputs import v2_inputs_to_array

    request, needle = V2_BAD[case]
    with pytest.raises(InvalidInput) as err:
        v2_inputs_to_array(request, "pixels")
    assert needle in str(err.value)
    assert_clear(str(err.value))


V1_BAD = {
    "integer 10**400": ({"instances": [[10**400] + _FLAT[1:]]}, "too large to convert"),
    "integer 10**400 mixed in floats": ({"instances": [[0.5, 10**400] + _FLAT[2:]]}, "too large to convert"),
    "inf": ({"instances": [[float("inf")] + _FLAT[1:]]}, "infinite"),
    "deep nesting": ({"instances": [json.loads("[" * 900 + "]" * 900)]}, "nested more than 2"),
    "image not a list": ({"instances": [{"pixels": _FLAT}]}, "must be a list of numbers"),
    "instances not a list": ({"instances": 5}, "must be a list"),
    "booleans": ({"instances": [[True] * 784]}, "not booleans"),
}


@pytest.mark.parametrize("case", list(V1_BAD))
def test_v1_bad_input_is_invalid_input_with_a_clear_message(case: str) -> None:
    from kserve.errors import InvalidInput

    from targets.kserve_inputs import instances_to_array

    payload, needle = V1_BAD[case]
    with pytest.raises(InvalidInput) as err:
        instances_to_array(payload)
    assert needle in str(err.value)
    assert_clear(str(err.value))


def test_valid_integer_and_float_datatypes_are_accepted() -> None:
    from targets.kserve_inputs import v2_inputs_to_array

    assert v2_inputs_to_array(_v2([255] * 784, datatype="UINT8"), "pixels").max() == 255.0
    assert v2_inputs_to_array(_v2([[0.5] * 784], shape=[1, 784], datatype="FP64"), "pixels").shape == (1, 28, 28)


# -- V2 metadata from the signature -----------------------------------------------------
class _Spec:
    """The two things tensor_metadata reads from a tf.TensorSpec (no TensorFlow import)."""

    def __init__(self, dtype: str, shape: list[int | None]) -> None:
        self.dtype = type("DType", (), {"name": dtype})()
        self.shape = type("Shape", (), {"as_list": lambda _self: list(shape)})()


def test_tensor_metadata_names_datatype_and_free_dimensions() -> None:
    from targets.kserve_model import tensor_metadata

    assert tensor_metadata("pixels", _Spec("float32", [None, 28, 28])) == {
        "name": "pixels", "datatype": "FP32", "shape": [-1, 28, 28],
    }  # fmt: skip
    assert tensor_metadata("logits", _Spec("float32", [None, 10]))["shape"] == [-1, 10]
    with pytest.raises(ValueError, match="string"):
        tensor_metadata("s", _Spec("string", [None]))
