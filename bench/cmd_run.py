"""`python -m bench run all | TARGET...`: measure, write results/<run-id>/, print Table 3.

Why this order: everything that can be checked cheaply (sweep overrides, target tables,
run id, engine name) is checked before the model is trained or anything is started, so a
typo fails in a second, not after minutes. Then: model, engine choice (calibration), CPU
split, targets one at a time (see :mod:`bench.runner`), final meta.json, the Table-3-style
table, and the report.

Exit codes: 0 all targets measured without a failed request; 1 a target could not start,
died, crashed or had failed requests (named in the message; every measured row is kept);
2 bad input; 130 interrupted (rows kept, meta.json says ``interrupted``).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench.capacity_run import with_capacity
from bench.cmd_capacity import capacity_phase, plan_capacity
from bench.config import BenchConfig
from bench.console import Console
from bench.cpus import pin_current_process, plan_cpus
from bench.meta import new_meta
from bench.results import ResultsError, RunWriter, load_run, validate_run_id
from bench.runner import (
    RunEvents,
    TargetOutcome,
    ceiling_from_calibration,
    default_run_id,
    finish_meta,
    model_facts,
    run_coroutine,
    sweep_targets,
)

__all__ = ["CALIBRATION_MAX_AGE_S", "choose_run_engine", "print_table3", "run"]

CALIBRATION_MAX_AGE_S = 24 * 3600.0


def choose_run_engine(config: BenchConfig, requested: str, console: Console) -> tuple[str, str, Any]:
    """(engine name, how it was chosen, calibration or None).

    ``auto`` takes the engine the calibration measured cheapest here; a named engine is used
    as is, but the calibration is still loaded (or quickly measured) for the client ceiling.
    """
    from loadgen.engines import available_engines

    calibration = None
    try:
        from loadgen.calibration import choose_engine, load_or_run_calibration
    except ImportError as exc:
        console.warn(f"calibration is not available ({exc}): the client ceiling will not be recorded")
        choose_engine = load_or_run_calibration = None  # type: ignore[assignment]
    if load_or_run_calibration is not None:
        path = config.results_dir / "calibration.json"
        try:
            console.info(f"client calibration: {path} (reused when under {CALIBRATION_MAX_AGE_S / 3600:g} h old "
                         "and from this host; else a quick one is measured now)")
            calibration = load_or_run_calibration(path, max_age_s=CALIBRATION_MAX_AGE_S, quick=True,
                                                  cpus=config.loadgen.cpus, on_progress=console.info)
        except Exception as exc:  # noqa: BLE001 - a failed calibration must not stop the benchmark
            console.warn(f"client calibration failed ({type(exc).__name__}: {exc}); no ceiling recorded")
    if requested != "auto":
        return requested, "configured", calibration
    if calibration is not None and choose_engine is not None:
        try:
            return choose_engine(calibration), "auto: cheapest CPU per request in the calibration", calibration
        except Exception as exc:  # noqa: BLE001
            console.warn(f"could not choose an engine from the calibration: {exc}")
    available = available_engines()
    if not available:
        raise RuntimeError("no load-generator engine can be imported here")
    fallback = "fast" if "fast" in available else available[0]
    console.warn(f"engine 'auto' without a calibration: using {fallback!r}")
    return fallback, "auto: fallback without calibration", calibration


def print_table3(run_dir: Path, console: Console) -> None:
    """The study's layout per mode: rows N, columns targets, cells total seconds."""
    from bench.cmd_capacity import print_capacity
    from bench.report.tables import modes_in, table3_rows

    run, capacity_shown = print_capacity(load_run(run_dir, with_requests=False), console)  # its own table
    if run.summary.empty:
        if not capacity_shown:
            console.warn("no step was measured: no table to print")
        return
    ceiling = run.meta.get("client_ceiling")
    for mode in modes_in(run.summary):
        columns, rows = table3_rows(run.summary, mode, run.targets, ceiling)
        console.table(f"Total time (s) to answer N requests, mode {mode} (run {run.run_id})", columns, rows)
    if ceiling and any(cell.endswith("*") for mode in modes_in(run.summary)
                       for row in table3_rows(run.summary, mode, run.targets, ceiling)[1] for cell in row):
        console.info("* throughput >= 50 % of the client's calibrated ceiling: the client may be the limit there")


def _names(config: BenchConfig, targets: list[str]) -> list[str]:
    if "all" in targets:
        return list(config.targets)
    return list(dict.fromkeys(targets))


def run(config: BenchConfig, *, targets: list[str], n_requests: list[int] | None, modes: list[str] | None,
        trials: int | None, engine: str | None, run_id: str | None, write_report: bool, console: Console,
        slo: str | None = None) -> int:
    """Run the sweep against the named targets (or ``all``) and write results/<run-id>/."""
    from loadgen.engines import ENGINE_NAMES, engine_class
    from loadgen.sweep import SweepPlan, run_sweep
    from targets.base import TargetContext
    from targets.registry import build_targets

    started = time.perf_counter()
    try:
        modes, capacity = plan_capacity(config, modes, slo)  # `--modes capacity` (bench/cmd_capacity.py)
        plan = None if modes == [] else SweepPlan.from_config(config.sweep, config.loadgen, n_requests=n_requests,
                                                              modes=modes, trials=trials)
        run_id = validate_run_id(run_id or default_run_id())
        cpu_plan = plan_cpus(config.loadgen.cpus)
    except (ValueError, ResultsError) as exc:
        console.error(str(exc))
        return 2
    engine_name = engine or config.loadgen.engine
    if engine_name not in ("auto", *ENGINE_NAMES):
        console.error(f"unknown engine {engine_name!r}; engines: auto, {', '.join(ENGINE_NAMES)}")
        return 2
    names = _names(config, targets)
    if not names:
        console.error("no targets configured in bench.toml ([targets.NAME] tables)")
        return 2
    run_dir = config.results_dir / run_id
    if (run_dir / "summary.csv").exists() or (run_dir / "meta.json").exists():
        console.error(f"{run_dir} already holds a run; choose another --run-id")
        return 2
    log_dir = run_dir / "logs"

    def context(name: str) -> TargetContext:
        return TargetContext(artifacts_dir=config.artifacts_dir, log_dir=log_dir / name, cpus=cpu_plan.standins)

    built = build_targets(config, names, context)  # validates every table before anything starts

    from models.artifacts import ensure_model
    from models.data import load_dataset

    try:
        with console.progress("model") as bar:
            artifacts = ensure_model(
                config.model, config.artifacts_dir,
                on_progress=lambda epoch, epochs, loss, acc: bar.update(
                    epoch, epochs, f"training: epoch {epoch}/{epochs}, loss {loss:.3f}, acc {acc:.3f}"),
                on_stage=console.info, root=config.root,
            )
        split = load_dataset(config.model)
        engine_name, chosen_by, calibration = choose_run_engine(config, engine_name, console)
        engine_cls = engine_class(engine_name)
    except (OSError, RuntimeError, ValueError, ImportError) as exc:
        console.error(f"cannot prepare the run: {type(exc).__name__}: {exc}")
        return 1
    writer = RunWriter(run_dir, run_id, _summary_columns())
    log_dir.mkdir(parents=True, exist_ok=True)
    meta = new_meta(run_id=run_id, root=config.root, config_sha256=config.sha256,
                    config_path=str(config.root / "bench.toml"), sweep=plan.describe() if plan else {}, targets=names)
    meta["model"] = model_facts(artifacts)
    meta["test_split"] = {"images": int(len(split.test_x)), "dataset": config.model.dataset}
    meta["engine"] = {"name": engine_name, "version": engine_cls.version(), "chosen_by": chosen_by,
                      "loop": _loop_name()}
    meta["calibration"] = _calibration_json(calibration, config.results_dir / "calibration.json")
    meta["client_ceiling"] = ceiling_from_calibration(calibration, engine_name)
    meta["cpu_plan"] = cpu_plan.describe()
    writer.write_meta(meta)
    pin_current_process(cpu_plan.client)  # after host facts were taken, so they show every CPU
    console.info(f"run {run_id}: {len(names)} target(s) {', '.join(names)}; engine {engine_name} "
                 f"({chosen_by}); CPUs client {list(cpu_plan.client) or 'any'}, stand-ins "
                 f"{list(cpu_plan.standins) or 'any'}; results in {run_dir}")

    outcomes = [TargetOutcome(t.name) for t in built]
    status = "crashed"
    try:
        with console.progress("sweep") as bar:
            events = RunEvents(
                on_target_start=lambda name: console.info(f"[{name}] starting ..."),
                on_target_ready=lambda name, desc: console.info(f"[{name}] ready at {desc.get('base_url', '?')}"),
                on_progress=lambda key, done, total: bar.update(
                    done, total, f"{key.target} {key.mode} N={key.n_requests} trial {key.trial}"),
                on_step=lambda row: console.info(_step_line(row)),
                on_target_done=lambda o: (console.error if o.problem else console.info)(
                    f"[{o.name}] {o.status}: {o.message or f'{o.steps} steps, {o.requests} requests'}"),
            )
            phase = capacity_phase(capacity, config, writer, meta, outcomes, console, bar) if capacity else None
            run_coroutine(sweep_targets(built, outcomes, run_sweep=with_capacity(run_sweep, phase),
                                        engine_factory=engine_cls,
                                        plan=plan, images=split.test_x, labels=split.test_y,
                                        writer=writer, meta=meta, events=events))
        status = "complete"
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, or SIGTERM (cancels the main task)
        status = "interrupted"
    finally:
        writer.write_meta(finish_meta(meta, outcomes, status))
        writer.close()

    console.info(f"wall time {time.perf_counter() - started:.1f} s; {writer.rows_written} summary rows, "
                 f"{writer.requests_written} requests in {run_dir}")
    if writer.rows_written:
        print_table3(run_dir, console)
    if write_report and writer.rows_written:
        from bench.cmd_report import write_report as build

        out = build(config, run_dir, study_overlay=True, console=console)
        console.print(f"report: {out / 'report.html'}")
    if status == "interrupted":
        console.error(f"interrupted: rows measured so far are kept in {run_dir}; meta.json says interrupted")
        return 130
    problems = [o for o in outcomes if o.problem]
    if problems:
        console.error("problems with target(s): " + "; ".join(
            f"{o.name} ({o.status}: {o.message.splitlines()[0] if o.message else ''})" for o in problems)
            + f" -- details in {run_dir / 'meta.json'} and {log_dir}")
        return 1
    return 0


def _summary_columns() -> tuple[str, ...]:
    from loadgen.stats import SUMMARY_COLUMNS

    return SUMMARY_COLUMNS


def _loop_name() -> str:
    try:
        from loadgen.engines.fast_engine import loop_name

        return loop_name()
    except ImportError:
        return "asyncio"


def _calibration_json(calibration: Any, path: Path) -> Any:
    if calibration is None:
        return None
    try:
        from loadgen.calibration import calibration_summary

        return calibration_summary(calibration, path)
    except (ImportError, AttributeError, KeyError, TypeError):
        pass
    if hasattr(calibration, "to_dict"):
        return calibration.to_dict()
    if isinstance(calibration, dict):
        return calibration
    try:
        from dataclasses import asdict

        return asdict(calibration)
    except TypeError:
        return str(calibration)


def _step_line(row: dict[str, Any]) -> str:
    p50 = row.get("lat_p50_s")
    p50_text = f"{p50 * 1000:.2f} ms" if isinstance(p50, float) and p50 == p50 else "-"
    errors = f", errors {row['errors']} ({row['errors_by_class']})" if row.get("errors") else ""
    return (f"  {row['target']} {row['mode']} N={row['n_requests']} trial {row['trial']}: "
            f"total {row['total_s']:.4f} s, p50 {p50_text}, {row['throughput_rps']:.1f} req/s, "
            f"accuracy {row['accuracy']:.3f}{errors}")
