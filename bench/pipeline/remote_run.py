"""Run a pipeline on a target's Kubeflow (``bench pipeline run --target NAME``), timed from the run's details.

Why from the API and not from the components: on a cluster every step is a pod, so the
local side channel (``stage_timings.jsonl``) does not exist; KFP itself records each
task's start and end.  After the run finishes (or the bounded wait runs out), the run's
``task_details`` are mapped to our stages by the display names in the compiled IR
(:mod:`models.pipeline.kfp_run`) and written as ``pipeline_stages.csv`` in exactly the
local format, so ``bench report`` treats a local and a cluster run alike.

Exit codes as ``bench run``: 0 the run succeeded and every stage was timed; 1 the API
failed, the run failed (its stage named, rows kept), the wait timed out, or a stage was
not found in the details; 2 bad input.  The token/cookie never reach ``results/``: every
``meta.json`` write and every console line passes the configuration's redactor
(:mod:`bench.redact_secrets`) merged with the KFP access's own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.redact_secrets import redactor_for
from bench.results import ResultsError, fresh_run_dir, write_meta_file
from bench.results.header import run_header
from ground.runmeta import KIND_PIPELINE, RunMeta, RunStatus

if TYPE_CHECKING:
    from bench.config import BenchConfig
    from bench.console import Console

__all__ = ["PACKAGE_FILE", "run_remote_pipeline"]

PACKAGE_FILE = "pipeline.yaml"  # the compiled IR as submitted (image override applied), kept with the results


def _kfp_settings(config: BenchConfig, target: str) -> Any:
    """The target's parsed settings if they carry a kfp_endpoint; ConfigError naming the problem otherwise."""
    from ground.tables import ConfigError, parse_table
    from models.pipeline.kfp_settings import KfpSettings
    from targets.registry import resolve_adapter

    if target not in config.targets:
        known = ", ".join(config.targets) or "none"
        raise ConfigError(f"targets.{target}", f"no such target (configured: {known})")
    spec = config.targets[target]
    settings = parse_table(resolve_adapter(spec).Settings, spec.settings, f"targets.{target}")
    if not isinstance(settings, KfpSettings):
        raise ConfigError(
            f"targets.{target}.adapter",
            f"adapter {spec.adapter!r} has no Kubeflow Pipelines keys (kfp_*); use a kserve target",
        )
    if not settings.has_kfp:
        raise ConfigError(
            f"targets.{target}.kfp_endpoint",
            'not set: add kfp_endpoint = "https://<kubeflow host>/pipeline" to submit pipelines',
        )
    return settings


def run_remote_pipeline(
    config: BenchConfig,
    *,
    target: str,
    pipeline: str,
    run_id: str | None,
    console: Console,
    timeout_s: float | None = None,
    settings: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Compile, submit to ``target``'s KFP API, wait (bounded), write stage rows; 0 / 1 / 2.

    ``timeout_s`` overrides the target's ``kfp_timeout_s``; ``settings`` overrides pipeline
    parameters as for the local run.
    """
    from ground.tables import ConfigError
    from models.pipeline.remote import KfpError, open_kfp
    from models.pipeline.stages import STAGES_FILE

    problem = _request_problem(pipeline, settings, timeout_s)
    if problem:
        console.error(problem)
        return 2
    try:
        kfp = _kfp_settings(config, target)
        access = open_kfp(target, kfp, verify_tls=kfp.verify_tls, environ=environ)
        run_dir = fresh_run_dir(config.results_dir, run_id, "pipeline")
    except (ConfigError, KfpError, ResultsError) as exc:
        console.error(str(exc))
        return 2
    redactor = redactor_for(config, console, environ=environ).merge(access.redactor)
    console.redactor = console.redactor.merge(access.redactor)
    timeout = float(timeout_s if timeout_s is not None else kfp.kfp_timeout_s)
    submission = _prepare(config, pipeline, target, run_dir, kfp, timeout, settings)
    _write_meta(submission, redactor)
    _announce(submission, target, access, console)
    try:
        kfp_run_id, timings, timed_out = _submit_and_wait(submission, access, redactor, console)
    except KfpError as exc:
        _finish_meta(submission, redactor, RunStatus.FAILED, str(exc))
        console.error(str(exc))
        return 1
    _write_rows(submission, timings, console)
    status, message = _verdict(kfp_run_id, timings, timed_out, timeout, access.redact(timings.error))
    _finish_meta(
        submission,
        redactor,
        status,
        message or None,
        kfp_state=timings.state,
        failed_stage=timings.failed_stage or None,
        missing_stages=timings.missing,
        unmapped_tasks=timings.unmapped,
    )
    if message:
        console.error(f"pipeline {pipeline}: {message}; {run_dir / STAGES_FILE}")
        return 1
    console.info(f"pipeline {pipeline} finished on {access.host}; {run_dir / STAGES_FILE}")
    return 0


@dataclass(frozen=True)
class _Submission:
    """What is submitted (the compiled package, its arguments) and how its tasks map to our stages."""

    pipeline: str
    run_dir: Path
    kfp: Any  # the target's KfpSettings
    timeout_s: float
    params: dict[str, Any]
    names: dict[str, str]  # KFP display name -> stage (from the compiled IR)
    stage_order: list[str]
    meta: RunMeta


def _request_problem(pipeline: str, settings: Mapping[str, Any] | None, timeout_s: float | None) -> str:
    """Why this request cannot be submitted ("" when it can): unknown pipeline or setting, a bad --timeout."""
    from models.pipeline.registry import PIPELINES, settings_for

    if pipeline not in PIPELINES:
        return f"unknown pipeline {pipeline!r}; known: {', '.join(PIPELINES)}"
    unknown = sorted(set(settings or {}) - set(settings_for(pipeline)))
    if unknown:
        return f"unknown pipeline setting(s) {unknown}; known: {', '.join(settings_for(pipeline))}"
    if timeout_s is not None and not timeout_s > 0:
        return f"--timeout must be > 0 seconds, got {timeout_s}"
    return ""


def _prepare(
    config: BenchConfig,
    pipeline: str,
    target: str,
    run_dir: Path,
    kfp: Any,
    timeout: float,
    settings: Mapping[str, Any] | None,
) -> _Submission:
    """Create the run's folder, compile the package into it (image override applied), build meta.json's contents."""
    from bench.pipeline.definition import pipeline_function  # lazy on purpose: imports kfp
    from models.pipeline.kfp_run import display_names
    from models.pipeline.registry import default_parameters
    from models.pipeline.remote import compile_for_cluster

    run_dir.mkdir(parents=True, exist_ok=True)
    # timing_path "": on a cluster the stage times come from the API, not the local side channel
    params: dict[str, Any] = {**default_parameters(pipeline, config.model), "timing_path": ""}
    params.update(settings or {})
    doc = compile_for_cluster(pipeline_function(pipeline), run_dir / PACKAGE_FILE, kfp.kfp_image)
    meta = run_header(
        kind=KIND_PIPELINE,
        run_id=run_dir.name,
        root=config.root,
        extra_packages=("kfp", "kfp-server-api"),
        config={"root": str(config.root), "sha256": config.sha256},
        pipeline=pipeline,
        mode="remote",
        target=target,
        runner="kfp.Client",
        kfp=kfp.public_kfp_settings(),
        timeout_s=timeout,
        poll_s=kfp.kfp_poll_s,
        parameters={k: v for k, v in params.items() if k != "timing_path"},
        enable_caching=False,
        package=PACKAGE_FILE,
    )
    return _Submission(
        pipeline, run_dir, kfp, timeout, params, display_names(doc), list(doc["root"]["dag"]["tasks"]), meta
    )


def _announce(submission: _Submission, target: str, access: Any, console: Console) -> None:
    """Say where the run goes; warn when the steps' image cannot hold servebench."""
    if not submission.kfp.kfp_image:
        console.warn(
            "kfp_image is not set: the steps run in the compiled image (python:3.11), "
            "which lacks servebench; set kfp_image to an image with servebench installed"
        )
    console.info(
        f"pipeline {submission.pipeline}: submitting to {access.host} (target {target}, experiment {access.experiment})"
    )


def _write_meta(submission: _Submission, redactor: Any) -> None:
    write_meta_file(submission.run_dir, submission.meta, redactor)


def _submit_and_wait(submission: _Submission, access: Any, redactor: Any, console: Console) -> tuple[str, Any, bool]:
    """Submit, wait (bounded), map the task details to stages; (KFP run id, timings, timed out). KfpError on failure."""
    from models.pipeline.kfp_run import run_timings
    from models.pipeline.remote import KfpSession

    kfp, run_dir, timeout = submission.kfp, submission.run_dir, submission.timeout_s
    session = KfpSession(access)
    kfp_run_id = session.submit(
        run_dir / PACKAGE_FILE, arguments=submission.params, run_name=f"servebench-{run_dir.name}"
    )
    submission.meta.details["kfp_run_id"] = kfp_run_id
    _write_meta(submission, redactor)
    for link in session.links:
        console.info(f"  {link}")
    console.info(f"run {kfp_run_id} submitted; waiting up to {timeout:.0f} s")
    run, timed_out = session.wait(kfp_run_id, timeout_s=timeout, poll_s=kfp.kfp_poll_s)
    timings = run_timings(run, submission.names, submission.stage_order)
    if not timed_out and timings.missing and timings.state == "SUCCEEDED":
        time.sleep(kfp.kfp_poll_s)  # task details can trail the run state by one persistence-agent sync
        timings = run_timings(session.get_run(kfp_run_id), submission.names, submission.stage_order)
    return kfp_run_id, timings, timed_out


def _write_rows(submission: _Submission, timings: Any, console: Console) -> None:
    """pipeline_stages.csv and pipeline_summary.csv in the local run's format; a console line per stage."""
    from models.pipeline.stages import STAGES_FILE, SUMMARY_FILE, read_stages, summary_rows, write_stages, write_summary

    run_dir, pipeline = submission.run_dir, submission.pipeline
    write_stages(run_dir / STAGES_FILE, pipeline, timings.rows)
    write_summary(run_dir / SUMMARY_FILE, summary_rows(pipeline, read_stages(run_dir / STAGES_FILE)))
    for r in timings.rows:
        console.info(f"  {r['stage']:<7} {r['seconds']:8.2f} s  {r['status']}")


def _verdict(kfp_run_id: str, timings: Any, timed_out: bool, timeout: float, error: str) -> tuple[RunStatus, str]:
    """(status, message; "" when complete): timed out, failed (stage named), succeeded but stages missing, or complete.

    A timed-out wait is ``failed`` here (the error says so; ``kfp_state`` says the run goes on).
    """
    if timed_out:
        return RunStatus.FAILED, (
            f"timed out: run {kfp_run_id} still {timings.state} after {timeout:g} s; it keeps "
            "running on the cluster (finished stages are in the CSV)"
        )
    if timings.state != "SUCCEEDED":
        return RunStatus.FAILED, (
            f"run {kfp_run_id} {timings.state}: stage {timings.failed_stage!r} failed"
            + (f" ({error})" if error else "")
        )
    if timings.missing:
        return RunStatus.FAILED, (
            f"run {kfp_run_id} succeeded but its task details lack stage(s) {timings.missing} "
            f"(task names seen: {timings.unmapped})"
        )
    return RunStatus.COMPLETE, ""


def _finish_meta(submission: _Submission, redactor: Any, status: RunStatus, error: str | None, **details: Any) -> None:
    """meta.json finished (:meth:`RunMeta.finish`) with the run's remote facts (``kfp_state``, ...)."""
    submission.meta.details.update(details)
    submission.meta.finish(status, error=error)
    _write_meta(submission, redactor)
