"""Inputs synthesised from a model's V2 metadata, as perf_analyzer does without ``--input-data``.

What: :func:`synthesize_inputs` gives ``count`` input sets of the declared names, shapes
and datatypes, seeded random data or zeros; :func:`parse_shape_overrides` reads
``--shape NAME:d1,d2`` options.

Choices (stated, because the data shapes what is measured):

* Dynamic dimensions (``-1``): the first one is the batch and becomes 1; any other needs a
  ``--shape`` (perf_analyzer's rule) -- a guess would benchmark a size nobody chose.  A
  ``--shape`` may give the whole shape or leave the batch out, as perf_analyzer's does.
* Random values: floats uniform in [0, 1); integers uniform in [0, 100) (clipped to the
  type's range: small non-negative integers are valid indices for most models that take
  integers, e.g. token ids); BOOL fair coins; BYTES 16 random lowercase letters.
  ``zero``: zeros, False, and empty strings.
* Seeded by ``seed`` and the sample number, so a rerun sends the same bytes.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from loadgen.inference.datatypes import datatype
from loadgen.inference.metadata import TensorSpec
from loadgen.inference.v2_json import InputSet

__all__ = ["SYNTHESIZED_SAMPLES", "parse_shape_overrides", "resolve_shape", "synthesize_inputs"]

#: How many distinct synthesised samples requests cycle through.
SYNTHESIZED_SAMPLES = 16
_BYTES_LENGTH = 16
_INT_HIGH = 100


def parse_shape_overrides(items: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """``["tokens:1,16", "mask:16"]`` -> ``{"tokens": (1, 16), "mask": (16,)}``; ValueError naming the item."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        name, sep, dims = item.rpartition(":")
        try:
            parsed = tuple(int(d) for d in dims.split(","))
        except ValueError:
            parsed = ()
        if not sep or not name or not parsed or any(d < 0 for d in parsed):
            raise ValueError(f"--shape {item!r}: expected NAME:d1,d2,... with non-negative integer dimensions")
        if name in shapes:
            raise ValueError(f"--shape {item!r}: {name!r} is given twice")
        shapes[name] = parsed
    return shapes


def resolve_shape(spec: TensorSpec, override: Sequence[int] | None = None) -> tuple[int, ...]:
    """The concrete shape to synthesise for ``spec``; ValueError saying which ``--shape`` is needed."""
    declared = spec.shape
    if override is not None:
        shape = tuple(override)
        if len(shape) == len(declared) - 1 and declared and declared[0] == -1:
            shape = (1, *shape)
        if not spec.shape_fits(shape):
            raise ValueError(
                f"--shape {spec.name}:{','.join(map(str, override))} does not fit the declared {spec.describe()}"
            )
        return shape
    shape = list(declared)
    if shape and shape[0] == -1:
        shape[0] = 1
    dynamic = [i for i, d in enumerate(shape) if d == -1]
    if dynamic:
        raise ValueError(
            f"input {spec.describe()} has a dynamic dimension at position {dynamic[0]}: "
            f"give its size with --shape {spec.name}:d1,d2,... (the batch dimension may be left out)"
        )
    return tuple(shape)


def _values(spec: TensorSpec, shape: tuple[int, ...], rng: np.random.Generator | None) -> np.ndarray:
    dt = datatype(spec.datatype)
    size = math.prod(shape)
    if dt.name == "BYTES":
        if rng is None:
            items = [b""] * size
        else:
            letters = np.frombuffer(string.ascii_lowercase.encode(), dtype=np.uint8)
            items = [bytes(letters[rng.integers(0, 26, _BYTES_LENGTH)]) for _ in range(size)]
        return np.array(items, dtype=object).reshape(shape)
    if rng is None:
        return np.zeros(shape, dtype=dt.numpy)
    if dt.name == "BOOL":
        return rng.integers(0, 2, shape).astype(bool)
    if dt.is_integer:
        high = min(_INT_HIGH, int(np.iinfo(dt.numpy).max) + 1)
        return rng.integers(0, high, shape).astype(dt.numpy)
    return rng.random(shape).astype(dt.numpy)


def synthesize_inputs(
    inputs: Sequence[TensorSpec],
    *,
    shapes: Mapping[str, Sequence[int]] | None = None,
    seed: int = 0,
    zeros: bool = False,
    count: int = SYNTHESIZED_SAMPLES,
) -> list[InputSet]:
    """``count`` input sets for the declared ``inputs`` (one when ``zeros``: they would all be alike)."""
    shapes = dict(shapes or {})
    unknown = sorted(set(shapes) - {s.name for s in inputs})
    if unknown:
        declared = ", ".join(s.describe() for s in inputs)
        raise ValueError(f"--shape names {unknown[0]!r}, which the model does not declare (inputs: {declared})")
    resolved = {spec.name: resolve_shape(spec, shapes.get(spec.name)) for spec in inputs}
    total = 1 if zeros else count
    sets = []
    for index in range(total):
        rng = None if zeros else np.random.default_rng([seed, 2, index])
        sets.append({spec.name: _values(spec, resolved[spec.name], rng) for spec in inputs})
    return sets
