"""The input-data document builder: a pure function of input and output sets."""

from __future__ import annotations

import numpy as np
import pytest

from models.tabular.input_data import input_data_document, tensor_entry


def test_entries_keep_the_full_shape_and_flat_content() -> None:
    entry = tensor_entry(np.arange(6, dtype=np.float64).reshape(1, 2, 3))
    assert entry == {"content": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "shape": [1, 2, 3]}
    assert tensor_entry(np.array([7], dtype=np.int64)) == {"content": [7], "shape": [1]}
    assert tensor_entry(np.array([True])) == {"content": [True], "shape": [1]}


def test_float32_values_round_trip_exactly() -> None:
    values = np.random.default_rng(0).random(50).astype(np.float32)
    assert np.array_equal(np.array(tensor_entry(values)["content"], dtype=np.float32), values)


def test_document_pairs_inputs_with_expected_outputs() -> None:
    inputs = [{"x": np.zeros((1, 2))}, {"x": np.ones((1, 2))}]
    outputs = [{"y": np.array([0])}, {"y": np.array([1])}]
    doc = input_data_document(inputs, outputs)
    assert doc["data"][1] == {"x": {"content": [1.0, 1.0], "shape": [1, 2]}}
    assert doc["validation_data"][1] == {"y": {"content": [1], "shape": [1]}}
    assert "validation_data" not in input_data_document(inputs)


def test_bad_documents_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        input_data_document([])
    with pytest.raises(ValueError, match="2 input samples but 1 expected outputs"):
        input_data_document([{"x": np.zeros(1)}] * 2, [{"y": np.zeros(1)}])
    with pytest.raises(ValueError, match="dtype object"):
        tensor_entry(np.array([b"a"], dtype=object))
