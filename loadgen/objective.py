"""A latency objective ("p99 <= 100 ms"), how it is written on the command line, and ``[capacity]``.

The capacity searches (:mod:`loadgen.capacity`, :mod:`loadgen.concurrency_search`),
``[capacity]`` and ``--slo`` all speak of the same objective; parsing it once means a typo
fails before anything runs, with one message. :class:`CapacityConfig` is ``[capacity]`` in
bench.toml -- the objective plus the bounds of a search -- owned here like ``[sweep]``'s
:class:`loadgen.sweep_settings.SweepSettings`: ``bench/config.py`` composes it and
``bench.capacity.run`` reads it, and importing it costs no numpy or scipy (``bench targets``).

``confidence`` is the one knob that trades time for certainty: every rate's verdict (met
or violated) and the confirmation's are wrong with probability at most 1 - confidence,
and the shortest probe that can show "met" grows with it (p99 with 3 looks: 339 requests
at 90 %, 408 at 95 %, 590 at 99 %). A search's probing is capped in requests
(``max_requests``: the evidence is counted in requests, so slow targets get the same reach
as fast ones) and, as a safety net, in seconds (``max_seconds``). Per target at most
``closed_loop_seconds`` for the concurrency sweep plus ``max_seconds`` per search, plus the
stand-in's start-up; the four local stand-ins take ~12 min (simulated estimate,
docs/capacity.md "What the caps cost").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["CapacityConfig", "Objective", "parse_objective"]

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
        raise ValueError(
            f"objective {text!r} is not of the form pNN=BOUND with a unit, e.g. p99=100ms, p99.9=0.25s or p50=800us"
        )
    pct, value, unit = match.groups()
    return Objective(percentile=float(pct), bound_s=float(value) * _UNITS[unit.lower()])


@dataclass(frozen=True)
class CapacityConfig:
    """What a capacity search aims for and how long it may take."""

    percentile: float = 99.0  # the objective: this latency percentile ...
    bound_ms: float = 100.0  # ... of successful requests stays at or under this many ms
    precision: float = 0.1  # bisect until first bad / last good <= 1 + precision
    growth: float = 2.0  # the ramp multiplies the offered rate by this while the objective holds
    start_rps: float = 0.0  # first offered rate; 0 = half the closed-loop throughput at concurrency 1
    confidence: float = 0.95  # of every verdict: met / violated is wrong with probability <= 1 - this
    max_looks: int = 3  # an undecided rate is extended up to this many looks (n1, 2 n1, 4 n1 requests)
    min_met_seconds: float = 4.0  # "met" needs the rate's looks to span this many seconds of arrivals
    min_requests: int = 200  # closed-loop levels send at least this many; a floor for probes, whose
    # first look is at least what the objective and confidence need (p99 at 95 %: 408)
    min_seconds: float = 2.0  # ... and at least this many seconds of arrivals
    max_probes: int = 24  # open-loop probes (looks) per search, the confirmation included
    max_requests: int = 12_000  # request budget per search: a look starts only if its requests fit
    max_seconds: float = 360.0  # wall-clock safety cap per search (a look starts only if it fits)
    repeats: int = 1  # searches per target (>= 2 shows their spread; `bench compare` uses it)
    max_concurrency: int = 32  # closed-loop sweep: 1, 2, 4, ... up to this (1: concurrency 1 only)
    closed_loop_seconds: float = 10.0  # seconds for the closed-loop sweep per target

    def __post_init__(self) -> None:
        Objective(self.percentile, self.bound_ms / 1000.0)  # raises ValueError naming the problem
        if not 0 < self.precision < 1:
            raise ValueError(f"precision must be in (0, 1), got {self.precision}")
        if not self.growth > 1:
            raise ValueError(f"growth must be > 1, got {self.growth}")
        if self.start_rps < 0:
            raise ValueError(f"start_rps must be >= 0 (0 = automatic), got {self.start_rps}")
        for key in ("min_requests", "repeats", "max_concurrency"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0.5, 1), e.g. 0.95, got {self.confidence}")
        if self.max_looks < 1:
            raise ValueError(f"max_looks must be >= 1, got {self.max_looks}")
        if not (self.min_met_seconds >= 0 and math.isfinite(self.min_met_seconds)):
            raise ValueError(f"min_met_seconds must be a finite time >= 0, got {self.min_met_seconds}")
        if self.max_requests < 2:
            raise ValueError(f"max_requests must be >= 2 (a search look and the confirmation), got {self.max_requests}")
        if self.max_probes < 2:
            raise ValueError(f"max_probes must be >= 2 (a search probe and the confirmation), got {self.max_probes}")
        for key in ("min_seconds", "max_seconds", "closed_loop_seconds"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)}")

    @property
    def objective(self) -> Objective:
        return Objective(self.percentile, self.bound_ms / 1000.0)
