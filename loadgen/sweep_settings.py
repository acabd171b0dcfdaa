"""The sweep settings: what load a sweep sends, parsed once and checked in one place.

Why one type: bench.toml's ``[sweep]`` table and the ``bench run`` flags that override it
describe the same sweep, and its rules (request counts, modes, a rate schedule that fits
in ``max_duration_s``, no step above :data:`MAX_STEP_REQUESTS`) must hold whichever way a
value came in.  ``bench/config.py`` parses ``[sweep]`` into :class:`SweepSettings` with
:func:`ground.tables.parse_table` (a mistake is reported as ``sweep: <key> ...`` or
``sweep.<key>: ...``); :class:`loadgen.sweep.SweepPlan` is the same settings plus the
client's limits from ``[loadgen]``, checked by the same code after the flags are applied.

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

from loadgen.modes import Mode
from loadgen.pacing import ARRIVALS, schedule
from loadgen.records import StepKey

__all__ = ["MAX_STEP_REQUESTS", "STUDY_REQUEST_COUNTS", "SweepSettings", "requests_for"]

#: The study's request counts (its Table 3 columns): the default ``n_requests``.
STUDY_REQUEST_COUNTS: tuple[int, ...] = (1, 4, 8, 16, 32, 64, 100, 128, 256, 512)

# The most requests one step may send: 100 000 records (~10 MB in memory, ~2 MB gzipped
# in requests.csv.gz) is more than any sweep needs; a typo such as --rate 100000
# --duration 60 (six million requests) must fail at once, not after filling the disk.
MAX_STEP_REQUESTS = 100_000


def requests_for(rate_rps: float, duration_s: float) -> int:
    """Requests of a rate step of ``duration_s`` seconds at ``rate_rps``: R x S rounded half up."""
    return int(math.floor(rate_rps * duration_s + 0.5))


@dataclass(frozen=True)
class SweepSettings:
    """What load to send: request counts, modes, trials, warm-up and the open loop's rate.

    ``concurrency``: requests in flight in concurrent mode, the connection cap in rate mode
    (0 = N: a burst of N, the study-compatible default). ``duration_s`` > 0: each rate step
    sends round(rate_rps x duration_s) requests instead of ``n_requests``, which then feed
    the closed-loop modes only. ``max_duration_s``: hard cap on any one step, so a run
    always ends.
    """

    n_requests: tuple[int, ...] = STUDY_REQUEST_COUNTS
    modes: tuple[Mode, ...] = (Mode.SEQUENTIAL, Mode.CONCURRENT)
    trials: int = 1
    warmup: int = 5
    concurrency: int = 0
    rate_rps: float = 50.0
    duration_s: float = 0.0
    arrival: Literal["uniform", "poisson"] = "poisson"
    seed: int = 0
    max_duration_s: float = 600.0

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
        for name in ("rate_rps", "max_duration_s"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"{name} must be a finite number > 0, got {getattr(self, name)}")
        if not (self.duration_s >= 0 and math.isfinite(self.duration_s)):
            raise ValueError(
                f"duration_s must be a finite number >= 0 (0: rate steps use n_requests), got {self.duration_s}"
            )
        self._check_step_sizes()

    def _check_step_sizes(self) -> None:
        """Every step within :data:`MAX_STEP_REQUESTS`; every rate schedule within ``max_duration_s``."""
        too_many = [n for n in self.n_requests if n > MAX_STEP_REQUESTS]
        if too_many:
            raise ValueError(
                f"n_requests {too_many[0]} is more than the {MAX_STEP_REQUESTS} requests one step may send"
            )
        if Mode.RATE not in self.modes:
            return
        if self.duration_s > 0:
            n = requests_for(self.rate_rps, self.duration_s)
            if not 1 <= n <= MAX_STEP_REQUESTS:
                raise ValueError(
                    f"a rate step sends round(rate_rps x duration_s) = round({self.rate_rps:g} x "
                    f"{self.duration_s:g}) = {n} requests; it must be 1 to {MAX_STEP_REQUESTS}"
                )
        for n in self.rate_counts():
            span = (n - 1) / self.rate_rps  # the uniform schedule's; a Poisson one is as long on average
            if span > self.max_duration_s:
                raise ValueError(
                    f"a rate step of {n} requests at {self.rate_rps:g} req/s is scheduled over {span:g} s, "
                    f"longer than max_duration_s = {self.max_duration_s:g} s, which would cut it off"
                )

    def concurrency_for(self, mode: str, n: int) -> int:
        """In-flight limit of a step: 1 for sequential, else ``concurrency`` or N."""
        if mode == Mode.SEQUENTIAL:
            return 1
        return min(self.concurrency, n) if self.concurrency else n

    def rate_counts(self) -> tuple[int, ...]:
        """Request counts of the ``rate`` steps: ``round(rate_rps * duration_s)``, or ``n_requests``."""
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
                rate=self.rate_rps if mode == Mode.RATE else 0.0,
                trial=trial,
            )
            for trial in range(1, self.trials + 1)
            for mode in self.modes
            for n in self.counts_for(mode)
        ]

    def total_requests(self) -> int:
        """Requests the whole sweep sends per target, warm-up included (for progress bars)."""
        return sum(key.n_requests + self.warmup for key in self.steps(""))

    def image_order(self, n_images: int, trial: int) -> np.ndarray:
        """The seeded permutation of test-split indices used in ``trial``."""
        return np.random.default_rng([self.seed, 0, trial]).permutation(n_images)

    def offsets(self, n: int, trial: int) -> np.ndarray:
        """Intended send offsets of a ``rate`` step of ``n`` requests in ``trial``."""
        return schedule(n, self.rate_rps, self.arrival, seed=[self.seed, 1, trial, n])

    def describe(self) -> dict[str, Any]:
        """Plain-data form for meta.json (modes as their strings)."""
        data = dataclasses.asdict(self)
        data["n_requests"] = list(self.n_requests)
        data["modes"] = [m.value for m in self.modes]
        return data
