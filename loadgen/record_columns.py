"""A step's records as compact numpy columns: what a streamed step keeps for its statistics.

Why: a long step's records go to disk as they complete (:mod:`loadgen.modes` hands them to a
:class:`RecordSink`); what the step still holds for its summary, its saturation verdict and
the capacity search must not be a Python object per request (~0.5-1 KB each with its
strings).  :class:`RecordColumns` keeps one numpy value per request and field -- about
:data:`BYTES_PER_RECORD` bytes a request, so ~60 MB per million requests -- with the two
text fields (``error``, ``error_detail``) as codes into tables of their distinct values
(a step's failures repeat a handful of messages; the table grows only with distinct ones).

It is a ``Sequence[RequestRecord]`` (indexing and iterating build each record on demand),
so code that reads ``step.records`` one record at a time works unchanged, and the
statistics (:func:`loadgen.stats.summarize`, :func:`loadgen.saturation.analyze_open_loop`)
read its arrays directly: :meth:`RecordColumns.of` turns a tuple of records into columns
(small steps) or returns the columns a streamed step already has, so both take one path and
give the same numbers.  Rows are kept in ``seq`` order (the order records had before
streaming), which keeps float sums such as the mean latency identical to the last bit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol, overload

import numpy as np

from loadgen.log_histogram import LogHistogram
from loadgen.records import RequestRecord

__all__ = ["BYTES_PER_RECORD", "EXACT_RECORDS", "ColumnBuilder", "RecordColumns", "RecordSink", "StepTally"]

#: A streamed step keeps every request's columns up to this many requests (~81 MB); past it,
#: one request in ``stride`` (doubling as the step grows) plus the exact :class:`StepTally`
#: of all of them, so a step of any length holds at most this many rows.
EXACT_RECORDS = 1_000_000

_FLOATS = ("intended_s", "sent_s", "latency_s", "service_s")
_INTS: dict[str, type[np.integer]] = {
    "seq": np.int64,
    "status": np.int16,
    "bytes_out": np.int64,
    "bytes_in": np.int64,
    "label": np.int32,
    "predicted": np.int32,
    "sample": np.int64,
    "agree": np.int8,
}
_CODES = {"error_code": np.int16, "detail_code": np.int32}
#: Bytes of column data per request (the text tables come on top, per distinct value).
BYTES_PER_RECORD = (
    8 * len(_FLOATS)
    + sum(np.dtype(t).itemsize for t in _INTS.values())
    + sum(np.dtype(t).itemsize for t in _CODES.values())
)


class RecordSink(Protocol):
    """Where a running step's records go as they complete (a results file's step part)."""

    def write(self, records: Sequence[RequestRecord]) -> None:
        """Append these records (any order); raise OSError when they cannot be stored."""

    def close(self) -> None:
        """Flush what is buffered; the step has ended (also after an error)."""


class StepTally:
    """Exact aggregates over every request of a step whose rows were thinned (see :class:`ColumnBuilder`).

    What the summary row needs that a one-in-``stride`` sample cannot give exactly: counts
    (requests, successes, error classes, correct and agreeing answers, bytes), the latency
    distribution of the successes (a :class:`~loadgen.log_histogram.LogHistogram`: exact
    ranks, values within 0.1 %), the largest send lag, and the most requests in flight at
    once (counted live by :mod:`loadgen.modes`, since a sample cannot see overlaps).
    """

    def __init__(self) -> None:
        self.n = 0
        self.ok_latency = LogHistogram()
        self.error_counts: dict[str, int] = {}
        self.n_correct = 0
        self.labelled = False
        self.n_checked = 0
        self.n_agree = 0
        self.bytes_out = 0
        self.bytes_in = 0
        self.send_lag_max = -np.inf
        self.peak_in_flight: int | None = None  # None: not counted live (a merged or partial step)

    def add(self, chunk: dict[str, np.ndarray], errors: Sequence[str]) -> None:
        """Fold one chunk of columns (``error_code`` indexing ``errors``) into the aggregates."""
        codes = chunk["error_code"]
        ok = np.isin(codes, [code for code, error in enumerate(errors) if error == ""])
        self.n += int(codes.size)
        for code, count in enumerate(np.bincount(codes.astype(np.int64), minlength=len(errors))):
            if count:
                self.error_counts[errors[code]] = self.error_counts.get(errors[code], 0) + int(count)
        self.ok_latency.add(chunk["latency_s"][ok])
        label, predicted, agree = chunk["label"], chunk["predicted"], chunk["agree"]
        self.n_correct += int(np.count_nonzero(ok & (label >= 0) & (predicted == label)))
        self.labelled = self.labelled or bool(np.any(label >= 0))
        self.n_checked += int(np.count_nonzero(agree >= 0))
        self.n_agree += int(np.count_nonzero(agree == 1))
        self.bytes_out += int(np.sum(chunk["bytes_out"]))
        self.bytes_in += int(np.sum(chunk["bytes_in"]))
        lags = chunk["sent_s"] - chunk["intended_s"]
        lags = lags[~np.isnan(lags)]
        if lags.size:
            self.send_lag_max = max(self.send_lag_max, float(lags.max()))


class RecordColumns(Sequence[RequestRecord]):
    """One step's records, one numpy array per field, rows in ``seq`` order.

    ``stride`` 1 (``tally`` None): every record.  ``stride`` k > 1: the step was longer than
    :data:`EXACT_RECORDS` and the rows are the records whose ``seq`` is a multiple of k, with
    the exact aggregates of all of them in ``tally``; ``n_records`` counts all of them.
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        errors: Sequence[str],
        details: Sequence[str],
        *,
        stride: int = 1,
        tally: StepTally | None = None,
    ) -> None:
        self.arrays = arrays
        self.errors = tuple(errors)  # error_code -> error class ("" = success)
        self.details = tuple(details)  # detail_code -> error_detail
        self._n = len(arrays["seq"])
        self.stride = stride
        self.tally = tally

    def renumbered(self, offset: int) -> RecordColumns:
        """The same rows with ``seq + offset`` (a shard's records numbered within the whole step)."""
        arrays = dict(self.arrays)
        arrays["seq"] = self.arrays["seq"] + offset
        return RecordColumns(arrays, self.errors, self.details, stride=self.stride, tally=self.tally)

    @property
    def n_records(self) -> int:
        """Requests in the step (the rows held, or all of them when thinned)."""
        return self.tally.n if self.tally is not None else self._n

    @classmethod
    def of(cls, records: Sequence[RequestRecord] | RecordColumns) -> RecordColumns:
        """``records`` as columns (itself when it already is)."""
        if isinstance(records, RecordColumns):
            return records
        builder = ColumnBuilder()
        builder.add(records)
        return builder.finish()

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, index: int) -> RequestRecord: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[RequestRecord]: ...
    def __getitem__(self, index: int | slice) -> RequestRecord | Sequence[RequestRecord]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError(f"record {index} of {self._n}")
        a = self.arrays
        values = {name: float(a[name][index]) for name in _FLOATS}
        values.update({name: int(a[name][index]) for name in _INTS})
        return RequestRecord(
            error=self.errors[int(a["error_code"][index])],
            error_detail=self.details[int(a["detail_code"][index])],
            **values,
        )

    def __iter__(self) -> Iterator[RequestRecord]:
        for i in range(self._n):
            yield self[i]

    def column(self, name: str) -> np.ndarray:
        """The numeric column ``name`` (a :class:`RequestRecord` field)."""
        return self.arrays[name]

    def ok(self) -> np.ndarray:
        """Mask of the successful requests (``error == ""``)."""
        return self.error_is("")

    def error_is(self, error: str) -> np.ndarray:
        """Mask of the requests whose error class is ``error``."""
        codes = [i for i, e in enumerate(self.errors) if e == error]
        return np.isin(self.arrays["error_code"], codes)

    def error_counts(self) -> dict[str, int]:
        """Error class -> count over every request (success included as ``""``)."""
        counts = np.bincount(self.arrays["error_code"].astype(np.int64), minlength=len(self.errors))
        totals: dict[str, int] = {}
        for code, count in enumerate(counts):
            if count:
                totals[self.errors[code]] = totals.get(self.errors[code], 0) + int(count)
        return totals

    @property
    def nbytes(self) -> int:
        """Bytes held by the columns (the text tables not counted)."""
        return sum(int(a.nbytes) for a in self.arrays.values())


class ColumnBuilder:
    """Collects records chunk by chunk (any order) and finishes them into :class:`RecordColumns`.

    Bounded: once more than ``cap`` rows are held, the builder keeps only the records whose
    ``seq`` is a multiple of a stride (2, then 4, ...: a systematic sample, spread evenly over
    the step, which is what the saturation verdict's quarter medians need) and folds every
    record into a :class:`StepTally` first.  Held rows stay within ``cap``: a step of any
    length costs at most ``cap`` x :data:`BYTES_PER_RECORD` plus the tally's 120 KB.
    """

    def __init__(self, cap: int | None = None) -> None:
        cap = EXACT_RECORDS if cap is None else cap  # read at call time: tests lower it
        if cap < 2:
            raise ValueError(f"a column builder holds at least 2 rows, got cap={cap}")
        self._chunks: list[dict[str, np.ndarray]] = []
        self._errors: dict[str, int] = {"": 0}
        self._details: dict[str, int] = {"": 0}
        self.cap = cap
        self.stride = 1
        self.tally: StepTally | None = None
        self._held = 0

    def add(self, records: Iterable[RequestRecord]) -> None:
        """Append ``records`` as one chunk of columns."""
        rows = list(records)
        if not rows:
            return
        chunk = {name: np.fromiter((getattr(r, name) for r in rows), np.float64, len(rows)) for name in _FLOATS}
        for name, dtype in _INTS.items():
            chunk[name] = np.fromiter((getattr(r, name) for r in rows), dtype, len(rows))
        chunk["error_code"] = np.fromiter((self._code(self._errors, r.error) for r in rows), np.int16, len(rows))
        chunk["detail_code"] = np.fromiter(
            (self._code(self._details, r.error_detail) for r in rows), np.int32, len(rows)
        )
        self._append(chunk)

    def add_columns(self, chunk: dict[str, np.ndarray], errors: Sequence[str], details: Sequence[str]) -> None:
        """Append one chunk already in columns (e.g. read back from disk), whose ``error_code``
        and ``detail_code`` index ``errors`` and ``details``; the arrays are not kept by reference."""
        error_codes = np.array([self._code(self._errors, e) for e in errors] or [0], dtype=np.int16)
        detail_codes = np.array([self._code(self._details, d) for d in details] or [0], dtype=np.int32)
        dtypes = {**dict.fromkeys(_FLOATS, np.float64), **_INTS}
        columns = {name: np.asarray(chunk[name], dtype=dtype) for name, dtype in dtypes.items()}
        columns["error_code"] = error_codes[np.asarray(chunk["error_code"], dtype=np.int64)]
        columns["detail_code"] = detail_codes[np.asarray(chunk["detail_code"], dtype=np.int64)]
        if len(columns["seq"]):
            self._append(columns)

    def _append(self, chunk: dict[str, np.ndarray]) -> None:
        if self.tally is not None:
            self.tally.add(chunk, list(self._errors))
            chunk = _every(chunk, self.stride)
        self._chunks.append(chunk)
        self._held += len(chunk["seq"])
        while self._held > self.cap:
            self._thin()

    def _thin(self) -> None:
        """Double the stride: fold the held rows into the tally (the first time) and keep half."""
        if self.tally is None:
            self.tally = StepTally()
            for chunk in self._chunks:
                self.tally.add(chunk, list(self._errors))
        self.stride *= 2
        self._chunks = [_every(chunk, self.stride) for chunk in self._chunks]
        self._held = sum(len(chunk["seq"]) for chunk in self._chunks)

    @staticmethod
    def _code(table: dict[str, int], text: str) -> int:
        code = table.get(text)
        if code is None:
            code = table[text] = len(table)
        return code

    def finish(self, peak_in_flight: int | None = None) -> RecordColumns:
        """The columns of every record added (or the sample, when thinned), sorted by ``seq``.

        ``peak_in_flight``: the most requests in flight at once, counted live by the step
        (kept in the tally; a thinned sample cannot count overlaps). None when nobody
        counted it (a merge, a killed step's partial row): the saturation verdict then
        estimates it from the sample (:func:`loadgen.saturation.analyze_open_loop`).
        """
        # One column at a time, its chunks dropped as it is joined and sorted: the peak is the
        # columns plus one column and the sort order, not two or three copies of everything.
        dtypes = {**dict.fromkeys(_FLOATS, np.float64), **_INTS, **_CODES}
        arrays: dict[str, np.ndarray] = {}
        order: np.ndarray | None = None
        for name in ("seq", *(n for n in dtypes if n != "seq")):
            parts = [chunk.pop(name) for chunk in self._chunks]
            column = np.concatenate(parts) if parts else np.zeros(0, dtype=dtypes[name])
            del parts
            if order is None:
                order = np.argsort(column, kind="stable")
                if np.array_equal(order, np.arange(order.size)):
                    order = np.zeros(0, dtype=np.int64)  # already in seq order
            arrays[name] = column[order] if order.size else column
            del column
        self._chunks = []
        if self.tally is not None:
            self.tally.peak_in_flight = peak_in_flight
        return RecordColumns(arrays, list(self._errors), list(self._details), stride=self.stride, tally=self.tally)


def _every(chunk: dict[str, np.ndarray], stride: int) -> dict[str, np.ndarray]:
    """The rows of ``chunk`` whose ``seq`` is a multiple of ``stride``."""
    keep = chunk["seq"] % stride == 0
    return {name: column[keep] for name, column in chunk.items()}
