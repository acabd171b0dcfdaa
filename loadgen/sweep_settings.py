"""The sweep settings: what load a sweep sends, parsed once and checked in one place.

Why one type: bench.toml's ``[sweep]`` table and the ``bench run`` flags that override it
describe the same sweep, and its rules (request counts, modes, a rate schedule that fits
in ``max_duration_s``, stages that describe a step) must hold whichever way a value came
in.  ``bench/config.py`` parses ``[sweep]`` into :class:`SweepSettings` with
:func:`ground.tables.parse_table` (a mistake is reported as ``sweep: <key> ...`` or
``sweep.<key>: ...``); :class:`loadgen.sweep.SweepPlan` is the same settings plus the
client's limits from ``[loadgen]``, checked by the same code after the flags are applied.

Durations (``duration_s``, ``max_duration_s``, a stage's ``duration``) are seconds or a
string with units (``"90s"``, ``"30m"``, ``"2h"``, ``"1h30m"``: :mod:`ground.durations`);
they are held as float seconds once parsed.  Long runs are bounded by the free disk and by
``max_duration_s`` (:mod:`loadgen.run_limits` says why the old 100,000-requests-per-step
cap went).

The planning of steps (their order, sizes, concurrency, image order and rate schedule)
is derived from the settings alone, so it lives here too (see :mod:`loadgen.sweep` for
the reasons behind each choice).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ground.durations import DurationError, format_duration, parse_duration
from loadgen.modes import Mode
from loadgen.pacing import ARRIVALS, ConstantRateSchedule, schedule
from loadgen.records import StepKey
from loadgen.run_limits import auto_max_duration_s
from loadgen.stages import StagedSchedule, parse_stage_table, peak_rate, planned_count, validate_stages

__all__ = ["AUTO", "STUDY_REQUEST_COUNTS", "SweepSettings", "requests_for"]

#: The study's request counts (its Table 3 columns): the default ``n_requests``.
STUDY_REQUEST_COUNTS: tuple[int, ...] = (1, 4, 8, 16, 32, 64, 100, 128, 256, 512)

#: ``max_duration_s = "auto"``: the step limit follows the plan (:func:`loadgen.run_limits.auto_max_duration_s`).
AUTO = "auto"


class _AutoMaxDuration(float):
    """A ``max_duration_s`` derived from the plan (``"auto"``), not set by the user.

    A float, so every reader of ``max_duration_s`` gets seconds; its type remembers where it
    came from, so settings rebuilt with other values (``SweepPlan.from_config`` with
    ``--duration 2h``) derive it again instead of holding the old plan to the old limit.
    """


def requests_for(rate_rps: float, duration_s: float) -> int:
    """Requests of a rate step of ``duration_s`` seconds at ``rate_rps``: R x S rounded half up."""
    return int(math.floor(rate_rps * duration_s + 0.5))


def _seconds(value: object, name: str) -> float:
    """A duration setting (seconds, or a string with units) in seconds; ValueError naming ``name``."""
    try:
        return parse_duration(value, name)
    except DurationError as exc:
        raise ValueError(str(exc)) from None


@dataclass(frozen=True)
class SweepSettings:
    """What load to send: request counts, modes, trials, warm-up and the open loop's rate.

    ``concurrency``: requests in flight in concurrent mode, the connection cap in rate mode
    (0 = N: a burst of N, the study-compatible default). ``duration_s`` > 0 (seconds, or
    ``"30m"``, ``"2h"``, ...): each rate step sends round(rate_rps x duration_s) requests
    instead of ``n_requests``, which then feed the closed-loop modes only. ``stages``: a
    rate step follows these k6-like stages instead (:mod:`loadgen.stages`; bench.toml
    ``[{duration = "2m", rate = 100}, ...]``), sending round(integral of the rate curve)
    requests; its StepKey's ``rate`` is the curve's peak (the highest rate offered, which
    is what the report's rate axis and a saturation verdict need) and its ``n_requests``
    the planned count (what summary.csv's N has always been: the requests the step was
    planned to send).  ``max_duration_s``: the longest any one step may run, so a run
    always ends; ``"auto"`` (the default) follows the plan
    (:func:`loadgen.run_limits.auto_max_duration_s`), a duration is a hard limit and a
    rate schedule longer than it is refused.
    """

    n_requests: tuple[int, ...] = STUDY_REQUEST_COUNTS
    modes: tuple[Mode, ...] = (Mode.SEQUENTIAL, Mode.CONCURRENT)
    trials: int = 1
    warmup: int = 5
    concurrency: int = 0
    rate_rps: float = 50.0
    duration_s: float | str = 0.0
    arrival: Literal["uniform", "poisson"] = "poisson"
    seed: int = 0
    max_duration_s: float | str = AUTO
    stages: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_requests", tuple(int(n) for n in self.n_requests))
        if not self.n_requests or any(n < 1 for n in self.n_requests):
            raise ValueError(f"n_requests must be a non-empty list of counts >= 1, got {list(self.n_requests)}")
        unknown = [m for m in self.modes if m not in tuple(Mode)]
        if not self.modes or unknown:
            raise ValueError(f"unknown mode(s) {unknown or '(none given)'}; modes: {', '.join(Mode)}")
        object.__setattr__(self, "modes", tuple(Mode(m) for m in self.modes))
        if self.arrival not in ARRIVALS:
            raise ValueError(f"arrival must be one of {', '.join(ARRIVALS)}, got {self.arrival!r}")
        if self.trials < 1 or self.warmup < 0 or self.concurrency < 0:
            raise ValueError("trials must be >= 1, warmup and concurrency >= 0")
        if not (self.rate_rps > 0 and math.isfinite(self.rate_rps)):
            raise ValueError(f"rate_rps must be a finite number > 0, got {self.rate_rps}")
        object.__setattr__(self, "duration_s", _seconds(self.duration_s, "duration_s"))
        stages = tuple(parse_stage_table(stage, f"stages[{i}]") for i, stage in enumerate(self.stages))
        if stages:
            validate_stages(stages, "stages")
            if self.duration_s:
                raise ValueError(
                    "duration_s and stages both size the rate step: give one (the stages' durations are its length)"
                )
        object.__setattr__(self, "stages", stages)
        self._set_max_duration()

    def _set_max_duration(self) -> None:
        """Resolve ``max_duration_s`` (``"auto"``: from the plan) and check every rate schedule fits in it."""
        raw = self.max_duration_s
        counts = self.rate_counts() if Mode.RATE in self.modes else ()
        if counts and self.duration_s > 0 and counts[0] < 1:
            raise ValueError(
                f"a rate step sends round(rate_rps x duration_s) = round({self.rate_rps:g} x "
                f"{self.duration_s:g}) = {counts[0]} requests; it must send at least 1"
            )
        if raw == AUTO or isinstance(raw, _AutoMaxDuration):
            spread = [self.planned_span_s(n) + self._poisson_spread_s(n) for n in counts]
            object.__setattr__(self, "max_duration_s", _AutoMaxDuration(auto_max_duration_s(spread)))
            return
        limit = _seconds(raw, "max_duration_s")
        if not limit > 0:
            raise ValueError(f"max_duration_s must be a finite duration > 0 or {AUTO!r}, got {raw!r}")
        object.__setattr__(self, "max_duration_s", limit)
        for n in counts:
            span = self.planned_span_s(n)
            if span > limit:
                what = (
                    f"the stages ({format_duration(span)})"
                    if self.stages
                    else f"{n} requests at {self.rate_rps:g} req/s"
                )
                raise ValueError(
                    f"a rate step of {what} is scheduled over {span:g} s, longer than max_duration_s = "
                    f"{limit:g} s, which would cut it off (leave max_duration_s at {AUTO!r} to follow the plan)"
                )

    def planned_span_s(self, n: int) -> float:
        """How long a rate step of ``n`` requests is planned to send: the stages' total, else ``(n - 1) / rate_rps``.

        The constant-rate figure is the uniform schedule's span; a Poisson one is as long on
        average (``"auto"`` adds :meth:`_poisson_spread_s` for its spread).  A staged
        schedule never runs past its stages.
        """
        if self.stages:
            return float(sum(stage.duration_s for stage in self.stages))
        return (n - 1) / self.rate_rps

    def _poisson_spread_s(self, n: int) -> float:
        """Six standard deviations of a constant-rate Poisson schedule's span (the sum of n - 1 exponential gaps)."""
        if self.stages or self.arrival != "poisson" or n < 2:
            return 0.0
        return 6.0 * math.sqrt(n - 1) / self.rate_rps

    def concurrency_for(self, mode: str, n: int) -> int:
        """In-flight limit of a step: 1 for sequential, else ``concurrency`` or N."""
        if mode == Mode.SEQUENTIAL:
            return 1
        return min(self.concurrency, n) if self.concurrency else n

    def rate_counts(self) -> tuple[int, ...]:
        """Request counts of the ``rate`` steps: the stages' planned count, ``round(rate_rps * duration_s)``,
        or ``n_requests``."""
        if self.stages:
            return (planned_count(self.stages),)
        if self.duration_s > 0:
            return (requests_for(self.rate_rps, self.duration_s),)
        return self.n_requests

    def counts_for(self, mode: str) -> tuple[int, ...]:
        """Request counts of the steps of ``mode``."""
        return self.rate_counts() if mode == Mode.RATE else self.n_requests

    def steps(self, target: str) -> list[StepKey]:
        """Every step of the sweep, in the order it runs (``for trial: for mode: for n``)."""
        return [
            StepKey(
                target=target,
                mode=mode,
                n_requests=n,
                concurrency=self.concurrency_for(mode, n),
                rate=self.step_rate() if mode == Mode.RATE else 0.0,
                trial=trial,
            )
            for trial in range(1, self.trials + 1)
            for mode in self.modes
            for n in self.counts_for(mode)
        ]

    def planned_records(self, n_targets: int) -> int:
        """Raw records a run of this plan writes against ``n_targets`` targets (warm-up is not recorded)."""
        return n_targets * sum(key.n_requests for key in self.steps(""))

    def total_requests(self) -> int:
        """Requests the whole sweep sends per target, warm-up included (for progress bars)."""
        return sum(key.n_requests + self.warmup for key in self.steps(""))

    def image_order(self, n_images: int, trial: int) -> np.ndarray:
        """The seeded permutation of test-split indices used in ``trial``."""
        return np.random.default_rng([self.seed, 0, trial]).permutation(n_images)

    def step_rate(self) -> float:
        """The ``rate`` of a rate step's StepKey: ``rate_rps``, or the stages' peak rate."""
        return peak_rate(self.stages) if self.stages else self.rate_rps

    def rate_schedule(self, n: int, trial: int) -> ConstantRateSchedule | StagedSchedule:
        """The lazy offset schedule of a ``rate`` step of ``n`` requests in ``trial`` (chunks, never all at once).

        Seeded ``[seed, 1, trial, n]`` as :meth:`offsets` always was; with stages, ``n`` is
        their planned count.
        """
        seed = [self.seed, 1, trial, n]
        if self.stages:
            return StagedSchedule(self.stages, self.arrival, seed=seed)
        return ConstantRateSchedule(n, self.rate_rps, self.arrival, seed=seed)

    def offsets(self, n: int, trial: int) -> np.ndarray:
        """Intended send offsets of a ``rate`` step of ``n`` requests in ``trial``, as one array.

        For a run that holds a step in memory; a long step reads :meth:`rate_schedule` in chunks.
        """
        if self.stages:
            return np.concatenate([np.zeros(0), *self.rate_schedule(n, trial).chunks(1 << 16)])
        return schedule(n, self.rate_rps, self.arrival, seed=[self.seed, 1, trial, n])

    def describe(self) -> dict[str, Any]:
        """Plain-data form for meta.json (modes as their strings, stages as bench.toml writes them);
        ``SweepPlan(**describe())`` reads it back."""
        data = dataclasses.asdict(self)
        data["n_requests"] = list(self.n_requests)
        data["modes"] = [m.value for m in self.modes]
        data["max_duration_s"] = float(self.max_duration_s)
        if self.stages:
            data["stages"] = [stage.describe() for stage in self.stages]
        else:  # a run without stages writes the meta.json it always did
            del data["stages"]
        return data
