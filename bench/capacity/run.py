"""``bench run --modes capacity``: real probes for the pure searches, inside ``bench run``.

Why here and shaped like this: the searches (:mod:`loadgen.capacity`,
:mod:`loadgen.concurrency_search`) are pure; this module gives them probes that really
measure a started target, and it does so through the one sweep code path
(:func:`loadgen.sweep.run_sweep` with a one-step :class:`~loadgen.sweep.SweepPlan`: same
warm-up, fresh connection pool, seeded images and Poisson schedule, CO-correct latency).
It plugs into :func:`bench.run.runner.sweep_targets` as its ``run_sweep``
(:func:`with_capacity`), so the target lifecycle -- one target at a time, start, stop,
Ctrl-C, meta.json -- is the runner's, not a second copy.

Every probe's raw records go to requests.csv.gz and its summary row to summary.csv (mode
``capacity``, its offered rate in ``rate``/``offered_rps``, its number in ``trial``); the
closed-loop levels likewise (mode ``capacity_closed``). The searches' judgements go to
capacity.csv, capacity_probes.csv and capacity_concurrency.csv (:mod:`bench.capacity.results`),
each row as soon as it is known.

Errors during a search are findings (overload makes requests fail), so they do not count as
the target's failed requests; a target that stops answering ends its search and is reported
as failed. Nothing here prints: progress goes through :class:`CapacityEvents`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.capacity.results import (
    CAPACITY_COLUMNS,
    CAPACITY_FILE,
    CLOSED_MODE,
    CONCURRENCY_COLUMNS,
    CONCURRENCY_FILE,
    OPEN_MODE,
    PROBE_COLUMNS,
    PROBES_FILE,
    append_rows,
    capacity_row,
    concurrency_rows,
    probe_row,
)
from bench.results import RunWriter
from loadgen.calibration import ceiling_for
from loadgen.capacity import (
    CapacityResult,
    Objective,
    ProbeOutcome,
    ProbeRecord,
    ProbeSpec,
    SearchSettings,
    find_capacity,
    parse_objective,
)
from loadgen.concurrency_search import ClosedLoopResult, LevelOutcome, LevelRecord, LevelSpec, concurrency_sweep
from loadgen.live import LiveStats
from loadgen.objective import CapacityConfig
from loadgen.records import StepKey, StepResult
from loadgen.stats import percentile, summarize
from loadgen.sweep import SweepPlan

__all__ = [
    "CAPACITY_MODE",
    "CapacityEvents",
    "CapacityPhase",
    "TargetStoppedAnswering",
    "capacity_config",
    "open_loop_ceiling",
    "split_modes",
    "with_capacity",
]

CAPACITY_MODE = "capacity"  # what `--modes` says; the rows use OPEN_MODE / CLOSED_MODE
DEATH_CLASSES = frozenset({"refused", "reset"})  # as bench.run.runner: nothing listens any more
FALLBACK_START_RPS = 10.0  # first rate when concurrency 1 could not be measured


class TargetStoppedAnswering(RuntimeError):
    """Raised after a search's rows are written when the target stopped answering."""


def split_modes(modes: Sequence[str] | None) -> tuple[list[str] | None, bool]:
    """``--modes`` -> (the sweep's own modes or None for "as configured", capacity asked).

    ``["sequential", "capacity"]`` -> ``(["sequential"], True)``; ``["capacity"]`` ->
    ``([], True)``: no ordinary sweep, only the capacity search.
    """
    if modes is None:
        return None, False
    wanted = list(dict.fromkeys(modes))
    return [m for m in wanted if m != CAPACITY_MODE], CAPACITY_MODE in wanted


def capacity_config(config: CapacityConfig, slo: str | None) -> CapacityConfig:
    """``[capacity]`` with ``--slo pNN=BOUND`` applied (ValueError naming the problem)."""
    if slo is None:
        return config
    objective = parse_objective(slo)
    return dataclasses.replace(config, percentile=objective.percentile, bound_ms=objective.bound_s * 1000.0)


def open_loop_ceiling(ceiling: Mapping[str, Any] | None) -> float | None:
    """The client's best calibrated req/s: an open loop keeps many requests in flight, so the
    highest closed-loop figure of the calibration is the ceiling it can approach."""
    if not ceiling:
        return None
    values = [float(v) for v in (ceiling.get("rps_by_concurrency") or {}).values() if v]
    return max(values) if values else None


@dataclass
class CapacityEvents:
    """Callbacks to whoever displays progress (all optional)."""

    on_progress: Callable[[StepKey, int, int, LiveStats], None] = lambda key, done, total, live: None
    on_level: Callable[[str, LevelRecord], None] = lambda target, record: None
    on_probe: Callable[[str, int, ProbeRecord], None] = lambda target, repeat, record: None
    on_search: Callable[[str, int, CapacityResult], None] = lambda target, repeat, result: None


def sent_order_latencies(step: StepResult) -> np.ndarray:
    """Successful requests' latencies in the order the schedule sent them (by intended
    time): the series whose exceedances the verdict counts and whose clustering it weighs."""
    ok = sorted((r.intended_s, r.seq, r.latency_s) for r in step.records if r.ok)
    return np.fromiter((lat for _, _, lat in ok), dtype=np.float64, count=len(ok))


def sent_order_sends(step: StepResult) -> np.ndarray:
    """The send offsets (seconds) of the same requests, in the same order as
    :func:`sent_order_latencies`: with the latencies, each request's in-flight interval, from
    which the verdict finds episodes of overlapping slow requests."""
    ok = sorted((r.intended_s, r.seq, r.sent_s) for r in step.records if r.ok)
    return np.fromiter((sent for _, _, sent in ok), dtype=np.float64, count=len(ok))


def _is_dead(step: StepResult) -> bool:
    classes = {r.error for r in step.records if r.error}
    return bool(step.records) and all(r.error for r in step.records) and classes <= DEATH_CLASSES


class CapacityPhase:
    """The capacity mode of one run: for each target, the closed-loop sweep, then the searches."""

    def __init__(
        self,
        config: CapacityConfig,
        *,
        sweep: Any,
        loadgen: Any,
        writer: RunWriter,
        ceiling: Mapping[str, Any] | None,
        outcomes: Mapping[str, Any] | None = None,
        events: CapacityEvents | None = None,
        run_sweep: Callable[..., Any] | None = None,
    ) -> None:
        from loadgen.sweep import run_sweep as default_run_sweep

        self.config = config
        self.objective: Objective = config.objective
        self.sweep, self.loadgen, self.writer = sweep, loadgen, writer
        self.ceiling = ceiling
        self.outcomes = outcomes or {}
        self.events = events or CapacityEvents()
        self.run_sweep = run_sweep or default_run_sweep
        self.results: dict[str, list[CapacityResult]] = {}
        self.closed: dict[str, ClosedLoopResult] = {}
        self._last_trial: dict[str, int] = {}  # probes are numbered 1, 2, ... per target, over all searches

    def describe(self) -> dict[str, Any]:
        """meta.json's ``capacity`` section: the objective, every bound, and the rules."""
        return {
            "objective": self.objective.describe(),
            **dataclasses.asdict(self.config),
            "arrival": "poisson",
            "client_ceiling_rps": open_loop_ceiling(self.ceiling),
            "politeness_max_rps": self.loadgen.max_rps,
            "files": [CAPACITY_FILE, PROBES_FILE, CONCURRENCY_FILE],
            "rules": "loadgen/capacity.py and loadgen/concurrency_search.py docstrings; docs/capacity.md",
        }

    # -- measuring one step through the sweep code path ----------------------------------
    def _plan(self, mode: str, n: int, *, concurrency: int, rate: float, seed: int, max_duration_s: float) -> SweepPlan:
        return SweepPlan(
            n_requests=(n,),
            modes=(mode,),
            trials=1,
            warmup=self.sweep.warmup,
            concurrency=concurrency,
            rate_rps=rate,
            arrival="poisson",
            seed=seed,
            max_duration_s=min(max_duration_s, self.sweep.max_duration_s),
            timeout_s=self.loadgen.timeout_s,
            connect_timeout_s=self.loadgen.connect_timeout_s,
            max_rps=self.loadgen.max_rps,
        )

    async def _measure(
        self,
        target: Any,
        engine_factory: Any,
        plan: SweepPlan,
        images: np.ndarray,
        labels: np.ndarray,
        mode: str,
        trial: int,
    ) -> tuple[StepResult, dict[str, Any], float]:
        """One step via run_sweep; write it relabelled (``mode``, ``trial``); (step, row, wall seconds)."""

        def progress(key: StepKey, done: int, total: int, live: LiveStats) -> None:
            self.events.on_progress(dataclasses.replace(key, mode=mode, trial=trial), done, total, live)

        t0 = time.perf_counter()
        sweep = self.run_sweep(target, engine_factory, plan, images, labels, on_progress=progress)
        step: StepResult | None = None
        try:
            async for step in sweep:  # noqa: B007 - drained for its one step, read after the loop
                pass
        finally:
            await sweep.aclose()
        wall = time.perf_counter() - t0
        assert step is not None, "a one-step plan yields one step"
        row = summarize(step)  # the step's own mode ("rate" or "concurrent"), so open-loop stats are computed
        row.update(mode=mode, trial=trial)
        key = dataclasses.replace(step.key, mode=mode, trial=trial)
        self.writer.append_summary(row)
        self.writer.append_requests(key, step.records)
        outcome = self.outcomes.get(target.name)
        if outcome is not None:
            outcome.steps += 1
            outcome.requests += len(step.records)
        return step, row, wall

    def _pctl(self, step: StepResult) -> float:
        ok = [r.latency_s for r in step.records if r.ok]
        return float(percentile(ok, self.objective.percentile)) if ok else math.nan

    # -- the two searches ---------------------------------------------------------------
    async def _closed_loop(
        self, target: Any, engine_factory: Any, images: np.ndarray, labels: np.ndarray
    ) -> ClosedLoopResult:
        async def measure(spec: LevelSpec) -> LevelOutcome:
            plan = self._plan(
                "concurrent",
                spec.n_requests,
                concurrency=spec.concurrency,
                rate=self.sweep.rate_rps,
                seed=self.sweep.seed,
                max_duration_s=max(4 * self.config.closed_loop_seconds, 10.0),
            )
            step, row, wall = await self._measure(target, engine_factory, plan, images, labels, CLOSED_MODE, 1)
            return LevelOutcome(
                concurrency=spec.concurrency,
                n_requests=len(step.records),
                throughput_rps=float(row["throughput_rps"]),
                latency_s=self._pctl(step),
                p50_s=float(row["lat_p50_s"]),
                errors=int(row["errors"]),
                duration_s=wall,
                fatal=_is_dead(step),
                error_classes=str(row["errors_by_class"] or ""),
            )

        result = await concurrency_sweep(
            measure,
            self.objective,
            max_concurrency=self.config.max_concurrency,
            min_requests=self.config.min_requests,
            min_seconds=self.config.min_seconds,
            max_seconds=self.config.closed_loop_seconds,
        )
        for record in result.levels:
            self.events.on_level(target.name, record)
        return result

    def _settings(self, start_rps: float, repeat: int) -> SearchSettings:
        c = self.config
        caps = []
        if self.loadgen.max_rps > 0:
            caps.append((float(self.loadgen.max_rps), "the [loadgen] max_rps politeness cap"))
        ceiling = open_loop_ceiling(self.ceiling)
        if ceiling:
            caps.append((ceiling, "the client's calibrated ceiling"))
        max_rate, reason = min(caps) if caps else (math.inf, "")
        seed = int(np.random.SeedSequence([self.sweep.seed, 2, repeat]).generate_state(1)[0])
        return SearchSettings(
            start_rps=min(start_rps, max_rate),
            growth=c.growth,
            precision=c.precision,
            min_requests=c.min_requests,
            min_seconds=c.min_seconds,
            max_probes=c.max_probes,
            max_requests=c.max_requests,
            max_seconds=c.max_seconds,
            max_rate_rps=max_rate,
            max_rate_reason=reason,
            client_ceiling_rps=ceiling,
            seed=seed,
            confidence=c.confidence,
            max_looks=c.max_looks,
            min_met_seconds=c.min_met_seconds,
        )

    async def _search(
        self,
        target: Any,
        engine_factory: Any,
        images: np.ndarray,
        labels: np.ndarray,
        settings: SearchSettings,
        repeat: int,
    ) -> CapacityResult:
        bound = self.objective.bound_s
        trials: dict[int, int] = {}  # probe index -> its trial in summary.csv

        async def probe(spec: ProbeSpec) -> ProbeOutcome:
            trial = self._last_trial[target.name] = self._last_trial.get(target.name, 0) + 1
            trials[spec.index] = trial
            plan = self._plan(
                "rate",
                spec.n_requests,
                concurrency=self.sweep.concurrency,
                rate=spec.rate,
                seed=spec.seed,
                max_duration_s=2 * spec.planned_s + 2 * bound + 1.0,
            )
            step, row, wall = await self._measure(target, engine_factory, plan, images, labels, OPEN_MODE, trial)
            return ProbeOutcome(
                rate=spec.rate,
                n_requests=len(step.records),
                latency_s=self._pctl(step),
                p50_s=float(row["lat_p50_s"]),
                p90_s=float(row["lat_p90_s"]),
                p99_s=float(row["lat_p99_s"]),
                achieved_rps=float(row["achieved_rps"]),
                errors=int(row["errors"]),
                saturated=bool(row["saturated"]),
                duration_s=wall,
                fatal=_is_dead(step),
                error_classes=str(row["errors_by_class"] or ""),
                latencies_s=sent_order_latencies(step),
                sent_s=sent_order_sends(step),
            )

        def judged(record: ProbeRecord) -> None:
            append_rows(
                self.writer.directory / PROBES_FILE,
                PROBE_COLUMNS,
                [probe_row(self.writer.run_id, target.name, repeat, record, trials[record.spec.index])],
            )
            self.events.on_probe(target.name, repeat, record)

        return await find_capacity(probe, self.objective, settings, judged)

    # -- one target -----------------------------------------------------------------------
    async def run(self, target: Any, engine_factory: Any, images: np.ndarray, labels: np.ndarray) -> None:
        """Closed-loop sweep, then ``repeats`` searches; rows written as each part ends."""
        run_id = self.writer.run_id
        directory = self.writer.directory
        closed = await self._closed_loop(target, engine_factory, images, np.asarray(labels))
        self.closed[target.name] = closed
        ceiling_at = {r.spec.concurrency: ceiling_for(r.spec.concurrency, self.ceiling) for r in closed.levels}
        append_rows(
            directory / CONCURRENCY_FILE, CONCURRENCY_COLUMNS, concurrency_rows(run_id, target.name, closed, ceiling_at)
        )
        if any(r.outcome.fatal for r in closed.levels):
            raise TargetStoppedAnswering(
                f"{target.name} stopped answering in the closed-loop sweep: {closed.stop_reason}"
            )
        first = closed.levels[0].outcome if closed.levels else None
        auto = first.throughput_rps / 2 if first and first.throughput_rps > 0 else FALLBACK_START_RPS
        start = self.config.start_rps or auto
        for repeat in range(1, self.config.repeats + 1):
            settings = self._settings(start, repeat)
            result = await self._search(target, engine_factory, images, np.asarray(labels), settings, repeat)
            self.results.setdefault(target.name, []).append(result)
            append_rows(
                directory / CAPACITY_FILE,
                CAPACITY_COLUMNS,
                [
                    capacity_row(
                        run_id,
                        target.name,
                        repeat,
                        result,
                        closed,
                        ceiling_rps=settings.client_ceiling_rps,
                        seed=settings.seed,
                    )
                ],
            )
            self.events.on_search(target.name, repeat, result)
            if result.fatal:
                raise TargetStoppedAnswering(
                    f"{target.name} stopped answering during capacity search {repeat}: {result.stop_reason}"
                )


def with_capacity(
    run_sweep: Callable[..., Any], phase: CapacityPhase | None
) -> Callable[..., AsyncIterator[StepResult]]:
    """A ``run_sweep`` for :func:`bench.run.runner.sweep_targets`: the ordinary sweep's steps
    (when ``plan`` is not None), then, while the target is still up, the capacity phase --
    once per target: when the runner restarts the target per trial, on its last trial's
    visit (``plan.last_slice``)."""

    async def sweep(
        target: Any,
        engine_factory: Any,
        plan: SweepPlan | None,
        images: np.ndarray,
        labels: Any,
        *,
        on_progress: Any = None,
        record_sink: Any = None,
    ) -> AsyncIterator[StepResult]:
        if plan is not None:
            steps = run_sweep(
                target, engine_factory, plan, images, labels, on_progress=on_progress, record_sink=record_sink
            )
            async for step in steps:
                yield step
        if phase is not None and (plan is None or plan.last_slice):
            await phase.run(target, engine_factory, images, labels)

    return sweep
