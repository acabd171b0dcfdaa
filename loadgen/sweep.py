"""The sweep: request counts x modes x trials against one target, one StepResult at a time.

Why an async generator: ``bench run`` writes each step's rows as soon as it is measured
(a long sweep interrupted at step 37 keeps 36 steps), and decides itself what to do when
a target dies -- here a dying target only produces refused/reset records, never an
exception that loses the sweep.

Choices, so that numbers mean one thing:

- **Order**: ``for trial: for mode: for n`` -- trials are spread over the run, so slow
  drift (a warming cache, a noisy neighbour) hits every request count alike. With
  ``only_trials`` the sweep measures just those trials (numbers kept): ``bench run``
  restarts a local stand-in per trial and sweeps one trial per start
  (:mod:`bench.run.trial_design`).
- **Connections**: a fresh engine (connection pool) per step, made with that step's
  options (connection cap = its concurrency) and opened/closed by ``async with``, so a
  step that fails or is cancelled still closes its connections; steps are independent
  of what ran before them and of their order.  Within the step, connections are kept
  alive and reused.  ``engine.prepare`` builds the step's requests before any timing.
- **Warm-up**: ``warmup`` requests before every step, over that step's pool (so up to
  ``min(warmup, C)`` connections are already open when measuring starts), sent as a
  closed loop of ``min(warmup, C)`` and excluded from the records.
- **Samples**: what is sent is a :class:`~loadgen.samples.SampleSet` -- the MNIST test
  split through the target's codec (:class:`~loadgen.samples.MnistSamples`, the default:
  ``images`` and ``labels``), or any prepared set passed as ``images`` (an input-data
  file, synthesised inputs, request bodies).  Each trial draws a seeded permutation of the
  samples (RNG ``[seed, 0, trial]``); a step of N requests sends its first N samples
  (cyclically if N exceeds the set), the warm-up takes samples from the other end.  Every
  mode of a trial sees the same samples for the same N, so modes compare like for like;
  each record names its sample (``sample``).
- **Schedule** (``rate`` mode): its own RNG ``[seed, 1, trial, N]``, separate from the
  image order (MLPerf LoadGen's separate seeds).
- **Rate steps by duration**: with ``duration_s > 0`` every ``rate`` step sends
  ``round(rate_rps * duration_s)`` requests (vegeta's ``-rate`` and ``-duration``) instead
  of the ``n_requests`` counts, which then apply to the closed-loop modes only.
- **Bounds**: a step's records must fit on the results folder's disk
  (:mod:`loadgen.run_limits`, checked before any request), and a rate step's schedule must
  fit in ``max_duration_s`` -- otherwise its tail would be cut off by design, not by the
  target.  With ``record_sink`` a step's records go to disk as they complete and the step
  keeps 81 bytes a request for its statistics (:mod:`loadgen.record_columns`).
- **Blueprints**: a sample's request is built once for the whole sweep (``target.encode``
  once per image); the same :class:`~loadgen.request.Request` objects are re-sent, looked
  up when sent (a step holds its sample numbers, not a list of requests).
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
from loadgen.modes import AnswerCheck, Mode, ProgressCallback, run_step
from loadgen.record_columns import RecordSink
from loadgen.records import StepKey, StepResult
from loadgen.request import Request, SweepSubject
from loadgen.samples import MnistSamples, SampleSet
from loadgen.shard import StepShare
from loadgen.sweep_settings import SweepSettings

__all__ = ["EngineFactory", "SweepPlan", "run_sweep"]

EngineFactory = Callable[[EngineOptions], Engine]  # an Engine subclass, or any function of the options


@dataclass(frozen=True)
class SweepPlan(SweepSettings):
    """Everything that decides what a sweep sends; frozen, so a run can record it whole.

    The sweep settings (:class:`~loadgen.sweep_settings.SweepSettings`, bench.toml's
    ``[sweep]`` with the command line's overrides, checked by the same code) plus the
    client's limits from ``[loadgen]``.

    ``only_trials``: the trial numbers this sweep measures (empty = all ``trials``). The
    runner sets it when every trial is a fresh start of the stand-in
    (:mod:`bench.run.trial_design`); a trial keeps its number, so its images and schedule are
    the ones it has in a whole sweep.
    """

    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    max_rps: float = 0.0
    verify_tls: bool = True
    only_trials: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("timeout_s", "connect_timeout_s"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"{name} must be a finite number > 0, got {getattr(self, name)}")
        if self.max_rps < 0:
            raise ValueError(f"max_rps must be >= 0, got {self.max_rps}")
        object.__setattr__(self, "only_trials", tuple(int(t) for t in self.only_trials))
        outside = [t for t in self.only_trials if not 1 <= t <= self.trials]
        if outside:
            raise ValueError(f"only_trials {outside} outside the plan's trials 1..{self.trials}")

    def steps(self, target: str) -> list[StepKey]:
        """The sweep's steps in run order, only those of ``only_trials`` when it is set."""
        every = super().steps(target)
        return [k for k in every if k.trial in self.only_trials] if self.only_trials else every

    @property
    def last_slice(self) -> bool:
        """True when this sweep measures the plan's last trial (or every trial)."""
        return not self.only_trials or self.trials in self.only_trials

    @classmethod
    def from_config(cls, sweep: SweepSettings, loadgen: Any, **overrides: Any) -> SweepPlan:
        """Build from ``[sweep]`` (:class:`SweepSettings`) and ``[loadgen]`` (``LoadgenConfig``).

        ``overrides`` replace fields (e.g. ``n_requests=[1, 4]`` from ``--requests``);
        a None value means "no override", so CLI options can be passed through as is.
        The result is checked whole again: a flag can make valid settings invalid.
        """
        values: dict[str, Any] = {f.name: getattr(sweep, f.name) for f in dataclasses.fields(SweepSettings)}
        values.update(timeout_s=loadgen.timeout_s, connect_timeout_s=loadgen.connect_timeout_s, max_rps=loadgen.max_rps)
        known = {f.name for f in dataclasses.fields(cls)}
        for name, value in overrides.items():
            if name not in known:
                raise TypeError(f"unknown SweepPlan field {name!r}")
            if value is not None:
                values[name] = value
        return cls(**values)


async def run_sweep(
    target: SweepSubject,
    engine_factory: EngineFactory,
    plan: SweepPlan,
    images: np.ndarray | SampleSet,
    labels: Sequence[int] | np.ndarray | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    shard: ShardRun | None = None,
    record_sink: Callable[[StepKey], RecordSink] | None = None,
) -> AsyncIterator[StepResult]:
    """Run ``plan`` against a started ``target``; yield one StepResult per step.

    ``images`` is the test split (uint8, (N, 28, 28)) and ``labels`` its digits, sent
    through the target's codec; or ``images`` is a ready :class:`SampleSet` (``labels``
    unused), checked by its own ``check``.
    ``engine_factory(options)`` -- an Engine class, or any function of
    :class:`~loadgen.engine.EngineOptions` -- must return a fresh, unopened Engine; it is
    called once per step with that step's options (see the module docstring for why).
    With ``shard``, each step sends only that shard's share and starts at the shard
    schedule's instant, after its warm-up (:mod:`loadgen.shard`, :mod:`loadgen.barrier`).
    With ``record_sink``, each step's records are streamed to ``record_sink(key)`` while it
    runs (the result is then ``streamed``, holding compact columns); a shard's records go to
    the sink of the step they are recorded under, numbered within the whole step
    (:meth:`ShardRun.sink`).
    """
    if not target.base_url:
        raise ValueError(f"target {target.name!r} has no base_url: start it before sweeping")
    if isinstance(images, SampleSet):
        samples: SampleSet = images
    else:
        samples = MnistSamples(target, images, labels if labels is not None else ())
    sample_labels = np.array([samples.label(i) for i in range(len(samples))], dtype=np.int64)

    def answers(numbers: np.ndarray) -> dict[str, Any]:
        """run_step's way to check these samples' answers: MNIST's digits through the codec's
        ``decode`` exactly as before (same details), any other set through its ``check``."""
        if isinstance(samples, MnistSamples):
            return {"decode": target.decode}
        check: AnswerCheck = lambda seq, status, body: samples.check(int(numbers[seq]), status, body)  # noqa: E731
        return {"check": check}

    for index, whole in enumerate(plan.steps(target.name)):
        share = shard.share(plan, whole) if shard is not None else None
        key = share.sent if share is not None else whole  # what this client sends
        first = share.first if share is not None else 0
        order = plan.image_order(len(samples), key.trial)
        picks = order[(first + np.arange(key.n_requests)) % len(order)]
        warm = order[::-1][np.arange(plan.warmup) % len(order)]
        requests = _StepRequests(samples, picks)  # built when sent, not a list of millions
        warm_requests = [samples.request(int(i)) for i in warm]
        distinct = [samples.request(int(i)) for i in np.unique(picks)]
        if share is not None:
            offsets = share.offsets
        else:
            offsets = plan.rate_schedule(key.n_requests, key.trial) if key.mode == Mode.RATE else None
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
            engine.prepare(warm_requests + distinct)  # encoding work stays outside the timed part
            if warm_requests:
                warm_c = min(len(warm_requests), key.concurrency)
                warm_key = dataclasses.replace(
                    key, mode=Mode.CONCURRENT, n_requests=len(warm_requests), concurrency=warm_c
                )
                await run_step(
                    engine,
                    warm_key,
                    warm_requests,
                    sample_labels[warm],
                    **answers(warm),
                    samples=warm.tolist(),
                    max_duration_s=plan.max_duration_s,
                    max_rps=plan.max_rps,
                )
            if shard is not None:
                await shard.wait(index)
            result = await run_step(
                engine,
                key,
                requests,
                sample_labels[picks],
                **answers(picks),
                samples=picks,
                offsets=offsets,
                max_duration_s=plan.max_duration_s,
                max_rps=plan.max_rps,
                on_progress=on_progress,
                sink=_sink(record_sink, key, shard, share),
            )
        yield shard.finish(index, share, result) if shard is not None and share is not None else result


def _sink(
    record_sink: Callable[[StepKey], RecordSink] | None, key: StepKey, shard: ShardRun | None, share: StepShare | None
) -> RecordSink | None:
    """The step's record sink: ``record_sink(key)``, a shard's renumbering one, or None (records kept)."""
    if record_sink is None:
        return None
    if shard is not None and share is not None:
        return shard.sink(share, record_sink)
    return record_sink(key)


class _StepRequests(Sequence[Request]):
    """A step's requests by ``seq``: sample ``picks[seq]``'s ready request, looked up when sent."""

    def __init__(self, samples: SampleSet, picks: np.ndarray) -> None:
        self.samples, self.picks = samples, picks

    def __len__(self) -> int:
        return int(self.picks.size)

    def __getitem__(self, seq: int) -> Request:
        return self.samples.request(int(self.picks[seq]))
