"""A model's V2 metadata (``GET /v2/models/NAME``): its input and output tensors, read strictly.

What: :func:`parse_metadata` turns the metadata body into a :class:`ModelMetadata` (name,
platform, versions, and a :class:`TensorSpec` per input and output: name, datatype, shape
with ``-1`` for a dynamic dimension); :meth:`TensorSpec.fits` says whether an array has
that shape and dtype.

Why: the metadata is what a server promises about its model.  servebench checks every
input-data file against it before sending anything, synthesises inputs from it when no
file is given, and checks every answer's shapes and dtypes against it, so "a URL and a
model name are enough" to benchmark a model it has never seen.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loadgen.inference.datatypes import datatype, datatype_of

__all__ = ["ModelMetadata", "TensorSpec", "parse_metadata"]


@dataclass(frozen=True)
class TensorSpec:
    """One declared tensor: ``shape`` may hold ``-1`` (any size), the first usually the batch."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def shape_fits(self, shape: Sequence[int]) -> bool:
        """Whether ``shape`` has this rank and matches every fixed dimension."""
        return len(shape) == len(self.shape) and all(d == -1 or d == s for d, s in zip(self.shape, shape, strict=True))

    def problem(self, array: np.ndarray) -> str:
        """Why ``array`` is not a tensor of this spec ("" when it is one)."""
        arr = np.asarray(array)
        try:
            got = datatype_of(arr.dtype).name
        except ValueError as exc:
            return str(exc)
        if got != self.datatype:
            return f"datatype {got}, declared {self.datatype}"
        if not self.shape_fits(arr.shape):
            return f"shape {list(arr.shape)}, declared {list(self.shape)}"
        return ""

    def describe(self) -> str:
        """``pixels FP32 [-1, 28, 28]``."""
        return f"{self.name} {self.datatype} {list(self.shape)}"


@dataclass(frozen=True)
class ModelMetadata:
    """A model's V2 metadata: what it takes and what it answers."""

    name: str
    platform: str
    versions: tuple[str, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((t for t in self.outputs if t.name == name), None)

    def describe(self) -> str:
        """``inputs pixels FP32 [-1, 28, 28]; outputs logits FP32 [-1, 10]``."""
        ins = ", ".join(t.describe() for t in self.inputs)
        outs = ", ".join(t.describe() for t in self.outputs)
        return f"inputs {ins}; outputs {outs}"


def _specs(doc: dict[str, object], key: str) -> tuple[TensorSpec, ...]:
    items = doc.get(key)
    if not isinstance(items, list) or (key == "inputs" and not items):
        raise ValueError(f"model metadata: {key!r} must be a non-empty list of tensors, got {items!r}")
    specs = []
    for i, item in enumerate(items):
        where = f"model metadata: {key}[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise ValueError(f"{where} has no name")
        try:
            dt = datatype(item.get("datatype"))
        except ValueError as exc:
            raise ValueError(f"{where} ({item['name']}): {exc}") from None
        shape = item.get("shape")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in shape
        ):
            raise ValueError(f"{where} ({item['name']}): shape must be a list of integers >= -1, got {shape!r}")
        specs.append(TensorSpec(item["name"], dt.name, tuple(shape)))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"model metadata: {key} names repeat: {names}")
    return tuple(specs)


def parse_metadata(body: bytes) -> ModelMetadata:
    """The body of ``GET /v2/models/NAME`` -> :class:`ModelMetadata`; ValueError naming the field."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"model metadata is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"model metadata must be a JSON object, got {body[:200]!r}")
    versions = doc.get("versions") or []
    return ModelMetadata(
        name=str(doc.get("name", "")),
        platform=str(doc.get("platform", "")),
        versions=tuple(str(v) for v in versions) if isinstance(versions, list) else (),
        inputs=_specs(doc, "inputs"),
        outputs=_specs(doc, "outputs") if doc.get("outputs") else (),
    )
