"""The V2 datatype table: every spec name maps to the numpy dtype and gRPC field the spec gives."""

import numpy as np
import pytest

from loadgen.inference.datatypes import DATATYPES, datatype, datatype_of


def test_every_spec_datatype_but_bf16_is_known() -> None:
    spec = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
    spec |= {"FP16", "FP32", "FP64", "BYTES"}
    assert set(DATATYPES) == spec


@pytest.mark.parametrize(
    ("name", "dtype", "itemsize", "field"),
    [
        ("BOOL", np.bool_, 1, "bool_contents"),
        ("UINT16", np.uint16, 2, "uint_contents"),
        ("UINT64", np.uint64, 8, "uint64_contents"),
        ("INT8", np.int8, 1, "int_contents"),
        ("INT64", np.int64, 8, "int64_contents"),
        ("FP16", np.float16, 2, ""),
        ("FP32", np.float32, 4, "fp32_contents"),
        ("FP64", np.float64, 8, "fp64_contents"),
    ],
)
def test_row_matches_the_spec(name: str, dtype: type, itemsize: int, field: str) -> None:
    row = datatype(name)
    assert (row.numpy, row.itemsize, row.grpc_field) == (np.dtype(dtype), itemsize, field)
    assert datatype_of(dtype) is row


def test_bytes_and_strings_are_bytes() -> None:
    assert datatype("BYTES").itemsize == 0
    assert datatype_of(np.array([b"ab"]).dtype).name == "BYTES"
    assert datatype_of(np.array(["ab"]).dtype).name == "BYTES"


def test_unknown_names_are_rejected_by_name() -> None:
    with pytest.raises(ValueError, match="'BF16'"):
        datatype("BF16")
    with pytest.raises(ValueError, match="'fp32'"):
        datatype("fp32")
    with pytest.raises(ValueError, match="complex128"):
        datatype_of(np.complex128)
