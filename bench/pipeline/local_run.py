"""Run a KFP v2 pipeline locally with kfp.local, timing each stage; compile a pipeline to IR YAML.

What ``bench pipeline run`` (also ``run pipeline``) and ``bench pipeline compile`` do (flags
in :mod:`bench.commands.pipeline`).

How stages are timed (local run): every component wraps its body in
:func:`models.pipeline.timing.stage_timer`, which appends one JSON line (stage, start, end,
seconds, status) to ``results/<run-id>/stage_timings.jsonl`` -- also when the stage fails.
Why not kfp.local's own output: it logs task status but no machine-readable start/end times,
and a failed task yields no outputs.  The whole run is timed around ``kfp.local``; its
``total`` row therefore includes kfp.local's own per-task overhead (interpreter start-up).

Pipelines (:mod:`models.pipeline.registry`; the functions from :mod:`bench.pipeline.definition`):
``servebench``, the study's E2E pipeline (its Table 5), and ``custom``, its custom-model
pipeline (Table 4).  From the stage rows the run
also writes ``pipeline_summary.csv`` (the study's Table 4/5 quantities, docs/pipeline.md)
and, unless told not to, the report (:mod:`models.pipeline.report`).

Remote submission (``bench pipeline run --target NAME``, ``kfp.Client``) lives in
:mod:`bench.pipeline.remote_run`; it writes the same stage file from the run's task details.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TextIO

from bench.redact_secrets import redact_file, redactor_for
from bench.report.write import pipeline_report
from bench.results import ResultsError, fresh_run_dir, write_meta_file
from bench.results.header import run_header
from ground.runmeta import KIND_PIPELINE, RunMeta, RunStatus
from models.pipeline.registry import (
    OUTPUT_NAMES,
    PIPELINES,
    default_parameters,
    settings_for,
)
from models.pipeline.stages import STAGE_COLUMNS, STAGES_FILE, write_stages

if TYPE_CHECKING:
    from bench.config import BenchConfig
    from bench.console import Console

__all__ = ["PIPELINES", "STAGES_FILE", "STAGE_COLUMNS", "compile_pipeline", "run_pipeline"]

TIMINGS_FILE = "stage_timings.jsonl"
KFP_LOG_FILE = "kfp.log"

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # kfp.local colours task names in its messages


def compile_pipeline(output: str | Path, pipeline: str = "servebench") -> Path:
    """Write ``pipeline``'s KFP IR YAML to ``output``; returns the path (ValueError: unknown pipeline)."""
    from bench.pipeline.definition import compile_named  # lazy on purpose: imports kfp

    return compile_named(pipeline, output)


def _write_summary(run_dir: Path, pipeline: str, task: Any) -> dict[str, float]:
    """``pipeline_summary.csv`` from the stage file just written; returns the pipeline's outputs."""
    from models.pipeline.stages import (
        SUMMARY_FILE,
        read_stages,
        summary_rows,
        write_summary,
    )

    outputs = {k: float(v) for k, v in (getattr(task, "outputs", None) or {}).items() if isinstance(v, int | float)}
    extra = {OUTPUT_NAMES[pipeline]: outputs["Output"]} if pipeline in OUTPUT_NAMES and "Output" in outputs else {}
    write_summary(run_dir / SUMMARY_FILE, summary_rows(pipeline, read_stages(run_dir / STAGES_FILE), extra))
    return outputs


class _AnsiStripper(io.TextIOBase):
    """A text stream that writes to ``target`` without kfp.local's colour codes."""

    def __init__(self, target: TextIO) -> None:
        self.target = target

    def write(self, text: str) -> int:
        self.target.write(_ANSI.sub("", text))
        return len(text)

    def flush(self) -> None:
        self.target.flush()


class _StageWatcher:
    """Shows each stage's row on the console as soon as its component appends it.

    Why a thread: kfp.local blocks until the whole pipeline ends; the rows arrive in the
    timings file from the component subprocesses meanwhile.
    """

    def __init__(self, timings: Path, console: Console, poll_s: float = 0.5) -> None:
        self.timings, self.console, self.poll_s = timings, console, poll_s
        self.shown = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="pipeline-stages", daemon=True)

    def _show_new(self) -> None:
        from models.pipeline.timing import read_rows

        try:
            rows = read_rows(self.timings)
        except ValueError:  # a line being written right now: next poll
            return
        for r in rows[self.shown :]:
            self.console.info(f"  {r['stage']:<9} {r['seconds']:8.2f} s  {r['status']}")
        self.shown = max(self.shown, len(rows))

    def _run(self) -> None:
        while not self.stop.wait(self.poll_s):
            self._show_new()

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self._show_new()


def _tail(path: Path, lines: int) -> list[str]:
    """The last non-empty ``lines`` of a text file (a failed task's traceback ends there)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def run_pipeline(
    config: BenchConfig,
    *,
    pipeline: str,
    run_id: str | None,
    console: Console,
    settings: Mapping[str, Any] | None = None,
    write_report: bool = True,
) -> int:
    """Run ``pipeline`` with kfp.local (subprocess runner, this interpreter); 0 ok, 1 stage failed, 2 bad
    input, 130 interrupted.

    ``settings`` overrides pipeline parameters (names per pipeline:
    :func:`models.pipeline.registry.settings_for`; ``fail_stage`` forces that stage to fail);
    defaults come from ``[model]`` in bench.toml and the pipeline definition.  The report
    goes to ``reports/<run-id>/`` unless ``write_report`` is false.
    """
    problem = _request_problem(pipeline, settings)
    if problem:
        console.error(problem)
        return 2
    try:
        run_dir = fresh_run_dir(config.results_dir, run_id, "pipeline")
    except ResultsError as exc:
        console.error(str(exc))
        return 2
    params, meta = _start_run(config, pipeline, run_dir, settings)
    redactor = redactor_for(config, console)  # the tasks inherit the environment: keep its secrets out
    write_meta_file(run_dir, meta, redactor)
    outcome = _execute(pipeline, params, run_dir, console)
    failed = _record(pipeline, run_dir, outcome, meta, redactor, console)
    if write_report:
        pipeline_report(config, run_dir, console)
    return _exit_code(pipeline, run_dir, outcome, failed, console)


def _request_problem(pipeline: str, settings: Mapping[str, Any] | None) -> str:
    """Why ``pipeline`` with ``settings`` cannot run ("" when it can): an unknown pipeline or setting."""
    if pipeline not in PIPELINES:
        return f"unknown pipeline {pipeline!r}; known: {', '.join(PIPELINES)}"
    unknown = sorted(set(settings or {}) - set(settings_for(pipeline)))
    if unknown:
        return f"unknown setting(s) {unknown} for pipeline {pipeline!r}; known: {', '.join(settings_for(pipeline))}"
    return ""


def _start_run(
    config: BenchConfig, pipeline: str, run_dir: Path, settings: Mapping[str, Any] | None
) -> tuple[dict[str, Any], RunMeta]:
    """Create the run's folder; (the pipeline's parameters, the run's metadata)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    timings = run_dir / TIMINGS_FILE
    timings.unlink(missing_ok=True)
    params = default_parameters(pipeline, config.model)
    params.update(settings or {})
    params["timing_path"] = str(timings)
    meta = run_header(
        kind=KIND_PIPELINE,
        run_id=run_dir.name,
        root=config.root,
        extra_packages=("kfp", "optuna", "kserve"),
        config={"root": str(config.root), "sha256": config.sha256},
        pipeline=pipeline,
        runner="kfp.local.SubprocessRunner(use_venv=False)",
        parameters={k: v for k, v in params.items() if k != "timing_path"},
    )
    return params, meta


@dataclass(frozen=True)
class _Outcome:
    """How the kfp.local run ended: its task (outputs), the first error line, Ctrl-C, wall-clock times."""

    stages: list[str]
    log_path: Path
    t0: float
    t1: float
    task: Any = None
    error: str = ""
    interrupted: bool = False


@contextlib.contextmanager
def _source_tree_on_pythonpath() -> Iterator[None]:
    """The component subprocesses must import the same servebench source tree as this
    process, whatever the editable install points at: prepend it to PYTHONPATH for the run."""
    old_path = os.environ.get("PYTHONPATH")
    source_tree = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (source_tree, old_path) if p)
    try:
        yield
    finally:
        if old_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_path


def _execute(pipeline: str, params: dict[str, Any], run_dir: Path, console: Console) -> _Outcome:
    """Run the pipeline under kfp.local, its output in kfp.log, a console line per stage as it ends."""
    import kfp.local

    from bench.pipeline.definition import pipeline_function  # lazy on purpose: imports kfp
    from models.pipeline.registry import stages_for

    stages = stages_for(pipeline)
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(run_dir / "kfp"))
    console.info(f"pipeline {pipeline}: stages {' -> '.join(stages)} (kfp.local, results in {run_dir})")
    log_path = run_dir / KFP_LOG_FILE
    console.info(f"  kfp.local's own log (task output, tracebacks): {log_path}")
    t0 = time.time()
    error = ""
    interrupted = False
    task = None
    # kfp.local prints every task's output to stdout (its logging handler and builtins.print):
    # that goes to kfp.log, and the console shows one line per stage as each one ends.
    with (
        _source_tree_on_pythonpath(),
        open(log_path, "w", encoding="utf-8") as log,
        _StageWatcher(run_dir / TIMINGS_FILE, console),
    ):
        try:
            with contextlib.redirect_stdout(_AnsiStripper(log)):
                task = pipeline_function(pipeline)(**params)
        except Exception as exc:
            text = _ANSI.sub("", str(exc)).strip()
            error = text.splitlines()[0] if text else type(exc).__name__
        except KeyboardInterrupt:  # Ctrl-C reaches the task processes too (same process group)
            interrupted, error = True, "interrupted"
    return _Outcome(stages, log_path, t0, time.time(), task, error, interrupted)


def _record(pipeline: str, run_dir: Path, outcome: _Outcome, meta: RunMeta, redactor: Any, console: Console) -> str:
    """Redact kfp.log; write the stage rows (with ``total``), the summary and the final meta.json; the failed stage."""
    from models.pipeline.timing import read_rows

    redact_file(outcome.log_path, redactor)  # kfp.log is complete: every task process has ended
    rows = read_rows(run_dir / TIMINGS_FILE)
    failed = _failed_stage(outcome, rows)
    status = _status(outcome)
    stage_status = "ok" if status is RunStatus.COMPLETE else status.value  # pipeline_stages.csv's own words
    t0, t1 = outcome.t0, outcome.t1
    rows.append({"stage": "total", "start": t0, "end": t1, "seconds": t1 - t0, "status": stage_status})
    write_stages(run_dir / STAGES_FILE, pipeline, rows)
    outputs = _write_summary(run_dir, pipeline, outcome.task)
    console.info(f"  {'total':<9} {t1 - t0:8.2f} s  {stage_status}")
    meta.details.update(failed_stage=failed or None, outputs=outputs)
    meta.finish(status, error=outcome.error or None, now=t1)
    write_meta_file(run_dir, meta, redactor)
    return failed


def _status(outcome: _Outcome) -> RunStatus:
    return RunStatus.INTERRUPTED if outcome.interrupted else RunStatus.FAILED if outcome.error else RunStatus.COMPLETE


def _failed_stage(outcome: _Outcome, rows: list[dict[str, Any]]) -> str:
    """The first stage not ``ok`` in the rows; after an error without one, the first stage with no row."""
    failed = next((r["stage"] for r in rows if r["status"] != "ok"), "")
    if outcome.error and not failed:
        done = {r["stage"] for r in rows}
        failed = next((s for s in outcome.stages if s not in done), "unknown")
    return failed


def _exit_code(pipeline: str, run_dir: Path, outcome: _Outcome, failed: str, console: Console) -> int:
    """130 interrupted, 1 a stage failed (the log's tail shown), 0 ok; the message says where the rows are."""
    if outcome.interrupted:
        console.error(
            f"pipeline {pipeline} interrupted during stage {failed!r}; timings so far in "
            f"{run_dir / STAGES_FILE}; meta.json says interrupted"
        )
        return 130
    if outcome.error:
        for line in _tail(outcome.log_path, 12):
            console.info(f"  | {line}")
        console.error(
            f"pipeline {pipeline} stopped: stage {failed!r} failed ({outcome.error}); "
            f"timings so far in {run_dir / STAGES_FILE}, full log in {outcome.log_path}"
        )
        return 1
    console.info(f"pipeline {pipeline} finished in {outcome.t1 - outcome.t0:.1f} s; {run_dir / STAGES_FILE}")
    return 0
