"""V2 JSON bodies: every datatype of the table round-trips; values that do not fit are refused by name."""

from __future__ import annotations

import json

import numpy as np
import pytest

from loadgen.inference.datatypes import DATATYPES
from loadgen.inference.v2_json import array_from_values, decode_response, encode_request


def _example(name: str) -> np.ndarray:
    dt = DATATYPES[name]
    if name == "BYTES":
        return np.array([[b"ab", "é".encode()]], dtype=object)
    if name == "BOOL":
        return np.array([[True, False]])
    if dt.is_float:
        return np.array([[0.1, -2.5]], dtype=dt.numpy)
    info = np.iinfo(dt.numpy)
    return np.array([[info.min, info.max]], dtype=dt.numpy)


@pytest.mark.parametrize("name", list(DATATYPES))
def test_every_datatype_round_trips_through_a_request_and_a_response(name: str) -> None:
    array = _example(name)
    body = encode_request("m", {"x": array})
    doc = json.loads(body)
    (tensor,) = doc["inputs"]
    assert tensor["name"] == "x" and tensor["shape"] == [1, 2] and tensor["datatype"] == name
    back = decode_response(json.dumps({"outputs": doc["inputs"]}).encode())["x"]
    assert back.dtype == array.dtype and back.shape == array.shape
    assert [bytes(v) if name == "BYTES" else v for v in back.ravel()] == list(array.ravel())


def test_floats_are_written_with_their_shortest_text() -> None:
    body = encode_request("m", {"x": np.array([0.1, 1 / 3], dtype=np.float32)})
    assert b"[0.1,0.33333334]" in body  # not 0.10000000149011612


def test_nested_response_data_is_read_row_major() -> None:
    body = b'{"outputs":[{"name":"y","shape":[2,2],"datatype":"INT32","data":[[1,2],[3,4]]}]}'
    assert decode_response(body)["y"].tolist() == [[1, 2], [3, 4]]


@pytest.mark.parametrize(
    ("values", "dtype", "problem"),
    [
        ([1.5], "INT32", "1.5 is not an integer"),
        ([300], "UINT8", "300 is outside 0..255"),
        ([-1], "UINT16", "-1 is outside 0..65535"),
        (["x"], "FP32", "'x' is not a number"),
        ([1e40], "FP32", "overflows FP32"),
        ([True], "INT8", "True is not an integer"),
        ([1], "BOOL", "expected true/false"),
        ([1], "BYTES", "1 is not a string"),
        ([1], "BF16", "unknown V2 datatype 'BF16'"),
    ],
)
def test_values_that_do_not_fit_are_refused_naming_where(values, dtype, problem) -> None:
    with pytest.raises(ValueError, match="^sample 3, input 'x'") as err:
        array_from_values(values, [1], dtype, "sample 3, input 'x'")
    assert problem in str(err.value)


def test_a_count_that_does_not_fill_the_shape_is_refused() -> None:
    with pytest.raises(ValueError, match=r"3 values for shape \[2, 2\]"):
        array_from_values([1, 2, 3], [2, 2], "INT64", "here")


def test_json_cannot_carry_nan_or_non_utf8_bytes() -> None:
    with pytest.raises(ValueError, match="NaN or infinity"):
        encode_request("m", {"x": np.array([np.nan], dtype=np.float32)})
    with pytest.raises(ValueError, match="not UTF-8"):
        encode_request("m", {"s": np.array([b"\xff"], dtype=object)})


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"nope", "not JSON"),
        (b'{"predictions": [1]}', "outputs"),
        (b'{"outputs":[{"name":"y","shape":[1],"datatype":"FP32"}]}', "has no data"),
        (b'{"outputs":[{"name":"y","shape":[2],"datatype":"FP32","data":[1]}]}', "1 values for shape"),
    ],
)
def test_malformed_responses_say_what_is_wrong(body: bytes, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        decode_response(body)
