"""The console side of ``bench run --modes capacity``: flag checks, progress lines and the final table.

``bench run`` stays the one place that runs a benchmark; it calls three functions from here
-- :func:`plan_capacity` (check ``--modes``/``--slo`` before anything starts),
:func:`capacity_phase` (the measuring object, wired to the console) and
:func:`print_capacity` (the table at the end). Only this layer prints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from bench.capacity.results import split_capacity
from bench.capacity.run import CapacityEvents, CapacityPhase, capacity_config, split_modes
from bench.capacity.table import capacity_heading, capacity_legend, capacity_table
from bench.config import BenchConfig
from bench.console import Console, ProgressHandle
from bench.results import RunData, RunWriter
from ground.runmeta import RunMeta
from loadgen.objective import CapacityConfig, Objective, parse_objective

__all__ = ["capacity_phase", "plan_capacity", "print_capacity", "run_objective"]


def plan_capacity(
    config: BenchConfig, modes: Sequence[str] | None, slo: str | None
) -> tuple[list[str] | None, CapacityConfig | None]:
    """(the ordinary sweep's modes -- None: as configured, []: none -- and the capacity settings
    or None). Raises ValueError for a malformed objective (without the search, the
    objective is the line drawn on the rate steps' timeline: see :func:`run_objective`)."""
    rest, wanted = split_modes(modes)
    if slo is not None and not wanted:
        parse_objective(slo)  # a typo fails here, before anything runs; run_objective checks the rest
    return rest, (capacity_config(config.capacity, slo) if wanted else None)


def run_objective(slo: str | None, capacity: CapacityConfig | None, planned_modes: Sequence[str]) -> Objective | None:
    """The run's latency objective, recorded in meta.json (``slo``) for the report's timeline:
    the capacity search's, else ``--slo``'s, else None.  ``planned_modes``: the sweep's modes
    (after the flags); ``--slo`` with neither the search nor a rate step is a ValueError."""
    if capacity is not None:
        return capacity.objective
    if slo is None:
        return None
    if "rate" not in planned_modes:
        raise ValueError(
            "--slo sets the objective of the capacity search (add --modes capacity) or the line "
            "drawn on a rate run's timeline (add --modes rate, or --rate/--duration)"
        )
    return parse_objective(slo)


def _fmt_rps(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4g}"


def capacity_phase(
    settings: CapacityConfig,
    config: BenchConfig,
    writer: RunWriter,
    meta: RunMeta,
    outcomes: Sequence[Any],
    console: Console,
    bar: ProgressHandle,
) -> CapacityPhase:
    """The capacity phase of this run, its progress shown on ``console``; records its settings in meta."""

    def level(target: str, record: Any) -> None:
        o = record.outcome
        console.info(
            f"  {target} closed loop C={record.spec.concurrency}: {o.throughput_rps:.1f} req/s, "
            f"p50 {o.p50_s * 1000:.2f} ms, {settings.objective.label} {o.latency_s * 1000:.2f} ms"
            + (f", errors {o.errors} ({o.error_classes})" if o.errors else "")
            + (f" -- stop: {record.stop}" if record.stop else "")
        )

    def probe(target: str, repeat: int, record: Any) -> None:
        o = record.outcome
        evidence = record.evidence.describe(settings.objective.label, settings.bound_ms) if record.evidence else ""
        if record.met:
            verdict = f"met ({evidence})"
        elif record.decision == "undecided":
            verdict = record.violation if record.final else f"undecided ({evidence}): extending"
        else:
            verdict = f"VIOLATED: {record.violation}"
        look = f" look {record.spec.look}" if record.spec.look > 1 else ""
        console.info(
            f"  {target} search {repeat} probe {record.spec.index} ({record.spec.phase}{look}) "
            f"{record.spec.rate:.4g} req/s x {o.n_requests}: p50 {o.p50_s * 1000:.2f} ms, "
            f"{settings.objective.label} {o.latency_s * 1000:.2f} ms, achieved {o.achieved_rps:.4g} req/s, "
            f"{o.duration_s:.1f} s -- {verdict}"
        )

    def search(target: str, repeat: int, result: Any) -> None:
        flag = " -- POSSIBLY CLIENT-BOUND (>= 50 % of the client's calibrated ceiling)" if result.client_bound else ""
        upper = (
            ""
            if math.isnan(result.upper_rps)
            else (f", {result.upper_decision or 'not met'} at {_fmt_rps(result.upper_rps)} req/s")
        )
        console.info(
            f"[{target}] capacity under {result.objective.describe()}: {_fmt_rps(result.capacity_rps)} "
            f"req/s offered{upper}, {result.verdict} at {result.confidence:.0%} confidence "
            f"({len(result.probes)} probes, {result.seconds:.1f} s; {result.stop_reason}){flag}"
        )

    events = CapacityEvents(
        on_progress=lambda key, done, total, live: bar.update(
            done, total, f"{key.target} {key.mode} N={key.n_requests} probe {key.trial}"
        ),
        on_level=level,
        on_probe=probe,
        on_search=search,
    )
    phase = CapacityPhase(
        settings,
        sweep=config.sweep,
        loadgen=config.loadgen,
        writer=writer,
        ceiling=meta.details.get("client_ceiling"),
        outcomes={o.name: o for o in outcomes},
        events=events,
    )
    meta.details["capacity"] = phase.describe()
    return phase


def print_capacity(run: RunData, console: Console) -> tuple[RunData, bool]:
    """Print the capacity table of ``run`` if it has one; return (the run without capacity rows,
    whether a table was printed), so Table 3 is drawn from the ordinary steps only."""
    classic, cap = split_capacity(run)
    if cap is None or cap.capacity.empty:
        return classic, False
    columns, rows = capacity_table(cap, run.targets)
    console.table(f"{capacity_heading(cap)} (run {run.run_id})", columns, rows)
    for line in capacity_legend(cap):
        console.info(line)
    ceiling: Mapping[str, Any] | None = run.meta.details.get("client_ceiling")
    if not ceiling:
        console.warn("no client calibration recorded: a capacity limited by the load generator cannot be flagged")
    return classic, True
