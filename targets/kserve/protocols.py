"""The ``kserve`` adapter's four wire protocols: one MNIST image -> request, answer -> digit.

* ``v1``: TF Serving rows, ``POST /v1/models/NAME:predict`` (``{"instances": ...}``);
* ``v2``: the Open Inference Protocol in JSON, ``POST /v2/models/NAME/infer``;
* ``v2-binary``: the same endpoint with the binary-tensor extension (a JSON header, then
  the 784 float32 pixels raw; the logits asked back raw) --
  :mod:`loadgen.inference.v2_binary`;
* ``grpc-v2``: the Open Inference Protocol over gRPC, ``inference.GRPCInferenceService/ModelInfer``
  with the pixels in ``raw_input_contents`` -- :mod:`loadgen.inference.grpc_messages`,
  sent by the ``grpc`` engine.

Why one module: every protocol sends exactly ``models.data.wire_pixels(image)`` (the JSON
bodies print those float32 values to 4 decimals, which parse back bit-identical), so a
comparison of protocols compares the wire, not the input; and all four answers are the
model's 10 logits, argmax taken here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal

import numpy as np

from loadgen.inference.grpc_messages import (
    MODEL_INFER_METHOD,
    MODEL_METADATA_METHOD,
    decode_infer_response,
    encode_infer_request,
    encode_metadata_request,
    metadata_response_as_json,
)
from loadgen.inference.raw_tensors import TensorError
from loadgen.inference.v2_binary import decode_binary_response, encode_binary_request
from loadgen.inference.v2_json import decode_response, encode_request
from models.data import wire_pixels
from targets.base import DecodeError, Request
from targets.wire import argmax_logits, decode_v1_logits, dumps_compact, instances_body, wire_instance

__all__ = [
    "INPUT_NAME",
    "PROTOCOLS",
    "TENSOR_PROTOCOLS",
    "Protocol",
    "decode_answer",
    "decode_tensors",
    "encode_image",
    "encode_tensors",
    "infer_path",
    "metadata_json",
    "metadata_request",
]

Protocol = Literal["v1", "v2", "v2-binary", "grpc-v2"]
#: Every protocol the adapter speaks, in the order docs and errors list them.
PROTOCOLS: tuple[str, ...] = ("v1", "v2", "v2-binary", "grpc-v2")
#: The protocols that send any model's named tensors (an input-data file, synthesis from metadata);
#: all of them: the metadata comes from ``GET /v2/models/NAME`` or, for gRPC, the ``ModelMetadata`` RPC.
TENSOR_PROTOCOLS: tuple[str, ...] = ("v2", "v2-binary", "grpc-v2")

#: The SavedModel signature's input tensor (the V2 metadata's ``pixels``).
INPUT_NAME = "pixels"


def infer_path(protocol: str, model_name: str) -> str:
    """The request path: the REST URL path, or for gRPC the RPC's full method name."""
    if protocol == "v1":
        return f"/v1/models/{model_name}:predict"
    if protocol == "grpc-v2":
        return MODEL_INFER_METHOD
    return f"/v2/models/{model_name}/infer"


def encode_image(protocol: str, model_name: str, image: np.ndarray, headers: Mapping[str, str]) -> Request:
    """One uint8 28x28 image -> the request of ``protocol``; ``headers`` are the target's (Host, credentials)."""
    path = infer_path(protocol, model_name)
    if protocol == "v1":
        return Request("POST", path, instances_body(image), dict(headers))
    if protocol == "v2":
        flat = [value for row in wire_instance(image) for value in row]
        body = dumps_compact({"inputs": [{"name": INPUT_NAME, "shape": [1, 28, 28], "datatype": "FP32", "data": flat}]})
        return Request("POST", path, body, dict(headers))
    pixels = {INPUT_NAME: wire_pixels(image).astype(np.float32).reshape(1, 28, 28)}
    if protocol == "v2-binary":
        framed = encode_binary_request(pixels)
        others = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        return Request("POST", path, framed.body, {**others, **framed.headers()})
    if protocol == "grpc-v2":
        return Request("POST", path, encode_infer_request(model_name, pixels), dict(headers))
    raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")


def _logits_digit(outputs: Mapping[str, np.ndarray]) -> int:
    if len(outputs) != 1:
        raise DecodeError(f"expected one output tensor (the logits), got {sorted(outputs)}")
    (logits,) = outputs.values()
    if logits.shape != (1, 10):
        raise DecodeError(f"expected an output of shape [1, 10], got {list(logits.shape)}")
    return argmax_logits([float(v) for v in logits.reshape(-1)])


def _decode_v2_json(body: bytes) -> int:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"response is not JSON: {exc}") from None
    try:
        (output,) = doc["outputs"]
        if list(output["shape"]) != [1, 10]:
            raise DecodeError(f"expected an output of shape [1, 10], got {output['shape']}")
        logits = output["data"]
        if len(logits) == 1 and isinstance(logits[0], list):
            (logits,) = logits
    except DecodeError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise DecodeError(f"unexpected v2 response shape: {exc!r}") from None
    return argmax_logits(logits)


def decode_answer(protocol: str, status: int, body: bytes) -> int:
    """A 2xx answer of ``protocol`` -> the predicted digit; :class:`DecodeError` otherwise."""
    if protocol == "v1":
        return decode_v1_logits(status, body)
    if not 200 <= status < 300:
        raise DecodeError(f"HTTP {status} is not a prediction")
    if protocol == "v2":
        return _decode_v2_json(body)
    try:
        outputs = decode_binary_response(body) if protocol == "v2-binary" else decode_infer_response(body)
    except TensorError as exc:
        raise DecodeError(str(exc)) from None
    return _logits_digit(outputs)


def encode_tensors(
    protocol: str, model_name: str, inputs: Mapping[str, np.ndarray], headers: Mapping[str, str]
) -> Request:
    """Any model's input set -> the infer request of ``protocol`` (one of :data:`TENSOR_PROTOCOLS`)."""
    path = infer_path(protocol, model_name)
    if protocol == "v2":
        return Request("POST", path, encode_request(model_name, inputs), dict(headers))
    if protocol == "v2-binary":
        framed = encode_binary_request(inputs)
        others = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        return Request("POST", path, framed.body, {**others, **framed.headers()})
    if protocol == "grpc-v2":
        return Request("POST", path, encode_infer_request(model_name, inputs), dict(headers))
    raise ValueError(f"protocol {protocol!r} sends no named tensors; those that do: {', '.join(TENSOR_PROTOCOLS)}")


def metadata_request(protocol: str, model_name: str, headers: Mapping[str, str]) -> Request:
    """The model's V2 metadata request: ``GET /v2/models/NAME``, or the ``ModelMetadata`` RPC for grpc-v2."""
    if protocol == "grpc-v2":
        return Request("POST", MODEL_METADATA_METHOD, encode_metadata_request(model_name), dict(headers))
    others = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return Request("GET", f"/v2/models/{model_name}", b"", others)


def metadata_json(protocol: str, body: bytes) -> bytes:
    """The metadata answer as REST's JSON document (a gRPC ``ModelMetadataResponse`` converted)."""
    return metadata_response_as_json(body) if protocol == "grpc-v2" else body


def decode_tensors(protocol: str, body: bytes) -> dict[str, np.ndarray]:
    """A 2xx answer of ``protocol`` -> its output set; ValueError naming what is wrong."""
    if protocol == "v2":
        return decode_response(body)
    if protocol == "v2-binary":
        return decode_binary_response(body)  # TensorError is a ValueError
    if protocol == "grpc-v2":
        return decode_infer_response(body)
    raise ValueError(f"protocol {protocol!r} sends no named tensors; those that do: {', '.join(TENSOR_PROTOCOLS)}")
