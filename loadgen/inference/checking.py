"""Answers checked: an output set against the model's declared outputs and against expected outputs.

What: :func:`check_declared` raises :class:`~loadgen.request.DecodeError` when an answer
lacks a declared output or has the wrong shape or datatype (the request is then
``undecodable``, with the reason as its detail); :func:`compare_outputs` says whether an
answer agrees with a sample's expected outputs under a :class:`CheckRule`.

Why these rules: integers, booleans and strings have one right answer, so they are
compared exactly; floats from another runtime, thread count or batch differ in the last
bits, so they agree within ``rtol``/``atol`` (``|got - expected| <= atol + rtol *
|expected|``, numpy's ``isclose``), both stated in the run's meta.json; a classifier's
scores may differ more while naming the same class, which ``argmax`` checks instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from loadgen.inference.datatypes import datatype_of
from loadgen.inference.metadata import TensorSpec
from loadgen.request import DecodeError

__all__ = ["CheckRule", "check_declared", "compare_outputs", "predicted_class"]


@dataclass(frozen=True)
class CheckRule:
    """How float outputs are compared: within ``rtol``/``atol``, or by their argmax only."""

    rtol: float = 1e-4
    atol: float = 1e-5
    argmax: bool = False

    def __post_init__(self) -> None:
        for name in ("rtol", "atol"):
            value = getattr(self, name)
            if not (value >= 0 and np.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")

    def describe(self) -> str:
        how = "argmax along the last axis" if self.argmax else f"rtol {self.rtol:g}, atol {self.atol:g}"
        return f"floats: {how}; integers, BOOL and BYTES exactly"


def check_declared(outputs: Mapping[str, np.ndarray], declared: Sequence[TensorSpec]) -> None:
    """Raise DecodeError when a declared output is missing or not its declared shape/datatype."""
    for spec in declared:
        if spec.name not in outputs:
            raise DecodeError(f"answer lacks the declared output {spec.describe()} (got {sorted(outputs)})")
        problem = spec.problem(outputs[spec.name])
        if problem:
            raise DecodeError(f"output {spec.name!r} has {problem}")


def predicted_class(outputs: Mapping[str, np.ndarray]) -> int:
    """The argmax of the first output's first row when it is a float tensor (a classifier's
    class), else -1: recorded as ``predicted`` for answers checked by argmax."""
    if not outputs:
        return -1
    first = np.asarray(next(iter(outputs.values())))
    if first.dtype.kind != "f" or first.size == 0:
        return -1
    return int(np.argmax(first.reshape(first.shape[0], -1)[0] if first.ndim > 1 else first))


def compare_outputs(got: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray], rule: CheckRule) -> bool:
    """Whether ``got`` agrees with every expected output (others in ``got`` are ignored).

    A missing expected output or a shape that differs from the expected one raises
    DecodeError: such an answer cannot be compared, it is malformed.
    """
    agree = True
    for name, want in expected.items():
        if name not in got:
            raise DecodeError(f"answer lacks output {name!r}, which the input data expects (got {sorted(got)})")
        have, want = np.asarray(got[name]), np.asarray(want)
        if have.shape != want.shape:
            raise DecodeError(f"output {name!r} has shape {list(have.shape)}, expected {list(want.shape)}")
        agree = agree and _agrees(have, want, rule)
    return agree


def _agrees(have: np.ndarray, want: np.ndarray, rule: CheckRule) -> bool:
    kind = datatype_of(want.dtype)
    if kind.is_float or have.dtype.kind == "f":
        if rule.argmax and want.ndim >= 1 and want.size:
            return bool(np.array_equal(np.argmax(have, axis=-1), np.argmax(want, axis=-1)))
        return bool(np.allclose(have.astype(np.float64), want.astype(np.float64), rtol=rule.rtol, atol=rule.atol))
    if kind.name == "BYTES":
        return [bytes(v) for v in have.reshape(-1)] == [bytes(v) for v in want.reshape(-1)]
    return bool(np.array_equal(have, want))
