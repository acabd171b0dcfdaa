"""One `bench run` from its checks to its exit code: measure, write results/<run-id>/, print Table 3.

The command (:mod:`bench.commands.run`) hands it a :class:`bench.run.request.RunRequest`.
Why this order: everything that can be checked cheaply (sweep overrides, target tables,
run id, engine name) is checked before the model is trained or anything is started, so a
typo fails in a second, not after minutes. Then: model, engine choice (calibration), CPU
split, targets one at a time (see :mod:`bench.run.runner`), final meta.json, the Table-3-style
table, and the report.

Exit codes: 0 all targets measured without a failed request; 1 a target could not start,
died, crashed or had failed requests (named in the message; every measured row is kept);
2 bad input; 130 interrupted (rows kept, meta.json says ``interrupted``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.capacity.run import with_capacity
from bench.capacity.show import capacity_phase, plan_capacity, run_objective
from bench.config import BenchConfig, target_context
from bench.console import Console
from bench.hostnoise import noise_warnings, run_start_load
from bench.redact_secrets import redact_tree, redactor_for
from bench.results import ResultsError, RunWriter, refuse_existing_run, validate_run_id
from bench.results.header import new_meta
from bench.results.writer import ResultsWriteError
from bench.run.display import print_table3, run_events
from bench.run.prepare import PreparedRun, calibration_json, event_loop_name, prepare_run
from bench.run.request import RunRequest
from bench.run.runner import (
    TargetOutcome,
    default_run_id,
    finish_meta,
    model_facts,
    run_coroutine,
    run_log_dir,
    sweep_targets,
)
from bench.run.samples import SampleChooser, read_input_files
from bench.run.trial_design import RESTART
from bench.run_timing import RunTiming, timing_text
from bench.shard_run import ShardOptions, check_shard_run, shard_cpu_plan, shard_meta, shard_run_id, with_endpoint
from ground.cpus import CpuPlan, pin_current_process, plan_cpus
from ground.runmeta import RunMeta, RunStatus
from loadgen.engines import ENGINE_NAMES, SCHEME_ENGINES, engine_for_url
from loadgen.run_limits import check_free_space
from loadgen.stats import SUMMARY_COLUMNS
from loadgen.sweep import SweepPlan
from loadgen.sweep import run_sweep as sweep_steps
from targets.base import TargetContext
from targets.registry import build_targets

__all__ = ["connection_limit_warning", "run"]


def connection_limit_warning(plan: Any, open_files: int | None = None) -> str:
    """A warning when a step may open more connections than this process may open files.

    Rate steps cap connections at ``concurrency``, or at N when it is 0: ``--rate 1000
    --duration 10`` against a slow target may want 10,000 sockets, and past ``ulimit -n``
    the extra requests fail (``other`` errors) instead of measuring anything.
    """
    if open_files is None:
        open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if open_files == resource.RLIM_INFINITY or open_files <= 0:
        return ""
    widest = max((key.concurrency for key in plan.steps("")), default=0)
    spare = 64  # the engine, log files, the event loop, stand-in pipes
    if widest + spare <= open_files:
        return ""
    return (
        f"a step may open up to {widest} connections, but this process may open only {open_files} files "
        f"(ulimit -n): requests beyond that will fail; cap connections with --concurrency (or [sweep] "
        f"concurrency) below {max(1, open_files - spare)}, or raise the limit"
    )


def run(
    config: BenchConfig,
    request: RunRequest,
    console: Console,
    report: Callable[[BenchConfig, Path], Path] | None = None,
) -> int:
    """Run the sweep against the requested targets (or ``all``) and write results/<run-id>/.

    ``request.trial_design``: ``restart`` (each trial of a local stand-in a fresh start,
    targets in a seeded shuffled order per trial) or ``within-run`` (start once, every
    trial); see :mod:`bench.run.trial_design`.  ``request.shard``: run only that shard's
    share of the plan (:mod:`bench.shard_run`); ``request.endpoint``: send to this URL
    instead of starting the (one) target's stand-in; ``request.out``: the folder the run's
    folder goes in (instead of ``[paths] results_dir``).  ``report``: writes the report of
    a run folder and returns its folder (the command passes it unless ``--no-report``).
    """
    started = time.perf_counter()
    load_at_start = run_start_load()  # before training/calibration: the host's own load
    shard = request.shard
    try:
        config = _retarget(config, request)
        checked = _check_run(config, request, console)
        input_files = read_input_files(config, checked.names, request.samples)  # before anything starts
    except (ValueError, ResultsError) as exc:
        console.error(str(exc))
        return 2

    def context(name: str) -> TargetContext:
        return target_context(config, log_dir=checked.log_dir / name, cpus=checked.cpu_plan.standins)

    built = build_targets(config.targets, checked.names, context)  # validates every table before anything starts
    if shard is not None and not built[0].is_remote:
        console.error(
            f"shard {shard.spec.label}: the shards must all send to one {checked.names[0]!r}, but it is a "
            "local stand-in that each shard would start for itself; set its endpoint in bench.toml, give "
            "--endpoint URL, or let --clients N start one stand-in for all its shards"
        )
        return 2
    try:
        prepared = prepare_run(config, checked.engine_name, console)
    except (OSError, RuntimeError, ValueError, ImportError) as exc:
        console.error(f"cannot prepare the run: {type(exc).__name__}: {exc}")
        return 1
    opened = _open_run(config, checked, prepared, load_at_start, console, shard=shard)
    if shard is not None:
        report = None  # a shard is raw material for `bench merge`
    outcomes = [TargetOutcome(t.name) for t in built]
    seed = checked.plan.seed if checked.plan is not None else config.sweep.seed
    # the metadata request goes through the engine the sweep will use (grpc:// targets: grpc)
    chooser = SampleChooser(input_files, request.samples, engine_for_url(prepared.engine_cls), console, seed=seed)
    status = _sweep(
        config,
        checked,
        prepared,
        opened,
        built,
        outcomes,
        console,
        request.trial_design,
        started=started,
        chooser=chooser,
    )
    writer = opened.writer
    console.info(
        f"time taken: {timing_text(opened.meta.details.get('timing'))} (the tables and report follow); "
        f"{writer.rows_written} summary rows, {writer.requests_written} requests in {checked.run_dir}"
    )
    if writer.rows_written:
        _show_results(config, checked.run_dir, report, console)
    for warning in noise_warnings(opened.meta):
        console.warn(warning)
    return _exit_code(checked, outcomes, status, console)


@dataclass(frozen=True)
class _CheckedRun:
    """Everything about a run that is checked before the model is trained or anything started."""

    plan: Any  # the SweepPlan; None when only the capacity search runs
    capacity: Any  # the capacity search's settings; None without `--modes capacity`
    objective: Any  # the run's latency objective (--slo or the search's), drawn on the timeline; or None
    run_id: str
    cpu_plan: CpuPlan
    engine_name: str  # as asked: "auto" or an engine's name
    names: list[str]
    run_dir: Path

    @property
    def log_dir(self) -> Path:
        return run_log_dir(self.run_dir)


@dataclass(frozen=True)
class _OpenRun:
    """The results folder's writer, its metadata and the redactor of everything written."""

    writer: RunWriter
    meta: RunMeta
    redactor: Any
    shard_run: Any = None  # a sharded run's ShardRun (its steps' measured starts), else None


def _check_run(config: BenchConfig, request: RunRequest, console: Console) -> _CheckedRun:
    """Sweep plan, run id, CPU split, engine name, targets, results folder; ValueError/ResultsError naming the problem.

    The connection-limit warning is printed here, in its place among the checks.
    """
    shard, run_id = request.shard, request.run_id
    modes, capacity = plan_capacity(config, request.mode_list(), request.slo)  # `--modes capacity`
    overrides = request.sweep_overrides(config, modes)
    try:
        plan = None if modes == [] else SweepPlan.from_config(config.sweep, config.loadgen, **overrides)
    except ValueError as exc:
        raise ValueError(f"sweep settings ([sweep] in bench.toml, with the run flags over them): {exc}") from None
    if shard is not None:
        check_shard_run(plan, request.target_names(config), shard, capacity=capacity is not None)
        run_id = shard_run_id(run_id, shard)
    run_id = validate_run_id(run_id or default_run_id())
    cpu_plan = shard_cpu_plan(config.loadgen.cpus) if shard is not None else plan_cpus(config.loadgen.cpus)
    engine_name = request.engine_name(config)
    if engine_name not in ("auto", *ENGINE_NAMES):
        raise ValueError(f"unknown engine {engine_name!r}; engines: auto, {', '.join(ENGINE_NAMES)}")
    limit_warning = connection_limit_warning(plan) if plan else None
    if limit_warning:
        console.warn(limit_warning)
    names = request.target_names(config)
    if not names:
        raise ValueError("no targets configured in bench.toml ([targets.NAME] tables)")
    run_dir = config.results_dir / run_id
    refuse_existing_run(run_dir)  # a ResultsError naming the folder
    if plan is not None:  # a typo such as --rate 100000 --duration 2h fails here, before any request
        check_free_space(plan.planned_records(len(names)), config.results_dir)
    objective = run_objective(request.slo, capacity, plan.modes if plan is not None else ())
    return _CheckedRun(plan, capacity, objective, run_id, cpu_plan, engine_name, names, run_dir)


def _retarget(config: BenchConfig, request: RunRequest) -> BenchConfig:
    """``--endpoint URL`` (one target, sent to that URL) and ``--out DIR`` (the run's folder goes under DIR)."""
    if request.endpoint is not None:
        names = request.target_names(config)
        if len(names) != 1:
            raise ValueError("--endpoint points one target at a URL: name exactly one target")
        config = with_endpoint(config, names[0], request.endpoint)
    if request.out is not None:
        config = dataclasses.replace(config, results_dir=Path(request.out).resolve())
    return config


def _open_run(
    config: BenchConfig,
    checked: _CheckedRun,
    prepared: PreparedRun,
    load_at_start: Any,
    console: Console,
    shard: ShardOptions | None = None,
) -> _OpenRun:
    """Create the results folder and its first meta.json, pin this process to the client CPUs."""
    redactor = redactor_for(config, console)  # every configured secret, out of all that is written
    writer = RunWriter(checked.run_dir, checked.run_id, _summary_columns(), redactor=redactor)
    checked.log_dir.mkdir(parents=True, exist_ok=True)
    plan, engine_name, calibration = checked.plan, prepared.engine_name, prepared.calibration
    meta = new_meta(
        run_id=checked.run_id,
        root=config.root,
        config_sha256=config.sha256,
        config_path=str(config.root / "bench.toml"),
        sweep=plan.describe() if plan else {},
        targets=checked.names,
        load_at_start=load_at_start,
    )
    ceiling = calibration.ceiling(engine_name) if calibration is not None else None
    # Targets another engine sends (grpc:// ones): that engine's ceiling, where the calibration has it
    # (bench calibrate --engines ...,grpc); the report judges their steps against it, never the HTTP one.
    other_ceilings = {
        name: c.to_json()
        for name in sorted(set(SCHEME_ENGINES.values()))
        if calibration is not None and (c := calibration.ceiling(name)) is not None
    }
    meta.details.update(
        model=model_facts(prepared.artifacts),
        test_split={"images": int(len(prepared.split.test_x)), "dataset": config.model.dataset},
        engine={
            "name": engine_name,
            "version": prepared.engine_cls.version(),
            "chosen_by": prepared.chosen_by,
            "loop": event_loop_name(),
        },
        calibration=calibration_json(calibration, config.results_dir / "calibration.json"),
        client_ceiling=ceiling.to_json() if ceiling else None,
        client_ceilings=other_ceilings,
        cpu_plan=checked.cpu_plan.describe(),
    )
    if checked.objective is not None:  # the report's timeline draws it (bench/report/timeline_section.py)
        o = checked.objective
        meta.details["slo"] = {"percentile": o.percentile, "bound_s": o.bound_s, "label": o.describe()}
    shard_run = None
    if shard is not None:
        shard_run = shard.new_run()
        meta.details["shard"] = shard_meta(shard, shard_run)  # its steps list fills in as the steps run
    writer.write_meta(meta)
    cpu_plan = checked.cpu_plan
    pin_current_process(cpu_plan.client)  # after host facts were taken, so they show every CPU
    console.info(
        f"run {checked.run_id}: {len(checked.names)} target(s) {', '.join(checked.names)}; engine "
        f"{engine_name} ({prepared.chosen_by}); CPUs client {list(cpu_plan.client) or 'any'}, stand-ins "
        f"{list(cpu_plan.standins) or 'any'}; results in {checked.run_dir}"
    )
    return _OpenRun(writer, meta, redactor, shard_run)


def _sweep(
    config: BenchConfig,
    checked: _CheckedRun,
    prepared: PreparedRun,
    opened: _OpenRun,
    built: list[Any],
    outcomes: list[TargetOutcome],
    console: Console,
    trial_design: str = RESTART,
    started: float | None = None,
    chooser: SampleChooser | None = None,
) -> RunStatus:
    """Sweep every target in turn (visits planned by ``trial_design``); the run's status.
    meta.json is final (with ``timing``, the parts of the time since ``started``) and the
    logs redacted, also on Ctrl-C."""
    if opened.shard_run is not None:
        run_sweep = functools.partial(sweep_steps, shard=opened.shard_run)
    else:
        run_sweep = sweep_steps
    writer, meta = opened.writer, opened.meta
    status, error = RunStatus.FAILED, "the run stopped on an unexpected error (its traceback is on the console)"
    targets_started = time.perf_counter()
    try:
        with console.progress("sweep") as bar:
            events = run_events(console, bar)
            capacity = checked.capacity
            phase = capacity_phase(capacity, config, writer, meta, outcomes, console, bar) if capacity else None
            run_coroutine(
                sweep_targets(
                    built,
                    outcomes,
                    run_sweep=with_capacity(run_sweep, phase),
                    engine_factory=engine_for_url(prepared.engine_cls),  # grpc:// targets: the grpc engine
                    plan=checked.plan,
                    images=prepared.split.test_x,
                    labels=prepared.split.test_y,
                    writer=writer,
                    meta=meta,
                    events=events,
                    trial_design=trial_design,
                    samples=chooser,
                )
            )
        status, error = RunStatus.COMPLETE, None
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, or SIGTERM (cancels the main task)
        status, error = RunStatus.INTERRUPTED, "interrupted (Ctrl-C or SIGTERM)"
    except ResultsWriteError as exc:  # a full disk: the run stops, the target's outcome names it
        status, error = RunStatus.FAILED, str(exc)
        console.error(f"the run stopped: {exc}")
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        now = time.perf_counter()
        meta.details["timing"] = RunTiming(
            total_s=now - (started if started is not None else targets_started),
            model_s=prepared.model_s,
            calibration_s=prepared.calibration_s,
            targets_s=now - targets_started,
        ).to_json()
        if chooser is not None and chooser.facts:
            rule = chooser.options.rule
            meta.details["samples"] = {"targets": chooser.facts, "check": rule.describe()}
        try:
            writer.write_meta(finish_meta(meta, outcomes, status, error))
        except OSError as exc:  # a full disk may refuse meta.json too: say so, keep the rest
            console.error(f"meta.json could not be written to {writer.meta_path}: {exc}")
        writer.close()
        redact_tree(checked.log_dir, opened.redactor)  # stand-ins wrote their logs themselves; all are stopped now
    return status


def _show_results(
    config: BenchConfig, run_dir: Path, report: Callable[[BenchConfig, Path], Path] | None, console: Console
) -> None:
    """The Table-3-style tables, then (if asked) the report."""
    print_table3(run_dir, console)
    if report is not None:
        console.print(f"report: {report(config, run_dir) / 'report.html'}")


def _exit_code(checked: _CheckedRun, outcomes: list[TargetOutcome], status: RunStatus, console: Console) -> int:
    """130 interrupted, 1 a target had a problem (named), else 0."""
    if status is RunStatus.INTERRUPTED:
        console.error(f"interrupted: rows measured so far are kept in {checked.run_dir}; meta.json says interrupted")
        return 130
    problems = [o for o in outcomes if o.problem]
    if problems:
        console.error(
            "problems with target(s): "
            + "; ".join(f"{o.name} ({o.status}: {o.message.splitlines()[0] if o.message else ''})" for o in problems)
            + f" -- details in {checked.run_dir / 'meta.json'} and {checked.log_dir}"
        )
        return 1
    return 0


def _summary_columns() -> tuple[str, ...]:
    return SUMMARY_COLUMNS
