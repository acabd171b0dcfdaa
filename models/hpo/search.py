"""Optuna studies with Katib's experiment semantics: the local stand-in for a Katib Experiment.

Why ask/tell and our own loop instead of ``study.optimize(n_jobs=...)``: Katib's controller
keeps ``parallelTrialCount`` trials running, asks its suggestion service for a new
assignment whenever one finishes, and stops when

* ``maxTrialCount`` trials have been created (failed ones count, as in Katib),
* the objective reaches the ``goal`` (minimise: a completed trial with loss <= goal),
* more than ``maxFailedTrialCount`` trials have failed (Katib's ``>`` comparison), or
* the grid is exhausted (Katib's grid ends its experiment when every point was tried).

Running trials are let finish when a stop condition fires (their results are recorded).
Owning the loop also means an interrupt can stop the trial processes at once (see
:class:`models.hpo.runner.ProcessTrialRunner`), which ``optimize`` cannot.

Samplers (each seeded): ``grid`` -> ``GridSampler`` over Katib-style stepped values; by
default its points are enqueued in declaration order (the study: grid search "searches this
space in a sequential manner"), ``grid_order="shuffled"`` keeps Optuna 5's own seeded order;
``random`` -> ``RandomSampler``; ``bayesian`` -> ``GPSampler`` (Katib's
``bayesianoptimization`` is a Gaussian process via scikit-optimize, whose default
``n_initial_points`` is 10 random points; we keep that default).

Reproducibility: all suggestions are asked in this thread in trial order, so grid and random
studies are identical for a seed whatever the completion order.  A Bayesian study after its
random start depends on which trials had finished when it asked, so with ``parallel > 1`` it
is reproducible only up to that timing (as in Katib).
"""

from __future__ import annotations

import math
import time
import warnings
import zlib
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Literal

import optuna

from models.hpo.space import SearchSpace, TrialParams

__all__ = [
    "ALGORITHMS",
    "KATIB_ALGORITHMS",
    "KatibGridSampler",
    "Objective",
    "StudyResult",
    "TrialFailed",
    "TrialOutcome",
    "TrialRecord",
    "derive_seed",
    "make_sampler",
    "run_study",
]

Algorithm = Literal["grid", "random", "bayesian"]
ALGORITHMS: tuple[str, ...] = ("grid", "random", "bayesian")
#: Our algorithm name -> Katib's ``algorithmName``.
KATIB_ALGORITHMS: dict[str, str] = {"grid": "grid", "random": "random", "bayesian": "bayesianoptimization"}


class TrialFailed(RuntimeError):
    """A trial ran but produced no usable metric (non-zero exit, no ``loss=`` line, NaN...)."""


@dataclass(frozen=True)
class TrialOutcome:
    """What an objective returns: the objective metric and the additional one."""

    loss: float
    accuracy: float = float("nan")


#: A trial: parameters in, outcome out; raising marks the trial FAILED.
Objective = Callable[[TrialParams], TrialOutcome]


@dataclass(frozen=True)
class TrialRecord:
    """One trial as it ran. Times: ``start_s``/``end_s`` from the study's start; ``started_at`` epoch."""

    number: int
    lr: float
    batch_size: int
    state: Literal["COMPLETE", "FAILED"]
    loss: float
    accuracy: float
    error: str
    start_s: float
    end_s: float
    started_at: float


@dataclass(frozen=True)
class StudyResult:
    """One study (= one Katib Experiment run): its trials, wall time and why it stopped."""

    algorithm: str
    max_trials: int
    seed: int
    parallel: int
    started_at: float
    wall_s: float
    stop_reason: Literal["max_trials", "goal", "max_failed", "grid_exhausted"]
    trials: tuple[TrialRecord, ...] = field(default_factory=tuple)

    @property
    def n_failed(self) -> int:
        return sum(t.state == "FAILED" for t in self.trials)

    @property
    def best(self) -> TrialRecord | None:
        done = [t for t in self.trials if t.state == "COMPLETE"]
        return min(done, key=lambda t: (t.loss, t.number)) if done else None


def derive_seed(base: int, algorithm: str, repeat: int) -> int:
    """A stable per-(algorithm, repeat) seed, so random and Bayesian studies differ from each other."""
    return zlib.crc32(f"{base}:{algorithm}:{repeat}".encode()) & 0x7FFFFFFF


class KatibGridSampler(optuna.samplers.GridSampler):
    """GridSampler whose exhaustion is handled by :func:`run_study` (Katib's ``grid_exhausted``).

    Optuna's own ``after_trial`` calls ``study.stop()``, which is allowed only inside
    ``optimize``; with ask/tell the loop stops at the grid size itself.
    """

    def after_trial(self, study, trial, state, values) -> None:
        return None


def make_sampler(algorithm: str, space: SearchSpace, seed: int, *, bayesian_initial_points: int = 10):
    """The seeded Optuna sampler standing in for Katib's algorithm of that name."""
    if algorithm == "grid":
        return KatibGridSampler(space.grid_values(), seed=seed)
    if algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if algorithm == "bayesian":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.GPSampler(
                seed=seed,
                n_startup_trials=bayesian_initial_points,
                independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            )
    raise ValueError(f"unknown algorithm {algorithm!r} (known: {', '.join(ALGORITHMS)})")


@dataclass(frozen=True)
class _Done:
    outcome: TrialOutcome | None
    error: BaseException | None
    start: float
    end: float


def _call(objective: Objective, params: TrialParams) -> _Done:
    """Run one trial in a worker thread; an exception becomes a FAILED trial, not a crash."""
    start = time.perf_counter()
    try:
        outcome = objective(params)
    except Exception as exc:
        return _Done(None, exc, start, time.perf_counter())
    return _Done(outcome, None, start, time.perf_counter())


def run_study(
    algorithm: str,
    objective: Objective,
    *,
    space: SearchSpace,
    max_trials: int,
    parallel: int = 3,
    seed: int = 0,
    goal: float | None = 0.001,
    max_failed: int = 3,
    grid_order: Literal["sequential", "shuffled"] = "sequential",
    bayesian_initial_points: int = 10,
    on_trial: Callable[[TrialRecord], None] | None = None,
) -> StudyResult:
    """Run one study to a Katib stop condition; every trial (failed ones too) is recorded.

    ``objective`` runs in up to ``parallel`` worker threads (for the process runner, each
    thread just waits on its trial process).  If the objective has a ``cancel_all()``
    method it is called when the study is interrupted, so no trial outlives it.
    """
    if max_trials < 1 or parallel < 1 or max_failed < 0:
        raise ValueError("max_trials and parallel must be >= 1, max_failed >= 0")
    sampler = make_sampler(algorithm, space, seed, bayesian_initial_points=bayesian_initial_points)
    records: list[TrialRecord] = []
    running: dict[Future, tuple[optuna.Trial, TrialParams]] = {}
    stop_reason: str | None = None
    failed = 0
    created = 0
    t0 = time.perf_counter()
    started_at = time.time()
    pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix=f"hpo-{algorithm}")
    clean_exit = False
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # library code stays silent (no per-trial INFO lines)
    try:
        study = optuna.create_study(direction="minimize", sampler=sampler)
        limit = max_trials
        if algorithm == "grid":
            points = space.grid_points()
            limit = min(max_trials, len(points))
            if grid_order == "sequential":
                for point in points[:limit]:
                    study.enqueue_trial(point)
        while True:
            while stop_reason is None and created < limit and len(running) < parallel:
                trial = study.ask()
                params = space.suggest(trial)
                running[pool.submit(_call, objective, params)] = (trial, params)
                created += 1
            if not running:
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: running[f][1].number):
                trial, params = running.pop(future)
                record = _finish(study, trial, params, future, t0)
                records.append(record)
                if on_trial is not None:
                    on_trial(record)
                if record.state == "FAILED":
                    failed += 1
                    if failed > max_failed and stop_reason is None:
                        stop_reason = "max_failed"
                elif goal is not None and record.loss <= goal and stop_reason is None:
                    stop_reason = "goal"
        if stop_reason is None:
            stop_reason = "grid_exhausted" if limit < max_trials else "max_trials"
        clean_exit = True
    finally:
        if not clean_exit:
            cancel = getattr(objective, "cancel_all", None)
            if callable(cancel):
                cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        optuna.logging.set_verbosity(verbosity)
    return StudyResult(
        algorithm=algorithm,
        max_trials=max_trials,
        seed=seed,
        parallel=parallel,
        started_at=started_at,
        wall_s=time.perf_counter() - t0,
        stop_reason=stop_reason,
        trials=tuple(sorted(records, key=lambda r: r.number)),
    )


def _finish(study, trial, params: TrialParams, future: Future, t0: float) -> TrialRecord:
    """Tell Optuna how the trial ended and build its record (NaN/inf loss counts as failed)."""
    done: _Done = future.result()
    start, end = done.start, done.end
    if done.outcome is not None:
        loss, accuracy = float(done.outcome.loss), float(done.outcome.accuracy)
        error = "" if math.isfinite(loss) else f"non-finite loss {loss}"
    else:
        exc = done.error
        loss, accuracy = float("nan"), float("nan")
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if error:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        state = "FAILED"
    else:
        study.tell(trial, loss)
        state = "COMPLETE"
    return TrialRecord(
        number=params.number,
        lr=params.lr,
        batch_size=params.batch_size,
        state=state,
        loss=loss,
        accuracy=accuracy,
        error=error,
        start_s=start - t0,
        end_s=end - t0,
        started_at=time.time() - (time.perf_counter() - start),
    )
