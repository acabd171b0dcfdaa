"""Input-data files: perf_analyzer's JSON and JSON lines, each bad file refused naming file, sample and field."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np
import pytest

from loadgen.inference.input_data import InputDataError, read_input_file, resolve_tensors
from loadgen.inference.metadata import ModelMetadata, TensorSpec, parse_metadata

#: A model unlike MNIST: INT64 tokens [-1, 4] and a BOOL mask [-1, 4] in, FP32 scores [-1, 3] out.
META = ModelMetadata(
    name="toy",
    platform="",
    versions=(),
    inputs=(TensorSpec("tokens", "INT64", (-1, 4)), TensorSpec("mask", "BOOL", (-1, 4))),
    outputs=(TensorSpec("scores", "FP32", (-1, 3)),),
)


def _write(tmp_path: Path, doc: object, name: str = "data.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def _good_sample(i: int = 0) -> dict:
    return {"tokens": [i, 1, 2, 3], "mask": {"content": [True, True, False, False], "shape": [4]}}


def _resolve(tmp_path: Path, doc: object):
    return resolve_tensors(read_input_file(_write(tmp_path, doc)), META)


def test_a_perf_analyzer_file_reads_into_input_sets_with_the_batch_dimension(tmp_path) -> None:
    raw = np.array([5, 6, 7, 8], dtype="<i8").tobytes()
    doc = {
        "data": [_good_sample(), {"tokens": {"b64": base64.b64encode(raw).decode()}, "mask": [[1 == 1] * 4]}],
        "validation_data": [{"scores": [0.1, 0.2, 0.7]}, {"scores": {"content": [[1, 0, 0]], "shape": [1, 3]}}],
    }
    inputs, expected = _resolve(tmp_path, doc)
    assert inputs[0]["tokens"].dtype == np.int64 and inputs[0]["tokens"].shape == (1, 4)
    assert inputs[0]["mask"].tolist() == [[True, True, False, False]]
    assert inputs[1]["tokens"].tolist() == [[5, 6, 7, 8]]
    assert expected is not None and expected[0]["scores"].dtype == np.float32 and expected[1]["scores"].shape == (1, 3)


def test_without_validation_data_there_is_nothing_expected(tmp_path) -> None:
    inputs, expected = _resolve(tmp_path, {"data": [_good_sample(0), _good_sample(1)]})
    assert len(inputs) == 2 and expected is None


@pytest.mark.parametrize(
    ("sample", "where", "problem"),
    [
        ({**_good_sample(), "extra": [1]}, "sample 1, input 'extra'", "unknown tensor"),
        ({"tokens": [1, 2, 3, 4]}, "sample 1, input 'mask'", "missing"),
        (
            {**_good_sample(), "tokens": {"content": [1, 2, 3], "shape": [3]}},
            "sample 1, input 'tokens'",
            "does not fit",
        ),
        ({**_good_sample(), "tokens": [1.5, 2, 3, 4]}, "sample 1, input 'tokens'", "1.5 is not an integer"),
        ({**_good_sample(), "mask": [1, 0, 1, 0]}, "sample 1, input 'mask'", "values do not fit BOOL"),
        (
            {**_good_sample(), "tokens": {"content": [1, 2, 3, 4], "datatype": "INT32"}},
            "sample 1, input 'tokens', field 'datatype'",
            "declares tokens INT64",
        ),
        (
            {**_good_sample(), "tokens": {"b64": base64.b64encode(b"\0" * 24).decode()}},
            "sample 1, input 'tokens'",
            "do not fill",
        ),
    ],
    ids=[
        "unknown-tensor",
        "missing-tensor",
        "wrong-shape",
        "wrong-dtype",
        "bool-as-int",
        "declared-dtype",
        "b64-short",
    ],
)
def test_a_sample_that_does_not_fit_the_metadata_is_refused(tmp_path, sample, where, problem) -> None:
    path = _write(tmp_path, {"data": [_good_sample(), sample]})
    with pytest.raises(InputDataError) as err:
        resolve_tensors(read_input_file(path), META)
    message = str(err.value)
    assert message.startswith(f"{path}: {where}") and problem in message, message


def test_truncated_base64_is_refused_when_the_file_is_read(tmp_path) -> None:
    good = base64.b64encode(np.arange(4, dtype="<i8").tobytes()).decode()
    path = _write(tmp_path, {"data": [{"tokens": {"b64": good[:-3]}, "mask": [True] * 4}]})
    with pytest.raises(InputDataError, match=r"sample 0, tensor 'tokens', field 'b64': invalid or truncated base64"):
        read_input_file(path)


def test_an_empty_file_is_refused(tmp_path) -> None:
    for text in ("", "  \n"):
        with pytest.raises(InputDataError, match="empty"):
            read_input_file(_write(tmp_path, text))


def test_a_1_gb_file_is_refused_from_its_size_without_reading_it(tmp_path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as handle:  # sparse: takes no disk space, and is never read
        handle.truncate(2**30)
    with pytest.raises(InputDataError, match=r"1,024\.0 MiB, over the 256 MiB cap"):
        read_input_file(path)
    assert os.stat(path).st_blocks == 0  # still sparse: nothing wrote (or read) its content


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ("{not json", "not JSON"),
        ({"inputs": []}, '{"data": [...]}'),
        ({"data": []}, "data: must be a non-empty list"),
        ({"data": [_good_sample()], "validation_data": []}, "one entry per sample (1), got 0"),
        ({"data": [{"tokens": {"content": [1], "b64": "AA=="}}]}, "exactly one of 'content'"),
        ({"data": [{"tokens": {"values": [1]}}]}, "unknown keys ['values']"),
    ],
)
def test_malformed_files_are_refused_structurally(tmp_path, doc, problem) -> None:
    with pytest.raises(InputDataError) as err:
        read_input_file(_write(tmp_path, doc))
    assert problem in str(err.value)


def test_json_lines_are_request_bodies_checked_line_by_line(tmp_path) -> None:
    path = _write(tmp_path, '{"instances": [[1]]}\n\n{"instances": [[2]]}\n', "bodies.jsonl")
    file = read_input_file(path)
    assert file.bodies == (b'{"instances": [[1]]}', b'{"instances": [[2]]}') and len(file) == 2
    with pytest.raises(InputDataError, match="not named tensors"):
        resolve_tensors(file, META)
    bad = _write(tmp_path, '{"a": 1}\n{"b": \n', "bad.jsonl")
    with pytest.raises(InputDataError, match=r"line 2 \(sample 1\): not JSON"):
        read_input_file(bad)


def test_without_metadata_the_file_types_its_own_tensors(tmp_path) -> None:
    path = _write(tmp_path, {"data": [{"x": {"content": [1, 2], "shape": [1, 2], "datatype": "UINT8"}}]})
    inputs, _ = resolve_tensors(read_input_file(path), None)
    assert inputs[0]["x"].dtype == np.uint8 and inputs[0]["x"].shape == (1, 2)
    untyped = _write(tmp_path, {"data": [{"x": [1, 2]}]}, "untyped.json")
    with pytest.raises(InputDataError, match="no datatype"):
        resolve_tensors(read_input_file(untyped), None)


def test_metadata_is_parsed_strictly() -> None:
    meta = parse_metadata(
        b'{"name":"toy","inputs":[{"name":"t","datatype":"INT64","shape":[-1,4]}],'
        b'"outputs":[{"name":"s","datatype":"FP32","shape":[-1,3]}]}'
    )
    assert meta.inputs == (TensorSpec("t", "INT64", (-1, 4)),) and meta.outputs[0].shape == (-1, 3)
    with pytest.raises(ValueError, match=r"inputs\[0\] \(t\): unknown V2 datatype 'INT4'"):
        parse_metadata(b'{"inputs":[{"name":"t","datatype":"INT4","shape":[1]}]}')
