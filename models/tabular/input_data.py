"""The test split as a Triton perf_analyzer ``--input-data`` JSON file, with expected answers.

Why this format: it is what Triton's perf_analyzer reads (``{"data": [...],
"validation_data": [...]}``, one entry per request, tensors by name as ``{"content":
[...], "shape": [...]}``), so the same file drives servebench (issue 24's reader) and
Triton's own tools, and a user's existing perf_analyzer files work unchanged.

Each ``shape`` is the request's full shape, batch dimension of 1 included (``features``
``[1, 30]``): the stand-in's metadata declares ``[-1, 30]`` (a dynamic first dimension, as
a Triton model with ``max_batch_size: 0`` does), and for such a model perf_analyzer takes
the file's shape as the whole tensor's.  ``content`` is row-major and flat.  Floats are
written with Python's shortest round-trip repr, so FP64 inputs and FP32 outputs read back
bit for bit.

The input set and output set of one request are ``dict[str, numpy.ndarray]`` with the batch
dimension (issue 24's shared contract); :func:`input_data_document` is a pure function of
lists of them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.tabular.weights import TabularWeights

__all__ = ["INPUT_NAME", "input_data_document", "tabular_samples", "tensor_entry", "write_input_data"]

#: The name of the tabular model's one input tensor (FP64, [-1, n_features]).
INPUT_NAME = "features"

TensorSet = dict[str, np.ndarray]


def tensor_entry(array: np.ndarray) -> dict[str, Any]:
    """One named tensor of the file: ``{"content": flat values, "shape": full shape}``."""
    if array.dtype.kind == "f":
        content: list[Any] = [float(v) for v in array.ravel()]
    elif array.dtype.kind in "iub":
        content = [int(v) if array.dtype.kind != "b" else bool(v) for v in array.ravel()]
    else:
        raise ValueError(f"cannot write a tensor of dtype {array.dtype} as JSON content")
    return {"content": content, "shape": [int(d) for d in array.shape]}


def input_data_document(inputs: Sequence[TensorSet], outputs: Sequence[TensorSet] | None = None) -> dict[str, Any]:
    """``{"data": [...], "validation_data": [...]}`` of the input sets and their expected output sets."""
    if not inputs:
        raise ValueError("an input-data file needs at least one sample")
    document: dict[str, Any] = {"data": [{name: tensor_entry(a) for name, a in sample.items()} for sample in inputs]}
    if outputs is not None:
        if len(outputs) != len(inputs):
            raise ValueError(f"{len(inputs)} input samples but {len(outputs)} expected outputs")
        document["validation_data"] = [{name: tensor_entry(a) for name, a in sample.items()} for sample in outputs]
    return document


def tabular_samples(weights: TabularWeights, features: np.ndarray) -> tuple[list[TensorSet], list[TensorSet]]:
    """One request per row of ``features``: its input set and the output set ``weights`` answer."""
    inputs: list[TensorSet] = []
    outputs: list[TensorSet] = []
    for row in np.asarray(features, dtype=np.float64):
        batch = row.reshape(1, -1)
        inputs.append({INPUT_NAME: batch})
        outputs.append(weights.predict(batch))
    return inputs, outputs


def write_input_data(path: Path, document: dict[str, Any]) -> None:
    """Write the document as compact JSON (one file; the caller owns atomicity)."""
    path.write_text(json.dumps(document, separators=(",", ":")) + "\n", encoding="utf-8")
