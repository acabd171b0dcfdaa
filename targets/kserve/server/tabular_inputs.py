"""Validates the tabular stand-in's V1/V2 request bodies and turns them into float64 feature rows.

Why pure functions of their own (as :mod:`targets.kserve.server.inputs` is for MNIST): every
way a request can be wrong must end as kserve's ``InvalidInput`` (a 400 ``{"error":
"..."}``) naming the tensor and what is wrong -- never a 500, never a wrong answer.

The model's one input is ``features``, FP64, shape [N, n_features] with 1 <= N <=
``MAX_INSTANCES``: other names, datatypes (FP32 included: the metadata says FP64, as a
Triton server would insist) and shapes are refused, as are strings, booleans, nulls,
NaN and infinities, and data whose element count does not match the shape.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from kserve.errors import InvalidInput

from targets.kserve.server.inputs import MAX_INSTANCES

__all__ = ["INPUT_DATATYPE", "INPUT_NAME", "features_from_v1", "features_from_v2"]

INPUT_NAME = "features"
INPUT_DATATYPE = "FP64"


def _clip(text: object, limit: int = 40) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


def _numbers(values: Any, what: str) -> np.ndarray:
    """A JSON list (flat or nested) of numbers -> float64 array, else ``InvalidInput``."""
    if isinstance(values, np.ndarray):  # binary tensor extension: kserve has typed it already
        array = values
    elif not isinstance(values, list):
        raise InvalidInput(f"{what} must be a list of numbers, got {type(values).__name__}")
    else:
        try:
            array = np.asarray(values)
        except (ValueError, TypeError, RecursionError):
            raise InvalidInput(f"{what} must be a rectangular list of numbers") from None
        except OverflowError:
            raise InvalidInput(f"{what} holds an integer too large for a float") from None
    if array.dtype.kind == "O":  # nulls, objects, ragged rows, or integers beyond 64 bits
        array = _object_numbers(values, what)
    if array.dtype.kind not in "fiu":
        kind = {"U": "strings", "S": "bytes", "b": "booleans"}.get(array.dtype.kind, "non-numbers")
        raise InvalidInput(f"{what} must hold numbers only, found {kind}")
    try:
        out = array.astype(np.float64)
    except OverflowError:
        raise InvalidInput(f"{what} holds an integer too large for a float") from None
    if not np.isfinite(out).all():
        raise InvalidInput(f"{what} contains NaN or infinite values")
    return out


def _object_numbers(values: Any, what: str) -> np.ndarray:
    """An object array's values as float64 when they are all numbers, else ``InvalidInput`` saying why."""
    todo, seen = [values], 0
    while todo and seen < 100_000:
        item = todo.pop()
        seen += 1
        if isinstance(item, (list, tuple)):
            todo.extend(item)
        elif item is None or isinstance(item, (str, bytes, bool, dict)):
            raise InvalidInput(f"{what} must hold numbers only, found {type(item).__name__}")
    try:
        return np.asarray(values, dtype=np.float64)
    except OverflowError:
        raise InvalidInput(f"{what} holds an integer too large for a float") from None
    except (ValueError, TypeError):
        raise InvalidInput(f"{what} must be a rectangular list of numbers (rows of unequal length)") from None


def _rows(array: np.ndarray, what: str, n_features: int) -> np.ndarray:
    if array.ndim != 2 or array.shape[1] != n_features:
        raise InvalidInput(f"{what} must be rows of {n_features} features, got shape {list(array.shape)}")
    if not 1 <= array.shape[0] <= MAX_INSTANCES:
        raise InvalidInput(f"{what} holds {array.shape[0]} rows; send 1 to {MAX_INSTANCES} per request")
    return array


def features_from_v2(request: Any, n_features: int) -> np.ndarray:
    """A V2 ``InferRequest`` -> float64 features (N, n_features), or ``InvalidInput``."""
    if len(request.inputs) != 1:
        raise InvalidInput(f"expected exactly one input tensor ('{INPUT_NAME}'), got {len(request.inputs)}")
    tensor = request.inputs[0]
    what = f"input '{_clip(tensor.name)}'"
    if tensor.name != INPUT_NAME:
        raise InvalidInput(f"unknown {what}; this model's input is '{INPUT_NAME}' (GET /v2/models/<name> lists it)")
    if tensor.datatype != INPUT_DATATYPE:
        raise InvalidInput(f"{what} has datatype '{_clip(tensor.datatype, 20)}'; this model takes {INPUT_DATATYPE}")
    shape = list(tensor.shape)
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise InvalidInput(f"{what} has a shape of non-integers: {_clip(shape, 60)}")
    if len(shape) != 2 or shape[1] != n_features or not 1 <= shape[0] <= MAX_INSTANCES:
        raise InvalidInput(
            f"{what} has shape {_clip(shape, 60)}; expected [N, {n_features}] with N from 1 to {MAX_INSTANCES}"
        )
    data = tensor.data
    if getattr(tensor, "_raw_data", None) is not None:  # gRPC raw_input_contents: kserve keeps the bytes
        try:
            data = tensor.as_numpy()
        except ValueError as exc:  # a byte count that does not fit the shape
            raise InvalidInput(f"{what}: its raw contents do not fit shape {_clip(shape, 60)} ({exc})") from None
    array = _numbers(data, what)
    if array.size != math.prod(shape):
        raise InvalidInput(f"{what} has {array.size} values but shape {shape} needs {math.prod(shape)}")
    return _rows(array.reshape(shape), what, n_features)


def features_from_v1(payload: Any, n_features: int) -> np.ndarray:
    """A V1 body ``{"instances": [[f1, ..., fn], ...]}`` -> float64 features (N, n_features)."""
    if not isinstance(payload, dict) or "instances" not in payload:
        raise InvalidInput("request body must be a JSON object with an 'instances' list of feature rows")
    return _rows(_numbers(payload["instances"], "'instances'"), "'instances'", n_features)
