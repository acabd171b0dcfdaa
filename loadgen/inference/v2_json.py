"""The Open Inference Protocol's JSON bodies: named tensors -> an infer request, a response -> named tensors.

What: :func:`encode_request` turns an *input set* (``dict[str, numpy.ndarray]``, each array
with its batch dimension, dtype from :mod:`loadgen.inference.datatypes`) into the body of
``POST /v2/models/NAME/infer``; :func:`decode_response` turns a response body into an
*output set*; :func:`array_from_values` is the one place JSON values become a typed array
(the input-data file reader uses it too, so a file and an answer are read alike).

Why strict: a value that does not fit the declared datatype (1.5 as INT32, 300 as UINT8,
"x" as FP32, NaN anywhere -- JSON cannot carry it) is an error naming the tensor, never
silently cast; a benchmark that sends something else than the user's data measures
something else.  Floats are written with the shortest text that reads back to the same
value of their own precision (``0.1`` for float32 0.1, not ``0.10000000149011612``), so
the bytes sent are what a JSON client would send.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from loadgen.inference.datatypes import Datatype, datatype, datatype_of

__all__ = ["InputSet", "OutputSet", "array_from_values", "decode_response", "encode_request", "tensor_json"]

#: One request's inputs / one answer's outputs: tensor name -> array (batch dimension included).
InputSet = dict[str, np.ndarray]
OutputSet = dict[str, np.ndarray]


def _json_values(array: np.ndarray, dt: Datatype, name: str) -> list[Any]:
    """The flattened, row-major values of ``array`` as JSON-ready Python values."""
    flat = array.reshape(-1)
    if dt.name == "BYTES":
        out = []
        for i, item in enumerate(flat):
            raw = item.encode() if isinstance(item, str) else bytes(item)
            try:
                out.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise ValueError(
                    f"tensor {name!r} element {i} is not UTF-8 text: V2 JSON cannot carry it "
                    "(use the binary-tensor extension)"
                ) from None
        return out
    if dt.is_float:
        if not np.isfinite(flat).all():
            raise ValueError(f"tensor {name!r} holds NaN or infinity, which JSON cannot carry")
        return [float(text) for text in flat.astype(str)]  # shortest text of the value's own precision
    return flat.tolist()


def tensor_json(name: str, array: np.ndarray) -> dict[str, Any]:
    """One V2 tensor object ``{"name", "shape", "datatype", "data"}`` (data flattened, row-major)."""
    arr = np.asarray(array)
    dt = datatype_of(arr.dtype)
    return {"name": name, "shape": list(arr.shape), "datatype": dt.name, "data": _json_values(arr, dt, name)}


def encode_request(
    model_name: str, inputs: Mapping[str, np.ndarray], outputs: Sequence[str] = (), request_id: str = ""
) -> bytes:
    """The JSON body of ``POST /v2/models/{model_name}/infer`` for ``inputs`` (compact, UTF-8).

    ``model_name`` is not in a V2 body (it is in the URL); it is taken so that every encoder
    of named tensors (JSON, binary, gRPC) has the same signature.  ``outputs`` names the
    outputs asked for (empty: all, the server's default).
    """
    if not inputs:
        raise ValueError(f"no inputs to send to model {model_name!r}")
    doc: dict[str, Any] = {}
    if request_id:
        doc["id"] = request_id
    doc["inputs"] = [tensor_json(name, array) for name, array in inputs.items()]
    if outputs:
        doc["outputs"] = [{"name": name} for name in outputs]
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _at(where: str) -> str:
    """``"where: "`` before a problem, or nothing when the caller names the place itself."""
    return f"{where}: " if where else ""


def _check_shape(shape: Any, where: str) -> tuple[int, ...]:
    if not isinstance(shape, list | tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ValueError(f"{_at(where)}shape must be a list of non-negative integers, got {shape!r}")
    return tuple(int(d) for d in shape)


def array_from_values(values: Any, shape: Sequence[int], dtype_name: str, where: str) -> np.ndarray:
    """JSON values (flat or nested, row-major) -> an array of ``shape`` and the V2 datatype.

    Raises ValueError starting with ``where`` when the count does not match the shape or a
    value does not fit the datatype (a bool or a fraction for an integer type, an integer
    outside its range, a non-number for a float type, a non-string for BYTES, a finite
    value that overflows FP16/FP32).
    """
    dims = _check_shape(list(shape) if isinstance(shape, list | tuple) else shape, where)
    try:
        dt = datatype(dtype_name)
    except ValueError as exc:
        raise ValueError(f"{_at(where)}{exc}") from None
    if not isinstance(values, list):
        values = [values]
    try:
        raw = np.asarray(values, dtype=object if dt.name == "BYTES" else None)
        if dt.is_integer and raw.dtype.kind == "f":  # e.g. [0, 2**64 - 1]: numpy reads floats; keep the ints
            raw = np.asarray(values, dtype=object)
    except ValueError:
        raise ValueError(f"{_at(where)}data is a ragged nested list, not a tensor") from None
    flat = raw.reshape(-1)
    expected = math.prod(dims)
    if flat.size != expected:
        raise ValueError(f"{_at(where)}{flat.size} values for shape {list(dims)} ({expected} expected)")
    return _typed(flat, dt, where).reshape(dims)


def _typed(flat: np.ndarray, dt: Datatype, where: str) -> np.ndarray:
    """``flat`` (numpy's own reading of the JSON values) cast to ``dt`` when every value fits it."""
    kind = flat.dtype.kind
    what = f"{_at(where)}values do not fit {dt.name}"
    if dt.name == "BYTES":
        bad = next((v for v in flat if not isinstance(v, str | bytes)), None)
        if bad is not None:
            raise ValueError(f"{what}: {bad!r} is not a string")
        return np.array([v.encode() if isinstance(v, str) else v for v in flat] or [], dtype=object)
    if flat.size == 0:
        return flat.astype(dt.numpy)
    if dt.name == "BOOL":
        if kind != "b":
            raise ValueError(f"{what}: expected true/false, got {flat[0]!r}")
        return flat.astype(bool)
    if dt.is_integer:
        if kind == "O" and all(isinstance(v, int) and not isinstance(v, bool) for v in flat.tolist()):
            kind = "i"  # integers beyond 64 bits: numpy keeps them as Python ints, range-checked below
        if kind not in "iu":
            sample = next((v for v in flat.tolist() if not isinstance(v, int) or isinstance(v, bool)), flat[0])
            raise ValueError(f"{what}: {sample!r} is not an integer")
        info = np.iinfo(dt.numpy)
        low, high = int(min(flat.tolist())), int(max(flat.tolist()))
        if low < info.min or high > info.max:
            raise ValueError(f"{what}: {low if low < info.min else high} is outside {info.min}..{info.max}")
        return flat.astype(dt.numpy)
    if kind not in "iuf":
        sample = next((v for v in flat.tolist() if isinstance(v, bool) or not isinstance(v, int | float)), flat[0])
        raise ValueError(f"{what}: {sample!r} is not a number")
    as_float = flat.astype(np.float64)
    if not np.isfinite(as_float).all():
        raise ValueError(f"{what}: NaN or infinity")
    with np.errstate(over="ignore"):
        cast = as_float.astype(dt.numpy)
    if not np.isfinite(cast).all():
        raise ValueError(f"{what}: a value overflows {dt.name} (largest {np.finfo(dt.numpy).max:g})")
    return cast


def decode_response(body: bytes) -> OutputSet:
    """A V2 infer response body -> its output set; ValueError naming what is wrong.

    Accepts flat or nested ``data``; each output becomes an array of its ``shape`` and
    ``datatype``.  Outputs sent in binary (``parameters.binary_data_size``) are not JSON:
    they are reported, not guessed at.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"response is not JSON: {exc}") from None
    outputs = doc.get("outputs") if isinstance(doc, dict) else None
    if not isinstance(outputs, list) or not outputs:
        raise ValueError(f'expected {{"outputs": [...]}} in a V2 response, got {body[:200]!r}')
    result: OutputSet = {}
    for i, output in enumerate(outputs):
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            raise ValueError(f"outputs[{i}] has no name")
        name = output["name"]
        where = f"output {name!r}"
        if "data" not in output:
            if isinstance(output.get("parameters"), dict) and "binary_data_size" in output["parameters"]:
                raise ValueError(f"{where} came as binary data, not JSON")
            raise ValueError(f"{where} has no data")
        result[name] = array_from_values(output["data"], output.get("shape"), str(output.get("datatype")), where)
    return result
