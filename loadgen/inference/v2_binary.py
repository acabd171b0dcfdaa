"""The Open Inference Protocol's binary-tensor extension over HTTP: named tensors <-> framed bodies.

A binary-tensor body is a JSON header (the V2 inference request or response, where each
binary tensor carries ``"parameters": {"binary_data_size": N}`` instead of ``"data"``)
followed by the tensors' raw bytes in header order (layout: :mod:`loadgen.inference.raw_tensors`).
The header's length travels in the ``Inference-Header-Content-Length`` HTTP header.
Spec: the KServe / Triton "binary tensor data extension"; this is what Triton's HTTP
client sends and what KServe's V2 REST endpoint accepts.

Why it exists next to V2 JSON: a float written as text costs ~6-18 bytes and a parse;
raw it costs 4 and a copy.  For MNIST's 784 pixels that is ~6 KB of JSON against 3 KB
of binary, the difference the three-protocol comparison measures.

The decoder reads JSON-only answers too (tensors with ``"data"``), and finds the header's
end itself when the ``Inference-Header-Content-Length`` is not at hand (an engine's
``Response`` keeps the body, not the headers): the header is one JSON object, and the
first complete object in the body is it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loadgen.inference.datatypes import datatype
from loadgen.inference.raw_tensors import TensorError, check_tensors, element_count, from_raw, to_raw

__all__ = [
    "HEADER_LENGTH",
    "BinaryBody",
    "decode_binary_response",
    "encode_binary_request",
    "encode_binary_response",
    "split_binary_body",
]

#: The HTTP header that carries the JSON header's length in bytes.
HEADER_LENGTH = "Inference-Header-Content-Length"


@dataclass(frozen=True)
class BinaryBody:
    """A framed body and the length of its JSON header (the value of :data:`HEADER_LENGTH`)."""

    body: bytes
    json_length: int

    def headers(self, content_type: str = "application/octet-stream") -> dict[str, str]:
        """The HTTP headers that must travel with the body."""
        return {"Content-Type": content_type, HEADER_LENGTH: str(self.json_length)}


def _compact(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _frame(doc: dict[str, Any], key: str, tensors: Mapping[str, np.ndarray], what: str) -> BinaryBody:
    entries, raws = [], []
    for name, (array, row) in check_tensors(tensors, what).items():
        raw = to_raw(name, array)
        entries.append(
            {
                "name": name,
                "shape": [int(d) for d in array.shape],
                "datatype": row.name,
                "parameters": {"binary_data_size": len(raw)},
            }
        )
        raws.append(raw)
    doc[key] = entries
    header = _compact(doc)
    return BinaryBody(header + b"".join(raws), len(header))


def encode_binary_request(
    inputs: Mapping[str, np.ndarray],
    *,
    outputs: Sequence[str] = (),
    binary_outputs: bool = True,
    request_id: str = "",
) -> BinaryBody:
    """An input set -> a binary-tensor request body (POST it to ``/v2/models/NAME/infer``).

    ``binary_outputs`` asks the server for raw answers (``binary_data_output``, or
    ``binary_data`` per named output); the model name is in the URL, not the body.
    """
    doc: dict[str, Any] = {}
    if request_id:
        doc["id"] = request_id
    if outputs:
        doc["outputs"] = [{"name": n, "parameters": {"binary_data": binary_outputs}} for n in outputs]
    elif binary_outputs:
        doc["parameters"] = {"binary_data_output": True}
    return _frame(doc, "inputs", inputs, "input")


def encode_binary_response(model_name: str, outputs: Mapping[str, np.ndarray]) -> BinaryBody:
    """An output set -> a binary-tensor response body (for tests and null servers)."""
    return _frame({"model_name": model_name}, "outputs", outputs, "output")


def split_binary_body(body: bytes, json_length: int | None = None) -> tuple[dict[str, Any], bytes]:
    """(the JSON header, the bytes after it); the header's end found by parsing when not given."""
    if json_length is None:
        text = body.decode("latin-1")  # one char per byte, so positions are byte offsets
        try:
            _doc, end = json.JSONDecoder().raw_decode(text)
        except ValueError as exc:
            raise TensorError(f"the body does not start with a JSON header: {exc}") from None
        json_length = end
    if not 0 < json_length <= len(body):
        raise TensorError(f"{HEADER_LENGTH} {json_length} does not fit a body of {len(body)} bytes")
    try:
        doc = json.loads(body[:json_length])
    except (ValueError, UnicodeDecodeError) as exc:
        raise TensorError(f"the first {json_length} bytes are not a JSON header: {exc}") from None
    if not isinstance(doc, dict):
        raise TensorError(f"the JSON header is a {type(doc).__name__}, not an object")
    return doc, body[json_length:]


def _json_tensor(name: str, entry: Mapping[str, Any], shape: list[int]) -> np.ndarray:
    try:
        row = datatype(entry.get("datatype"))
    except ValueError as exc:
        raise TensorError(f"output {name!r}: {exc}") from None
    data = entry.get("data")
    if not isinstance(data, list):
        raise TensorError(f"output {name!r}: neither 'data' nor parameters.binary_data_size")
    flat = np.asarray(data, dtype=object).reshape(-1) if row.name == "BYTES" else None
    try:
        if flat is None:
            flat = np.asarray(data, dtype=row.numpy).reshape(-1)
        else:
            flat = np.array([v.encode() if isinstance(v, str) else v for v in flat], dtype=object)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TensorError(f"output {name!r}: 'data' is not {row.name} values: {exc}") from None
    if flat.size != element_count(name, shape):
        raise TensorError(
            f"output {name!r}: {flat.size} values in 'data', shape {shape} needs {element_count(name, shape)}"
        )
    return flat.reshape(shape)


def decode_binary_response(body: bytes, json_length: int | None = None) -> dict[str, np.ndarray]:
    """A V2 response body, binary-tensor or plain JSON -> its output set.

    Every ``binary_data_size`` must fit the bytes that follow the header, and together use
    them exactly: a short or long body is a :class:`TensorError` naming the output.
    """
    doc, rest = split_binary_body(body, json_length)
    outputs = doc.get("outputs")
    if not isinstance(outputs, list) or not outputs:
        raise TensorError(f"the answer has no 'outputs' list: {str(doc)[:200]}")
    result: dict[str, np.ndarray] = {}
    offset = 0
    for index, entry in enumerate(outputs):
        if not isinstance(entry, dict):
            raise TensorError(f"outputs[{index}] is not an object")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise TensorError(f"outputs[{index}] has no name")
        if name in result:
            raise TensorError(f"output {name!r} appears twice")
        shape = entry.get("shape")
        if not isinstance(shape, list):
            raise TensorError(f"output {name!r}: 'shape' must be a list, got {shape!r}")
        size = (entry.get("parameters") or {}).get("binary_data_size")
        if size is None:
            result[name] = _json_tensor(name, entry, shape)
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise TensorError(f"output {name!r}: binary_data_size must be a byte count, got {size!r}")
        if offset + size > len(rest):
            raise TensorError(
                f"output {name!r}: binary_data_size {size} at byte {offset} runs past "
                f"the {len(rest)} bytes after the header"
            )
        result[name] = from_raw(name, str(entry.get("datatype")), shape, rest[offset : offset + size])
        offset += size
    if offset != len(rest):
        raise TensorError(f"{len(rest) - offset} bytes after the last binary output are not described by the header")
    return result
