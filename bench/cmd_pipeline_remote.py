"""``bench run pipeline --target NAME``: the pipeline on a real Kubeflow, timed from the run's details.

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
(:mod:`bench.redaction`) merged with the KFP access's own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ground.runmeta import KIND_PIPELINE, RunStatus

if TYPE_CHECKING:
    from bench.config import BenchConfig
    from bench.console import Console

__all__ = ["PACKAGE_FILE", "run_remote_pipeline"]

PACKAGE_FILE = "pipeline.yaml"  # the compiled IR as submitted (image override applied), kept with the results


def _kfp_settings(config: BenchConfig, target: str) -> Any:
    """The target's parsed settings if they carry a kfp_endpoint; ConfigError naming the problem otherwise."""
    from ground.tables import ConfigError, parse_table
    from targets.kfp_settings import KfpSettings
    from targets.registry import resolve_adapter

    if target not in config.targets:
        known = ", ".join(config.targets) or "none"
        raise ConfigError(f"targets.{target}", f"no such target (configured: {known})")
    spec = config.targets[target]
    settings = parse_table(resolve_adapter(spec).Settings, spec.settings, f"targets.{target}")
    if not isinstance(settings, KfpSettings):
        raise ConfigError(f"targets.{target}.adapter",
                          f"adapter {spec.adapter!r} has no Kubeflow Pipelines keys (kfp_*); use a kserve target")
    if not settings.has_kfp:
        raise ConfigError(f"targets.{target}.kfp_endpoint",
                          'not set: add kfp_endpoint = "https://<kubeflow host>/pipeline" to submit pipelines')
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
    from bench.meta import run_header
    from bench.redaction import redactor_for
    from bench.results import ResultsError, fresh_run_dir, write_meta_file
    from ground.tables import ConfigError
    from models.pipeline.kfp_run import display_names, run_timings
    from models.pipeline.registry import (
        PIPELINES,
        default_parameters,
        pipeline_function,
        settings_for,
    )
    from models.pipeline.remote import (
        KfpError,
        KfpSession,
        compile_for_cluster,
        open_kfp,
    )
    from models.pipeline.stages import (
        STAGES_FILE,
        SUMMARY_FILE,
        read_stages,
        summary_rows,
        write_stages,
        write_summary,
    )

    if pipeline not in PIPELINES:
        console.error(f"unknown pipeline {pipeline!r}; known: {', '.join(PIPELINES)}")
        return 2
    unknown = sorted(set(settings or {}) - set(settings_for(pipeline)))
    if unknown:
        console.error(f"unknown pipeline setting(s) {unknown}; known: {', '.join(settings_for(pipeline))}")
        return 2
    if timeout_s is not None and not timeout_s > 0:
        console.error(f"--timeout must be > 0 seconds, got {timeout_s}")
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
    run_id = run_dir.name
    run_dir.mkdir(parents=True, exist_ok=True)
    # timing_path "": on a cluster the stage times come from the API, not the local side channel
    params: dict[str, Any] = {**default_parameters(pipeline, config.model), "timing_path": ""}
    params.update(settings or {})
    doc = compile_for_cluster(pipeline_function(pipeline), run_dir / PACKAGE_FILE, kfp.kfp_image)
    names = display_names(doc)
    stage_order = list(doc["root"]["dag"]["tasks"])
    meta = run_header(
        kind=KIND_PIPELINE, run_id=run_id, root=config.root, extra_packages=("kfp", "kfp-server-api"),
        config={"root": str(config.root), "sha256": config.sha256},
        pipeline=pipeline, mode="remote", target=target, runner="kfp.Client",
        kfp=kfp.public_kfp_settings(), timeout_s=timeout, poll_s=kfp.kfp_poll_s,
        parameters={k: v for k, v in params.items() if k != "timing_path"}, enable_caching=False,
        package=PACKAGE_FILE,
    )
    write_meta_file(run_dir, meta, redactor)
    if not kfp.kfp_image:
        console.warn("kfp_image is not set: the steps run in the compiled image (python:3.11), "
                     "which lacks servebench; set kfp_image to an image with servebench installed")
    console.info(f"pipeline {pipeline}: submitting to {access.host} (target {target}, experiment {access.experiment})")
    kfp_run_id = ""
    try:
        session = KfpSession(access)
        kfp_run_id = session.submit(run_dir / PACKAGE_FILE, arguments=params, run_name=f"servebench-{run_id}")
        meta.details["kfp_run_id"] = kfp_run_id
        write_meta_file(run_dir, meta, redactor)
        for link in session.links:
            console.info(f"  {link}")
        console.info(f"run {kfp_run_id} submitted; waiting up to {timeout:.0f} s")
        run, timed_out = session.wait(kfp_run_id, timeout_s=timeout, poll_s=kfp.kfp_poll_s)
        timings = run_timings(run, names, stage_order)
        if not timed_out and timings.missing and timings.state == "SUCCEEDED":
            time.sleep(kfp.kfp_poll_s)  # task details can trail the run state by one persistence-agent sync
            timings = run_timings(session.get_run(kfp_run_id), names, stage_order)
    except KfpError as exc:
        meta.finish(RunStatus.FAILED, error=str(exc))
        write_meta_file(run_dir, meta, redactor)
        console.error(str(exc))
        return 1
    write_stages(run_dir / STAGES_FILE, pipeline, timings.rows)
    write_summary(run_dir / SUMMARY_FILE, summary_rows(pipeline, read_stages(run_dir / STAGES_FILE)))
    for r in timings.rows:
        console.info(f"  {r['stage']:<7} {r['seconds']:8.2f} s  {r['status']}")
    error = access.redact(timings.error)
    if timed_out:  # failed here; kfp_state says the run itself is still going
        message = (f"timed out: run {kfp_run_id} still {timings.state} after {timeout:g} s; it keeps "
                   "running on the cluster (finished stages are in the CSV)")
    elif timings.state != "SUCCEEDED":
        message = f"run {kfp_run_id} {timings.state}: stage {timings.failed_stage!r} failed" + (f" ({error})" if error else "")
    elif timings.missing:
        message = (f"run {kfp_run_id} succeeded but its task details lack stage(s) {timings.missing} "
                   f"(task names seen: {timings.unmapped})")
    else:
        message = ""
    meta.details.update(kfp_state=timings.state, failed_stage=timings.failed_stage or None,
                        missing_stages=timings.missing, unmapped_tasks=timings.unmapped)
    meta.finish(RunStatus.FAILED if message else RunStatus.COMPLETE, error=message or None)
    write_meta_file(run_dir, meta, redactor)
    if message:
        console.error(f"pipeline {pipeline}: {message}; {run_dir / STAGES_FILE}")
        return 1
    console.info(f"pipeline {pipeline} finished on {access.host}; {run_dir / STAGES_FILE}")
    return 0
