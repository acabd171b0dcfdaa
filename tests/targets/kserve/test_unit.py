"""Fast tests of the kserve adapter: settings, encode/decode, request validation, model lookup.

No server is started here (see test_kserve_server.py); these pin down the pieces whose
mistakes would otherwise show up only as wrong numbers in a benchmark.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ground.tables import ConfigError, parse_table
from targets.base import DecodeError, TargetContext, TargetError
from targets.kserve.target import KServeSettings, KServeTarget, find_savedmodel


def make_target(tmp_path: Path, name: str = "kubeflow-gcp", **table: object) -> KServeTarget:
    settings = parse_table(KServeSettings, table, f"targets.{name}")
    return KServeTarget(name, settings, TargetContext(artifacts_dir=tmp_path, log_dir=tmp_path / "logs"))


def digit_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(28, 28), dtype=np.uint8)


# -- settings ---------------------------------------------------------------------------
def test_defaults_mirror_bench_toml(tmp_path: Path) -> None:
    target = make_target(tmp_path)
    s = target.settings
    assert (s.protocol, s.workers, s.model_name, s.raw_deployment, s.custom_container) == (
        "v1",
        1,
        "mnist",
        False,
        False,
    )
    assert not target.is_remote
    assert target.describe()["mode"] == "local"


@pytest.mark.parametrize(
    ("table", "key", "needle"),
    [
        ({"protocol": "v3"}, "targets.kubeflow-gcp.protocol", "'v1', 'v2'"),
        ({"workers": "2"}, "targets.kubeflow-gcp.workers", "integer"),
        ({"wokers": 2}, "targets.kubeflow-gcp.wokers", "did you mean 'workers'"),
        ({"storage_uri": 5}, "targets.kubeflow-gcp.storage_uri", "string"),
        ({"workers": 0}, "targets.kubeflow-gcp", "workers must be >= 1"),
        ({"model_name": "MNIST_model"}, "targets.kubeflow-gcp", "DNS label"),
        ({"storage_uri": "/local/path"}, "targets.kubeflow-gcp", "URI"),
        ({"image": "evil\nRUN rm -rf /"}, "targets.kubeflow-gcp", "image"),
        ({"bearer_token_env": "Bearer abc.def"}, "targets.kubeflow-gcp", "NAME"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, table: dict, key: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_target(tmp_path, **table)
    assert err.value.where == key
    assert needle in str(err.value)


# -- encode / decode --------------------------------------------------------------------
def test_v1_encode_carries_exactly_wire_pixels(tmp_path: Path) -> None:
    from models.data import wire_pixels

    image = digit_image(1)
    request = make_target(tmp_path).encode(image)
    assert (request.method, request.path) == ("POST", "/v1/models/mnist:predict")
    assert request.headers["Content-Type"] == "application/json"
    doc = json.loads(request.body)
    assert list(doc) == ["instances"]
    sent = np.asarray(doc["instances"], dtype=np.float32)
    assert sent.shape == (1, 28, 28)
    np.testing.assert_array_equal(sent[0], wire_pixels(image))  # bit-identical after JSON
    assert b" " not in request.body and len(request.body) < 8000  # compact, ~6 KB


def test_v2_encode_is_an_open_inference_protocol_tensor(tmp_path: Path) -> None:
    from models.data import wire_pixels

    image = digit_image(2)
    request = make_target(tmp_path, protocol="v2", model_name="digits").encode(image)
    assert request.path == "/v2/models/digits/infer"
    (tensor,) = json.loads(request.body)["inputs"]
    assert (tensor["name"], tensor["shape"], tensor["datatype"]) == ("pixels", [1, 28, 28], "FP32")
    assert len(tensor["data"]) == 784  # flat, row-major
    np.testing.assert_array_equal(np.asarray(tensor["data"], dtype=np.float32).reshape(28, 28), wire_pixels(image))


def test_decode_takes_the_argmax_of_the_logits(tmp_path: Path) -> None:
    logits = [0.1, -2.0, 0.3, 7.5, 0.0, 1.0, -1.0, 2.0, 3.0, 0.2]
    v1 = make_target(tmp_path)
    assert v1.decode(200, json.dumps({"predictions": [logits]}).encode()) == 3
    v2 = make_target(tmp_path, protocol="v2")
    body = {
        "model_name": "mnist",
        "outputs": [{"name": "logits", "shape": [1, 10], "datatype": "FP32", "data": logits}],
    }
    assert v2.decode(200, json.dumps(body).encode()) == 3


@pytest.mark.parametrize(
    ("protocol", "status", "body"),
    [
        ("v1", 500, b'{"predictions": [[0,0,0,0,0,0,0,0,0,1]]}'),
        ("v1", 200, b"not json"),
        ("v1", 200, b'{"predictions": []}'),
        ("v1", 200, b'{"predictions": [[1, 2, 3]]}'),
        ("v1", 200, b'{"predictions": [[0,0,0,0,0,0,0,0,0,1], [0,0,0,0,0,0,0,0,0,1]]}'),
        ("v1", 200, b'{"predictions": [["a","b","c","d","e","f","g","h","i","j"]]}'),
        ("v1", 200, b'{"error": "x"}'),
        ("v2", 200, b'{"outputs": []}'),
        ("v2", 200, b'{"outputs": [{"name": "logits", "shape": [2, 5], "data": [0,0,0,0,0,0,0,0,0,1]}]}'),
        ("v2", 200, b'{"predictions": [[0,0,0,0,0,0,0,0,0,1]]}'),
    ],
)
def test_decode_is_strict(tmp_path: Path, protocol: str, status: int, body: bytes) -> None:
    with pytest.raises(DecodeError):
        make_target(tmp_path, protocol=protocol).decode(status, body)


# -- remote mode without a server -------------------------------------------------------
def test_remote_encode_reads_credentials_and_describe_hides_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like every LocalServerTarget, encode() before start() reads the variables itself."""
    monkeypatch.setenv("SB_TEST_TOKEN", "s3cr3t-value")
    target = make_target(
        tmp_path,
        endpoint="https://kubeflow.example.com",
        host_header="mnist.kubeflow-user.example.com",
        bearer_token_env="SB_TEST_TOKEN",
    )
    assert target.is_remote
    headers = target.encode(digit_image()).headers
    assert headers["Authorization"] == "Bearer s3cr3t-value" and headers["Host"] == "mnist.kubeflow-user.example.com"
    monkeypatch.delenv("SB_TEST_TOKEN")
    with pytest.raises(TargetError, match="SB_TEST_TOKEN"):  # a missing variable is named, never a value
        make_target(tmp_path, endpoint="https://kubeflow.example.com", bearer_token_env="SB_TEST_TOKEN").encode(
            digit_image()
        )
    facts = json.dumps(target.describe())
    assert "SB_TEST_TOKEN" in facts and "s3cr3t-value" not in facts
    assert "mnist.kubeflow-user.example.com" in facts


# -- request validation inside the server (pure functions) ------------------------------
def test_instances_to_array_accepts_28x28_and_784() -> None:
    from targets.kserve.server.model import instances_to_array

    a = instances_to_array({"instances": [[[0.5] * 28] * 28, [0.25] * 784]})
    assert a.shape == (2, 28, 28) and a.dtype == np.float32
    assert a[1, 27, 27] == np.float32(0.25)


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"raw bytes", "JSON"),
        ([1, 2], "JSON object"),
        ({"images": []}, "no 'instances'"),
        ({"instances": "abc"}, "must be a list"),
        ({"instances": []}, "is empty"),
        ({"instances": [[1, 2, 3]]}, "28x28 or 784"),
        ({"instances": [[[0.0] * 28] * 27]}, "28x28 or 784"),
        ({"instances": [[0.0] * 783 + [[1]]]}, "rectangular"),
        ({"instances": [[0.0] * 783 + ["x"]]}, "not strings"),
        ({"instances": [[0.0] * 783 + [None]]}, "null"),
        ({"instances": [[0.0] * 783 + [float("nan")]]}, "NaN"),
        ({"instances": [[0.0] * 783 + [float("inf")]]}, "NaN"),
        ({"instances": [[0.0] * 783 + [1e39]]}, "too large"),
        ({"instances": [[0.0] * 784] * 513}, "at most 512"),
    ],
)
def test_instances_to_array_rejects_bad_input(payload: object, needle: str) -> None:
    from kserve.errors import InvalidInput

    from targets.kserve.server.model import instances_to_array

    with pytest.raises(InvalidInput) as err:
        instances_to_array(payload)
    assert needle in str(err.value)


def _v2(shape: list[int], data: object, datatype: str = "FP32", n_inputs: int = 1):  # -> InferRequest
    from kserve.protocol.infer_type import InferInput, InferRequest

    inputs = [InferInput(name="pixels", shape=shape, datatype=datatype, data=data) for i in range(n_inputs)]
    return InferRequest(model_name="mnist", infer_inputs=inputs)


def test_v2_inputs_to_array_accepts_flat_and_nested() -> None:
    from targets.kserve.server.model import v2_inputs_to_array

    flat = v2_inputs_to_array(_v2([1, 28, 28], [0.5] * 784))
    nested = v2_inputs_to_array(_v2([1, 784], [[0.5] * 784]))
    np.testing.assert_array_equal(flat, nested)
    assert flat.shape == (1, 28, 28)


@pytest.mark.parametrize(
    ("request_args", "needle"),
    [
        (([1, 28, 28], [0.5] * 784, "FP32", 2), "exactly one input"),
        (([1, 28, 28], ["a"] * 784, "BYTES", 1), "datatype"),
        (([1, 28, 28], [0.5] * 783, "FP32", 1), "783 values"),
        (([1, 28, 27], [0.5] * 756, "FP32", 1), "expected [N, 28, 28] or [N, 784]"),
        (([1, 28, 28], [float("nan")] * 784, "FP32", 1), "NaN"),
    ],
)
def test_v2_inputs_to_array_rejects_bad_input(request_args: tuple, needle: str) -> None:
    from kserve.errors import InvalidInput

    from targets.kserve.server.model import v2_inputs_to_array

    with pytest.raises(InvalidInput) as err:
        v2_inputs_to_array(_v2(*request_args))
    assert needle in str(err.value)


# -- finding the SavedModel -------------------------------------------------------------
def _fake_savedmodel(root: Path, name: str, versions: tuple[int, ...]) -> None:
    for v in versions:
        folder = root / "savedmodel" / name / str(v)
        folder.mkdir(parents=True)
        (folder / "saved_model.pb").write_bytes(b"")


def test_find_savedmodel_picks_named_model_and_highest_version(tmp_path: Path) -> None:
    _fake_savedmodel(tmp_path, "mnist", (1, 2, 10))
    _fake_savedmodel(tmp_path, "other", (1,))
    (tmp_path / "model.json").write_text(json.dumps({"name": "mnist"}))
    assert find_savedmodel(tmp_path) == tmp_path / "savedmodel" / "mnist" / "10"


def test_find_savedmodel_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="bench train"):
        find_savedmodel(tmp_path)
    _fake_savedmodel(tmp_path, "a", (1,))
    _fake_savedmodel(tmp_path, "b", (1,))
    with pytest.raises(TargetError, match="cannot tell which"):
        find_savedmodel(tmp_path)


def test_quiet_log_config_silences_per_request_loggers() -> None:
    from targets.kserve.server.main import quiet_log_config

    loggers = quiet_log_config()["loggers"]
    assert loggers["uvicorn.access"]["level"] == "WARNING"
    assert loggers["kserve.trace"]["level"] == "WARNING"
    assert loggers["kserve"]["level"] != "WARNING"  # start-up messages stay
    assert quiet_log_config(access_log=True)["loggers"]["uvicorn.access"]["level"] == "INFO"


# -- the body guard in front of kserve's app (ASGI, no server) --------------------------
def _call_guard(headers: dict[str, str], chunks: list[bytes], limit: int = 100) -> tuple[int, dict, bool]:
    """Run BodyGuard around an app that reads the whole body; -> (status, JSON, app_ran)."""
    import asyncio

    from targets.kserve.server.loopback import BodyGuard

    ran = False

    async def app(scope, receive, send):
        nonlocal ran
        ran = True
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"ok": true}'})

    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1} for i, chunk in enumerate(chunks)
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    asyncio.run(BodyGuard(app, max_body_bytes=limit)(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body), ran


def test_body_guard_passes_json_within_the_limit() -> None:
    assert _call_guard({"Content-Type": "application/json", "Content-Length": "10"}, [b"x" * 10]) == (
        200,
        {"ok": True},
        True,
    )
    assert _call_guard({}, [b"x" * 50, b"x" * 50])[0] == 200  # no type, chunked, exactly the limit


def test_body_guard_refuses_declared_oversized_body_without_calling_the_app() -> None:
    status, doc, ran = _call_guard({"Content-Type": "application/json", "Content-Length": "101"}, [b"x" * 101])
    assert (status, ran) == (413, False) and "101 bytes" in doc["error"]


def test_body_guard_refuses_chunked_body_that_grows_past_the_limit() -> None:
    status, doc, ran = _call_guard({"Content-Type": "application/json"}, [b"x" * 60, b"x" * 60, b"x" * 60])
    assert (status, ran) == (413, True) and "limit of 100 bytes" in doc["error"]


def test_body_guard_refuses_non_json_content_types() -> None:
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        status, doc, ran = _call_guard({"Content-Type": ctype}, [b"{}"])
        assert (status, ran) == (415, False) and "application/json" in doc["error"]
    assert _call_guard({"Content-Type": "application/json; charset=utf-8"}, [b"{}"])[0] == 200
