"""A latency objective ("p99 <= 100 ms") and how it is written on the command line.

Why a module of its own: the capacity searches (:mod:`loadgen.capacity`,
:mod:`loadgen.concurrency_search`), ``[capacity]`` and ``--slo`` all speak of the same
objective; parsing it once means a typo fails before anything runs, with one message.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["Objective", "parse_objective"]

_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
_OBJECTIVE = re.compile(r"^\s*p(\d+(?:\.\d+)?)\s*(?:=|<=|:)\s*(\d+(?:\.\d+)?(?:e-?\d+)?)\s*(ms|s|us)\s*$", re.I)


@dataclass(frozen=True)
class Objective:
    """A latency objective: the ``percentile`` of successful requests' latency <= ``bound_s``."""

    percentile: float
    bound_s: float

    def __post_init__(self) -> None:
        if not 0 < self.percentile < 100:
            raise ValueError(f"the objective's percentile must be in (0, 100), got {self.percentile:g}")
        if not (self.bound_s > 0 and math.isfinite(self.bound_s)):
            raise ValueError(f"the objective's bound must be a finite time > 0, got {self.bound_s!r} s")

    @property
    def label(self) -> str:
        """``p99`` / ``p99.9``: the percentile's short name."""
        return f"p{self.percentile:g}"

    def describe(self) -> str:
        """``p99 <= 100 ms``: how the objective is written in tables and headings."""
        bound = f"{self.bound_s * 1000:g} ms" if self.bound_s < 10 else f"{self.bound_s:g} s"
        return f"{self.label} <= {bound}"


def parse_objective(text: str) -> Objective:
    """``"p99=100ms"`` (also ``p99<=0.1s``, ``p99.9:250ms``, ``p50=800us``) -> Objective.

    Raises ValueError naming the expected form, so ``--slo`` typos fail before anything runs.
    """
    match = _OBJECTIVE.match(text or "")
    if not match:
        raise ValueError(f"objective {text!r} is not of the form pNN=BOUND with a unit, e.g. p99=100ms, "
                         "p99.9=0.25s or p50=800us")
    pct, value, unit = match.groups()
    return Objective(percentile=float(pct), bound_s=float(value) * _UNITS[unit.lower()])
