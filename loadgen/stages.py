"""Stages (k6's ``stages``): a rate step whose offered rate follows a piecewise-linear curve.

What: a list of :class:`Stage` -- each a duration and the rate reached at its end, reached
linearly from the rate at its start (the previous stage's end rate, or its own
``start_rate``; the first stage starts from 0 unless it says otherwise).  That one rule is
a ramp up (``2m:0-100``), a hold (``30m:100``) and a ramp down (``2m:0``) alike.
:class:`StagedSchedule` turns the stages into the step's intended send times, lazily.

Why k6's rule (its ``ramping-arrival-rate`` executor: ``startRate`` then ``stages`` of
``{duration, target}``, each target reached linearly): it is the form soak users already
write, and a piecewise-linear rate has a closed-form cumulative intensity, so the send
times can be computed exactly instead of by thinning or by time steps.

The schedule, with ``r(t)`` the rate curve over ``[0, T]`` and ``L(t)`` its integral:

- **Count**: ``N = round(L(T))`` requests, fixed before the step runs (half up, as
  ``round(rate x duration)`` for a constant rate), so a seeded run always sends the same
  number and the step's ``n_requests`` is known in advance.
- ``uniform``: request ``i`` is due at ``L^-1(i * L(T) / N)`` -- evenly spaced in
  cumulative intensity; for a constant rate ``r`` that is ``i / r``.
- ``poisson``: the times of a Poisson process of intensity ``r(t)`` on ``[0, T]`` *given*
  that it had ``N`` arrivals: ``N`` independent draws of density ``r(t) / L(T)``, in
  order.  Made as ``L^-1(L(T) * U_(i))`` with ``U_(1) < ... < U_(N)`` the order statistics
  of ``N`` uniforms, drawn in ascending order one chunk at a time
  (``1 - U_(i) = (1 - U_(i-1)) * V_i^(1 / (N - i + 1))``, ``V_i`` uniform: the classic
  sequential method), so no array of all ``N`` is ever built.  Every time lies in
  ``[0, T]``: a staged step never runs past its stages.

A constant-rate step without stages keeps :func:`loadgen.pacing.schedule`'s offsets
(:class:`loadgen.pacing.ConstantRateSchedule`); a single stage holding a constant rate is
*this* schedule, whose Poisson times are conditioned on the count (the two agree in
distribution up to that conditioning, not bit for bit).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ground.durations import DURATION_FORMS, DurationError, format_duration, parse_duration
from loadgen.pacing import ARRIVALS, Arrival

__all__ = [
    "STAGES_FORM",
    "Stage",
    "StagedSchedule",
    "format_stages",
    "parse_stage_table",
    "parse_stages_text",
    "peak_rate",
    "planned_count",
    "validate_stages",
]

#: How ``--stages`` is written, for help texts and errors.
STAGES_FORM = "DURATION:RATE or DURATION:FROM-TO, comma-separated, e.g. 2m:0-100,30m:100,2m:0"

_STAGE_KEYS = ("duration", "rate", "start_rate")
_RATE = r"(?:\d+(?:\.\d*)?|\.\d+)"
_STAGE_TEXT = re.compile(rf"(?P<duration>[^:]+):(?:(?P<start>{_RATE})-)?(?P<rate>{_RATE})")


@dataclass(frozen=True)
class Stage:
    """One stage: over ``duration_s`` seconds the rate goes linearly to ``rate`` req/s.

    ``start_rate``: the rate at the stage's start; None = where the previous stage ended
    (0 for the first stage, as k6's ``startRate`` defaults to 0).  A ``start_rate`` that
    differs from the previous stage's end is a jump at the boundary.
    """

    duration_s: float
    rate: float
    start_rate: float | None = None

    def describe(self) -> dict[str, Any]:
        """Plain data for meta.json and bench.toml: ``{"duration": "2m", "rate": 100.0[, "start_rate": 0.0]}``."""
        data: dict[str, Any] = {"duration": format_duration(self.duration_s), "rate": self.rate}
        if self.start_rate is not None:
            data["start_rate"] = self.start_rate
        return data


def _rate(value: object, where: str) -> float:
    """A rate in req/s: a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: must be a rate in req/s, a finite number >= 0, got {value!r}")
    return float(value)


def parse_stage_table(table: object, where: str) -> Stage:
    """A bench.toml stage, ``{duration = "2m", rate = 100}`` (optional ``start_rate``); errors name ``where.key``."""
    if isinstance(table, Stage):
        return table
    if not isinstance(table, Mapping):
        raise ValueError(f'{where}: must be a table such as {{duration = "2m", rate = 100}}, got {table!r}')
    unknown = [k for k in table if k not in _STAGE_KEYS]
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown key; a stage has {', '.join(_STAGE_KEYS)}")
    for key in ("duration", "rate"):
        if key not in table:
            raise ValueError(f"{where}.{key}: required key is missing")
    try:
        duration = parse_duration(table["duration"], f"{where}.duration")
    except DurationError as exc:
        raise ValueError(str(exc)) from None
    start = table.get("start_rate")
    return Stage(
        duration_s=duration,
        rate=_rate(table["rate"], f"{where}.rate"),
        start_rate=None if start is None else _rate(start, f"{where}.start_rate"),
    )


def parse_stages_text(text: str, what: str = "--stages") -> tuple[Stage, ...]:
    """``--stages 2m:0-100,30m:100,2m:0`` as stages (:data:`STAGES_FORM`); ValueError naming ``what``."""
    stages = []
    for index, part in enumerate(p.strip() for p in text.split(",")):
        match = _STAGE_TEXT.fullmatch(part)
        if not match:
            raise ValueError(f"{what}: stage {index + 1} {part!r} is not DURATION:RATE; write {STAGES_FORM}")
        try:
            duration = parse_duration(match["duration"], f"{what}: stage {index + 1}'s duration")
        except DurationError as exc:
            raise ValueError(str(exc)) from None
        start = match["start"]
        stages.append(Stage(duration, float(match["rate"]), None if start is None else float(start)))
    stages_tuple = tuple(stages)
    validate_stages(stages_tuple, what)
    return stages_tuple


def format_stages(stages: Iterable[Stage]) -> str:
    """The ``--stages`` text of ``stages`` (what :func:`parse_stages_text` reads back)."""
    parts = []
    for stage in stages:
        start = "" if stage.start_rate is None else f"{stage.start_rate:g}-"
        parts.append(f"{format_duration(stage.duration_s)}:{start}{stage.rate:g}")
    return ",".join(parts)


def _segments(stages: Sequence[Stage]) -> np.ndarray:
    """Rows ``(t_start, duration, rate_start, rate_end)`` of the rate curve, one per stage."""
    rows, t, previous = [], 0.0, 0.0
    for stage in stages:
        start = previous if stage.start_rate is None else stage.start_rate
        rows.append((t, stage.duration_s, start, stage.rate))
        t += stage.duration_s
        previous = stage.rate
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def _areas(segments: np.ndarray) -> np.ndarray:
    """Requests each segment's rate curve integrates to: duration x mean rate."""
    return segments[:, 1] * (segments[:, 2] + segments[:, 3]) / 2.0


def planned_count(stages: Sequence[Stage]) -> int:
    """``N = round(L(T))``, the requests a staged step sends (the integral of its rate curve, half up)."""
    return int(math.floor(float(_areas(_segments(stages)).sum()) + 0.5))


def peak_rate(stages: Sequence[Stage]) -> float:
    """The highest rate the stages' curve reaches, in req/s."""
    return max(max(stage.rate, stage.start_rate or 0.0) for stage in stages)


def validate_stages(stages: Sequence[Stage], what: str) -> None:
    """Stages that describe a step: at least one, rates >= 0, some time and at least one request.

    Raises ValueError naming ``what`` (and the stage's index).
    """
    if not stages:
        raise ValueError(f"{what}: give at least one stage ({STAGES_FORM})")
    for index, stage in enumerate(stages):
        where = f"{what}[{index}]"
        if not (math.isfinite(stage.duration_s) and stage.duration_s >= 0):
            raise ValueError(f"{where}: the duration must be >= 0 -- {DURATION_FORMS}")
        _rate(stage.rate, f"{where}.rate")
        if stage.start_rate is not None:
            _rate(stage.start_rate, f"{where}.start_rate")
    total = sum(s.duration_s for s in stages)
    if not total > 0:
        raise ValueError(f"{what}: the stages last 0 s in all; give at least one a duration > 0")
    n = planned_count(stages)
    if n < 1:
        raise ValueError(
            f"{what}: the stages' rate curve integrates to {float(_areas(_segments(stages)).sum()):g} requests "
            f"over {format_duration(total)}, which rounds to 0; raise a rate or a duration"
        )


class StagedSchedule:
    """The intended send offsets of a staged rate step, generated lazily (see the module docstring).

    Implements the run's offset-schedule protocol: ``duration_s`` (the stages' total, ``T``),
    ``len()`` (``N``, the planned count) and ``chunks(size)`` (consecutive, non-decreasing
    offsets in ``[0, T]``).  ``seed`` seeds a generator of its own (anything
    ``numpy.random.default_rng`` accepts); every :meth:`chunks` call starts again from the
    same seed, and the chunk size never changes an offset.
    """

    def __init__(
        self, stages: Sequence[Stage], arrival: Arrival = "poisson", seed: Any = 0, share: tuple[int, int] = (0, 1)
    ) -> None:
        """``share = (i, K)``: shard ``i`` of ``K``'s part of the step (:mod:`loadgen.shard`):
        ``uniform``, every K-th slot from ``i`` (the union is the one-client schedule);
        ``poisson``, its ``n_i`` of the ``N`` independent draws of density ``r(t) / L(T)``
        from its own ``seed`` (the union of K such shares is distributed as the one-client
        schedule: N independent draws of that density, in order)."""
        if arrival not in ARRIVALS:
            raise ValueError(f"arrival must be one of {', '.join(ARRIVALS)}, got {arrival!r}")
        index, count = share
        if not 0 <= index < count:
            raise ValueError(f"a share is shard i of K with 0 <= i < K, got {index} of {count}")
        validate_stages(stages, "stages")
        self.stages = tuple(stages)
        self.arrival: Arrival = arrival
        self.seed = seed
        segments = _segments(self.stages)
        self.duration_s = float(segments[:, 1].sum())
        areas = _areas(segments)
        self.total_intensity = float(areas.sum())  # L(T)
        self.n_total = planned_count(self.stages)
        self.share = (index, count)
        self.n = len(range(index, self.n_total, count))  # split_evenly's count for shard i of K
        keep = areas > 0  # a stage at rate 0 (or of no length) holds no request, only time
        self._start, self._length, self._a, self._b = (segments[keep, i] for i in range(4))
        ends = np.cumsum(areas[keep])
        self._cum_end = ends
        self._cum_start = np.concatenate(([0.0], ends[:-1]))

    @property
    def peak_rate(self) -> float:
        """The highest rate the curve reaches (the step's ``rate`` in summary.csv)."""
        return peak_rate(self.stages)

    def __len__(self) -> int:
        return self.n

    def invert(self, s: np.ndarray) -> np.ndarray:
        """``L^-1(s)``: the times by which the rate curve has integrated to ``s`` requests (``0 <= s <= L(T)``)."""
        k = np.minimum(np.searchsorted(self._cum_end, s, side="left"), len(self._cum_end) - 1)
        a, b, length = self._a[k], self._b[k], self._length[k]
        y = np.maximum(s - self._cum_start[k], 0.0)
        # L(t0 + u) - L(t0) = a u + (b - a) u^2 / (2 d) = y; the root in [0, d], in the form that
        # stays exact when a = 0 or b ~ a (no cancellation): u = 2 y / (a + sqrt(a^2 + 2 (b - a) y / d)).
        root = np.sqrt(np.maximum(a * a + 2.0 * (b - a) * y / length, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.where(a + root > 0, 2.0 * y / (a + root), 0.0)
        return self._start[k] + np.clip(u, 0.0, length)

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """Consecutive offsets, ``size`` at a time (the last chunk may be shorter), non-decreasing."""
        if size < 1:
            raise ValueError(f"chunk size must be >= 1, got {size}")
        rng = np.random.default_rng(self.seed) if self.arrival == "poisson" else None
        log_rest = 0.0  # log(1 - U_(i)) of the last order statistic drawn
        last = 0.0
        for start in range(0, self.n, size):
            index = np.arange(start, min(start + size, self.n), dtype=np.float64)
            if rng is None:
                fraction = (index * self.share[1] + self.share[0]) / self.n_total
            else:
                # log(1 - U_(i)) = log(1 - U_(i-1)) - E_i / (N - i + 1), E_i ~ Exp(1), i = index + 1
                steps = -rng.standard_exponential(index.size) / (self.n - index)
                logs = np.cumsum(np.concatenate(([log_rest], steps)))[1:]
                log_rest = float(logs[-1])
                fraction = -np.expm1(logs)
            times = self.invert(np.minimum(fraction, 1.0) * self.total_intensity)
            times = np.maximum.accumulate(np.concatenate(([last], times)))[1:]  # no 1-ulp step back
            last = float(times[-1])
            yield times
