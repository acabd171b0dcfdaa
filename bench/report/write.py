"""Write run reports into ``reports/<run-id>/``: serving, tuning and pipeline runs, pipelines side by side.

What ``bench report [RUN ...]`` does (its flags are in :mod:`bench.commands.report`);
``bench run`` and ``bench pipeline run`` call :func:`write_report` and
:func:`pipeline_report` too. Only from files: a report must be reproducible after the fact,
on another machine, with no target running; everything it shows comes from summary.csv,
requests.csv.gz and meta.json of the run.  Two or more pipeline runs given together also get
one side-by-side report (the study's Tables 4-5 compare two clusters), written after their
own reports. Configured secrets are redacted from what a report reads (serving runs) or from
the files it wrote (tuning and pipeline runs), so even a run recorded before redaction
existed cannot carry one into a report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench.config import BenchConfig
from bench.console import Console
from bench.redact_secrets import redact_tree, redactor_for
from bench.results import (
    HPO_TRIALS_FILE,
    PIPELINE_STAGES_FILE,
    ResultsError,
    latest_run,
    load_run,
    read_meta,
    resolve_run,
)
from bench.results.status import HostView, resolve_status, status_and_noise_warnings
from ground.runmeta import KIND_PIPELINE

__all__ = ["combined_pipeline_report", "pipeline_report", "report", "write_report"]


def write_report(config: BenchConfig, run_dir: Path, *, study_overlay: bool, console: Console) -> Path:
    """Build one run's report into ``reports/<run-id>/``; returns that folder."""
    from bench.report.build import build_report  # lazy on purpose: imports matplotlib (serving runs only)
    from ground.reference import STUDY_MODE, study_table3

    run = load_run(run_dir, redactor=redactor_for(config, console))
    run = replace(run, meta=resolve_status(run.meta, HostView.current()))  # running vs abandoned
    if run.summary.empty:
        raise ResultsError(f"{run_dir} has no measured rows yet; nothing to report")
    study = None
    if study_overlay:
        try:
            study = study_table3()
        except FileNotFoundError as exc:
            console.warn(f"{exc}; drawing the figures without the study overlay")
    files = build_report(run, config.reports_dir / run.run_id, study=study, study_mode=STUDY_MODE)
    return files.directory


def report(config: BenchConfig, *, runs: list[str], study_overlay: bool, console: Console) -> int:
    """Regenerate reports for the given runs (default: the latest run)."""
    try:
        dirs = [resolve_run(r, config.results_dir) for r in runs] or [latest_run(config.results_dir)]
    except ResultsError as exc:
        console.error(str(exc))
        return 2
    status = 0
    pipeline_dirs: list[Path] = []
    for run_dir in dirs:
        if (run_dir / HPO_TRIALS_FILE).is_file():  # a `bench run hpo` run: Tables 1-2, Figure 20
            status = max(status, _hpo_report(config, run_dir, console))
            continue
        if _is_pipeline_run(run_dir):  # a `bench run pipeline` run: Table 4 or 5, Figure 22 or 23
            status = max(status, pipeline_report(config, run_dir, console))
            pipeline_dirs.append(run_dir)
            continue
        try:
            meta = read_meta(run_dir)
            for warning in status_and_noise_warnings(resolve_status(meta, HostView.current())) if meta else []:
                console.warn(warning)
            out = write_report(config, run_dir, study_overlay=study_overlay, console=console)
        except ResultsError as exc:
            console.error(str(exc))
            status = 2
            continue
        console.print(f"report for {run_dir.name}: {out / 'report.html'}")
        console.info(f"  tables: {out / 'table3.md'}, {out / 'report.md'}; figures: {out / 'figures'}")
    if len(pipeline_dirs) >= 2:  # several pipeline runs: also one report with a column per run
        status = max(status, combined_pipeline_report(config, pipeline_dirs, console))
    return status


def _side_report(
    what: str,
    render: Callable[[Path, Path], list[Path]],
    run_dir: Path,
    out: Path,
    console: Console,
    shown: str,
    config: BenchConfig,
) -> int:
    """Render a non-serving run's report with ``render(run_dir, out)``; 0 ok, 2 unreadable input."""
    try:
        paths = render(run_dir, out)
    except (OSError, ValueError, KeyError) as exc:
        console.error(f"cannot build the {what} report of {run_dir}: {type(exc).__name__}: {exc}")
        return 2
    redact_tree(out, redactor_for(config, console))
    console.print(f"{what} report for {run_dir.name}: {out / shown if shown else out}")
    for path in paths:
        console.info(f"  {path}")
    return 0


def _hpo_report(config: BenchConfig, run_dir: Path, console: Console) -> int:
    """Regenerate a tuning run's tables and figures from its CSVs alone."""
    from models.hpo.report import render_hpo_report

    return _side_report("tuning", render_hpo_report, run_dir, config.reports_dir / run_dir.name, console, "", config)


def _is_pipeline_run(run_dir: Path) -> bool:
    if (run_dir / PIPELINE_STAGES_FILE).is_file():
        return True
    try:
        meta = read_meta(run_dir)
    except ResultsError:
        return False
    return meta is not None and meta.kind == KIND_PIPELINE


def pipeline_report(config: BenchConfig, run_dir: Path, console: Console) -> int:
    """Render a pipeline run's report (models/pipeline/report.py) into reports/<run-id>/; 0 ok, 2 unreadable."""
    from models.pipeline.report import render_pipeline_report

    out = config.reports_dir / run_dir.name
    return _side_report("pipeline", render_pipeline_report, run_dir, out, console, "report.md", config)


def combined_pipeline_report(config: BenchConfig, run_dirs: list[Path], console: Console) -> int:
    """Render pipeline runs side by side into reports/<A>--vs--<B>/; 0 ok, 2 mixed pipelines or unreadable.

    Called after each run's own report was written, so a refusal here (e.g. a servebench and a
    custom run) leaves those in place.
    """
    from models.pipeline.combined import (
        MixedPipelinesError,
        combined_dir_name,
        render_pipeline_comparison,
    )

    try:
        out = config.reports_dir / combined_dir_name([d.name for d in run_dirs])
        paths = render_pipeline_comparison(run_dirs, out)
        redact_tree(out, redactor_for(config, console))
    except MixedPipelinesError as exc:
        console.error(f"no combined pipeline report: {exc} (each run's own report was written)")
        return 2
    except (OSError, ValueError, KeyError) as exc:
        names = ", ".join(d.name for d in run_dirs)
        console.error(f"cannot build the combined pipeline report of {names}: {type(exc).__name__}: {exc}")
        return 2
    console.print(f"pipeline runs side by side: {out / 'report.md'}")
    for path in paths:
        console.info(f"  {path}")
    return 0
