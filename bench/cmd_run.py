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
import resource
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.capacity_run import with_capacity
from bench.cmd_capacity import capacity_phase, plan_capacity
from bench.config import BenchConfig
from bench.console import Console, open_loop_text, saturation_warning, step_label
from ground.cpus import pin_current_process, plan_cpus
from bench.hostload import noise_warnings, run_start_load
from bench.meta import new_meta
from bench.redaction import redact_tree, redactor_for
from bench.results import ResultsError, RunWriter, load_run, validate_run_id
from bench.runner import (
    RunEvents,
    TargetOutcome,
    default_run_id,
    finish_meta,
    model_facts,
    run_coroutine,
    sweep_targets,
)
from ground.runmeta import RunStatus

if TYPE_CHECKING:
    from loadgen.calibration import CalibrationResult

__all__ = [
    "CALIBRATION_MAX_AGE_S",
    "choose_run_engine",
    "connection_limit_warning",
    "print_table3",
    "run",
    "sweep_overrides",
]

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
    """The study's layout per mode: rows N, columns targets, cells total seconds.

    A cell of a step with failed requests carries ``✗failed/sent``; a step where every
    request failed shows ``failed: n/n class`` instead of a total; a saturated open-loop step
    carries ``⚠ saturated``. The marks used are explained, and the flagged steps named,
    below the tables.
    """
    from bench.cmd_capacity import print_capacity
    from bench.report.flags import flag_legend, flag_sentences
    from bench.report.tables import modes_in, table3_rows

    run, capacity_shown = print_capacity(load_run(run_dir, with_requests=False), console)  # its own table
    if run.summary.empty:
        if not capacity_shown:
            console.warn("no step was measured: no table to print")
        return
    ceiling = run.meta.details.get("client_ceiling")
    modes = modes_in(run.summary)
    cells: list[str] = []
    for mode in modes:
        columns, rows = table3_rows(run.summary, mode, run.targets, ceiling)
        cells += [cell for row in rows for cell in row[1:]]
        console.table(f"Total time (s) to answer N requests, mode {mode} (run {run.run_id})", columns,
                      [[_printable(cell, console) for cell in row] for row in rows])
    if ceiling and any("*" in cell for cell in cells):
        console.info("* throughput >= 50 % of the client's calibrated ceiling: the client may be the limit there")
    legend = flag_legend(cells)
    if legend:
        for line in legend:
            console.print(_printable(line, console))
        console.print("flagged steps:")
        for sentence in flag_sentences(run.summary, run.targets, modes):
            console.print(_printable("  " + sentence.replace("`", ""), console))


def _printable(text: str, console: Console) -> str:
    """The flag marks, spelt in ASCII when the terminal's encoding cannot show them."""
    encoding = getattr(console.out, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
        return text
    except (UnicodeEncodeError, LookupError):
        return text.replace("✗", "x").replace("⚠", "!")


def _names(config: BenchConfig, targets: list[str]) -> list[str]:
    if "all" in targets:
        return list(config.targets)
    return list(dict.fromkeys(targets))


def sweep_overrides(config: BenchConfig, *, n_requests: list[int] | None = None, modes: list[str] | None = None,
                    trials: int | None = None, rate_rps: float | None = None, duration_s: float | None = None,
                    concurrency: int | None = None) -> dict[str, Any]:
    """The ``bench run`` flags as :meth:`SweepPlan.from_config` overrides of ``[sweep]``.

    One path: bench.toml's values, each replaced by its flag when given (None = not given).
    ``--rate``/``--duration`` mean rate mode: without ``--modes`` they select it alone; with
    a ``--modes`` that lacks it they are a mistake. A ``--requests`` that no step would use
    (rate mode only, counts from the duration) is one too. Raises ValueError naming the flag.
    """
    rate_flags = [flag for flag, value in (("--rate", rate_rps), ("--duration", duration_s)) if value is not None]
    if rate_flags and modes is None:
        modes = ["rate"]
    elif rate_flags and modes is not None and "rate" not in modes:
        raise ValueError(f"{' and '.join(rate_flags)} set the load of rate mode, but --modes "
                         f"{','.join(modes)} does not include rate")
    effective_modes = modes if modes is not None else list(config.sweep.modes)
    effective_duration = duration_s if duration_s is not None else config.sweep.duration_s
    if n_requests is not None and effective_duration > 0 and set(effective_modes) == {"rate"}:
        source = "--duration" if duration_s is not None else "[sweep] duration_s"
        raise ValueError(f"--requests has no effect: with {source} each rate step sends round(rate x duration) "
                         "requests, and no closed-loop mode is selected")
    return {"n_requests": n_requests, "modes": modes, "trials": trials, "rate_rps": rate_rps,
            "duration_s": duration_s, "concurrency": concurrency}


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
    return (f"a step may open up to {widest} connections, but this process may open only {open_files} files "
            f"(ulimit -n): requests beyond that will fail; cap connections with --concurrency (or [sweep] "
            f"concurrency) below {max(1, open_files - spare)}, or raise the limit")


def run(config: BenchConfig, *, targets: list[str], n_requests: list[int] | None, modes: list[str] | None,
        trials: int | None, engine: str | None, run_id: str | None, write_report: bool, console: Console,
        rate_rps: float | None = None, duration_s: float | None = None, concurrency: int | None = None,
        slo: str | None = None) -> int:
    """Run the sweep against the named targets (or ``all``) and write results/<run-id>/."""
    from loadgen.engines import ENGINE_NAMES, engine_class
    from loadgen.sweep import SweepPlan, run_sweep
    from targets.base import TargetContext
    from targets.registry import build_targets

    started = time.perf_counter()
    load_at_start = run_start_load()  # before training/calibration: the host's own load
    try:
        modes, capacity = plan_capacity(config, modes, slo)  # `--modes capacity` (bench/cmd_capacity.py)
        overrides = sweep_overrides(config, n_requests=n_requests, modes=modes, trials=trials, rate_rps=rate_rps,
                                    duration_s=duration_s, concurrency=concurrency)
        try:
            plan = None if modes == [] else SweepPlan.from_config(config.sweep, config.loadgen, **overrides)
        except ValueError as exc:
            raise ValueError(f"sweep settings ([sweep] in bench.toml, with the run flags over them): {exc}") from None
        run_id = validate_run_id(run_id or default_run_id())
        cpu_plan = plan_cpus(config.loadgen.cpus)
    except (ValueError, ResultsError) as exc:
        console.error(str(exc))
        return 2
    engine_name = engine or config.loadgen.engine
    if engine_name not in ("auto", *ENGINE_NAMES):
        console.error(f"unknown engine {engine_name!r}; engines: auto, {', '.join(ENGINE_NAMES)}")
        return 2
    limit_warning = connection_limit_warning(plan) if plan else None
    if limit_warning:
        console.warn(limit_warning)
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
    redactor = redactor_for(config, console)  # every configured secret, out of all that is written
    writer = RunWriter(run_dir, run_id, _summary_columns(), redactor=redactor)
    log_dir.mkdir(parents=True, exist_ok=True)
    meta = new_meta(run_id=run_id, root=config.root, config_sha256=config.sha256,
                    config_path=str(config.root / "bench.toml"), sweep=plan.describe() if plan else {}, targets=names,
                    load_at_start=load_at_start)
    ceiling = calibration.ceiling(engine_name) if calibration is not None else None
    meta.details.update(
        model=model_facts(artifacts),
        test_split={"images": int(len(split.test_x)), "dataset": config.model.dataset},
        engine={"name": engine_name, "version": engine_cls.version(), "chosen_by": chosen_by, "loop": _loop_name()},
        calibration=_calibration_json(calibration, config.results_dir / "calibration.json"),
        client_ceiling=ceiling.to_json() if ceiling else None,
        cpu_plan=cpu_plan.describe(),
    )
    writer.write_meta(meta)
    pin_current_process(cpu_plan.client)  # after host facts were taken, so they show every CPU
    console.info(f"run {run_id}: {len(names)} target(s) {', '.join(names)}; engine {engine_name} "
                 f"({chosen_by}); CPUs client {list(cpu_plan.client) or 'any'}, stand-ins "
                 f"{list(cpu_plan.standins) or 'any'}; results in {run_dir}")

    outcomes = [TargetOutcome(t.name) for t in built]
    status, error = RunStatus.FAILED, "the run stopped on an unexpected error (its traceback is on the console)"
    try:
        with console.progress("sweep") as bar:
            events = RunEvents(
                on_target_start=lambda name: console.info(f"[{name}] starting ..."),
                on_target_ready=lambda name, desc: console.info(f"[{name}] ready at {desc.get('base_url', '?')}"),
                on_progress=lambda key, done, total: bar.update(done, total, step_label(key)),
                on_step=lambda row: _show_step(row, console),
                on_target_done=lambda o: (console.error if o.problem else console.info)(
                    f"[{o.name}] {o.status}: {o.message or f'{o.steps} steps, {o.requests} requests'}"),
            )
            phase = capacity_phase(capacity, config, writer, meta, outcomes, console, bar) if capacity else None
            run_coroutine(sweep_targets(built, outcomes, run_sweep=with_capacity(run_sweep, phase),
                                        engine_factory=engine_cls,
                                        plan=plan, images=split.test_x, labels=split.test_y,
                                        writer=writer, meta=meta, events=events))
        status, error = RunStatus.COMPLETE, None
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, or SIGTERM (cancels the main task)
        status, error = RunStatus.INTERRUPTED, "interrupted (Ctrl-C or SIGTERM)"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        writer.write_meta(finish_meta(meta, outcomes, status, error))
        writer.close()
        redact_tree(log_dir, redactor)  # stand-ins wrote their logs themselves; all are stopped now

    console.info(f"wall time {time.perf_counter() - started:.1f} s; {writer.rows_written} summary rows, "
                 f"{writer.requests_written} requests in {run_dir}")
    if writer.rows_written:
        print_table3(run_dir, console)
    if write_report and writer.rows_written:
        from bench.cmd_report import write_report as build

        out = build(config, run_dir, study_overlay=True, console=console)
        console.print(f"report: {out / 'report.html'}")
    for warning in noise_warnings(meta):
        console.warn(warning)
    if status is RunStatus.INTERRUPTED:
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


def _calibration_json(calibration: CalibrationResult | None, path: Path) -> dict[str, Any] | None:
    """meta.json's ``calibration``: the summary of the calibration the run used (None without one)."""
    if calibration is None:
        return None
    from loadgen.calibration import calibration_summary

    return calibration_summary(calibration, path)


def _show_step(row: dict[str, Any], console: Console) -> None:
    """The step's line; a saturated rate step also gets a warning (shown even with --quiet)."""
    console.info(_step_line(row))
    warning = saturation_warning(row)
    if warning:
        console.warn(warning)


def _step_line(row: dict[str, Any]) -> str:
    p50 = row.get("lat_p50_s")
    p50_text = f"{p50 * 1000:.2f} ms" if isinstance(p50, float) and p50 == p50 else "-"
    errors = f", errors {row['errors']} ({row['errors_by_class']})" if row.get("errors") else ""
    return (f"  {row['target']} {row['mode']} N={row['n_requests']} trial {row['trial']}: "
            f"total {row['total_s']:.4f} s, p50 {p50_text}, {row['throughput_rps']:.1f} req/s, "
            f"accuracy {row['accuracy']:.3f}{errors}{open_loop_text(row)}")
