"""Fast tests of the KServe stand-in's hardening pieces, without TensorFlow or a server.

What a real stand-in does with them is in tests/targets/kserve/test_hardening.py (slow); here
each piece is pinned down on its own: the endpoint guard (403/404/405/500 as JSON), the
repository extension that refuses, the V2 validation-error rewriting, the input
validation for overflow/non-finite/shape/datatype/nesting, and the V2 metadata.  The
HTTP layer (uvicorn's httptools protocol with limits) is in tests/targets/kserve/test_http.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from targets.kserve.server.guards import EndpointGuard, RepositoryDisabled, allowed_methods, is_repository_path
from tests.support.targets import assert_clear


# -- the endpoint guard -----------------------------------------------------------------
def _call(guard_app: Any, method: str, path: str) -> tuple[int, dict[str, str], dict[str, Any], bool]:
    """Run EndpointGuard around ``guard_app`` for one request -> (status, headers, JSON, app ran)."""
    ran = False

    async def app(scope, receive, send):
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


async def _ok_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b'{"ok": true}'})


@pytest.mark.parametrize(
    "path",
    [
        "/v2/repository/index",
        "/v2/repository/models/mnist/load",
        "/v2/repository/models/mnist/unload",
        "/v2/repository/models/mnist/unload/",
        "/v1/models/mnist:load",
        "/v1/models/mnist/unload",
        "/v2/repository",
    ],
)
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
    [
        ("POST", "/v1/models/mnist:predict"),
        ("POST", "/v2/models/mnist/infer"),
        ("GET", "/v2/models/mnist"),
        ("HEAD", "/v2/health/ready"),
        ("GET", "/v1/models/mnist"),
        ("GET", "/"),
        ("GET", "/metrics"),
    ],
)
def test_inference_protocol_passes_through(method: str, path: str) -> None:
    assert allowed_methods(path) is not None and not is_repository_path(path)
    assert _call(_ok_app, method, path)[0::3] == (200, True)


def test_an_unexpected_exception_becomes_a_500_json_without_repr() -> None:
    async def broken(scope, receive, send):
        raise OverflowError("int too large to convert to float <object at 0xdeadbeef>")

    status, _, doc, ran = _call(broken, "POST", "/v2/models/mnist/infer")
    assert (status, ran) == (500, True)
    assert_clear(doc["error"])
    assert "deadbeef" not in doc["error"]


def test_a_body_ending_in_a_disconnect_gets_no_answer_and_no_error_log(caplog: pytest.LogCaptureFixture) -> None:
    """The HTTP layer abandons a request whose chunked framing broke and answers it itself."""
    from starlette.requests import ClientDisconnect

    async def reads_body(scope, receive, send):
        raise ClientDisconnect()

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/models/mnist:predict", "headers": []}
    asyncio.run(EndpointGuard(reads_body)(scope, receive, send))
    assert sent == [] and not [r for r in caplog.records if r.levelname == "ERROR"]


def test_inference_only_repository_refuses_and_keeps_the_model() -> None:
    from kserve.model_repository import ModelRepository

    from targets.kserve.server.loopback import InferenceOnlyRepository

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
    from targets.kserve.server.loopback import _validation_error_handler

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
    "negative shape": (_v2(_FLAT, shape=[-1, 28, 28]), "negative dimension in shape [-1, 28, 28]; expected [N, 28"),
    "FP32 value beyond float32": (_v2([1e39] + _FLAT[1:]), "FP32 (float32)"),
    "INT32 value far from a pixel": (_v2([5000] + [0] * 783, datatype="INT32"), "normalised pixels"),
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

    from targets.kserve.server.inputs import v2_inputs_to_array

    request, needle = V2_BAD[case]
    with pytest.raises(InvalidInput) as err:
        v2_inputs_to_array(request, "pixels")
    assert needle in str(err.value)
    assert_clear(str(err.value))


V1_BAD = {
    "integer 10**400": ({"instances": [[10**400] + _FLAT[1:]]}, "too large to convert"),
    "integer 10**400 mixed in floats": ({"instances": [[0.5, 10**400] + _FLAT[2:]]}, "too large to convert"),
    "inf": ({"instances": [[float("inf")] + _FLAT[1:]]}, "infinite"),
    "integer 10**30 (fits float32, not a pixel)": ({"instances": [[10**30] + _FLAT[1:]]}, "within +-1000"),
    "float -2000": ({"instances": [[-2000.0] + _FLAT[1:]]}, "magnitude 2e+03"),
    "deep nesting": ({"instances": [json.loads("[" * 900 + "]" * 900)]}, "nested more than 2"),
    "image not a list": ({"instances": [{"pixels": _FLAT}]}, "must be a list of numbers"),
    "instances not a list": ({"instances": 5}, "must be a list"),
    "booleans": ({"instances": [[True] * 784]}, "not booleans"),
}


@pytest.mark.parametrize("case", list(V1_BAD))
def test_v1_bad_input_is_invalid_input_with_a_clear_message(case: str) -> None:
    from kserve.errors import InvalidInput

    from targets.kserve.server.inputs import instances_to_array

    payload, needle = V1_BAD[case]
    with pytest.raises(InvalidInput) as err:
        instances_to_array(payload)
    assert needle in str(err.value)
    assert_clear(str(err.value))


def test_valid_integer_and_float_datatypes_are_accepted() -> None:
    from targets.kserve.server.inputs import v2_inputs_to_array

    assert v2_inputs_to_array(_v2([255] * 784, datatype="UINT8"), "pixels").max() == 255.0
    assert v2_inputs_to_array(_v2([[0.5] * 784], shape=[1, 784], datatype="FP64"), "pixels").shape == (1, 28, 28)


# -- V2 metadata from the signature -----------------------------------------------------
class _Spec:
    """The two things tensor_metadata reads from a tf.TensorSpec (no TensorFlow import)."""

    def __init__(self, dtype: str, shape: list[int | None]) -> None:
        self.dtype = type("DType", (), {"name": dtype})()
        self.shape = type("Shape", (), {"as_list": lambda _self: list(shape)})()


def test_tensor_metadata_names_datatype_and_free_dimensions() -> None:
    from targets.kserve.server.model import tensor_metadata

    assert tensor_metadata("pixels", _Spec("float32", [None, 28, 28])) == {
        "name": "pixels",
        "datatype": "FP32",
        "shape": [-1, 28, 28],
    }
    assert tensor_metadata("logits", _Spec("float32", [None, 10]))["shape"] == [-1, 10]
    with pytest.raises(ValueError, match="string"):
        tensor_metadata("s", _Spec("string", [None]))
