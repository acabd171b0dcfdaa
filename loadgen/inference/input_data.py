"""Input-data files: perf_analyzer's ``--input-data`` JSON and JSON lines of request bodies, checked.

What:

* :func:`read_input_file` reads a file *structurally*, before any target is started: the
  size first (an empty file or one over ``max_bytes`` is refused from ``stat``, never
  parsed), then the JSON, the layout, and every base64 string.  ``*.jsonl``/``*.ndjson``
  files are JSON lines (one ready request body per line, sent as written); any other file
  is perf_analyzer's format::

      {"data": [{"INPUT": [1, 2, 3]},                                  # flat values
                {"INPUT": {"content": [[1, 2, 3]], "shape": [1, 3]}},  # values + shape
                {"INPUT": {"b64": "AAAA..."}}],                         # raw row-major bytes
       "validation_data": [{"OUTPUT": [0.1, 0.9]}, ...]}               # optional, one per sample

  (``{"content": {"b64": ...}, "shape": [...]}`` is accepted as well, and ``"datatype"``
  in a tensor's object -- servebench's addition -- types a tensor when the server
  publishes no metadata.)
* :func:`resolve_tensors` turns the samples into input sets (and expected output sets)
  against the model's V2 metadata: unknown or missing tensors, shapes that do not fit,
  values that do not fit the datatype, base64 of the wrong length -- each an
  :class:`InputDataError` naming the file, the sample and the tensor.

Shapes: perf_analyzer's shapes leave out the batch dimension; a tensor whose declared
shape has one more leading ``-1`` dimension than the file gives is sent as a batch of 1.
A flat list without a shape takes the declared shape, its batch dimension (and no other
dynamic one) set so that the values fit.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loadgen.inference.datatypes import datatype
from loadgen.inference.metadata import ModelMetadata, TensorSpec
from loadgen.inference.v2_json import InputSet, OutputSet, array_from_values

__all__ = [
    "MAX_INPUT_FILE_BYTES",
    "InputDataError",
    "InputFile",
    "RawTensor",
    "is_json_lines",
    "read_input_file",
    "resolve_tensors",
]

#: The largest input-data file read (every sample is kept in memory as a ready request).
MAX_INPUT_FILE_BYTES = 256 * 1024 * 1024

_JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")


class InputDataError(ValueError):
    """An input-data file that cannot be sent; the message names the file, sample and field."""


@dataclass(frozen=True)
class RawTensor:
    """One tensor of one sample as the file gives it, not yet typed.

    ``values``: the JSON values (flat or nested), or ``raw`` bytes from base64.
    """

    name: str
    values: Any = None
    raw: bytes | None = None
    shape: tuple[int, ...] | None = None
    datatype: str = ""


@dataclass(frozen=True)
class InputFile:
    """A structurally valid input-data file: tensor samples or ready bodies, never both."""

    path: Path
    samples: tuple[dict[str, RawTensor], ...] = ()
    expected: tuple[dict[str, RawTensor], ...] = ()  # validation_data: one per sample, or none
    bodies: tuple[bytes, ...] = ()

    @property
    def is_bodies(self) -> bool:
        return bool(self.bodies)

    def __len__(self) -> int:
        return len(self.bodies) if self.bodies else len(self.samples)


def is_json_lines(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a JSON-lines file of request bodies (by its suffix)."""
    return Path(path).suffix.lower() in _JSON_LINES_SUFFIXES


def _fail(path: Path, where: str, problem: str) -> InputDataError:
    return InputDataError(f"{path}: {where}: {problem}" if where else f"{path}: {problem}")


def read_input_file(path: str | os.PathLike[str], max_bytes: int = MAX_INPUT_FILE_BYTES) -> InputFile:
    """Read and structurally check an input-data file (no target needed); InputDataError otherwise."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _fail(path, "", f"cannot read the input-data file: {exc.strerror or exc}") from None
    if not path.is_file():
        raise _fail(path, "", "is not a file")
    if size == 0:
        raise _fail(path, "", "the input-data file is empty")
    if size > max_bytes:
        raise _fail(
            path,
            "",
            f"the input-data file is {size / 2**20:,.1f} MiB, over the {max_bytes / 2**20:,.0f} MiB cap "
            "(every sample is held in memory as a ready request); use fewer or smaller samples",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(path, "", f"cannot read the input-data file as UTF-8 text: {exc}") from None
    if not text.strip():
        raise _fail(path, "", "the input-data file is empty (only whitespace)")
    if is_json_lines(path):
        return InputFile(path, bodies=_bodies(path, text))
    return _tensor_file(path, text)


def _bodies(path: Path, text: str) -> tuple[bytes, ...]:
    """One request body per non-blank line, each checked to be JSON and sent as written."""
    bodies = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            json.loads(line)
        except ValueError as exc:
            raise _fail(path, f"line {number} (sample {len(bodies)})", f"not JSON: {exc}") from None
        bodies.append(line.strip().encode())
    if not bodies:
        raise _fail(path, "", "no request bodies (every line is blank)")
    return tuple(bodies)


def _tensor_file(path: Path, text: str) -> InputFile:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise _fail(path, "", f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or "data" not in doc:
        raise _fail(path, "", 'expected perf_analyzer\'s input-data object {"data": [...]}')
    unknown = sorted(set(doc) - {"data", "validation_data"})
    if unknown:
        raise _fail(path, "", f"unknown top-level keys {unknown} (known: data, validation_data)")
    data = doc["data"]
    if not isinstance(data, list) or not data:
        raise _fail(path, "data", "must be a non-empty list of samples")
    samples = tuple(_sample(path, "sample", i, item) for i, item in enumerate(data))
    expected: tuple[dict[str, RawTensor], ...] = ()
    if "validation_data" in doc:
        validation = doc["validation_data"]
        if not isinstance(validation, list) or len(validation) != len(samples):
            count = len(validation) if isinstance(validation, list) else type(validation).__name__
            raise _fail(path, "validation_data", f"must list one entry per sample ({len(samples)}), got {count}")
        expected = tuple(_sample(path, "expected output of sample", i, item) for i, item in enumerate(validation))
    return InputFile(path, samples=samples, expected=expected)


def _sample(path: Path, what: str, index: int, item: Any) -> dict[str, RawTensor]:
    where = f"{what} {index}"
    if not isinstance(item, dict) or not item:
        raise _fail(path, where, "must be an object of named tensors")
    return {name: _raw_tensor(path, f"{where}, tensor {name!r}", name, value) for name, value in item.items()}


def _raw_tensor(path: Path, where: str, name: str, value: Any) -> RawTensor:
    if isinstance(value, list):
        return RawTensor(name, values=value)
    if not isinstance(value, dict):
        raise _fail(path, where, f"must be a list of values or an object with content/b64, got {value!r:.60}")
    unknown = sorted(set(value) - {"content", "shape", "b64", "datatype"})
    if unknown:
        raise _fail(path, where, f"unknown keys {unknown} (known: content, shape, b64, datatype)")
    shape = None
    if "shape" in value:
        dims = value["shape"]
        if not isinstance(dims, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims
        ):
            raise _fail(path, f"{where}, field 'shape'", f"must be a list of non-negative integers, got {dims!r}")
        shape = tuple(dims)
    dtype_name = value.get("datatype", "")
    if dtype_name:
        try:
            datatype(dtype_name)
        except ValueError as exc:
            raise _fail(path, f"{where}, field 'datatype'", str(exc)) from None
    content = value.get("content")
    b64 = value.get("b64")
    if isinstance(content, dict) and set(content) == {"b64"}:
        b64, content = content["b64"], None
    if (content is None) == (b64 is None):
        raise _fail(path, where, "needs exactly one of 'content' (values) and 'b64' (base64 bytes)")
    if b64 is not None:
        return RawTensor(name, raw=_b64(path, f"{where}, field 'b64'", b64), shape=shape, datatype=dtype_name)
    return RawTensor(name, values=content, shape=shape, datatype=dtype_name)


def _b64(path: Path, where: str, text: Any) -> bytes:
    if not isinstance(text, str):
        raise _fail(path, where, f"must be a base64 string, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _fail(path, where, f"invalid or truncated base64 ({len(text)} characters): {exc}") from None


# -- against the metadata ---------------------------------------------------------------------


def resolve_tensors(file: InputFile, metadata: ModelMetadata | None) -> tuple[list[InputSet], list[OutputSet] | None]:
    """The file's input sets (and expected output sets, None without validation_data), typed
    and checked against ``metadata`` (None: the file's own ``datatype`` and ``shape`` keys)."""
    if file.is_bodies:
        raise InputDataError(
            f"{file.path}: holds request bodies (JSON lines), not named tensors; "
            "a tensor target needs perf_analyzer's input-data JSON"
        )
    inputs = [
        _resolve_set(file.path, f"sample {i}", "input", sample, metadata.inputs if metadata else None)
        for i, sample in enumerate(file.samples)
    ]
    if not file.expected:
        return inputs, None
    expected = [
        _resolve_set(
            file.path, f"sample {i}", "expected output", item, metadata.outputs if metadata else None, partial=True
        )
        for i, item in enumerate(file.expected)
    ]
    return inputs, expected


def _resolve_set(
    path: Path,
    where: str,
    role: str,
    tensors: dict[str, RawTensor],
    specs: Sequence[TensorSpec] | None,
    *,
    partial: bool = False,
) -> dict[str, np.ndarray]:
    """One sample's tensors typed; with ``specs``: none unknown, none missing (unless ``partial``)."""
    by_name = {s.name: s for s in specs} if specs else {}
    if specs:
        unknown = sorted(set(tensors) - set(by_name))
        if unknown:
            declared = ", ".join(s.describe() for s in specs)
            raise _fail(path, f"{where}, {role} {unknown[0]!r}", f"unknown tensor; the model declares {declared}")
        missing = [s.name for s in specs if s.name not in tensors]
        if missing and not partial:
            raise _fail(
                path, f"{where}, {role} {missing[0]!r}", f"missing: the model declares {by_name[missing[0]].describe()}"
            )
    return {
        name: _resolve_one(path, f"{where}, {role} {name!r}", raw, by_name.get(name)) for name, raw in tensors.items()
    }


def _resolve_one(path: Path, where: str, raw: RawTensor, spec: TensorSpec | None) -> np.ndarray:
    dtype_name = raw.datatype or (spec.datatype if spec else "")
    if not dtype_name:
        raise _fail(path, where, 'no datatype: the server publishes no metadata, so give "datatype" in the file')
    if spec is not None and raw.datatype and raw.datatype != spec.datatype:
        raise _fail(path, f"{where}, field 'datatype'", f"{raw.datatype}, but the model declares {spec.describe()}")
    dt = datatype(dtype_name)
    try:
        if raw.raw is not None:
            array = _from_bytes(raw.raw, dt.name, raw.shape, spec)
        else:
            count = int(np.asarray(raw.values, dtype=object).size) if raw.values is not None else 0
            shape = _shape_for(raw.shape, count, spec)
            array = array_from_values(raw.values, shape, dt.name, "")
    except ValueError as exc:
        raise _fail(path, where, str(exc)) from None
    if spec is not None and not spec.shape_fits(array.shape):
        given = f" (the file's {list(raw.shape)} with a batch of 1)" if raw.shape and raw.shape != array.shape else ""
        raise _fail(
            path, f"{where}, field 'shape'", f"{list(array.shape)}{given} does not fit the declared {spec.describe()}"
        )
    return array


def _shape_for(given: tuple[int, ...] | None, count: int, spec: TensorSpec | None) -> tuple[int, ...]:
    """The shape to read ``count`` values as: the file's (batch 1 prepended where the spec has
    one more leading -1), or the declared shape with its one dynamic dimension solved."""
    if given is not None:
        if spec is not None and len(spec.shape) == len(given) + 1 and spec.shape[0] == -1:
            return (1, *given)
        return given
    if spec is None:
        return (count,)
    dynamic = [i for i, d in enumerate(spec.shape) if d == -1]
    fixed = math.prod(d for d in spec.shape if d != -1)
    if not dynamic:
        return spec.shape
    if len(dynamic) > 1:
        raise ValueError(
            f"flat values need a 'shape': the declared {spec.describe()} has {len(dynamic)} dynamic dimensions"
        )
    if fixed == 0 or count % fixed:
        raise ValueError(f"{count} values do not fill the declared {spec.describe()}")
    shape = list(spec.shape)
    shape[dynamic[0]] = count // fixed
    return tuple(shape)


def _from_bytes(raw: bytes, dtype_name: str, given: tuple[int, ...] | None, spec: TensorSpec | None) -> np.ndarray:
    """Raw row-major bytes -> an array; BYTES: the bytes are one string element."""
    if dtype_name == "BYTES":
        shape = _shape_for(given, 1, spec)
        if math.prod(shape) != 1:
            raise ValueError(
                f"base64 BYTES content is one element, but the shape {list(shape)} holds {math.prod(shape)}"
            )
        return np.array([raw], dtype=object).reshape(shape)
    dt = datatype(dtype_name)
    if len(raw) % dt.itemsize:
        raise ValueError(f"{len(raw)} base64 bytes are not a whole number of {dt.name} ({dt.itemsize} bytes each)")
    count = len(raw) // dt.itemsize
    shape = _shape_for(given, count, spec)
    if math.prod(shape) != count:
        raise ValueError(
            f"{len(raw)} base64 bytes hold {count} {dt.name} values, shape {list(shape)} needs {math.prod(shape)}"
            " (truncated?)"
        )
    array = np.frombuffer(raw, dtype=dt.numpy.newbyteorder("<")).astype(dt.numpy).reshape(shape)
    if dt.name == "BOOL" and not np.isin(np.frombuffer(raw, dtype=np.uint8), (0, 1)).all():
        raise ValueError("BOOL bytes must each be 0 or 1")
    return array
