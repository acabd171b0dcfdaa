"""Write a run folder as it is measured: summary rows, per-step gzip members, meta.json.

Why rows are written immediately: a run can be interrupted, or a target can die, after many
minutes of measuring; everything measured up to then must survive. ``summary.csv`` is
appended and flushed per step; ``requests.csv.gz`` gets complete gzip *members* per step
(one, or one per :data:`ROWS_PER_MEMBER` records of a long step; concatenated members are
one valid gzip stream), so a crash can at worst truncate the member being written, and the
readers (:mod:`bench.results.chunks`) keep every complete line before it. ``meta.json``
is replaced atomically (write temp, rename), always from a :class:`ground.runmeta.RunMeta`
(:func:`write_meta_file`). Other results files that grow
as they are measured (the capacity search's) use :func:`append_csv_rows`.

Every writer here takes a :class:`ground.redactor.Redactor` (``bench.redact_secrets.redactor_for``)
and applies it to every text it writes -- ``error_detail`` of each request (where a remote
endpoint's echo of a token would otherwise land), summary cells, ``meta.json`` -- so all
the paths that produce such text pass one rule at the one place they all reach.
"""

from __future__ import annotations

import csv
import errno
import gzip
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from bench.results.header import scrub
from bench.results.layout import (
    META_FILE,
    REQUESTS_FILE,
    SUMMARY_FILE,
    ResultsError,
    refuse_existing_run,
    validate_run_id,
)
from bench.results.parse import REQUEST_KEY_COLUMNS
from ground.redactor import Redactor
from ground.runmeta import RunMeta
from loadgen.records import RECORD_COLUMNS, StepKey

__all__ = [
    "CHECKPOINT_S",
    "ROWS_PER_MEMBER",
    "ResultsWriteError",
    "RunWriter",
    "StepSink",
    "append_csv_rows",
    "write_json_atomic",
    "write_meta_file",
]

#: Records per gzip member of requests.csv.gz (about 2 MB of CSV text): a long step is
#: written as several members, so the writer never holds a whole step's text.
ROWS_PER_MEMBER = 20_000
#: Seconds a streamed step's records wait in memory at most before their member is written,
#: flushed and fsynced (and meta.json's checkpoint rewritten): what a killed run can lose.
CHECKPOINT_S = 2.0


class ResultsWriteError(ResultsError):
    """A results file could not be written (the disk is full, or it went away): the run must stop."""

    def __init__(self, path: Path, exc: OSError) -> None:
        self.path, self.errno = path, exc.errno
        why = "the disk is full (ENOSPC)" if exc.errno == errno.ENOSPC else f"{exc.strerror or exc}"
        super().__init__(f"cannot write {path}: {why}; what was written before it is kept and readable")


def write_json_atomic(path: Path, data: Mapping[str, Any], redactor: Redactor | None = None) -> None:
    """Write JSON to a temp file then rename, so readers never see half a file.

    With ``redactor``, the serialised text is redacted (every string, whatever its type was).
    """
    text = json.dumps(data, indent=2, sort_keys=False, default=str)
    if redactor:
        text = json.dumps(redactor.redact_data(json.loads(text)), indent=2, sort_keys=False)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk must not leave a truncated meta.json.tmp beside the run
        raise


def write_meta_file(directory: Path, meta: RunMeta, redactor: Redactor | None = None) -> None:
    """Write a run's meta.json (atomically, secret-looking keys scrubbed, values redacted).

    The one way every kind of run writes its metadata.
    """
    write_json_atomic(Path(directory) / META_FILE, scrub(meta.to_json()), redactor)


class RunWriter:
    """Appends measured rows to one run folder; created empty (refuses to overwrite a run).

    ``redactor`` is applied to every text cell and to meta.json before they are written.
    ``extra_request_columns`` follow the record columns in requests.csv.gz (``bench merge``
    adds ``shard``); their cells come with each :meth:`append_request_columns`.  ``expected``: run
    markers the folder may already hold (``bench merge`` writes beside :data:`SHARDS_DIR`).
    """

    def __init__(
        self,
        directory: Path,
        run_id: str,
        summary_columns: Sequence[str],
        redactor: Redactor | None = None,
        extra_request_columns: Sequence[str] = (),
        expected: Sequence[str] = (),
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
        try:
            csv.writer(self._summary).writerow([self._text(full.get(c, "")) for c in self.summary_columns])
            self._summary.flush()
            os.fsync(self._summary.fileno())
        except OSError as exc:
            raise ResultsWriteError(self.summary_path, exc) from exc
        self.rows_written += 1

    def append_requests(self, key: StepKey, records: Iterable[Any]) -> None:
        """All records of one step appended to requests.csv.gz as complete gzip members.

        A member holds at most :data:`ROWS_PER_MEMBER` records, so the text being compressed
        stays bounded however long the step (``records`` may be a generator); a step of up to
        that many records is one member. A file with extra request columns is written by
        :meth:`append_request_columns` instead.
        """
        if self._extra_columns:
            raise ResultsError(
                f"requests.csv.gz has {self._extra_columns} extra column(s): append with append_request_columns"
            )
        self._write_members(key, ([self._text(getattr(record, c)) for c in RECORD_COLUMNS] for record in records))

    def append_request_columns(self, key: StepKey, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> None:
        """Records of step ``key`` given as columns -- one per name of :data:`RECORD_COLUMNS` and
        per extra request column, all of one length (lists or numpy arrays) -- appended like
        :meth:`append_requests` (the same text: numbers as Python writes them, NaN empty, text
        redacted), without a record object per row. Call it once per chunk of a long step:
        the rows of one call are what this method holds as Python values.
        """
        names = self.request_columns[len(REQUEST_KEY_COLUMNS) :]
        missing = [name for name in names if name not in columns]
        if missing:
            raise ResultsError(f"request columns missing: {missing}")
        lengths = {len(columns[name]) for name in names}
        if len(lengths) > 1:
            raise ResultsError(f"request columns of different lengths: {sorted(lengths)}")
        total = lengths.pop() if lengths else 0

        def rows() -> Iterator[tuple[Any, ...]]:  # Python values for one member's rows at a time
            for start in range(0, total, ROWS_PER_MEMBER):
                cells = [_column_cells(columns[name][start : start + ROWS_PER_MEMBER], self._text) for name in names]
                yield from zip(*cells, strict=True)

        self._write_members(key, rows())

    def _write_members(self, key: StepKey, rows: Iterable[Sequence[Any]]) -> None:
        """``rows`` (the cells after the key, ready to write) appended as gzip members of at most
        ROWS_PER_MEMBER rows."""
        prefix = [self.run_id, key.target, key.mode, key.n_requests, key.concurrency, key.rate, key.trial]
        count = 0
        with self.requests_path.open("ab") as handle:
            text = io.StringIO()
            writer = csv.writer(text)
            if not self._requests_header_written:
                writer.writerow(self.request_columns)
            in_member = 0
            for row in rows:
                writer.writerow(prefix + list(row))
                count += 1
                in_member += 1
                if in_member == ROWS_PER_MEMBER:
                    handle.write(gzip.compress(text.getvalue().encode("utf-8"), compresslevel=6, mtime=0))
                    text.seek(0)
                    text.truncate()
                    in_member = 0
            if text.tell():
                handle.write(gzip.compress(text.getvalue().encode("utf-8"), compresslevel=6, mtime=0))
            handle.flush()
            os.fsync(handle.fileno())
        self._requests_header_written = True
        self.requests_written += count

    def step_sink(
        self,
        key: StepKey,
        on_checkpoint: Callable[[StepKey, int, float, float], None] | None = None,
        opener: Callable[[Path], IO[bytes]] | None = None,
    ) -> StepSink:
        """A :class:`StepSink` appending step ``key``'s records to requests.csv.gz as they come.

        ``on_checkpoint(key, records_written, wall_time, step_started_at)`` is called after each member is on
        disk (the runner records it in meta.json).  ``opener`` opens the file for appending
        (tests inject a failing file).
        """
        return StepSink(self, key, on_checkpoint, opener or (lambda path: path.open("ab")))

    def _request_rows(self, key: StepKey, records: Iterable[Any]) -> Iterable[list[Any]]:
        prefix = [self.run_id, key.target, key.mode, key.n_requests, key.concurrency, key.rate, key.trial]
        for record in records:
            yield prefix + [self._text(getattr(record, c)) for c in RECORD_COLUMNS]

    def close(self) -> None:
        if not self._summary.closed:
            self._summary.close()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StepSink:
    """One step's records streamed to requests.csv.gz: gzip members bounded by count and time.

    Records are buffered as CSV text; a member is written, flushed and fsynced when
    :data:`ROWS_PER_MEMBER` records are buffered or :data:`CHECKPOINT_S` seconds have
    passed since the last one (each member is independently readable, so a run killed
    mid-step keeps every member written).  An OSError of the file layer becomes a
    :class:`ResultsWriteError` naming the file and why; after it the sink writes nothing
    more (a half-written member is at most a truncated tail the readers skip).
    """

    def __init__(
        self,
        writer: RunWriter,
        key: StepKey,
        on_checkpoint: Callable[[StepKey, int, float, float], None] | None,
        opener: Callable[[Path], IO[bytes]],
    ) -> None:
        self.writer, self.key, self.on_checkpoint, self.opener = writer, key, on_checkpoint, opener
        self.text = io.StringIO()
        self.csv = csv.writer(self.text)
        self.buffered = 0
        self.written = 0
        self.last_flush = time.monotonic()
        self.started_at = time.time()  # wall clock: the step's start for a report of a killed run
        self.failed: ResultsWriteError | None = None

    def write(self, records: Sequence[Any]) -> None:
        """Buffer ``records``; write a member when the count or the time bound is reached."""
        if self.failed is not None:
            raise self.failed
        self.csv.writerows(self.writer._request_rows(self.key, records))
        self.buffered += len(records)
        if self.buffered >= ROWS_PER_MEMBER or time.monotonic() - self.last_flush >= CHECKPOINT_S:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered as one gzip member, flushed and fsynced; then the checkpoint."""
        if self.failed is not None:
            raise self.failed
        self.last_flush = time.monotonic()
        if not self.buffered and self.writer._requests_header_written:
            return
        header = ""
        if not self.writer._requests_header_written:
            out = io.StringIO()
            csv.writer(out).writerow(self.writer.request_columns)
            header = out.getvalue()
        member = gzip.compress((header + self.text.getvalue()).encode("utf-8"), compresslevel=6, mtime=0)
        path = self.writer.requests_path
        try:
            with self.opener(path) as handle:
                handle.write(member)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            self.failed = ResultsWriteError(path, exc)
            raise self.failed from exc
        self.writer._requests_header_written = True
        self.written += self.buffered
        self.writer.requests_written += self.buffered
        self.buffered = 0
        self.text.seek(0)
        self.text.truncate()
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.key, self.written, time.time(), self.started_at)

    def close(self) -> None:
        """Write the rest (the step ended); nothing after a failure."""
        if self.failed is None and self.buffered:
            self.flush()


def _column_cells(values: Sequence[Any] | np.ndarray, text: Callable[[Any], Any]) -> list[Any]:
    """One column's cells as :meth:`RunWriter.append_requests` writes them: numbers as Python
    numbers (NaN empty), every other value through ``text`` (once per distinct value)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "iub":
        return values.tolist()
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        cells = values.tolist()
        return [c if c == c else "" for c in cells] if np.isnan(values).any() else cells
    seen: dict[Any, Any] = {}
    out = []
    for value in values.tolist() if isinstance(values, np.ndarray) else values:
        try:
            out.append(seen[value])
        except KeyError:
            out.append(seen.setdefault(value, text(value)))
        except TypeError:  # unhashable: no cache
            out.append(text(value))
    return out


def _cell(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN -> empty cell, read back as NaN
        return ""
    if isinstance(value, Mapping):
        return ";".join(f"{k}:{v}" for k, v in value.items())
    return value


def append_csv_rows(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Append rows to a CSV (header first when the file is new), flushed to disk at once.

    NaN is written as an empty cell; a row with a column not in ``columns`` raises ValueError.
    """
    new = not path.is_file()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(columns)
        for row in rows:
            unknown = set(row) - set(columns)
            if unknown:
                raise ValueError(f"{path.name} row has columns not in the header: {sorted(unknown)}")
            writer.writerow([_nan_empty(row.get(c, "")) for c in columns])
        handle.flush()
        os.fsync(handle.fileno())


def _nan_empty(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return value
