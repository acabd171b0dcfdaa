"""``results/<run-id>/``: writing rows as they are measured, and reading them back.

Why rows are written immediately: a run can be interrupted, or a target can die, after many
minutes of measuring; everything measured up to then must survive. ``summary.csv`` is
appended and flushed per step; ``requests.csv.gz`` gets one complete gzip *member* per step
(concatenated members are one valid gzip stream), so a crash can at worst truncate the
member being written, and :func:`read_requests` keeps every complete line before it.
``meta.json`` is replaced atomically (write temp, rename).

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
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.meta import SCHEMA_VERSION, scrub
from loadgen.records import RECORD_COLUMNS, StepKey
from ground.redact import Redactor

__all__ = [
    "META_FILE",
    "REQUESTS_FILE",
    "REQUEST_KEY_COLUMNS",
    "RunData",
    "RunWriter",
    "SUMMARY_FILE",
    "ResultsError",
    "latest_run",
    "load_run",
    "read_meta",
    "read_requests",
    "resolve_run",
    "validate_run_id",
    "write_json_atomic",
]

HPO_TRIALS_FILE = "hpo_trials.csv"  # written by `bench run hpo` (models/hpo/results.py)
PIPELINE_STAGES_FILE = "pipeline_stages.csv"  # written by `bench run pipeline` (bench/cmd_pipeline.py)
SUMMARY_FILE = "summary.csv"
REQUESTS_FILE = "requests.csv.gz"
META_FILE = "meta.json"
REQUEST_KEY_COLUMNS: tuple[str, ...] = ("run_id", "target", "mode", "n_requests", "concurrency", "rate", "trial")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class ResultsError(ValueError):
    """A results folder or file is missing, unreadable or of an unexpected shape."""


def validate_run_id(run_id: str) -> str:
    """Run ids become folder names: letters, digits, '.', '_', '-' only (no path tricks)."""
    if not _RUN_ID.match(run_id):
        raise ResultsError(f"run id {run_id!r} must be 1-100 characters of letters, digits, '.', '_' or '-'")
    return run_id


def fresh_run_dir(results_dir: Path, run_id: str | None, kind: str) -> Path:
    """The folder for a new run: ``run_id`` checked (or a UTC-time id ending in ``-kind``).

    Refuses a folder that already holds a run (its meta.json), so a run never overwrites
    another's results. Raises :class:`ResultsError`; the folder is not created here.
    """
    run_id = validate_run_id(run_id or time.strftime(f"%Y%m%d-%H%M%S-{kind}", time.gmtime()))
    run_dir = results_dir / run_id
    if (run_dir / "meta.json").exists():
        raise ResultsError(f"{run_dir} already holds a run; choose another --run-id")
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


class RunWriter:
    """Appends measured rows to one run folder; created empty (refuses to overwrite a run).

    ``redactor`` is applied to every text cell and to meta.json before they are written.
    ``extra_request_columns`` follow the record columns in requests.csv.gz (``bench merge``
    adds ``shard``); their cells come with each :meth:`append_requests`.
    """

    def __init__(
        self, directory: Path, run_id: str, summary_columns: Sequence[str], redactor: Redactor | None = None,
        extra_request_columns: Sequence[str] = (),
    ) -> None:
        self.redactor = redactor or Redactor()
        self.directory = Path(directory)
        self.run_id = validate_run_id(run_id)
        self.summary_columns = ("run_id", *[c for c in summary_columns if c != "run_id"])
        self.request_columns = (*REQUEST_KEY_COLUMNS, *RECORD_COLUMNS, *extra_request_columns)
        self._extra_columns = len(extra_request_columns)
        if (self.directory / SUMMARY_FILE).exists() or (self.directory / META_FILE).exists():
            raise ResultsError(f"{self.directory} already holds a run; choose another --run-id")
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

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        write_json_atomic(self.meta_path, scrub(meta), self.redactor)

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


@dataclass(frozen=True)
class RunData:
    """A run as read back from disk: summary rows, optional raw requests, metadata."""

    path: Path
    run_id: str
    summary: pd.DataFrame
    requests: pd.DataFrame | None
    meta: dict[str, Any]

    @property
    def schema_version(self) -> int | None:
        value = self.meta.get("schema_version")
        return int(value) if value is not None else None

    @property
    def targets(self) -> list[str]:
        """Targets in run order (meta's order first, then any others as they appear)."""
        seen = [t for t in self.meta.get("targets_order", []) if t in set(self.summary["target"])]
        return seen + [t for t in dict.fromkeys(self.summary["target"]) if t not in seen]


def read_meta(directory: Path) -> dict[str, Any]:
    path = Path(directory) / META_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path} is not valid JSON: {exc}") from exc


def read_summary(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, keep_default_na=True, float_precision="round_trip")
    except FileNotFoundError:
        raise ResultsError(f"{path} not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path} is not a readable CSV: {exc}") from exc
    missing = {"target", "mode", "n_requests", "trial", "total_s"} - set(frame.columns)
    if missing:
        raise ResultsError(f"{path} lacks columns {sorted(missing)}; is it a servebench summary.csv?")
    frame["mode"] = frame["mode"].astype(str)
    frame["target"] = frame["target"].astype(str)
    return frame


def read_requests(path: Path) -> pd.DataFrame | None:
    """Per-request rows; a member truncated by a crash is dropped after its last full line."""
    if not Path(path).is_file():
        return None
    raw = Path(path).read_bytes()
    chunks: list[bytes] = []
    while raw:
        member = zlib.decompressobj(wbits=31)  # 31: gzip framing, one member at a time
        try:
            chunks.append(member.decompress(raw))
        except zlib.error:
            break
        if not member.eof:  # truncated member: keep its complete lines, stop here
            break
        raw = member.unused_data
    data = b"".join(chunks)
    if not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
    if not data:
        return None
    frame = pd.read_csv(io.BytesIO(data), keep_default_na=False, na_values={"latency_s": [""]},
                        float_precision="round_trip")
    frame["error"] = frame["error"].astype(str)
    frame["mode"] = frame["mode"].astype(str)
    frame["target"] = frame["target"].astype(str)
    return frame


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
    if not summary_path.is_file() and read_meta(directory).get("kind") not in (None, "serving"):
        kind = read_meta(directory).get("kind")
        raise ResultsError(f"{directory} is a {kind!r} run, not a serving benchmark: it has no {SUMMARY_FILE}")
    summary = read_summary(summary_path)
    meta = read_meta(directory)
    if not meta:
        meta = {"schema_version": SCHEMA_VERSION if "run_id" in summary.columns else None}
    run_id = str(meta.get("run_id") or (summary["run_id"].iloc[0] if "run_id" in summary and len(summary) else directory.name))
    requests = read_requests(requests_path) if requests_path is not None else None
    if redactor:
        meta = redactor.redact_data(meta)
        if requests is not None:
            for column in ("error_detail", "error"):
                if column in requests.columns:
                    requests[column] = [redactor.redact(v) if isinstance(v, str) else v for v in requests[column]]
    return RunData(path=directory, run_id=run_id, summary=summary, requests=requests, meta=meta)


def _run_dirs(results_dir: Path) -> list[Path]:
    if not results_dir.is_dir():
        return []
    # Load runs (summary.csv), tuning runs (hpo_trials.csv, `bench run hpo`) and pipeline runs
    # (pipeline_stages.csv, `bench run pipeline`; written when the pipeline ends, ok or failed).
    markers = (SUMMARY_FILE, HPO_TRIALS_FILE, PIPELINE_STAGES_FILE)
    return [p for p in results_dir.iterdir() if p.is_dir() and any((p / m).is_file() for m in markers)]


def latest_run(results_dir: Path) -> Path:
    """The most recently started run under ``results_dir`` (by meta start time, then mtime)."""
    runs = _run_dirs(results_dir)
    if not runs:
        raise ResultsError(f"no runs under {results_dir}; run `python -m bench run all` first")

    def started(p: Path) -> tuple[float, float]:
        try:
            meta = read_meta(p)
        except ResultsError:
            meta = {}
        return (float(meta.get("started_at") or 0.0), p.stat().st_mtime)

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
