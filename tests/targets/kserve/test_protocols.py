"""The kserve adapter's four protocols send the same pixels and read the same digit (pure, no server)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from loadgen.inference.grpc_messages import MODEL_INFER_METHOD, decode_infer_request, encode_infer_response
from loadgen.inference.v2_binary import HEADER_LENGTH, encode_binary_response, split_binary_body
from loadgen.request import DecodeError
from models.data import wire_pixels
from targets.kserve.protocols import (
    PROTOCOLS,
    TENSOR_PROTOCOLS,
    decode_answer,
    decode_tensors,
    encode_image,
    encode_tensors,
    metadata_json,
    metadata_request,
)

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


# -- any model's named tensors over every V2 protocol (input-data files, synthesis) ---------------
TOKENS = {"tokens": np.array([[1, 2, 3, 4]], dtype=np.int64)}
SCORES = {"scores": np.array([[0.25, 0.5, 0.25]], dtype=np.float32), "label": np.array([1], dtype=np.int64)}


def _answer(protocol: str) -> bytes:
    """What a server of ``protocol`` answers with SCORES."""
    from loadgen.inference.grpc_messages import encode_infer_response

    if protocol == "v2":
        outputs = [
            {
                "name": n,
                "datatype": "FP32" if a.dtype == np.float32 else "INT64",
                "shape": list(a.shape),
                "data": a.reshape(-1).tolist(),
            }
            for n, a in SCORES.items()
        ]
        return json.dumps({"model_name": "toy", "outputs": outputs}).encode()
    if protocol == "v2-binary":
        return encode_binary_response("toy", SCORES).body
    return encode_infer_response("toy", SCORES)


@pytest.mark.parametrize("protocol", TENSOR_PROTOCOLS)
def test_named_tensors_go_over_every_v2_protocol_and_come_back(protocol: str) -> None:
    request = encode_tensors(protocol, "toy", TOKENS, HEADERS)
    if protocol == "grpc-v2":
        model, inputs = decode_infer_request(request.body)
        assert (model, request.path) == ("toy", MODEL_INFER_METHOD)
    elif protocol == "v2-binary":
        header, raw = split_binary_body(request.body, int(request.headers[HEADER_LENGTH]))
        assert request.path == "/v2/models/toy/infer" and header["inputs"][0]["datatype"] == "INT64"
        inputs = {"tokens": np.frombuffer(raw, dtype="<i8").reshape(1, 4)}
    else:
        doc = json.loads(request.body)
        inputs = {"tokens": np.asarray(doc["inputs"][0]["data"], dtype=np.int64).reshape(1, 4)}
    np.testing.assert_array_equal(inputs["tokens"], TOKENS["tokens"])
    answer = decode_tensors(protocol, _answer(protocol))
    assert set(answer) == set(SCORES)
    for name, expected in SCORES.items():
        assert answer[name].dtype == expected.dtype
        np.testing.assert_array_equal(answer[name], expected)


def test_v1_sends_no_named_tensors() -> None:
    with pytest.raises(ValueError, match="sends no named tensors"):
        encode_tensors("v1", "toy", TOKENS, HEADERS)
    with pytest.raises(ValueError, match="sends no named tensors"):
        decode_tensors("v1", b"{}")


def test_grpc_metadata_is_the_model_metadata_rpc_read_as_rest_json() -> None:
    from loadgen.inference import grpc_predict_v2_pb2 as pb
    from loadgen.inference.metadata import parse_metadata

    request = metadata_request("grpc-v2", "toy", HEADERS)
    assert request.path == "/inference.GRPCInferenceService/ModelMetadata"
    assert pb.ModelMetadataRequest.FromString(request.body).name == "toy"
    answer = pb.ModelMetadataResponse(name="toy", versions=["1"], platform="custom")
    answer.inputs.add(name="tokens", datatype="INT64", shape=[-1, 4])
    answer.outputs.add(name="scores", datatype="FP32", shape=[-1, 3])
    metadata = parse_metadata(metadata_json("grpc-v2", answer.SerializeToString()))
    assert metadata.name == "toy"
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.inputs] == [("tokens", "INT64", [-1, 4])]
    assert [(t.name, t.datatype, list(t.shape)) for t in metadata.outputs] == [("scores", "FP32", [-1, 3])]
    rest = metadata_request("v2", "toy", HEADERS)
    assert (rest.method, rest.path, rest.body) == ("GET", "/v2/models/toy", b"")
    assert "Content-Type" not in rest.headers and rest.headers["Authorization"] == "Bearer x"
    assert metadata_json("v2", b'{"name": "toy"}') == b'{"name": "toy"}'
    with pytest.raises(ValueError, match="ModelMetadataResponse"):
        metadata_json("grpc-v2", b"\xff\xff not a message")
