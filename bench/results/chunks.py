"""Read requests.csv.gz in bounded chunks: its rows as a stream of DataFrames of a few columns.

Why: a run's raw records grow with its length (about 110 bytes of CSV and 750 bytes of
DataFrame per record when read whole), so a soak of millions of requests cannot be read
into memory at once. Here the file is decompressed block by block, member after member,
and cut into chunks of about :data:`CHUNK_BYTES` of CSV text at record boundaries; each
chunk is parsed with only the columns the caller needs. Memory is then bounded by one
chunk plus whatever the caller keeps (compact numpy arrays, :mod:`bench.results.digest`).

Damage is handled as the whole-file reader always did: a gzip member truncated by a crash
(or corrupt data) ends the stream after its last complete line, and every complete line
before it is kept. Columns an older file lacks get their defaults
(:func:`normalise_requests`, shared with :func:`bench.results.parse.read_requests_csv`).
Pure apart from reading the given file; no printing.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CHUNK_BYTES",
    "REQUEST_DEFAULTS",
    "ReadError",
    "iter_csv_blocks",
    "iter_request_frames",
    "normalise_requests",
]

#: CSV text per parsed chunk (about 60,000 records): the reader's memory, whatever the run's length.
CHUNK_BYTES = 8 * 1024 * 1024
_READ_BYTES = 1024 * 1024  # compressed bytes read from disk at a time
# Request columns an older requests.csv.gz may lack, and what they read as.
REQUEST_DEFAULTS: dict[str, Any] = {
    "service_s": math.nan,
    "error_detail": "",
    "bytes_out": 0,
    "bytes_in": 0,
    "label": -1,
    "predicted": -1,
    "status": 0,
    "sample": -1,
}
_FLOAT_COLUMNS = ("latency_s", "sent_s", "service_s", "intended_s")  # an empty cell is NaN
_TEXT_COLUMNS = ("target", "mode", "error", "error_detail")  # "" when empty
_REQUIRED = ("target", "mode", "n_requests", "trial", "latency_s", "error")


class ReadError(ValueError):
    """A results file that cannot be read as what servebench writes; the message names it."""


def _record_end(block: bytes | bytearray) -> int:
    """Index just past the last newline of ``block`` that ends a CSV record (not inside quotes)."""
    end = block.rfind(b"\n")
    quotes = block.count(b'"')
    if not quotes:
        return end + 1
    while end >= 0:
        if (quotes - block.count(b'"', end)) % 2 == 0:  # an even number of quotes before it: outside
            return end + 1
        end = block.rfind(b"\n", 0, end)
    return 0


def _decompressed(path: Path) -> Iterator[bytes]:
    """The decompressed bytes of every gzip member of ``path`` in order, in pieces of at most
    :data:`_READ_BYTES`; stops quietly at the first damaged byte or at the end of the file."""
    member = zlib.decompressobj(wbits=31)  # 31: gzip framing, one member at a time
    with Path(path).open("rb") as handle:
        while raw := handle.read(_READ_BYTES):
            while raw:
                try:
                    piece = member.decompress(raw, _READ_BYTES)
                except zlib.error:
                    return
                yield piece
                if member.eof:
                    raw = member.unused_data
                    member = zlib.decompressobj(wbits=31)
                else:
                    raw = member.unconsumed_tail


def iter_csv_blocks(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The decompressed CSV text of ``path`` in blocks of about ``chunk_bytes``, each ending at a
    record boundary (the first block starts with the header line).

    Concatenated gzip members are read one after the other; a truncated or corrupt member
    ends the stream after the last complete record decompressed before it.
    """
    pending = bytearray()
    for piece in _decompressed(path):
        pending += piece
        if len(pending) >= chunk_bytes:
            end = _record_end(pending)
            if end:
                yield bytes(pending[:end])
                del pending[:end]
    end = _record_end(pending)  # the stream has ended: a record cut short by a crash is dropped
    if end:
        yield bytes(pending[:end])


def normalise_requests(frame: pd.DataFrame, path: Path, *, required: Sequence[str] = _REQUIRED) -> pd.DataFrame:
    """Defaults for columns an older file lacks; ``concurrency`` derived; text columns as ``str``.

    ReadError naming ``path`` when a ``required`` column is missing.
    """
    missing = set(required) - set(frame.columns)
    if missing:
        raise ReadError(f"{path} lacks columns {sorted(missing)}; is it a servebench requests.csv.gz?")
    for column, default in (("concurrency", None), ("rate", 0.0), *REQUEST_DEFAULTS.items()):
        if column not in frame.columns:
            frame[column] = default
    if frame["concurrency"].isna().any():
        frame["concurrency"] = np.where(frame["mode"] == "sequential", 1, frame["n_requests"])
    if "agree" not in frame.columns and {"error", "label", "predicted"} <= set(frame.columns):
        # schema < 4: MNIST only; a success agreed when its digit was right
        ok = frame["error"].astype(str).isin(["", "nan"])
        frame["agree"] = np.where(ok, (frame["predicted"] == frame["label"]).astype(int), -1)
    for column in _TEXT_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].astype(str)
    return frame


def _parse(block: bytes, header: list[str] | None, usecols: list[str] | None, path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(
            io.BytesIO(block),
            header=0 if header is None else None,
            names=header,
            usecols=usecols,
            keep_default_na=False,
            na_values={c: [""] for c in _FLOAT_COLUMNS},
            float_precision="round_trip",
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise ReadError(f"{path} is not a readable CSV: {exc}") from None


def iter_request_frames(
    path: Path, columns: Sequence[str] | None = None, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[pd.DataFrame]:
    """The rows of requests.csv.gz as DataFrames of at most about ``chunk_bytes`` of text each, in
    file order, normalised like :func:`bench.results.parse.read_requests_csv`.

    ``columns``: only these (the step key columns needed to tell steps apart are the
    caller's to name); None = every column of the file. A column the file lacks comes back
    with its default. Nothing is yielded for a file without records.
    """
    path = Path(path)
    header: list[str] | None = None
    for block in iter_csv_blocks(path, chunk_bytes):
        if header is None:
            first = block[: block.find(b"\n") + 1]
            header = pd.read_csv(io.BytesIO(first), nrows=0).columns.map(str).to_list()
            block = block[len(first) :]
            missing = set(_REQUIRED) - set(header)
            if missing:
                raise ReadError(f"{path} lacks columns {sorted(missing)}; is it a servebench requests.csv.gz?")
            if not block:
                continue
        usecols = None if columns is None else [c for c in header if c in set(columns) | {"mode", "n_requests"}]
        frame = _parse(block, header, usecols, path)
        frame = normalise_requests(frame, path, required=())
        yield frame if columns is None else frame[list(columns)]


#: The numeric record columns and their dtypes, as :class:`loadgen.record_columns.RecordColumns` holds them.
RECORD_FLOATS = ("intended_s", "sent_s", "latency_s", "service_s")
RECORD_INTS = ("seq", "status", "bytes_out", "bytes_in", "label", "predicted", "sample", "agree")


def record_arrays(frame: pd.DataFrame, where: str) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """A frame of request rows as column arrays for ``ColumnBuilder.add_columns``: the numeric
    columns, ``error_code``/``detail_code`` and the two text tables they index; no record objects.

    The one conversion the readers of requests.csv.gz share (a killed step's partial row, the
    merge). ReadError naming ``where`` and the column when a numeric column is not all numbers.
    """
    arrays: dict[str, np.ndarray] = {}
    for names, dtype in ((RECORD_FLOATS, np.float64), (RECORD_INTS, np.int64)):
        for name in names:
            try:
                arrays[name] = frame[name].astype(dtype).to_numpy()
            except (TypeError, ValueError) as exc:
                raise ReadError(f"{where}: requests.csv.gz column {name!r} is not all numbers ({exc})") from None
    error_codes, errors = pd.factorize(frame["error"].astype(str))
    detail_codes, details = pd.factorize(frame["error_detail"].astype(str))
    arrays["error_code"], arrays["detail_code"] = error_codes, detail_codes
    return arrays, list(errors), list(details)
