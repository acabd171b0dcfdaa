"""The Open Inference Protocol's tensor datatypes: one table from a V2 name to numpy and gRPC.

Why one table: the JSON encoder, the binary-tensor extension, the gRPC messages, the
input-data file reader and the metadata synthesiser all need "which numpy dtype is FP16,
how many bytes is one INT64, which ``InferTensorContents`` field carries UINT16"; written
once, they cannot disagree.  Source: the KServe V2 / Open Inference Protocol spec
(``Tensor Data Types``) and its ``grpc_predict_v2.proto`` (``InferTensorContents``).

BF16 is left out on purpose: numpy has no bfloat16, and neither JSON nor this project's
models use it; a tensor that declares it is rejected with a message naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DATATYPES", "Datatype", "datatype", "datatype_of"]


@dataclass(frozen=True)
class Datatype:
    """One V2 datatype: its name, numpy dtype, size of one element, and gRPC content field.

    ``itemsize`` is 0 for BYTES (each element is a length-prefixed string in the binary
    extension).  ``grpc_field`` is the ``InferTensorContents`` field that carries it, or ""
    when the proto has none (FP16: only ``raw_input_contents`` carries it).
    """

    name: str
    numpy: np.dtype
    itemsize: int
    grpc_field: str

    @property
    def is_integer(self) -> bool:
        return self.numpy.kind in "iu"

    @property
    def is_float(self) -> bool:
        return self.numpy.kind == "f"


def _row(name: str, dtype: str, grpc_field: str) -> Datatype:
    np_dtype = np.dtype(dtype)
    return Datatype(name, np_dtype, 0 if name == "BYTES" else np_dtype.itemsize, grpc_field)


#: Every datatype this project sends and reads, by V2 name.
DATATYPES: dict[str, Datatype] = {
    row.name: row
    for row in (
        _row("BOOL", "bool", "bool_contents"),
        _row("UINT8", "uint8", "uint_contents"),
        _row("UINT16", "uint16", "uint_contents"),
        _row("UINT32", "uint32", "uint_contents"),
        _row("UINT64", "uint64", "uint64_contents"),
        _row("INT8", "int8", "int_contents"),
        _row("INT16", "int16", "int_contents"),
        _row("INT32", "int32", "int_contents"),
        _row("INT64", "int64", "int64_contents"),
        _row("FP16", "float16", ""),
        _row("FP32", "float32", "fp32_contents"),
        _row("FP64", "float64", "fp64_contents"),
        _row("BYTES", "object", "bytes_contents"),
    )
}


def datatype(name: str) -> Datatype:
    """The row for a V2 datatype name (case-sensitive, as the spec writes it); ValueError names it."""
    try:
        return DATATYPES[name]
    except (KeyError, TypeError):
        known = ", ".join(DATATYPES)
        raise ValueError(f"unknown V2 datatype {name!r} (known: {known})") from None


def datatype_of(dtype: np.dtype | type) -> Datatype:
    """The V2 datatype of a numpy dtype (object and bytes/str arrays are BYTES)."""
    np_dtype = np.dtype(dtype)
    if np_dtype.kind in "OSU":
        return DATATYPES["BYTES"]
    for row in DATATYPES.values():
        if row.numpy == np_dtype:
            return row
    raise ValueError(f"numpy dtype {np_dtype} has no V2 datatype")
