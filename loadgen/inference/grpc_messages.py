"""Named tensors <-> the Open Inference Protocol's gRPC messages, as serialized bytes.

``encode_infer_request(model_name, inputs)`` builds a serialized
``inference.ModelInferRequest`` whose tensors travel in ``raw_input_contents`` (what
Triton's and KServe's own clients send, and what makes KServe answer in
``raw_output_contents``); ``decode_infer_response(body)`` reads a serialized
``ModelInferResponse`` back into an output set, from raw *or* typed contents
(``InferTensorContents``: ``fp32_contents``, ``int64_contents``, ...), since servers
answer either way.  The reverse pair (``encode_infer_response`` / ``decode_infer_request``)
serves the null gRPC server and the tests.

Why bytes and not message objects: the gRPC engine sends pre-serialized requests
(``unary_unary`` with no serializer), so building and serializing happens once, outside
any measured latency, exactly like the HTTP engines' pre-built request bytes.  The
messages come from the vendored proto (:mod:`loadgen.inference.grpc_predict_v2_pb2`); no
kserve import (loadgen is below targets).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError as ProtobufDecodeError

from loadgen.inference import grpc_predict_v2_pb2 as pb
from loadgen.inference.datatypes import datatype
from loadgen.inference.raw_tensors import TensorError, check_tensors, element_count, from_raw, to_raw

__all__ = [
    "MODEL_INFER_METHOD",
    "MODEL_METADATA_METHOD",
    "encode_metadata_request",
    "metadata_response_as_json",
    "decode_infer_request",
    "decode_infer_response",
    "encode_infer_request",
    "encode_infer_response",
]

MODEL_INFER_METHOD = pb.MODEL_INFER_METHOD
MODEL_METADATA_METHOD = pb.MODEL_METADATA_METHOD


def encode_infer_request(
    model_name: str,
    inputs: Mapping[str, np.ndarray],
    *,
    outputs: Sequence[str] = (),
    model_version: str = "",
    request_id: str = "",
) -> bytes:
    """An input set -> a serialized ``ModelInferRequest`` (tensors in ``raw_input_contents``).

    ``outputs`` names the output tensors to ask for (none: the server sends all).
    """
    if not isinstance(model_name, str) or not model_name:
        raise TensorError(f"model_name must be a non-empty string, got {model_name!r}")
    message = pb.ModelInferRequest(model_name=model_name, model_version=model_version, id=request_id)
    for name, (array, row) in check_tensors(inputs, "input").items():
        message.inputs.add(name=name, datatype=row.name, shape=[int(d) for d in array.shape])
        message.raw_input_contents.append(to_raw(name, array))
    for name in outputs:
        message.outputs.add(name=name)
    return message.SerializeToString()


def encode_infer_response(
    model_name: str, outputs: Mapping[str, np.ndarray], *, raw: bool = True, request_id: str = ""
) -> bytes:
    """An output set -> a serialized ``ModelInferResponse``, in raw (default) or typed contents.

    Typed contents cannot carry FP16 (the proto has no field for it): TensorError.
    """
    message = pb.ModelInferResponse(model_name=model_name, id=request_id)
    for name, (array, row) in check_tensors(outputs, "output").items():
        tensor = message.outputs.add(name=name, datatype=row.name, shape=[int(d) for d in array.shape])
        if raw:
            message.raw_output_contents.append(to_raw(name, array))
        elif not row.grpc_field:
            raise TensorError(f"output {name!r}: {row.name} has no typed gRPC contents field; send it raw")
        else:
            values = array.reshape(-1)
            if row.name == "BYTES":
                values = [v.encode() if isinstance(v, str) else bytes(v) for v in values]
            else:
                values = values.tolist()
            getattr(tensor.contents, row.grpc_field).extend(values)
    return message.SerializeToString()


def _tensors(kind: str, tensors: Sequence[Any], raw: Sequence[bytes]) -> dict[str, np.ndarray]:
    """Tensors of a parsed message -> arrays; raw contents by position, typed contents otherwise."""
    if raw and len(raw) != len(tensors):
        raise TensorError(
            f"{len(tensors)} {kind} tensors but {len(raw)} raw contents; the protocol needs one per tensor"
        )
    result: dict[str, np.ndarray] = {}
    for index, tensor in enumerate(tensors):
        name = tensor.name or f"#{index}"
        if name in result:
            raise TensorError(f"{kind} {name!r} appears twice")
        shape = list(tensor.shape)
        if raw:
            result[name] = from_raw(name, tensor.datatype, shape, raw[index])
            continue
        try:
            row = datatype(tensor.datatype)
        except ValueError as exc:
            raise TensorError(f"{kind} {name!r}: {exc}") from None
        if not row.grpc_field:
            raise TensorError(f"{kind} {name!r}: {row.name} needs raw contents, and the message has none")
        values = list(getattr(tensor.contents, row.grpc_field))
        count = element_count(name, shape)
        if len(values) != count:
            raise TensorError(
                f"{kind} {name!r} ({row.name}, shape {shape}): {len(values)} values in "
                f"contents.{row.grpc_field}, expected {count}"
            )
        if row.name == "BYTES":
            array = np.empty(count, dtype=object)
            array[:] = values
        else:
            try:
                array = np.asarray(values, dtype=row.numpy) if values else np.zeros(0, dtype=row.numpy)
            except OverflowError:
                raise TensorError(
                    f"{kind} {name!r}: a value in contents.{row.grpc_field} does not fit {row.name}"
                ) from None
        result[name] = array.reshape(shape)
    return result


def _parse(message_cls: Any, body: bytes, what: str) -> Any:
    try:
        return message_cls.FromString(body)
    except (ProtobufDecodeError, TypeError, ValueError) as exc:
        raise TensorError(f"not a serialized {what} ({len(body)} bytes): {exc}") from None


def decode_infer_response(body: bytes) -> dict[str, np.ndarray]:
    """A serialized ``ModelInferResponse`` -> its output set (raw or typed contents)."""
    message = _parse(pb.ModelInferResponse, body, "inference.ModelInferResponse")
    if not message.outputs:
        raise TensorError("the ModelInferResponse has no outputs")
    return _tensors("output", message.outputs, message.raw_output_contents)


def decode_infer_request(body: bytes) -> tuple[str, dict[str, np.ndarray]]:
    """A serialized ``ModelInferRequest`` -> (model name, input set) (raw or typed contents)."""
    message = _parse(pb.ModelInferRequest, body, "inference.ModelInferRequest")
    if not message.inputs:
        raise TensorError("the ModelInferRequest has no inputs")
    return message.model_name, _tensors("input", message.inputs, message.raw_input_contents)


def encode_metadata_request(model_name: str) -> bytes:
    """A serialized ``ModelMetadataRequest`` for ``model_name`` (the gRPC twin of ``GET /v2/models/NAME``)."""
    if not isinstance(model_name, str) or not model_name:
        raise TensorError(f"model_name must be a non-empty string, got {model_name!r}")
    return pb.ModelMetadataRequest(name=model_name).SerializeToString()


def metadata_response_as_json(body: bytes) -> bytes:
    """A serialized ``ModelMetadataResponse`` -> the document REST's ``GET /v2/models/NAME`` answers.

    Why JSON: the two carry the same fields (name, versions, platform, inputs and outputs
    with name, datatype, shape), so one reader (:func:`loadgen.inference.metadata.parse_metadata`)
    checks both, and a gRPC target's files and synthesis are judged exactly like a REST one's.
    """
    message = _parse(pb.ModelMetadataResponse, body, "inference.ModelMetadataResponse")

    def tensors(items: Sequence[Any]) -> list[dict[str, Any]]:
        return [{"name": t.name, "datatype": t.datatype, "shape": [int(d) for d in t.shape]} for t in items]

    doc = {
        "name": message.name,
        "versions": list(message.versions),
        "platform": message.platform,
        "inputs": tensors(message.inputs),
        "outputs": tensors(message.outputs),
    }
    return json.dumps(doc, separators=(",", ":")).encode()
