"""One shard's requests.csv.gz, step by step in file order, as chunks of columns (never record objects).

Why: a merged step may hold millions of requests, and ``bench merge`` must not hold them
(issue 25).  A shard writes its steps one after the other in the plan's order, each as
consecutive rows, so the file can be read once, front to back, in the bounded chunks of
:func:`bench.results.chunks.iter_request_frames`: :meth:`StepFrames.take` hands over the
next step's rows chunk by chunk and keeps what a chunk holds of the step after it for the
next call.  Memory: one chunk (:data:`CHUNK_BYTES` of CSV text) per shard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from bench.results.chunks import CHUNK_BYTES as _DEFAULT_CHUNK_BYTES
from bench.results.chunks import ReadError, iter_request_frames
from loadgen.records import RECORD_COLUMNS, StepKey

__all__ = ["CHUNK_BYTES", "KEY_COLUMNS", "StepFrames"]

#: CSV text per chunk read from a shard's file (read at call time: tests lower it to cut steps across chunks).
CHUNK_BYTES = _DEFAULT_CHUNK_BYTES
KEY_COLUMNS = ("target", "mode", "n_requests", "concurrency", "rate", "trial")


def _leading_run(frame: pd.DataFrame) -> int:
    """How many rows from the top of ``frame`` share its first row's step key."""
    same = np.ones(len(frame), dtype=bool)
    for column in KEY_COLUMNS:
        values = frame[column].to_numpy()
        same &= values == values[0]
    return len(frame) if same.all() else int(np.argmin(same))


def _key_of(frame: pd.DataFrame, path: Path) -> StepKey:
    """The step key of ``frame``'s first row; ReadError naming ``path`` when it is not one."""
    row = frame.iloc[0]
    try:
        return StepKey.from_mapping(row)
    except (TypeError, ValueError) as exc:
        raise ReadError(f"{path}: a request row's step key is unreadable ({exc}): {dict(row)}") from None


class StepFrames:
    """A shard's request rows step by step (file order), each step as a stream of chunks."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._frames = iter_request_frames(self.path, columns=[*KEY_COLUMNS, *RECORD_COLUMNS], chunk_bytes=CHUNK_BYTES)
        self._pending: pd.DataFrame | None = None  # rows read and not yet handed over

    def _head(self) -> pd.DataFrame | None:
        """The rows not yet handed over (reading the next chunk when none are left); None at the end."""
        while self._pending is None or self._pending.empty:
            self._pending = next(self._frames, None)
            if self._pending is None:
                return None
        return self._pending

    def take(self, same_step: Callable[[StepKey], bool]) -> Iterator[pd.DataFrame]:
        """The rows of the next step, chunk by chunk, if ``same_step(its key)``; else none (a share
        of 0 requests, or a step the shard lacks: the caller's count check tells which).

        A step is the run of consecutive rows with one key; the generator must be consumed
        before the next call. ReadError (naming the file) for rows that cannot be read.
        """
        head = self._head()
        if head is None:
            return
        key = _key_of(head, self.path)
        if not same_step(key):
            return
        while head is not None and _key_of(head, self.path) == key:
            end = _leading_run(head)
            self._pending = head.iloc[end:]
            yield head.iloc[:end]
            if not self._pending.empty:  # the step ended inside this chunk
                return
            head = self._head()
