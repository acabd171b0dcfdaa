"""Reading results back into the records they were written from: the one reader of summary.csv
and requests.csv.gz.

Why one module: ``bench run`` writes :class:`~loadgen.records.RequestRecord` rows and
:func:`loadgen.stats.summarize` rows; ``bench report`` and ``bench compare`` used to read them
back as raw DataFrames, each guessing which columns an older file lacked. Here every summary
row becomes a :class:`StepSummary` -- the same fields whichever schema wrote it -- and every
request row a ``RequestRecord`` of its :class:`~loadgen.records.StepKey`, so the code above
works with one shape and :mod:`loadgen.stats` applies to what was read as to what was measured.

Older files (schema 1, before the open-loop columns; schema 2, before the percentile
bounds; hand-made summaries) are read, not refused, where the data allows. What is missing
becomes ``None`` or is derived, once, here:

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
import io
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loadgen.records import RECORD_COLUMNS, RequestRecord, StepKey, StepResult
from loadgen.stats import (
    FLAG_SATURATED,
    SUMMARY_COLUMNS,
    format_error_counts,
    format_flags,
    parse_error_counts,
    step_flags,
)

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
# Request columns an older requests.csv.gz may lack, and what they read as.
_REQUEST_DEFAULTS: dict[str, Any] = {"service_s": math.nan, "error_detail": "", "bytes_out": 0, "bytes_in": 0,
                                     "label": -1, "predicted": -1, "status": 0}

PooledKey = tuple[str, str, int, int, float]  # target, mode, n_requests, concurrency, rate: trials pooled


class ReadError(ValueError):
    """A results file that cannot be read as what servebench writes; the message names it."""


def _float(value: Any) -> float | None:
    """A number from a CSV cell or a row value; None for empty, NaN and unreadable cells."""
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _int(value: Any) -> int | None:
    number = _float(value)
    return None if number is None or math.isinf(number) else int(round(number))


def _nan(value: float | int | None) -> float | int:
    return math.nan if value is None else value


@dataclass(frozen=True)
class StepSummary:
    """One summary.csv row: the statistics of one step of one trial (see :mod:`loadgen.stats`)."""

    key: StepKey
    started_at: float | None
    total_s: float | None
    throughput_rps: float | None
    n_ok: int
    errors: int
    errors_by_class: Mapping[str, int]
    lat_mean_s: float | None
    lat_min_s: float | None
    lat_p50_s: float | None
    lat_p90_s: float | None
    lat_p95_s: float | None
    lat_p99_s: float | None
    lat_p999_s: float | None
    lat_max_s: float | None
    lat_p50_lo_s: float | None
    lat_p50_hi_s: float | None
    lat_p90_lo_s: float | None
    lat_p90_hi_s: float | None
    lat_p95_lo_s: float | None
    lat_p95_hi_s: float | None
    lat_p99_lo_s: float | None
    lat_p99_hi_s: float | None
    lat_p999_lo_s: float | None
    lat_p999_hi_s: float | None
    n_correct: int | None
    accuracy: float | None
    accuracy_ok: float | None
    bytes_out: int | None
    bytes_in: int | None
    offered_rps: float | None
    achieved_rps: float | None
    send_lag_p50_s: float | None
    send_lag_max_s: float | None
    lag_growth_s: float | None
    saturated: bool
    flags: frozenset[str]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StepSummary:
        """The typed row of a summary.csv line (or a :func:`loadgen.stats.summarize` dict)."""
        missing = [c for c in ("target", "mode", "n_requests", "trial") if _blank(row.get(c))]
        if missing:
            raise ReadError(f"summary row lacks {', '.join(missing)}: {dict(row)}")
        mode, n = str(row["mode"]), _int(row["n_requests"])
        if n is None:
            raise ReadError(f"summary row has n_requests {row['n_requests']!r}, not a count")
        try:
            classes = parse_error_counts(row.get("errors_by_class") if isinstance(row.get("errors_by_class"), str)
                                         else "")
        except ValueError as exc:
            raise ReadError(f"summary row {row.get('target')}/{mode}/N={n}: {exc}") from None
        errors, n_ok = _int(row.get("errors")), _int(row.get("n_ok"))
        if errors is None:
            errors = n - n_ok if n_ok is not None else sum(classes.values())
        if n_ok is None:
            n_ok = n - errors
        concurrency, trial = _int(row.get("concurrency")), _int(row["trial"])
        if trial is None:
            raise ReadError(f"summary row {row.get('target')}/{mode}/N={n} has trial {row['trial']!r}, not a number")
        if concurrency is None:
            concurrency = 1 if mode == "sequential" else n
        key = StepKey(str(row["target"]), mode, n, concurrency, _float(row.get("rate")) or 0.0, trial)
        accuracy = _float(row.get("accuracy"))
        n_correct = _int(row.get("n_correct"))
        if n_correct is None and accuracy is not None:
            n_correct = int(round(accuracy * n))
        flags = step_flags({**row, "errors": errors, "n_ok": n_ok, "n_requests": n})
        stats = {name: _float(row.get(name)) for name in _FLOAT_FIELDS}
        return cls(key=key, n_ok=n_ok, errors=errors, errors_by_class=classes, n_correct=n_correct,
                   bytes_out=_int(row.get("bytes_out")), bytes_in=_int(row.get("bytes_in")),
                   saturated=FLAG_SATURATED in flags, flags=flags, **stats)

    def as_row(self) -> dict[str, Any]:
        """The summary row (keys :data:`loadgen.stats.SUMMARY_COLUMNS`), ``None`` as NaN."""
        key = self.key
        row: dict[str, Any] = {"target": key.target, "mode": key.mode, "n_requests": key.n_requests,
                               "concurrency": key.concurrency, "rate": key.rate, "trial": key.trial}
        for name in SUMMARY_COLUMNS[len(row):]:
            value = getattr(self, name)
            if name == "errors_by_class":
                value = format_error_counts(value)
            elif name == "flags":
                value = format_flags(value)
            elif name != "saturated":
                value = _nan(value)
            row[name] = value
        return row


_KEY_FIELDS = ("target", "mode", "n_requests", "concurrency", "rate", "trial")
_FLOAT_FIELDS = tuple(f.name for f in fields(StepSummary) if f.type == "float | None")
assert tuple(_KEY_FIELDS) + tuple(f.name for f in fields(StepSummary))[1:] == SUMMARY_COLUMNS, \
    "StepSummary and loadgen.stats.SUMMARY_COLUMNS drifted apart"


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (
        isinstance(value, float) and math.isnan(value))


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
    except ReadError as exc:
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

    A gzip member truncated by a crash is dropped after its last complete line. Columns an
    older file lacks get their defaults; ``error`` is ``""`` for every success.
    """
    path = Path(path)
    if not path.is_file():
        return None
    raw = path.read_bytes()
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
    try:
        frame = pd.read_csv(io.BytesIO(data), keep_default_na=False, na_values={"latency_s": [""], "sent_s": [""],
                            "service_s": [""], "intended_s": [""]}, float_precision="round_trip")
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ReadError(f"{path} is not a readable CSV: {exc}") from None
    missing = {"target", "mode", "n_requests", "trial", "latency_s", "error"} - set(frame.columns)
    if missing:
        raise ReadError(f"{path} lacks columns {sorted(missing)}; is it a servebench requests.csv.gz?")
    for column, default in (("concurrency", None), ("rate", 0.0), *_REQUEST_DEFAULTS.items()):
        if column not in frame.columns:
            frame[column] = default
    if frame["concurrency"].isna().any():
        frame["concurrency"] = np.where(frame["mode"] == "sequential", 1, frame["n_requests"])
    for column in ("target", "mode", "error", "error_detail"):  # text, "" when empty (keep_default_na=False)
        frame[column] = frame[column].astype(str)
    return frame


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
        grouped.setdefault(key, []).append(RequestRecord(
            seq=int(values["seq"]), intended_s=float(values["intended_s"]), sent_s=float(values["sent_s"]),
            latency_s=float(values["latency_s"]), service_s=float(values["service_s"]), status=int(values["status"]),
            error=str(values["error"]), error_detail=str(values["error_detail"]), bytes_out=int(values["bytes_out"]),
            bytes_in=int(values["bytes_in"]), label=int(values["label"]), predicted=int(values["predicted"])))
    return {key: tuple(records) for key, records in grouped.items()}


def step_results(steps: Sequence[StepSummary], frame: pd.DataFrame | None) -> list[StepResult]:
    """The StepResults a run measured: each summary row with its requests (steps without
    requests on disk are left out), so :func:`loadgen.stats.summarize` can be applied again."""
    records = request_records(frame)
    return [StepResult(key=s.key, records=records[s.key], total_s=_nan(s.total_s), started_at=_nan(s.started_at))
            for s in steps if s.key in records]


def ok_latencies(frame: pd.DataFrame | None) -> dict[PooledKey, np.ndarray]:
    """Latencies of the successful requests per step, all trials pooled, in file order."""
    if frame is None or frame.empty:
        return {}
    ok = frame[frame["error"] == ""]
    out: dict[PooledKey, np.ndarray] = {}
    for (target, mode, n, c, rate), group in ok.groupby(["target", "mode", "n_requests", "concurrency", "rate"],
                                                         sort=False):
        out[(str(target), str(mode), int(n), int(c), round(float(rate), 6))] = group["latency_s"].to_numpy(float)
    return out
