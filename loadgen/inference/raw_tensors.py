"""Named tensors <-> raw bytes: the one raw layout the binary-tensor extension and gRPC share.

Why one module: the HTTP binary-tensor extension (``binary_data_size`` sections after a
JSON header) and gRPC's ``raw_input_contents`` / ``raw_output_contents`` carry a tensor's
elements the same way -- little-endian, row-major, no padding; BOOL one byte per element;
BYTES each element as a 4-byte little-endian length followed by its bytes (the Open
Inference Protocol's binary-tensor spec, which Triton's and KServe's clients follow).
Written once, the two protocols cannot disagree on it.

An *input set* / *output set* is ``dict[str, numpy.ndarray]``: tensor name -> array with
its batch dimension, dtype from :mod:`loadgen.inference.datatypes`.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence

import numpy as np

from loadgen.inference.datatypes import Datatype, datatype, datatype_of

__all__ = ["TensorError", "check_tensors", "from_raw", "to_raw"]


class TensorError(ValueError):
    """A tensor that cannot be encoded or decoded; the message names the tensor and the field."""


def check_tensors(tensors: Mapping[str, np.ndarray], what: str = "input") -> dict[str, tuple[np.ndarray, Datatype]]:
    """Each named array with its V2 datatype, checked: non-empty names, numpy arrays, a known dtype."""
    if not isinstance(tensors, Mapping) or not tensors:
        raise TensorError(f"need at least one {what} tensor (a dict of name -> numpy array)")
    checked: dict[str, tuple[np.ndarray, Datatype]] = {}
    for name, array in tensors.items():
        if not isinstance(name, str) or not name:
            raise TensorError(f"{what} tensor names must be non-empty strings, got {name!r}")
        if not isinstance(array, np.ndarray):
            raise TensorError(f"{what} {name!r}: expected a numpy array, got {type(array).__name__}")
        try:
            row = datatype_of(array.dtype)
        except ValueError as exc:
            raise TensorError(f"{what} {name!r}: {exc}") from None
        checked[name] = (array, row)
    return checked


def to_raw(name: str, array: np.ndarray) -> bytes:
    """One tensor's elements as raw bytes (little-endian; BYTES length-prefixed)."""
    row = datatype_of(array.dtype)
    if row.name != "BYTES":
        return np.ascontiguousarray(array, dtype=row.numpy.newbyteorder("<")).tobytes()
    parts = []
    for index, element in enumerate(array.reshape(-1)):
        if isinstance(element, str):
            element = element.encode()
        if not isinstance(element, bytes | bytearray | np.bytes_):
            raise TensorError(f"tensor {name!r} (BYTES): element {index} is {type(element).__name__}, not bytes")
        parts.append(struct.pack("<I", len(element)))
        parts.append(bytes(element))
    return b"".join(parts)


def element_count(name: str, shape: Sequence[int]) -> int:
    """The number of elements a shape holds; TensorError for a negative or non-integer dimension."""
    dims = list(shape)
    if any(isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 0 for d in dims):
        raise TensorError(f"tensor {name!r}: shape {dims} must be non-negative integers")
    return math.prod(int(d) for d in dims)


def from_raw(name: str, datatype_name: str, shape: Sequence[int], data: bytes) -> np.ndarray:
    """Raw bytes -> an array of ``shape``; TensorError when the byte count does not fit."""
    try:
        row = datatype(datatype_name)
    except ValueError as exc:
        raise TensorError(f"tensor {name!r}: {exc}") from None
    count = element_count(name, shape)
    dims = tuple(int(d) for d in shape)
    if row.name != "BYTES":
        if len(data) != count * row.itemsize:
            raise TensorError(
                f"tensor {name!r} ({row.name}, shape {list(dims)}): {len(data)} bytes of data, "
                f"expected {count * row.itemsize}"
            )
        return np.frombuffer(data, dtype=row.numpy.newbyteorder("<")).astype(row.numpy).reshape(dims)
    elements: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise TensorError(f"tensor {name!r} (BYTES): truncated length prefix at byte {offset}")
        (size,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if offset + size > len(data):
            raise TensorError(f"tensor {name!r} (BYTES): element {len(elements)} of {size} bytes runs past the data")
        elements.append(bytes(data[offset : offset + size]))
        offset += size
    if len(elements) != count:
        raise TensorError(f"tensor {name!r} (BYTES, shape {list(dims)}): {len(elements)} elements, expected {count}")
    out = np.empty(count, dtype=object)
    out[:] = elements
    return out.reshape(dims)
