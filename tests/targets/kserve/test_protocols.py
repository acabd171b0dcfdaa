"""The kserve adapter's four protocols send the same pixels and read the same digit (pure, no server)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from loadgen.inference.grpc_messages import MODEL_INFER_METHOD, decode_infer_request, encode_infer_response
from loadgen.inference.v2_binary import HEADER_LENGTH, encode_binary_response, split_binary_body
from loadgen.request import DecodeError
from models.data import wire_pixels
from targets.kserve.protocols import PROTOCOLS, decode_answer, encode_image

IMAGE = (np.arange(28 * 28) % 256).astype(np.uint8).reshape(28, 28)
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer x"}


def sent_pixels(protocol: str) -> np.ndarray:
    request = encode_image(protocol, "mnist", IMAGE, HEADERS)
    if protocol == "v1":
        return np.asarray(json.loads(request.body)["instances"][0], dtype=np.float32)
    if protocol == "v2":
        return np.asarray(json.loads(request.body)["inputs"][0]["data"], dtype=np.float32).reshape(28, 28)
    if protocol == "v2-binary":
        header, raw = split_binary_body(request.body, int(request.headers[HEADER_LENGTH]))
        assert header["inputs"][0]["parameters"]["binary_data_size"] == len(raw) == 28 * 28 * 4
        return np.frombuffer(raw, dtype="<f4").reshape(28, 28)
    model, inputs = decode_infer_request(request.body)
    assert model == "mnist" and request.path == MODEL_INFER_METHOD
    return inputs["pixels"].reshape(28, 28)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_protocol_sends_exactly_the_wire_pixels(protocol: str) -> None:
    np.testing.assert_array_equal(sent_pixels(protocol), wire_pixels(IMAGE))


def test_binary_request_replaces_the_json_content_type() -> None:
    headers = encode_image("v2-binary", "mnist", IMAGE, HEADERS).headers
    assert headers["Content-Type"] == "application/octet-stream" and headers["Authorization"] == "Bearer x"


LOGITS = np.eye(1, 10, 7, dtype=np.float32)


@pytest.mark.parametrize(
    ("protocol", "body"),
    [
        ("v1", json.dumps({"predictions": LOGITS.tolist()}).encode()),
        (
            "v2",
            json.dumps(
                {"outputs": [{"name": "logits", "shape": [1, 10], "datatype": "FP32", "data": LOGITS.ravel().tolist()}]}
            ).encode(),
        ),
        ("v2-binary", encode_binary_response("mnist", {"logits": LOGITS}).body),
        ("grpc-v2", encode_infer_response("mnist", {"logits": LOGITS})),
        ("grpc-v2", encode_infer_response("mnist", {"logits": LOGITS}, raw=False)),
    ],
)
def test_every_protocol_reads_the_digit(protocol: str, body: bytes) -> None:
    assert decode_answer(protocol, 200, body) == 7


@pytest.mark.parametrize(
    ("protocol", "body", "match"),
    [
        ("v2-binary", encode_binary_response("m", {"logits": np.ones((1, 9), np.float32)}).body, r"shape \[1, 10\]"),
        ("grpc-v2", encode_infer_response("m", {"a": LOGITS, "b": LOGITS}), "one output tensor"),
        ("grpc-v2", b"\xff\xfe", "ModelInferResponse"),
        ("v2-binary", b"<html>", "JSON header"),
    ],
)
def test_wrong_answers_are_undecodable(protocol: str, body: bytes, match: str) -> None:
    with pytest.raises(DecodeError, match=match):
        decode_answer(protocol, 200, body)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_non_2xx_is_not_a_prediction(protocol: str) -> None:
    with pytest.raises(DecodeError):
        decode_answer(protocol, 400, b'{"error": "bad"}')
