"""``bench run pipeline`` and ``bench pipeline compile``: the KFP v2 pipeline, run locally and timed.

How stages are timed (local run): every component wraps its body in
:func:`models.pipeline.timing.stage_timer`, which appends one JSON line (stage, start, end,
seconds, status) to ``results/<run-id>/stage_timings.jsonl`` -- also when the stage fails.
Why not kfp.local's own output: it logs task status but no machine-readable start/end times,
and a failed task yields no outputs.  The whole run is timed around ``kfp.local``; its
``total`` row therefore includes kfp.local's own per-task overhead (interpreter start-up).

Only the local path exists so far: no ``kfp.Client`` submission, no ``custom`` pipeline.
"""

from __future__ import annotations

import csv
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.config import BenchConfig
    from bench.console import Console

__all__ = ["PIPELINES", "STAGES_FILE", "STAGE_COLUMNS", "compile_pipeline", "run_pipeline"]

PIPELINES = ("servebench",)
STAGES_FILE = "pipeline_stages.csv"
TIMINGS_FILE = "stage_timings.jsonl"
STAGE_COLUMNS = ("pipeline", "stage", "start", "end", "seconds", "status")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # kfp.local colours task names in its messages

#: Pipeline parameters a caller may override (``settings``); everything else is fixed.
_PARAMS = ("trials", "tune_epochs", "epochs", "train_size", "test_size", "seed", "smoke_requests", "fail_stage")


def compile_pipeline(output: str | Path) -> Path:
    """Write the servebench pipeline's KFP IR YAML to ``output``; returns the path."""
    from models.pipeline.definition import compile_pipeline as _compile

    return _compile(output)


def _write_stages(path: Path, pipeline: str, rows: list[dict[str, Any]]) -> None:
    from bench.meta import utc_iso

    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(STAGE_COLUMNS)
        for r in rows:
            writer.writerow([pipeline, r["stage"], utc_iso(r["start"]), utc_iso(r["end"]),
                             f"{r['seconds']:.3f}", r["status"]])


def run_pipeline(
    config: BenchConfig,
    *,
    pipeline: str,
    run_id: str | None,
    console: Console,
    settings: Mapping[str, Any] | None = None,
) -> int:
    """Run ``pipeline`` with kfp.local (subprocess runner, this interpreter); 0 ok, 1 stage failed, 2 bad input.

    ``settings`` overrides pipeline parameters (``trials``, ``tune_epochs``, ``epochs``,
    ``train_size``, ``test_size``, ``seed``, ``smoke_requests``, ``fail_stage``); defaults
    come from ``[model]`` in bench.toml and the pipeline definition.
    """
    from bench.meta import run_header, utc_iso
    from bench.results import ResultsError, fresh_run_dir, write_json_atomic

    if pipeline not in PIPELINES:
        console.error(f"unknown pipeline {pipeline!r}; known: {', '.join(PIPELINES)} (custom is not implemented yet)")
        return 2
    unknown = sorted(set(settings or {}) - set(_PARAMS))
    if unknown:
        console.error(f"unknown pipeline setting(s) {unknown}; known: {', '.join(_PARAMS)}")
        return 2
    try:
        run_dir = fresh_run_dir(config.results_dir, run_id, "pipeline")
    except ResultsError as exc:
        console.error(str(exc))
        return 2
    run_id = run_dir.name
    run_dir.mkdir(parents=True, exist_ok=True)
    timings = run_dir / TIMINGS_FILE
    timings.unlink(missing_ok=True)
    m = config.model
    params: dict[str, Any] = {"trials": 4, "tune_epochs": 1, "smoke_requests": 8, "epochs": m.epochs, "train_size": m.train_size, "test_size": m.test_size,
                              "seed": m.seed, "model_name": m.name}
    params.update(settings or {})
    params["timing_path"] = str(timings)
    meta = {**run_header(kind="pipeline", run_id=run_id, root=config.root, extra_packages=("kfp", "optuna", "kserve")),
            "config": {"root": str(config.root), "sha256": config.sha256},
            "pipeline": pipeline, "runner": "kfp.local.SubprocessRunner(use_venv=False)",
            "parameters": {k: v for k, v in params.items() if k != "timing_path"}}
    write_json_atomic(run_dir / "meta.json", meta)

    import kfp.local

    from models.pipeline.components import STAGES
    from models.pipeline.definition import servebench_pipeline
    from models.pipeline.timing import read_rows

    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(run_dir / "kfp"))
    console.info(f"pipeline {pipeline}: stages {' -> '.join(STAGES)} (kfp.local, results in {run_dir})")
    # The component subprocesses must import the same servebench source tree as this
    # process, whatever the editable install points at: prepend it to PYTHONPATH for the run.
    old_path = os.environ.get("PYTHONPATH")
    source_tree = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (source_tree, old_path) if p)
    t0 = time.time()
    error = ""
    try:
        servebench_pipeline(**params)
    except Exception as exc:  # noqa: BLE001  kfp.local raises RuntimeError; anything else is a failure too
        text = _ANSI.sub("", str(exc)).strip()
        error = text.splitlines()[0] if text else type(exc).__name__
    finally:
        if old_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_path
    t1 = time.time()
    rows = read_rows(timings)
    failed = next((r["stage"] for r in rows if r["status"] != "ok"), "")
    if error and not failed:
        done = {r["stage"] for r in rows}
        failed = next((s for s in STAGES if s not in done), "unknown")
    rows.append({"stage": "total", "start": t0, "end": t1, "seconds": t1 - t0, "status": "failed" if error else "ok"})
    _write_stages(run_dir / STAGES_FILE, pipeline, rows)
    for r in rows:
        console.info(f"  {r['stage']:<7} {r['seconds']:8.2f} s  {r['status']}")
    meta.update({"complete": not error, "status": "failed" if error else "ok", "finished_at": t1,
                 "finished_utc": utc_iso(t1), "failed_stage": failed or None, "error": error or None})
    write_json_atomic(run_dir / "meta.json", meta)
    if error:
        console.error(f"pipeline {pipeline} stopped: stage {failed!r} failed ({error}); "
                      f"timings so far in {run_dir / STAGES_FILE}")
        return 1
    console.info(f"pipeline {pipeline} finished in {t1 - t0:.1f} s; {run_dir / STAGES_FILE}")
    return 0
