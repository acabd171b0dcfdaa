"""Sharded load: one sweep plan split over K clients that together send what one would. Pure.

Why: one client process (or one machine) can be the bottleneck, and where the client runs
is part of the measurement (the study's fastest deployment had its client in the same
VPC).  Locust and k6 spread load over workers; KServe runs its load generator as a
Kubernetes Job.  Here shard ``I`` of ``N`` (written ``I/N``) runs its share of every step
of the *same* plan, and ``bench merge`` puts the shares back together into one run whose
statistics come from the union of the raw records.

What a shard sends in each step (K shards, step of N requests, in-flight limit or
connection cap C; :func:`split_evenly` is the one rounding rule):

- **concurrent**: the N requests and the C in flight are both split as evenly as
  possible: shard ``i`` gets ``N // K`` requests plus one if ``i < N % K`` (the first
  ``N % K`` shards get the extra ones), and likewise of C.  Shard ``i`` sends the
  requests ``first_i .. first_i + n_i - 1`` of the step (a contiguous block of the trial's
  seeded image order), so the K shards together send exactly the images one client would.
- **rate**: the offered rate is split.  The step's schedule window is ``T = N / R``
  seconds (R the plan's rate); shard ``i`` draws its ``n_i`` intended send times
  independently and uniformly over ``[0, T)`` (``poisson``) from its own generator, seeded
  by the run seed, trial, N, K and ``i`` (:func:`shard_seed`).  Why this construction: a
  Poisson process of rate R observed on ``[0, T)`` *given* that N arrivals fell in the
  window is exactly N independent uniform points (the order-statistics property), so the
  union of the shards' points is distributed exactly as a rate-R Poisson stream with N
  arrivals in T -- and each shard's own stream is a Poisson stream of rate ``n_i / T``
  (about R/K) given its count, independent of the others.  Every shard's window is the
  same T (equal durations) and the counts add up to N exactly, so a merged step has the
  plan's N and R.  ``uniform`` arrivals: shard ``i`` takes every K-th slot ``j / R`` of
  the one-client uniform schedule (``j = i, i + K, ...``): the union is that schedule.
  (The one-client Poisson schedule starts with a request at 0 and has N - 1 exponential
  gaps, spanning about ``(N - 1) / R``; the sharded one spans about T: the same process,
  window conventions differing by one gap.)  The connection cap C is split like N.
- **sequential** cannot be sharded (one request at a time stops being one at a time when
  K clients send), and neither can a capacity search (each probe's rate is chosen from the
  previous probe's result, a decision one client takes): both are refused by
  :func:`check_shardable`, naming why.

Warm-up: every shard sends the plan's ``warmup`` requests over its own connections before
each step (warm-up warms connections; it is not split).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from loadgen.modes import Mode
from loadgen.records import StepKey
from loadgen.stages import StagedSchedule

__all__ = [
    "SHARDABLE_MODES",
    "SHARD_INDEX_ENV",
    "ShardError",
    "ShardSpec",
    "StepShare",
    "check_shardable",
    "parse_shard",
    "parse_start_at",
    "shard_offsets",
    "shard_seed",
    "split_evenly",
    "step_share",
]

#: Where ``--shard auto/N`` reads its index: the variable a Kubernetes Indexed Job
#: (``completionMode: Indexed``) sets in every pod to that pod's completion index.
SHARD_INDEX_ENV = "JOB_COMPLETION_INDEX"
#: Modes a shard can run: one request at a time (sequential) cannot be split over clients.
SHARDABLE_MODES: tuple[str, ...] = tuple(m.value for m in Mode if m is not Mode.SEQUENTIAL)

# A stream family of its own for shard schedules: RNG [seed, 0, trial] orders the images,
# [seed, 1, trial, N] is the one-client schedule (loadgen.sweep); shards use [seed, 2, ...].
_SHARD_SCHEDULE_STREAM = 2


class ShardError(ValueError):
    """A shard specification, or a plan that cannot be sharded; the message says why."""


class _PlanLike(Protocol):
    """The parts of :class:`loadgen.sweep.SweepPlan` sharding needs (no import cycle)."""

    modes: tuple[str, ...]
    seed: int
    rate_rps: float
    arrival: str
    stages: tuple[Any, ...]

    def steps(self, target: str) -> list[StepKey]: ...


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ShardError(f"the number of shards must be >= 1, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ShardError(f"shard index must be 0 to {self.count - 1} for {self.count} shards, got {self.index}")

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str, environ: Mapping[str, str]) -> ShardSpec:
    """``"I/N"`` (I = 0..N-1), or ``"auto/N"``: I from :data:`SHARD_INDEX_ENV` in ``environ``."""
    index_text, sep, count_text = str(text).strip().partition("/")
    if not sep:
        raise ShardError(f"expected I/N (e.g. 0/4) or auto/N, got {text!r}")
    try:
        count = int(count_text)
    except ValueError:
        raise ShardError(f"expected I/N with N a whole number of shards, got {text!r}") from None
    if index_text.strip().lower() == "auto":
        value = environ.get(SHARD_INDEX_ENV)
        if value is None:
            raise ShardError(
                f"--shard auto/{count_text} reads the shard index from ${SHARD_INDEX_ENV} "
                "(set by a Kubernetes Indexed Job), which is not set here; give the index: I/N"
            )
        index_text, where = value, f"${SHARD_INDEX_ENV}={value!r}"
    else:
        where = repr(text)
    try:
        index = int(index_text)
    except ValueError:
        raise ShardError(f"shard index must be a whole number, got {where}") from None
    return ShardSpec(index, count)


def parse_start_at(text: str) -> float:
    """A wall-clock instant as Unix seconds: ``1767225600.5`` or ISO 8601 with a zone (``...Z``)."""
    value = str(text).strip()
    try:
        epoch = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ShardError(
                f"expected Unix seconds (e.g. {1767225600.0}) or an ISO 8601 time with a zone "
                f"(e.g. 2026-01-01T00:00:00Z), got {text!r}"
            ) from None
        if moment.tzinfo is None:
            raise ShardError(
                f"an ISO 8601 start time needs a zone (Z or +HH:MM), got {text!r}: without one, "
                "shards in different time zones would start at different instants"
            ) from None
        epoch = moment.timestamp()
    if not math.isfinite(epoch) or epoch <= 0:
        raise ShardError(f"start time must be a finite number of Unix seconds > 0, got {text!r}")
    return epoch


def split_evenly(total: int, count: int) -> list[tuple[int, int]]:
    """``(first, size)`` of each of ``count`` shares of ``total`` items, as even as possible.

    Share ``i`` has ``total // count`` items plus one if ``i < total % count``; shares are
    contiguous and in order, so together they are ``0 .. total - 1`` exactly once.
    """
    if count < 1 or total < 0:
        raise ValueError(f"need count >= 1 and total >= 0, got total {total}, count {count}")
    base, extra = divmod(total, count)
    shares = []
    first = 0
    for i in range(count):
        size = base + (1 if i < extra else 0)
        shares.append((first, size))
        first += size
    return shares


def check_shardable(plan: _PlanLike, count: int, *, capacity: bool = False) -> None:
    """Raise :class:`ShardError` naming why ``plan`` cannot be run as ``count`` shards.

    Checked before anything starts, for every step: each shard must get at least one
    request and at least one request in flight (or connection) in every step.
    """
    if capacity:
        raise ShardError(
            "capacity search cannot be sharded: each probe's rate is chosen from the previous "
            "probe's result, a decision a single client takes; run --modes capacity without "
            "--shard/--clients"
        )
    if Mode.SEQUENTIAL in plan.modes:
        raise ShardError(
            "sequential mode cannot be sharded: it sends one request at a time, and K clients "
            "would send K at a time; choose --modes concurrent and/or rate"
        )
    for key in plan.steps(""):
        if key.n_requests < count:
            raise ShardError(
                f"step {key.mode} N={key.n_requests} cannot be split over {count} shards: each "
                "shard needs at least one request; use request counts >= the number of shards"
            )
        if key.concurrency < count:
            what = "in flight" if key.mode == "concurrent" else "connections"
            raise ShardError(
                f"step {key.mode} N={key.n_requests} has {key.concurrency} {what} (--concurrency), "
                f"fewer than the {count} shards: each shard needs at least one; raise "
                "--concurrency or use fewer shards"
            )


def shard_seed(seed: int, trial: int, n_requests: int, spec: ShardSpec) -> list[int]:
    """The schedule seed of ``spec``'s share of a rate step: run seed, trial, N, K and the index.

    A list seeds numpy's SeedSequence, whose streams for different lists are independent
    (so shard 0 of 2 and shard 0 of 3 differ too, as their windows hold different counts).
    """
    return [int(seed), _SHARD_SCHEDULE_STREAM, int(trial), int(n_requests), spec.count, spec.index]


def shard_offsets(plan: _PlanLike, spec: ShardSpec, n_requests: int, trial: int) -> np.ndarray | StagedSchedule:
    """Intended send offsets (s from the step's start, ascending) of ``spec``'s share of a rate step.

    See the module docstring for the construction; the window is ``T = N / rate``.  A step
    with stages gets its share of the staged schedule, lazily (:class:`StagedSchedule` with
    ``share``): the same construction on the stages' cumulative intensity.
    """
    if plan.stages:
        return StagedSchedule(
            plan.stages,
            plan.arrival,
            seed=shard_seed(plan.seed, trial, n_requests, spec),
            share=(spec.index, spec.count),
        )
    share = split_evenly(n_requests, spec.count)[spec.index][1]
    rate = float(plan.rate_rps)
    if plan.arrival == "uniform":
        slots = np.arange(spec.index, n_requests, spec.count, dtype=np.float64)
        return slots / rate
    if plan.arrival == "poisson":
        window = n_requests / rate
        rng = np.random.default_rng(shard_seed(plan.seed, trial, n_requests, spec))
        return np.sort(rng.uniform(0.0, window, size=share))
    raise ShardError(f"arrival must be uniform or poisson, got {plan.arrival!r}")


@dataclass(frozen=True)
class StepShare:
    """What one shard sends in one step of the plan.

    ``key``: the plan's step (whole N, concurrency C, rate R) -- the shards' rows are
    recorded under it, so they line up for the merge.  ``sent``: the shard's own step
    (its ``n_i`` requests and ``c_i`` in flight / connections), which it actually runs.
    ``first``: its first request's number within the step (its records' ``seq`` start
    there, and its images are the step's ``first .. first + n_i - 1``).
    """

    key: StepKey
    sent: StepKey
    first: int
    offsets: np.ndarray | StagedSchedule | None

    def describe(self) -> dict[str, Any]:
        return {
            "mode": self.key.mode,
            "n_requests": self.key.n_requests,
            "trial": self.key.trial,
            "n_sent": self.sent.n_requests,
            "concurrency": self.sent.concurrency,
            "first": self.first,
        }


def step_share(plan: _PlanLike, spec: ShardSpec, key: StepKey) -> StepShare:
    """``spec``'s share of the plan's step ``key`` (a concurrent or rate step)."""
    if key.mode not in ("concurrent", "rate"):
        raise ShardError(f"{key.mode} steps cannot be sharded")
    first, size = split_evenly(key.n_requests, spec.count)[spec.index]
    in_flight = split_evenly(key.concurrency, spec.count)[spec.index][1]
    if size < 1 or in_flight < 1:
        raise ShardError(
            f"shard {spec.label} has nothing to send in step {key.mode} N={key.n_requests} "
            f"(concurrency {key.concurrency})"
        )
    sent = replace(key, n_requests=size, concurrency=min(in_flight, size))
    offsets = shard_offsets(plan, spec, key.n_requests, key.trial) if key.mode == "rate" else None
    return StepShare(key=key, sent=sent, first=first, offsets=offsets)
