"""gRPC messages: every datatype round-trips raw and typed; bad messages are refused naming the tensor."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from loadgen.inference import grpc_predict_v2_pb2 as pb
from loadgen.inference.datatypes import DATATYPES
from loadgen.inference.grpc_messages import (
    decode_infer_request,
    decode_infer_response,
    encode_infer_request,
    encode_infer_response,
)
from loadgen.inference.raw_tensors import TensorError

PROTO = Path(__file__).resolve().parents[3] / "loadgen" / "inference" / "proto" / "grpc_predict_v2.proto"


def sample(name: str) -> np.ndarray:
    """A (2, 3) tensor of datatype ``name`` with values that exercise its range."""
    row = DATATYPES[name]
    if name == "BYTES":
        values = np.empty(6, dtype=object)
        values[:] = [b"", b"a", b"\x00\xff", "é".encode(), b"xyz" * 10, b"0"]
        return values.reshape(2, 3)
    if name == "BOOL":
        return np.array([[True, False, True], [False, False, True]])
    if row.is_integer:
        info = np.iinfo(row.numpy)
        return np.array([[info.min, 0, 1], [info.max, info.max - 1, 7]], dtype=row.numpy)
    return np.array([[-1.5, 0.0, 3.25], [np.finfo(row.numpy).max, np.finfo(row.numpy).tiny, -0.0]], dtype=row.numpy)


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tolist() == want.tolist()


@pytest.mark.parametrize("name", sorted(DATATYPES))
def test_request_round_trip_every_datatype(name: str) -> None:
    inputs = {"x": sample(name), "second": np.arange(4, dtype=np.int32).reshape(1, 4)}
    model, got = decode_infer_request(encode_infer_request("m", inputs))
    assert model == "m" and list(got) == ["x", "second"]
    for key, want in inputs.items():
        assert_same(got[key], want)


@pytest.mark.parametrize("raw", [True, False])
@pytest.mark.parametrize("name", sorted(set(DATATYPES) - {"FP16"}))
def test_response_round_trip_raw_and_typed(name: str, raw: bool) -> None:
    outputs = {"y": sample(name)}
    assert_same(decode_infer_response(encode_infer_response("m", outputs, raw=raw))["y"], outputs["y"])


def test_fp16_travels_raw_only() -> None:
    half = sample("FP16")
    assert_same(decode_infer_response(encode_infer_response("m", {"h": half}))["h"], half)
    with pytest.raises(TensorError, match="'h'.*FP16.*raw"):
        encode_infer_response("m", {"h": half}, raw=False)


def test_request_uses_raw_input_contents() -> None:
    message = pb.ModelInferRequest.FromString(encode_infer_request("mnist", {"p": np.ones((1, 2), np.float32)}))
    assert message.model_name == "mnist" and len(message.raw_input_contents) == 1
    assert message.inputs[0].datatype == "FP32" and list(message.inputs[0].shape) == [1, 2]
    assert not message.inputs[0].HasField("contents")


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda m: m.raw_output_contents.__setitem__(0, b"\x00" * 3), r"'y'.*3 bytes.*expected 8"),
        (lambda m: m.raw_output_contents.append(b"extra"), r"1 output tensors but 2 raw contents"),
        (lambda m: setattr(m.outputs[0], "datatype", "BF16"), r"'y'.*unknown V2 datatype 'BF16'"),
    ],
)
def test_malformed_raw_answers_name_the_output(mutate, match: str) -> None:
    message = pb.ModelInferResponse.FromString(encode_infer_response("m", {"y": np.ones((1, 2), np.float32)}))
    mutate(message)
    with pytest.raises(TensorError, match=match):
        decode_infer_response(message.SerializeToString())


def test_typed_answer_with_too_few_values_names_the_field() -> None:
    message = pb.ModelInferResponse(model_name="m")
    tensor = message.outputs.add(name="logits", datatype="FP32", shape=[1, 10])
    tensor.contents.fp32_contents.extend([0.5] * 9)
    with pytest.raises(TensorError, match=r"'logits'.*9 values in contents.fp32_contents, expected 10"):
        decode_infer_response(message.SerializeToString())


def test_typed_value_out_of_range_is_refused() -> None:
    message = pb.ModelInferResponse(model_name="m")
    message.outputs.add(name="u", datatype="UINT8", shape=[1]).contents.uint_contents.append(300)
    with pytest.raises(TensorError, match="'u'.*does not fit UINT8"):
        decode_infer_response(message.SerializeToString())


@pytest.mark.parametrize("body", [b"\xff\xff\xff", b"", pb.ModelInferResponse(model_name="m").SerializeToString()])
def test_not_an_answer_is_refused(body: bytes) -> None:
    with pytest.raises(TensorError):
        decode_infer_response(body)


def test_bad_inputs_refused_before_encoding() -> None:
    with pytest.raises(TensorError, match="at least one input"):
        encode_infer_request("m", {})
    with pytest.raises(TensorError, match="'x'.*numpy array"):
        encode_infer_request("m", {"x": [1, 2]})
    with pytest.raises(TensorError, match="model_name"):
        encode_infer_request("", {"x": np.ones(1, np.float32)})
    with pytest.raises(TensorError, match="'s'.*element 1 is int"):
        encode_infer_request("m", {"s": np.array([b"a", 3], dtype=object)})


def test_wire_compatible_with_kserve_messages() -> None:
    """Our bytes parse as kserve's own ModelInferRequest, and kserve's answer bytes decode here."""
    kpb = pytest.importorskip("kserve.protocol.grpc.grpc_predict_v2_pb2")
    body = encode_infer_request("mnist", {"pixels": np.full((1, 28, 28), 0.5, np.float32)})
    theirs = kpb.ModelInferRequest.FromString(body)
    assert theirs.inputs[0].name == "pixels" and len(theirs.raw_input_contents[0]) == 28 * 28 * 4
    answer = kpb.ModelInferResponse(model_name="mnist")
    answer.outputs.add(name="logits", datatype="FP32", shape=[1, 3]).contents.fp32_contents.extend([1.0, 2.0, 3.0])
    assert decode_infer_response(answer.SerializeToString())["logits"].tolist() == [[1.0, 2.0, 3.0]]


def test_committed_descriptor_is_protoc_output_of_the_vendored_proto(tmp_path: Path) -> None:
    """The serialized descriptor in grpc_predict_v2_pb2 is what protoc makes of the .proto we ship."""
    pytest.importorskip("grpc_tools")
    out = subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO.parent}", f"--python_out={tmp_path}", str(PROTO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    generated = (tmp_path / "grpc_predict_v2_pb2.py").read_text()
    blob = re.search(r"AddSerializedFile\((b'.*?')\)", generated, re.S)
    assert blob is not None
    assert eval(blob.group(1)) == pb.SERIALIZED_FILE
