"""The binary-tensor extension: framing round-trips every datatype; malformed answers are refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest

from loadgen.inference.datatypes import DATATYPES
from loadgen.inference.raw_tensors import TensorError
from loadgen.inference.v2_binary import (
    HEADER_LENGTH,
    decode_binary_response,
    encode_binary_request,
    encode_binary_response,
    split_binary_body,
)
from tests.loadgen.inference.test_grpc_messages import assert_same, sample


def test_request_framing_is_header_then_raw_bytes() -> None:
    pixels = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    framed = encode_binary_request({"pixels": pixels})
    header = json.loads(framed.body[: framed.json_length])
    assert header["inputs"] == [
        {"name": "pixels", "shape": [1, 2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 24}}
    ]
    assert header["parameters"] == {"binary_data_output": True}
    assert framed.body[framed.json_length :] == pixels.astype("<f4").tobytes()
    assert framed.headers() == {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(framed.json_length)}


def test_named_outputs_ask_binary_per_output() -> None:
    framed = encode_binary_request({"x": np.ones(1, np.int8)}, outputs=["a"], binary_outputs=False, request_id="7")
    header, _ = split_binary_body(framed.body, framed.json_length)
    assert header["outputs"] == [{"name": "a", "parameters": {"binary_data": False}}] and header["id"] == "7"
    assert "parameters" not in header


@pytest.mark.parametrize("known_length", [True, False])
@pytest.mark.parametrize("name", sorted(DATATYPES))
def test_response_round_trip_every_datatype(name: str, known_length: bool) -> None:
    outputs = {"y": sample(name), "z": np.array([[1, 2]], dtype=np.int64)}
    framed = encode_binary_response("m", outputs)
    got = decode_binary_response(framed.body, framed.json_length if known_length else None)
    for key, want in outputs.items():
        assert_same(got[key], want)


def test_json_only_answer_decodes() -> None:
    body = b'{"outputs":[{"name":"logits","shape":[1,3],"datatype":"FP32","data":[0.5,1.5,-2]}]}'
    assert decode_binary_response(body)["logits"].tolist() == [[0.5, 1.5, -2.0]]


def _answer(size: int, tail: bytes) -> bytes:
    header = {
        "outputs": [{"name": "logits", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": size}}]
    }
    return json.dumps(header).encode() + tail


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (_answer(8, b"\x00" * 4), r"'logits'.*binary_data_size 8.*runs past the 4 bytes"),
        (_answer(8, b"\x00" * 12), r"4 bytes after the last binary output"),
        (_answer(4, b"\x00" * 4), r"'logits'.*4 bytes of data, expected 8"),
        (_answer(-1, b""), r"'logits'.*binary_data_size must be a byte count"),
        (b"\x00\x01binary", r"does not start with a JSON header"),
        (b'{"outputs": []}', r"no 'outputs'"),
        (b'{"outputs":[{"name":"l","shape":[1,2],"datatype":"FP32","data":[1]}]}', r"'l'.*1 values.*needs 2"),
        (b'{"outputs":[{"name":"l","shape":[1],"datatype":"INT8","data":[300]}]}', r"'l'.*not INT8"),
    ],
)
def test_malformed_answers_are_refused(body: bytes, match: str) -> None:
    with pytest.raises(TensorError, match=match):
        decode_binary_response(body)


def test_header_length_that_does_not_fit_is_refused() -> None:
    framed = encode_binary_response("m", {"y": np.ones(2, np.float32)})
    with pytest.raises(TensorError, match="does not fit a body"):
        decode_binary_response(framed.body, len(framed.body) + 1)
    with pytest.raises(TensorError, match="not a JSON header"):
        decode_binary_response(framed.body, framed.json_length - 1)


def test_truncated_bytes_element_is_refused() -> None:
    framed = encode_binary_response("m", {"s": np.array([b"abcdef"], dtype=object)})
    header = json.loads(framed.body[: framed.json_length])
    header["outputs"][0]["parameters"]["binary_data_size"] = 6  # 4-byte length says 6, only 2 follow
    head = json.dumps(header).encode()
    with pytest.raises(TensorError, match="'s'.*element 0 of 6 bytes runs past"):
        decode_binary_response(head + framed.body[framed.json_length : framed.json_length + 6])
