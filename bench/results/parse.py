"""Parse summary.csv and requests.csv.gz back into the records they were written from.

Every summary row becomes a :class:`loadgen.stats.StepSummary` -- the same fields whichever
schema wrote it -- and every request row a :class:`~loadgen.records.RequestRecord` of its
:class:`~loadgen.records.StepKey`, so report and compare work with one shape, and
:mod:`loadgen.stats` applies to what was read as to what was measured. (``bench run``
writes them through :class:`bench.results.writer.RunWriter`; a whole run folder is read by
:func:`bench.results.load.load_run`.)

Older files (schema 1, before the open-loop columns; schema 2, before the percentile
bounds; hand-made summaries) are read, not refused, where the data allows. What is missing
becomes ``None`` or is derived, once, by :meth:`StepSummary.from_row` (and for requests,
here):

- the percentile bounds (``lat_p50_lo_s`` .. ``lat_p999_hi_s``, schema 3): ``None``, the same
  as a bound that does not exist at that n -- a reader that must tell the two apart checks
  :attr:`SummaryFile.columns`;
- the open-loop columns (``offered_rps`` .. ``lag_growth_s``): ``None``; ``saturated`` False
  unless the ``flags`` text says so;
- ``flags``: :func:`loadgen.stats.step_flags` of the row (failures derived from the counts);
- ``errors`` / ``n_ok``: each from the other and ``n_requests`` (or from ``errors_by_class``);
- ``concurrency``: 1 in sequential mode, else N; ``rate``: 0;
- ``n_correct``: ``accuracy`` x N when only the accuracy was written.

A statistic that has no value (NaN in the file: no successful request) is ``None`` too; the
frame built by :func:`summary_frame` turns ``None`` back into NaN. Pure apart from reading
the given files; no printing.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from bench.results.chunks import ReadError, iter_request_frames
from loadgen.records import RECORD_COLUMNS, RequestRecord, StepKey, StepResult
from loadgen.stats import SUMMARY_COLUMNS, StepSummary

__all__ = [
    "REQUEST_KEY_COLUMNS",
    "REQUIRED_SUMMARY_COLUMNS",
    "ReadError",
    "StepSummary",
    "SummaryFile",
    "ok_latencies",
    "read_requests_csv",
    "read_summary_csv",
    "request_records",
    "step_results",
    "summary_frame",
]

REQUEST_KEY_COLUMNS: tuple[str, ...] = ("run_id", *(f.name for f in fields(StepKey)))
REQUIRED_SUMMARY_COLUMNS = ("target", "mode", "n_requests", "trial", "total_s")

PooledKey = tuple[str, str, int, int, float]  # target, mode, n_requests, concurrency, rate: trials pooled


def _nan(value: float | int | None) -> float | int:
    return math.nan if value is None else value


@dataclass(frozen=True)
class SummaryFile:
    """A summary.csv as read: its rows, the columns the file had, and the run id it names."""

    steps: tuple[StepSummary, ...]
    columns: frozenset[str]
    run_id: str | None


def read_summary_csv(path: Path) -> SummaryFile:
    """Every row of a summary.csv of any schema as a :class:`StepSummary`; ReadError naming the file."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = frozenset(reader.fieldnames or ())
            missing = set(REQUIRED_SUMMARY_COLUMNS) - columns
            if missing:
                raise ReadError(f"{path} lacks columns {sorted(missing)}; is it a servebench summary.csv?")
            rows = list(reader)
    except FileNotFoundError:
        raise ReadError(f"{path} not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReadError(f"{path} is not a readable CSV: {exc}") from None
    try:
        steps = tuple(StepSummary.from_row(row) for row in rows)
    except ValueError as exc:
        raise ReadError(f"{path}: {exc}") from None
    run_id = next((row["run_id"] for row in rows if row.get("run_id")), None)
    return SummaryFile(steps, columns, run_id)


def summary_frame(steps: Iterable[StepSummary]) -> pd.DataFrame:
    """The rows as one DataFrame with every column of the current schema (NaN where None)."""
    rows = [s.as_row() for s in steps]
    frame = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    for column in ("target", "mode", "errors_by_class", "flags"):
        frame[column] = frame[column].astype(str)
    frame["saturated"] = frame["saturated"].astype(bool)
    return frame


def read_requests_csv(path: Path) -> pd.DataFrame | None:
    """Per-request rows (step key columns + :data:`RECORD_COLUMNS`), None when there are none.

    The whole file in memory (about 750 bytes per record): for small runs and tests; what
    must work at any run length reads :func:`bench.results.chunks.iter_request_frames`
    instead. A gzip member truncated by a crash is dropped after its last complete line.
    Columns an older file lacks get their defaults; ``error`` is ``""`` for every success.
    """
    path = Path(path)
    if not path.is_file():
        return None
    frames = list(iter_request_frames(path))
    if not frames:
        return None
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def request_records(frame: pd.DataFrame | None) -> dict[StepKey, tuple[RequestRecord, ...]]:
    """The requests of every step as the RequestRecords they were written from, in file order."""
    if frame is None or frame.empty:
        return {}
    grouped: dict[StepKey, list[RequestRecord]] = {}
    key_columns = [f.name for f in fields(StepKey)]
    for row in frame[key_columns + list(RECORD_COLUMNS)].itertuples(index=False, name=None):
        target, mode, n, concurrency, rate, trial = row[:6]
        key = StepKey(str(target), str(mode), int(n), int(concurrency), float(rate), int(trial))
        values = dict(zip(RECORD_COLUMNS, row[6:], strict=True))
        grouped.setdefault(key, []).append(
            RequestRecord(
                seq=int(values["seq"]),
                intended_s=float(values["intended_s"]),
                sent_s=float(values["sent_s"]),
                latency_s=float(values["latency_s"]),
                service_s=float(values["service_s"]),
                status=int(values["status"]),
                error=str(values["error"]),
                error_detail=str(values["error_detail"]),
                bytes_out=int(values["bytes_out"]),
                bytes_in=int(values["bytes_in"]),
                label=int(values["label"]),
                predicted=int(values["predicted"]),
                sample=int(values["sample"]),
                agree=int(values["agree"]),
            )
        )
    return {key: tuple(records) for key, records in grouped.items()}


def step_results(steps: Sequence[StepSummary], frame: pd.DataFrame | None) -> list[StepResult]:
    """The StepResults a run measured: each summary row with its requests (steps without
    requests on disk are left out), so :func:`loadgen.stats.summarize` can be applied again."""
    records = request_records(frame)
    return [
        StepResult(key=s.key, records=records[s.key], total_s=_nan(s.total_s), started_at=_nan(s.started_at))
        for s in steps
        if s.key in records
    ]


def ok_latencies(frame: pd.DataFrame | None) -> dict[PooledKey, np.ndarray]:
    """Latencies of the successful requests per step, all trials pooled, in file order."""
    if frame is None or frame.empty:
        return {}
    ok = frame[frame["error"] == ""]
    out: dict[PooledKey, np.ndarray] = {}
    for (target, mode, n, c, rate), group in ok.groupby(
        ["target", "mode", "n_requests", "concurrency", "rate"], sort=False
    ):
        out[(str(target), str(mode), int(n), int(c), round(float(rate), 6))] = group["latency_s"].to_numpy(float)
    return out
