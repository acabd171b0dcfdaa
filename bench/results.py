"""``results/<run-id>/``: writing rows as they are measured, and reading them back.

Why rows are written immediately: a run can be interrupted, or a target can die, after many
minutes of measuring; everything measured up to then must survive. ``summary.csv`` is
appended and flushed per step; ``requests.csv.gz`` gets one complete gzip *member* per step
(concatenated members are one valid gzip stream), so a crash can at worst truncate the
member being written, and :func:`read_requests` keeps every complete line before it.
``meta.json`` is replaced atomically (write temp, rename), always from a
:class:`ground.runmeta.RunMeta` (:func:`write_meta_file`). Reading goes through
:mod:`loadgen.readers` and :func:`ground.runmeta.read_run_meta`, so a run comes back as the
typed records it was written from (:class:`RunData`).

Every writer here takes a :class:`ground.redact.Redactor` (``bench.redaction.redactor_for``)
and applies it to every text it writes -- ``error_detail`` of each request (where a remote
endpoint's echo of a token would otherwise land), summary cells, ``meta.json`` -- so all
the paths that produce such text pass one rule at the one place they all reach.  Readers
take one too, so a report of a run written before redaction existed shows no secret either.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from bench.meta import SCHEMA_VERSION, scrub
from ground.clock import utc_stamp
from ground.redact import Redactor
from ground.runmeta import KIND_SERVING, MetaError, RunMeta, RunStatus, read_run_meta
from loadgen.readers import (
    REQUEST_KEY_COLUMNS,
    ReadError,
    StepSummary,
    read_requests_csv,
    read_summary_csv,
    step_results,
    summary_frame,
)
from loadgen.records import RECORD_COLUMNS, StepKey, StepResult
from loadgen.stats import SUMMARY_COLUMNS

__all__ = [
    "META_FILE",
    "REQUESTS_FILE",
    "REQUEST_KEY_COLUMNS",
    "RUN_MARKERS",
    "SHARDS_DIR",
    "RunData",
    "RunWriter",
    "SUMMARY_FILE",
    "ResultsError",
    "holds_run",
    "latest_run",
    "load_run",
    "read_meta",
    "read_requests",
    "refuse_existing_run",
    "resolve_run",
    "validate_run_id",
    "write_json_atomic",
    "write_meta_file",
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


def write_json_atomic(path: Path, data: Mapping[str, Any], redactor: Redactor | None = None) -> None:
    """Write JSON to a temp file then rename, so readers never see half a file.

    With ``redactor``, the serialised text is redacted (every string, whatever its type was).
    """
    text = json.dumps(data, indent=2, sort_keys=False, default=str)
    if redactor:
        text = json.dumps(redactor.redact_data(json.loads(text)), indent=2, sort_keys=False)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_meta_file(directory: Path, meta: RunMeta, redactor: Redactor | None = None) -> None:
    """Write a run's meta.json (atomically, secret-looking keys scrubbed, values redacted).

    The one way every kind of run writes its metadata.
    """
    write_json_atomic(Path(directory) / META_FILE, scrub(meta.to_json()), redactor)


class RunWriter:
    """Appends measured rows to one run folder; created empty (refuses to overwrite a run).

    ``redactor`` is applied to every text cell and to meta.json before they are written.
    ``extra_request_columns`` follow the record columns in requests.csv.gz (``bench merge``
    adds ``shard``); their cells come with each :meth:`append_requests`.  ``expected``: run
    markers the folder may already hold (``bench merge`` writes beside :data:`SHARDS_DIR`).
    """

    def __init__(
        self, directory: Path, run_id: str, summary_columns: Sequence[str], redactor: Redactor | None = None,
        extra_request_columns: Sequence[str] = (), expected: Sequence[str] = (),
    ) -> None:
        self.redactor = redactor or Redactor()
        self.directory = Path(directory)
        self.run_id = validate_run_id(run_id)
        self.summary_columns = ("run_id", *[c for c in summary_columns if c != "run_id"])
        self.request_columns = (*REQUEST_KEY_COLUMNS, *RECORD_COLUMNS, *extra_request_columns)
        self._extra_columns = len(extra_request_columns)
        refuse_existing_run(self.directory, ignoring=expected)  # ``expected``: see holds_run's ``ignoring``
        self.directory.mkdir(parents=True, exist_ok=True)
        self.summary_path = self.directory / SUMMARY_FILE
        self.requests_path = self.directory / REQUESTS_FILE
        self.meta_path = self.directory / META_FILE
        self._summary = self.summary_path.open("w", newline="", encoding="utf-8")
        csv.writer(self._summary).writerow(self.summary_columns)
        self._summary.flush()
        self._requests_header_written = False
        self.rows_written = 0
        self.requests_written = 0

    def write_meta(self, meta: RunMeta) -> None:
        write_meta_file(self.directory, meta, self.redactor)

    def _text(self, value: Any) -> Any:
        cell = _cell(value)
        return self.redactor.redact(cell) if isinstance(cell, str) and cell else cell

    def append_summary(self, row: Mapping[str, Any]) -> None:
        """One summary row (missing columns are written empty), flushed to disk at once."""
        full = {**row, "run_id": self.run_id}
        unknown = set(full) - set(self.summary_columns)
        if unknown:
            raise ResultsError(f"summary row has columns not in the header: {sorted(unknown)}")
        csv.writer(self._summary).writerow([self._text(full.get(c, "")) for c in self.summary_columns])
        self._summary.flush()
        os.fsync(self._summary.fileno())
        self.rows_written += 1

    def append_requests(self, key: StepKey, records: Iterable[Any],
                        extra_cells: Sequence[Sequence[Any]] | None = None) -> None:
        """All records of one step as one complete gzip member appended to requests.csv.gz.

        ``extra_cells[i]`` holds record ``i``'s values of the extra request columns.
        """
        if (extra_cells is None) != (self._extra_columns == 0):
            raise ResultsError(f"requests.csv.gz has {self._extra_columns} extra column(s); give their cells "
                               "with every step, and only then")
        text = io.StringIO()
        writer = csv.writer(text)
        if not self._requests_header_written:
            writer.writerow(self.request_columns)
        prefix = [self.run_id, key.target, key.mode, key.n_requests, key.concurrency, key.rate, key.trial]
        count = 0
        for i, record in enumerate(records):
            extra = [self._text(v) for v in extra_cells[i]] if extra_cells is not None else []
            writer.writerow(prefix + [self._text(getattr(record, c)) for c in RECORD_COLUMNS] + extra)
            count += 1
        member = gzip.compress(text.getvalue().encode("utf-8"), compresslevel=6, mtime=0)
        with self.requests_path.open("ab") as handle:
            handle.write(member)
            handle.flush()
            os.fsync(handle.fileno())
        self._requests_header_written = True
        self.requests_written += count

    def close(self) -> None:
        if not self._summary.closed:
            self._summary.close()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _cell(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN -> empty cell, read back as NaN
        return ""
    if isinstance(value, Mapping):
        return ";".join(f"{k}:{v}" for k, v in value.items())
    return value


# --- reading ------------------------------------------------------------------------------
# The files are parsed by loadgen.readers (summary, requests) and ground.runmeta (meta.json);
# here a folder becomes one RunData.


@dataclass(frozen=True)
class RunData:
    """A run as read back from disk: its summary rows, optional raw requests, its metadata.

    ``steps`` are the typed summary rows (:class:`loadgen.readers.StepSummary`, any schema);
    ``summary`` is the same rows as a DataFrame with every current column, for the pandas
    code of the report; ``columns`` are the columns the summary file actually had.
    """

    path: Path
    run_id: str
    steps: tuple[StepSummary, ...]
    requests: pd.DataFrame | None
    meta: RunMeta
    columns: frozenset[str] = frozenset(SUMMARY_COLUMNS)

    @cached_property
    def summary(self) -> pd.DataFrame:
        return summary_frame(self.steps)

    @property
    def schema_version(self) -> int | None:
        return self.meta.schema_version

    @property
    def targets(self) -> list[str]:
        """Targets in run order (meta's order first, then any others as they appear)."""
        present = {s.key.target for s in self.steps}
        seen = [t for t in self.meta.details.get("targets_order") or [] if t in present]
        return seen + [t for t in dict.fromkeys(s.key.target for s in self.steps) if t not in seen]

    def without_modes(self, modes: Iterable[str]) -> RunData:
        """The run without the steps (and requests) of ``modes``, e.g. the capacity searches."""
        drop = set(modes)
        requests = self.requests
        if requests is not None:
            requests = requests[~requests["mode"].isin(drop)].reset_index(drop=True)
        return replace(self, steps=tuple(s for s in self.steps if s.key.mode not in drop), requests=requests)

    def step_results(self) -> list[StepResult]:
        """The measured steps with their raw records (needs requests.csv.gz), as the sweep produced them."""
        return step_results(self.steps, self.requests)


def read_meta(directory: Path) -> RunMeta | None:
    """The run's meta.json as a :class:`ground.runmeta.RunMeta` (None when it has none)."""
    try:
        return read_run_meta(Path(directory) / META_FILE)
    except MetaError as exc:
        raise ResultsError(str(exc)) from None


def read_requests(path: Path) -> pd.DataFrame | None:
    """Per-request rows; a member truncated by a crash is dropped after its last full line."""
    try:
        return read_requests_csv(path)
    except ReadError as exc:
        raise ResultsError(str(exc)) from None


def _guessed_schema(columns: frozenset[str]) -> int | None:
    """The schema of a summary.csv without its meta.json: 3 has the percentile bounds, 2
    ``flags``, 1 ``run_id``."""
    if "lat_p50_lo_s" in columns:
        return SCHEMA_VERSION
    return 2 if "flags" in columns else 1 if "run_id" in columns else None


def load_run(ref: str | Path, *, with_requests: bool = True, redactor: Redactor | None = None) -> RunData:
    """A run folder, or a ``summary.csv`` path (then only that file and a sibling meta.json).

    With ``redactor``, meta.json and the requests' text columns come back redacted, so
    whatever is rendered from them (reports) holds no configured secret, even for a run
    written before redaction existed.
    """
    path = Path(ref)
    if path.is_file():
        directory, summary_path, requests_path = path.parent, path, None
    elif path.is_dir():
        directory, summary_path = path, path / SUMMARY_FILE
        requests_path = path / REQUESTS_FILE if with_requests else None
    else:
        raise ResultsError(f"{ref} is neither a run folder nor a summary CSV")
    if not summary_path.is_file() and (directory / PIPELINE_STAGES_FILE).is_file():
        raise ResultsError(f"{directory} is a pipeline run (it has {PIPELINE_STAGES_FILE}), not a serving "
                           f"benchmark: it has no {SUMMARY_FILE}; `bench report` renders it, `bench compare` cannot")
    meta = read_meta(directory)
    if not summary_path.is_file() and meta is not None and meta.kind != KIND_SERVING:
        raise ResultsError(f"{directory} is a {meta.kind!r} run, not a serving benchmark: it has no {SUMMARY_FILE}")
    try:
        summary = read_summary_csv(summary_path)
    except ReadError as exc:
        raise ResultsError(str(exc)) from None
    if meta is None:
        meta = RunMeta(kind=KIND_SERVING, run_id=summary.run_id or directory.name, status=RunStatus.UNKNOWN,
                       schema_version=_guessed_schema(summary.columns), status_reason="the run has no meta.json")
    requests = read_requests(requests_path) if requests_path is not None else None
    if redactor:
        meta = RunMeta.from_json(redactor.redact_data(meta.to_json()))
        if requests is not None:
            for column in ("error_detail", "error"):
                requests[column] = [redactor.redact(v) if isinstance(v, str) else v for v in requests[column]]
    return RunData(path=directory, run_id=meta.run_id, steps=summary.steps, requests=requests, meta=meta,
                   columns=summary.columns)


def _run_dirs(results_dir: Path) -> list[Path]:
    if not results_dir.is_dir():
        return []
    return [p for p in results_dir.iterdir() if p.is_dir() and any((p / m).is_file() for m in RESULT_MARKERS)]


def latest_run(results_dir: Path) -> Path:
    """The most recently started run under ``results_dir`` (by meta start time, then mtime)."""
    runs = _run_dirs(results_dir)
    if not runs:
        raise ResultsError(f"no runs under {results_dir}; run `python -m bench run all` first")

    def started(p: Path) -> tuple[float, float]:
        try:
            meta = read_meta(p)
        except ResultsError:
            meta = None
        return (float(meta.started_at or 0.0) if meta else 0.0, p.stat().st_mtime)

    return max(runs, key=started)


def resolve_run(ref: str, results_dir: Path) -> Path:
    """A run given as a path, or as an id under ``results_dir``."""
    path = Path(ref)
    if path.exists():
        return path
    candidate = results_dir / ref
    if candidate.exists():
        return candidate
    raise ResultsError(f"run {ref!r} not found (neither a path nor a folder under {results_dir})")
