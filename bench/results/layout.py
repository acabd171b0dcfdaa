"""The run folder's layout: its file names, valid run ids, and which folders hold a run.

``results/<run-id>/`` holds ``meta.json`` (every kind of run, written first), and per kind
its results files: ``summary.csv`` + ``requests.csv.gz`` (load runs), ``hpo_trials.csv``
(tuning runs), ``pipeline_stages.csv`` (pipeline runs), ``shards/`` (a ``bench run
--clients N`` run's shard runs). Every "does this folder already hold a run" question is
answered here (:func:`holds_run`), so no run overwrites another's results.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ground.clock import utc_stamp

__all__ = [
    "HPO_TRIALS_FILE",
    "META_FILE",
    "PIPELINE_STAGES_FILE",
    "REQUESTS_FILE",
    "RESULT_MARKERS",
    "RUN_MARKERS",
    "SHARDS_DIR",
    "SUMMARY_FILE",
    "ResultsError",
    "fresh_run_dir",
    "holds_run",
    "refuse_existing_run",
    "resolve_run",
    "run_dirs",
    "validate_run_id",
]

HPO_TRIALS_FILE = "hpo_trials.csv"  # written by `bench run hpo` (models/hpo/results.py)
PIPELINE_STAGES_FILE = "pipeline_stages.csv"  # written by `bench run pipeline` (bench/pipeline/local_run.py)
SUMMARY_FILE = "summary.csv"
REQUESTS_FILE = "requests.csv.gz"
META_FILE = "meta.json"
SHARDS_DIR = "shards"  # a `bench run --clients N` run's shard runs, before and after their merge
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

#: Files of a run's results: load runs (summary.csv), tuning runs (hpo_trials.csv, ``bench
#: run hpo``), pipeline runs (pipeline_stages.csv, written when the pipeline ends, ok or failed).
RESULT_MARKERS: tuple[str, ...] = (SUMMARY_FILE, HPO_TRIALS_FILE, PIPELINE_STAGES_FILE)
#: Files whose presence means a folder already holds a run of some kind: every kind writes
#: meta.json first (a ``--clients`` run its shards folder); the results files also catch
#: folders of older versions.
RUN_MARKERS: tuple[str, ...] = (META_FILE, SHARDS_DIR, *RESULT_MARKERS)


class ResultsError(ValueError):
    """A results folder or file is missing, unreadable or of an unexpected shape."""


def validate_run_id(run_id: str) -> str:
    """Run ids become folder names: letters, digits, '.', '_', '-' only (no path tricks)."""
    if not _RUN_ID.match(run_id):
        raise ResultsError(f"run id {run_id!r} must be 1-100 characters of letters, digits, '.', '_' or '-'")
    return run_id


def holds_run(run_dir: Path, *, ignoring: Sequence[str] = ()) -> bool:
    """Whether ``run_dir`` already holds a run (any of :data:`RUN_MARKERS`): the one check.

    ``ignoring``: markers that are expected there (``bench run --clients`` merges its shard
    runs into the folder that holds them, so the merge ignores :data:`SHARDS_DIR`).
    """
    return any((Path(run_dir) / name).exists() for name in RUN_MARKERS if name not in ignoring)


def refuse_existing_run(run_dir: Path, *, ignoring: Sequence[str] = ()) -> None:
    """Raise :class:`ResultsError` when ``run_dir`` already holds a run, so none is overwritten."""
    if holds_run(run_dir, ignoring=ignoring):
        raise ResultsError(f"{run_dir} already holds a run; choose another --run-id")


def fresh_run_dir(results_dir: Path, run_id: str | None, kind: str) -> Path:
    """The folder for a new run: ``run_id`` checked (or a UTC-time id ending in ``-kind``).

    Refuses a folder that already holds a run (:func:`refuse_existing_run`), so a run never
    overwrites another's results. Raises :class:`ResultsError`; the folder is not created here.
    """
    run_id = validate_run_id(run_id or f"{utc_stamp()}-{kind}")
    run_dir = results_dir / run_id
    refuse_existing_run(run_dir)
    return run_dir


def run_dirs(results_dir: Path) -> list[Path]:
    """The folders under ``results_dir`` that hold a run's results (any of :data:`RESULT_MARKERS`)."""
    if not results_dir.is_dir():
        return []
    return [p for p in results_dir.iterdir() if p.is_dir() and any((p / m).is_file() for m in RESULT_MARKERS)]


def resolve_run(ref: str, results_dir: Path) -> Path:
    """A run given as a path, or as an id under ``results_dir``."""
    path = Path(ref)
    if path.exists():
        return path
    candidate = results_dir / ref
    if candidate.exists():
        return candidate
    raise ResultsError(f"run {ref!r} not found (neither a path nor a folder under {results_dir})")
