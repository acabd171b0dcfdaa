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

from loadgen.records import RequestRecord

__all__ = ["BYTES_PER_RECORD", "ColumnBuilder", "RecordColumns", "RecordSink"]

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


class RecordColumns(Sequence[RequestRecord]):
    """One step's records, one numpy array per field, rows in ``seq`` order."""

    def __init__(self, arrays: dict[str, np.ndarray], errors: Sequence[str], details: Sequence[str]) -> None:
        self.arrays = arrays
        self.errors = tuple(errors)  # error_code -> error class ("" = success)
        self.details = tuple(details)  # detail_code -> error_detail
        self._n = len(arrays["seq"])

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
    """Collects records chunk by chunk (any order) and finishes them into :class:`RecordColumns`."""

    def __init__(self) -> None:
        self._chunks: list[dict[str, np.ndarray]] = []
        self._errors: dict[str, int] = {"": 0}
        self._details: dict[str, int] = {"": 0}

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
        self._chunks.append(chunk)

    @staticmethod
    def _code(table: dict[str, int], text: str) -> int:
        code = table.get(text)
        if code is None:
            code = table[text] = len(table)
        return code

    def finish(self) -> RecordColumns:
        """The columns of every record added, sorted by ``seq``."""
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
        return RecordColumns(arrays, list(self._errors), list(self._details))
