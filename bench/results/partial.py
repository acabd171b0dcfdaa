"""The summary row of a step cut short (its run killed mid-step), computed from its records on disk.

Why: a streamed step writes its records every few seconds (:class:`bench.results.writer.StepSink`)
but its summary row only when it ends; a run killed with SIGKILL mid-step leaves those
records without a row, and meta.json's ``checkpoint`` says which step that was.  The
report must show what was measured, so this row is summarised from the records on disk
(read in bounded chunks, held as compact columns) and flagged :data:`FLAG_PARTIAL`, never a
plain result: its requests are the checkpointed ones, its ``total_s`` ends at the last
completion on disk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.results.chunks import iter_request_frames, record_arrays
from loadgen.record_columns import ColumnBuilder
from loadgen.records import RECORD_COLUMNS, StepKey, StepResult
from loadgen.stats import StepSummary, format_flags, step_flags, summarize

__all__ = ["FLAG_PARTIAL", "checkpointed_key", "checkpointed_start", "partial_summary"]

#: The flag of a summary row computed from a cut-short step's checkpointed records.
FLAG_PARTIAL = "partial"

_KEY_COLUMNS = ("target", "mode", "n_requests", "concurrency", "rate", "trial")


def checkpointed_key(details: Mapping[str, Any]) -> StepKey | None:
    """The step meta.json's ``checkpoint`` names (None without one, or when it is unreadable)."""
    step = (details.get("checkpoint") or {}).get("step")
    if not isinstance(step, Mapping):
        return None
    try:
        return StepKey.from_mapping(step)
    except (KeyError, TypeError, ValueError):
        return None


def checkpointed_start(details: Mapping[str, Any]) -> float | None:
    """When the checkpointed step started (epoch seconds), as meta.json's ``checkpoint`` says.

    ``step_started_at`` when the run recorded it; for a run written before it did, an
    estimate: the last flush's wall-clock time (None without one) -- the caller subtracts the
    step's last completion on disk, which the flush followed within one checkpoint interval.
    """
    checkpoint = details.get("checkpoint") or {}
    started = checkpoint.get("step_started_at")
    if isinstance(started, int | float) and math.isfinite(started):
        return float(started)
    return None


def _last_flush_epoch(details: Mapping[str, Any]) -> float | None:
    stamp = (details.get("checkpoint") or {}).get("last_flush")
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp() if stamp else None
    except ValueError:
        return None


def partial_summary(
    requests_file: Path, key: StepKey, done: Sequence[StepSummary], details: Mapping[str, Any] | None = None
) -> StepSummary | None:
    """The partial row of step ``key`` from its records in ``requests_file``; None when ``done``
    already has its row or the file has none of its records.

    ``details`` (meta.json's) give the row its ``started_at``, so the report's timeline can
    place the step: the checkpoint's ``step_started_at``, or for older runs the last flush
    minus the last completion on disk (within the few seconds between a completion and its
    checkpoint); NaN when neither is there.
    """
    if any(s.key == key for s in done):
        return None
    builder = ColumnBuilder()  # bounded: a killed soak of any length is thinned past EXACT_RECORDS
    found = False
    for frame in iter_request_frames(requests_file, columns=[*_KEY_COLUMNS, *RECORD_COLUMNS]):
        mask = np.ones(len(frame), dtype=bool)
        for column in _KEY_COLUMNS:
            mask &= (frame[column] == getattr(key, column)).to_numpy()
        if mask.any():
            found = True
            builder.add_columns(*record_arrays(frame.loc[mask, list(RECORD_COLUMNS)], str(requests_file)))
    if not found:
        return None
    records = builder.finish()
    ends = records.column("intended_s") + records.column("latency_s")
    total_s = float(np.nanmax(ends)) if np.any(~np.isnan(ends)) else math.nan
    started_at = math.nan
    if details is not None:
        recorded, flushed = checkpointed_start(details), _last_flush_epoch(details)
        if recorded is not None:
            started_at = recorded
        elif flushed is not None and math.isfinite(total_s):
            started_at = flushed - total_s
    row = summarize(StepResult(key=key, records=records, total_s=total_s, started_at=started_at))
    row["flags"] = format_flags(step_flags(row) | {FLAG_PARTIAL})
    return StepSummary.from_row(row)
