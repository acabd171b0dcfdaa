"""The sweep: request counts x modes x trials against one target, one StepResult at a time.

Why an async generator: ``bench run`` writes each step's rows as soon as it is measured
(a long sweep interrupted at step 37 keeps 36 steps), and decides itself what to do when
a target dies -- here a dying target only produces refused/reset records, never an
exception that loses the sweep.

Choices, so that numbers mean one thing:

- **Order**: ``for trial: for mode: for n`` -- trials are spread over the run, so slow
  drift (a warming cache, a noisy neighbour) hits every request count alike.
- **Connections**: a fresh engine (connection pool) per step, made with that step's
  options (connection cap = its concurrency) and opened/closed by ``async with``, so a
  step that fails or is cancelled still closes its connections; steps are independent
  of what ran before them and of their order.  Within the step, connections are kept
  alive and reused.  ``engine.prepare`` builds the step's requests before any timing.
- **Warm-up**: ``warmup`` requests before every step, over that step's pool (so up to
  ``min(warmup, C)`` connections are already open when measuring starts), sent as a
  closed loop of ``min(warmup, C)`` and excluded from the records.
- **Images**: each trial draws a seeded permutation of the test split (RNG
  ``[seed, 0, trial]``); a step of N requests sends its first N images (cyclically if
  N exceeds the split), the warm-up takes images from the other end.  Every mode of a
  trial sees the same images for the same N, so modes compare like for like.
- **Schedule** (``rate`` mode): its own RNG ``[seed, 1, trial, N]``, separate from the
  image order (MLPerf LoadGen's separate seeds).
- **Rate steps by duration**: with ``duration_s > 0`` every ``rate`` step sends
  ``round(rate_rps * duration_s)`` requests (vegeta's ``-rate`` and ``-duration``) instead
  of the ``n_requests`` counts, which then apply to the closed-loop modes only.
- **Bounds**: no step sends more than :data:`MAX_STEP_REQUESTS` requests (records are
  kept in memory and every one is written out), and a rate step's schedule must fit in
  ``max_duration_s`` -- otherwise its tail would be cut off by design, not by the target.
- **Blueprints**: ``target.encode`` runs once per image for the whole sweep; the same
  :class:`~loadgen.request.Request` objects are re-sent.
- **Shards** (``bench run --shard I/N``): the same loop sends only the shard's share of
  each step and starts it at a wall-clock instant shared by all shards
  (:mod:`loadgen.shard` says what a share is, :mod:`loadgen.barrier` when it starts).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loadgen.barrier import ShardRun
from loadgen.engine import Engine, EngineOptions
from loadgen.modes import MODES, ProgressCallback, run_step
from loadgen.pacing import ARRIVALS, schedule
from loadgen.records import StepKey, StepResult
from loadgen.request import Request, SweepSubject

__all__ = ["MAX_STEP_REQUESTS", "EngineFactory", "SweepPlan", "requests_for", "run_sweep"]

# The most requests one step may send: 100 000 records (~10 MB in memory, ~2 MB gzipped
# in requests.csv.gz) is more than any sweep needs; a typo such as --rate 100000
# --duration 60 (six million requests) must fail at once, not after filling the disk.
MAX_STEP_REQUESTS = 100_000


def requests_for(rate_rps: float, duration_s: float) -> int:
    """Requests of a rate step of ``duration_s`` seconds at ``rate_rps``: R x S rounded half up."""
    return int(math.floor(rate_rps * duration_s + 0.5))

EngineFactory = Callable[[EngineOptions], Engine]  # an Engine subclass, or any function of the options


@dataclass(frozen=True)
class SweepPlan:
    """Everything that decides what a sweep sends; frozen, so a run can record it whole."""

    n_requests: tuple[int, ...]
    modes: tuple[str, ...] = ("sequential", "concurrent")
    trials: int = 1
    warmup: int = 5
    concurrency: int = 0  # 0: C = N in concurrent mode; for rate mode, the connection cap (0: N)
    rate_rps: float = 50.0
    duration_s: float = 0.0  # > 0: each rate step sends round(rate_rps * duration_s) requests
    arrival: str = "poisson"
    seed: int = 0
    max_duration_s: float = 600.0
    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    max_rps: float = 0.0
    verify_tls: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_requests", tuple(int(n) for n in self.n_requests))
        object.__setattr__(self, "modes", tuple(self.modes))
        if not self.n_requests or any(n < 1 for n in self.n_requests):
            raise ValueError(f"n_requests must be a non-empty list of counts >= 1, got {list(self.n_requests)}")
        unknown = [m for m in self.modes if m not in MODES]
        if not self.modes or unknown:
            raise ValueError(f"unknown mode(s) {unknown or '(none given)'}; modes: {', '.join(MODES)}")
        if self.arrival not in ARRIVALS:
            raise ValueError(f"arrival must be one of {', '.join(ARRIVALS)}, got {self.arrival!r}")
        if self.trials < 1 or self.warmup < 0 or self.concurrency < 0:
            raise ValueError("trials must be >= 1, warmup and concurrency >= 0")
        for name in ("rate_rps", "max_duration_s", "timeout_s", "connect_timeout_s"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"{name} must be a finite number > 0, got {getattr(self, name)}")
        if not (self.duration_s >= 0 and math.isfinite(self.duration_s)):
            raise ValueError(f"duration_s must be a finite number >= 0 (0: rate steps use n_requests), "
                             f"got {self.duration_s}")
        if self.max_rps < 0:
            raise ValueError(f"max_rps must be >= 0, got {self.max_rps}")
        self._check_step_sizes()

    def _check_step_sizes(self) -> None:
        """Every step within :data:`MAX_STEP_REQUESTS`; every rate schedule within ``max_duration_s``."""
        too_many = [n for n in self.n_requests if n > MAX_STEP_REQUESTS]
        if too_many:
            raise ValueError(f"n_requests {too_many[0]} is more than the {MAX_STEP_REQUESTS} requests one step "
                             "may send")
        if "rate" not in self.modes:
            return
        if self.duration_s > 0:
            n = requests_for(self.rate_rps, self.duration_s)
            if not 1 <= n <= MAX_STEP_REQUESTS:
                raise ValueError(
                    f"a rate step sends round(rate_rps x duration_s) = round({self.rate_rps:g} x "
                    f"{self.duration_s:g}) = {n} requests; it must be 1 to {MAX_STEP_REQUESTS}")
        for n in self.rate_counts():
            span = (n - 1) / self.rate_rps  # the uniform schedule's; a Poisson one is as long on average
            if span > self.max_duration_s:
                raise ValueError(
                    f"a rate step of {n} requests at {self.rate_rps:g} req/s is scheduled over {span:g} s, "
                    f"longer than max_duration_s = {self.max_duration_s:g} s, which would cut it off")

    @classmethod
    def from_config(cls, sweep: Any, loadgen: Any, **overrides: Any) -> SweepPlan:
        """Build from ``[sweep]`` (SweepConfig) and ``[loadgen]`` (LoadgenConfig).

        ``overrides`` replace fields (e.g. ``n_requests=[1, 4]`` from ``--requests``);
        a None value means "no override", so CLI options can be passed through as is.
        """
        values: dict[str, Any] = {
            "n_requests": tuple(sweep.n_requests),
            "modes": tuple(sweep.modes),
            "trials": sweep.trials,
            "warmup": sweep.warmup,
            "concurrency": sweep.concurrency,
            "rate_rps": sweep.rate_rps,
            "duration_s": sweep.duration_s,
            "arrival": sweep.arrival,
            "seed": sweep.seed,
            "max_duration_s": sweep.max_duration_s,
            "timeout_s": loadgen.timeout_s,
            "connect_timeout_s": loadgen.connect_timeout_s,
            "max_rps": loadgen.max_rps,
        }
        known = {f.name for f in dataclasses.fields(cls)}
        for name, value in overrides.items():
            if name not in known:
                raise TypeError(f"unknown SweepPlan field {name!r}")
            if value is not None:
                values[name] = value
        return cls(**values)

    def concurrency_for(self, mode: str, n: int) -> int:
        """In-flight limit of a step: 1 for sequential, else ``concurrency`` or N."""
        if mode == "sequential":
            return 1
        return min(self.concurrency, n) if self.concurrency else n

    def rate_counts(self) -> tuple[int, ...]:
        """Request counts of the ``rate`` steps: ``round(rate_rps * duration_s)``, or ``n_requests``."""
        if self.duration_s > 0:
            return (requests_for(self.rate_rps, self.duration_s),)
        return self.n_requests

    def counts_for(self, mode: str) -> tuple[int, ...]:
        """Request counts of the steps of ``mode``."""
        return self.rate_counts() if mode == "rate" else self.n_requests

    def steps(self, target: str) -> list[StepKey]:
        """Every step of the sweep, in the order it runs."""
        return [
            StepKey(
                target=target,
                mode=mode,
                n_requests=n,
                concurrency=self.concurrency_for(mode, n),
                rate=self.rate_rps if mode == "rate" else 0.0,
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
        return schedule(n, self.rate_rps, self.arrival, seed=[self.seed, 1, trial, n])  # type: ignore[arg-type]

    def describe(self) -> dict[str, Any]:
        """Plain-data form for meta.json."""
        data = dataclasses.asdict(self)
        data["n_requests"] = list(self.n_requests)
        data["modes"] = list(self.modes)
        return data


async def run_sweep(
    target: SweepSubject,
    engine_factory: EngineFactory,
    plan: SweepPlan,
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    on_progress: ProgressCallback | None = None,
    shard: ShardRun | None = None,
) -> AsyncIterator[StepResult]:
    """Run ``plan`` against a started ``target``; yield one StepResult per step.

    ``images`` is the test split (uint8, (N, 28, 28)) and ``labels`` its digits.
    ``engine_factory(options)`` -- an Engine class, or any function of
    :class:`~loadgen.engine.EngineOptions` -- must return a fresh, unopened Engine; it is
    called once per step with that step's options (see the module docstring for why).
    With ``shard``, each step sends only that shard's share and starts at the shard
    schedule's instant, after its warm-up (:mod:`loadgen.shard`, :mod:`loadgen.barrier`).
    """
    if not target.base_url:
        raise ValueError(f"target {target.name!r} has no base_url: start it before sweeping")
    labels_arr = np.asarray(labels)
    if len(images) == 0 or len(images) != len(labels_arr):
        raise ValueError(f"need a non-empty test split with one label per image, got {len(images)} images "
                         f"and {len(labels_arr)} labels")
    blueprints: dict[int, Request] = {}

    def blueprint(index: int) -> Request:
        request = blueprints.get(index)
        if request is None:
            request = blueprints[index] = target.encode(images[index])
        return request

    for index, whole in enumerate(plan.steps(target.name)):
        share = shard.share(plan, whole) if shard is not None else None
        key = share.sent if share is not None else whole  # what this client sends
        first = share.first if share is not None else 0
        order = plan.image_order(len(images), key.trial)
        picks = order[(first + np.arange(key.n_requests)) % len(order)]
        warm = order[::-1][np.arange(plan.warmup) % len(order)]
        requests = [blueprint(int(i)) for i in picks]
        warm_requests = [blueprint(int(i)) for i in warm]
        if share is not None:
            offsets = share.offsets
        else:
            offsets = plan.offsets(key.n_requests, key.trial) if key.mode == "rate" else None
        engine = engine_factory(
            EngineOptions(
                base_url=target.base_url,
                max_connections=key.concurrency,
                timeout_s=plan.timeout_s,
                connect_timeout_s=plan.connect_timeout_s,
                verify_tls=plan.verify_tls and target.verify_tls,
            )
        )
        async with engine:
            engine.prepare(warm_requests + requests)  # encoding work stays outside the timed part
            if warm_requests:
                warm_c = min(len(warm_requests), key.concurrency)
                warm_key = dataclasses.replace(
                    key, mode="concurrent", n_requests=len(warm_requests), concurrency=warm_c
                )
                await run_step(
                    engine, warm_key, warm_requests, labels_arr[warm], target.decode,
                    max_duration_s=plan.max_duration_s, max_rps=plan.max_rps,
                )  # fmt: skip
            if shard is not None:
                await shard.wait(index)
            result = await run_step(
                engine, key, requests, labels_arr[picks], target.decode,
                offsets=offsets, max_duration_s=plan.max_duration_s, max_rps=plan.max_rps,
                on_progress=on_progress,
            )  # fmt: skip
        yield shard.finish(index, share, result) if shard is not None and share is not None else result
