"""Validates the KServe stand-in's V1/V2 request bodies and turns them into float32 images.

Why pure functions of their own: every way a request can be wrong must end as kserve's
``InvalidInput`` (which the ModelServer answers as a 400 ``{"error": "..."}``) with a
message a client can act on -- never reach TensorFlow, never become a 500 with a Python
exception's text, never take the server down.  Kept apart from the model class so they
can be tested without TensorFlow or a server.

Checked here: the body's structure (object, ``instances`` list, one V2 tensor with this
model's input name), shapes ([N,28,28] or [N,784], 1 <= N <= MAX_INSTANCES; a shape field
of 10**400 is reported, not multiplied out), nesting depth (so a 1000-deep list costs
nothing), element types (numbers only: no strings, nulls, booleans, objects), numeric
range (an integer like 10**400 or a float like 1e400 / inf / NaN is refused, values must
fit the declared V2 datatype, e.g. INT8 in -128..127, and be plausible normalised pixels,
within +-1000) and the element count.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from kserve.errors import InvalidInput

__all__ = [
    "IMAGE_SHAPES",
    "MAX_INSTANCES",
    "PIXEL_ABS_LIMIT",
    "V2_DATATYPES",
    "instances_to_array",
    "v2_inputs_to_array",
]

#: Upper bound on images per request: one image is ~6 KB of JSON, and a bound keeps one
#: request from monopolising a worker (the body-size limit in the server backs it up).
MAX_INSTANCES = 512

#: What one image may look like (without the batch dimension).
IMAGE_SHAPES = ((28, 28), (784,))

#: Any normalised MNIST pixel lies in about [-0.43, 2.83] ((x/255 - 0.1307) / 0.3081); a value
#: far outside is not this model's input (e.g. raw 0..255 pixels scaled wrongly, or 10**30),
#: and its logits (1e27) would mean nothing.  The same bound as the Flask app's.
PIXEL_ABS_LIMIT = 1000.0

#: Numeric V2 datatypes and the range of values each can hold.
_INT_TYPES = {
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
}
_FLOAT_MAX = {"FP16": float(np.finfo(np.float16).max), "FP32": float(np.finfo(np.float32).max), "FP64": math.inf}
_FLOAT_NAME = {"FP16": "float16", "FP32": "float32", "FP64": "float64"}
V2_DATATYPES = frozenset(_INT_TYPES) | frozenset(_FLOAT_MAX)

_HUGE = "holds an integer too large to convert to a float (such as 10**400)"


def _clip(text: object, limit: int = 40) -> str:
    """A client-supplied value for an error message, shortened."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


def _dim(value: object) -> str:
    """One shape dimension for a message: a 400-digit number is named, not printed."""
    if isinstance(value, int) and abs(value) >= 10**12:
        return f"<{len(str(abs(value)))}-digit number>"
    return _clip(value, 20)


def _shape_text(shape: Any) -> str:
    return "[" + ", ".join(_dim(d) for d in list(shape)[:8]) + (", ..." if len(shape) > 8 else "") + "]"


def _depth(values: Any, limit: int) -> int:
    """Nesting depth of ``values`` along its first elements, counting at most ``limit + 1``."""
    depth = 0
    while isinstance(values, list) and depth <= limit:
        depth += 1
        if not values:
            break
        values = values[0]
    return depth


def _as_float_array(values: Any, what: str, max_depth: int) -> np.ndarray:
    """A JSON list of numbers -> float64 array, or ``InvalidInput`` saying what is wrong."""
    if not isinstance(values, list):
        raise InvalidInput(f"{what} must be a list of numbers, got {type(values).__name__}")
    if _depth(values, max_depth) > max_depth:
        raise InvalidInput(f"{what} is nested more than {max_depth} lists deep")
    try:
        array = np.asarray(values)
    except (ValueError, TypeError):
        raise InvalidInput(
            f"{what} must be a rectangular list of numbers (rows of unequal length or nested too deeply)"
        ) from None
    except (OverflowError, RecursionError):
        raise InvalidInput(f"{what} {_HUGE}") from None
    kind = array.dtype.kind
    if kind in "US":
        raise InvalidInput(f"{what} must hold numbers, not strings")
    if kind == "b":
        raise InvalidInput(f"{what} must hold numbers, not booleans")
    if kind == "O":  # None, dicts, integers beyond 64 bits, or ragged rows
        if any(isinstance(v, (dict, str, bool)) for v in _flat_sample(values)):
            raise InvalidInput(f"{what} must hold numbers only (found strings, booleans or objects)")
        try:
            return np.asarray(values, dtype=np.float64)
        except OverflowError:
            raise InvalidInput(f"{what} {_HUGE}") from None
        except (ValueError, TypeError):
            raise InvalidInput(
                f"{what} must be a rectangular list of numbers (rows of unequal length, or objects inside)"
            ) from None
    return array.astype(np.float64, copy=False)


def _flat_sample(values: list[Any], limit: int = 4096) -> list[Any]:
    """Up to ``limit`` leaves of a nested list (enough to name the kind of a bad element)."""
    out: list[Any] = []
    todo = [values]
    while todo and len(out) < limit:
        item = todo.pop()
        if isinstance(item, list):
            todo.extend(reversed(item))
        else:
            out.append(item)
    return out


def _to_images(array: np.ndarray, what: str, datatype: str | None = None) -> np.ndarray:
    """(N,28,28) or (N,784) float64 -> finite float32 (N,28,28), within ``datatype`` if given."""
    if array.ndim == 3 and array.shape[1:] == (28, 28):
        images = array
    elif array.ndim == 2 and array.shape[1] == 784:
        images = array.reshape(-1, 28, 28)
    else:
        raise InvalidInput(f"{what} must be a list of 28x28 or 784-value images, got shape {list(array.shape)}")
    if images.shape[0] == 0:
        raise InvalidInput(f"{what} is empty")
    if images.shape[0] > MAX_INSTANCES:
        raise InvalidInput(f"{what} holds {images.shape[0]} images; at most {MAX_INSTANCES} per request")
    if not np.isfinite(images).all():
        raise InvalidInput(f"{what} contains NaN, infinite or null values")
    if datatype is not None:
        _check_range(images, what, datatype)
    with np.errstate(over="ignore"):  # overflow to inf is caught just below
        out = images.astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        raise InvalidInput(f"{what} contains numbers too large for float32 (beyond +-3.4e38)")
    largest = float(np.abs(images).max())
    if largest > PIXEL_ABS_LIMIT:
        raise InvalidInput(
            f"{what} holds a value of magnitude {largest:.3g}; this model takes normalised pixels "
            f"(about -0.43..2.83), so values must lie within +-{PIXEL_ABS_LIMIT:g}"
        )
    return out


def _check_range(values: np.ndarray, what: str, datatype: str) -> None:
    """Values must fit the declared V2 datatype (whole numbers in range for integer types)."""
    if datatype in _INT_TYPES:
        info = np.iinfo(_INT_TYPES[datatype])
        if not (values == np.floor(values)).all():
            raise InvalidInput(f"{what} is declared {datatype} but holds non-integer values")
        if values.min() < info.min or values.max() > info.max:
            raise InvalidInput(f"{what} is declared {datatype} but holds values outside {info.min}..{info.max}")
    elif np.abs(values).max(initial=0.0) > _FLOAT_MAX[datatype]:
        raise InvalidInput(
            f"{what} is declared {datatype} ({_FLOAT_NAME[datatype]}) but holds values beyond "
            f"+-{_FLOAT_MAX[datatype]:.6g}"
        )


def instances_to_array(payload: Any) -> np.ndarray:
    """A V1 request body (``{"instances": [...]}``) -> float32 images (N,28,28).

    The V1 protocol (TF Serving's row format, which KServe's tensorflow runtime speaks)
    puts one model input per element of ``instances``; for MNIST that is an image of
    normalized pixels.  ``inputs`` (TF Serving's columnar format) is accepted too.
    """
    if isinstance(payload, (bytes, bytearray, str)):
        raise InvalidInput("request body must be JSON (Content-Type: application/json) with an 'instances' list")
    if not isinstance(payload, dict):
        raise InvalidInput(f"request body must be a JSON object with an 'instances' list, got {type(payload).__name__}")
    key = "instances" if "instances" in payload else "inputs" if "inputs" in payload else None
    if key is None:
        raise InvalidInput("request body has no 'instances' list")
    values = payload[key]
    if not isinstance(values, list):
        raise InvalidInput(f"'{key}' must be a list of images, got {type(values).__name__}")
    if not values:
        raise InvalidInput(f"'{key}' is empty")
    if len(values) > MAX_INSTANCES:
        raise InvalidInput(f"'{key}' holds {len(values)} images; at most {MAX_INSTANCES} per request")
    # Image by image, so 28x28 and 784-value images may be mixed in one request.
    images = []
    for i, value in enumerate(values):
        what = f"'{key}'[{i}]"
        array = _as_float_array(value, what, max_depth=2)
        if array.shape not in IMAGE_SHAPES:
            raise InvalidInput(f"{what} must be a 28x28 or 784-value image, got shape {list(array.shape)}")
        images.append(array.reshape(28, 28))
    return _to_images(np.stack(images), f"'{key}'")


def _check_v2_shape(shape: Any, what: str) -> list[int]:
    """[N,28,28] or [N,784] with 1 <= N <= MAX_INSTANCES, else ``InvalidInput``."""
    dims = list(shape)
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
        raise InvalidInput(f"{what} has a shape of non-integers: {_shape_text(dims)}")
    expected = f"expected [N, 28, 28] or [N, 784] with N from 1 to {MAX_INSTANCES}"
    if any(d < 0 for d in dims):
        raise InvalidInput(f"{what} has a negative dimension in shape {_shape_text(dims)}; {expected}")
    if len(dims) not in (2, 3) or tuple(dims[1:]) not in IMAGE_SHAPES or not 1 <= dims[0] <= MAX_INSTANCES:
        raise InvalidInput(f"{what} has shape {_shape_text(dims)}; {expected}")
    return dims


def v2_inputs_to_array(request: Any, input_name: str = "") -> np.ndarray:
    """A V2 / Open Inference Protocol request (``InferRequest``) -> float32 images (N,28,28).

    Exactly one input tensor (named ``input_name`` when given: the model's metadata says
    which), shape [N,28,28] or [N,784], a numeric datatype whose range holds the values,
    and data (flat or nested) whose element count matches the shape.
    """
    if len(request.inputs) != 1:
        raise InvalidInput(f"expected exactly one input tensor, got {len(request.inputs)}")
    tensor = request.inputs[0]
    what = f"input '{_clip(tensor.name)}'"
    if input_name and tensor.name != input_name:
        raise InvalidInput(f"unknown {what}; this model's input is '{input_name}' (GET /v2/models/<name> lists it)")
    datatype = tensor.datatype
    if datatype not in V2_DATATYPES:
        raise InvalidInput(f"{what} has datatype '{_clip(datatype, 20)}'; expected a numeric type such as FP32")
    shape = _check_v2_shape(tensor.shape, what)
    data = tensor.data
    if getattr(tensor, "_raw_data", None) is not None:  # gRPC raw_input_contents: kserve keeps the bytes
        try:
            data = tensor.as_numpy()
        except ValueError as exc:  # a byte count that does not fit the shape
            raise InvalidInput(f"{what}: its raw contents do not fit shape {_shape_text(shape)} ({exc})") from None
    if isinstance(data, np.ndarray):  # binary tensor extension / raw contents: already typed by kserve
        array = data.astype(np.float64)
    else:
        array = _as_float_array(data, what, max_depth=len(shape))
    expected = math.prod(shape)
    if array.size != expected:
        raise InvalidInput(f"{what} has {array.size} values but shape {shape} needs {expected}")
    return _to_images(array.reshape(shape), what, datatype)
