"""One step of a sharded run, put back together from the shards' raw records, chunk by chunk.

Why from the raw records: statistics of a union are not statistics of statistics -- the
p99 of two shards is not the mean of their p99s.  So every shard's records of the step are
fed, as numpy columns, to one :class:`~loadgen.record_columns.ColumnBuilder`, and the
summary row is :func:`loadgen.stats.summarize` of what it holds, the same function a
one-client run uses: the merged percentiles *are* the percentiles of the union (tested
for equality).

Memory: the records are never Python objects.  Each shard's rows of the step are read in
bounded chunks (:class:`bench.shard.step_frames.StepFrames`); each chunk is checked, put
on the common time line, appended to the merged requests.csv.gz (with the ``shard``
column: shard 0's rows, then shard 1's, ..., each in its own file order) and added to the
builder, then dropped.  The builder holds every row up to
:data:`loadgen.record_columns.EXACT_RECORDS` (1 M, ~81 MB); a longer merged step keeps a
one-in-``stride`` systematic sample (by ``seq``) plus an exact tally, like a one-client
streamed step, and its row is flagged ``histogram`` (percentiles from a 0.1 % log
histogram, counts exact).  Its peak in flight -- used only to tell ``connection_cap`` --
is the sample's peak times the stride, estimated by the saturation verdict (overlaps of the union cannot be
counted without every record; a one-client step counts it live).

Checks, per shard and step: one summary row (else refused, naming the shard and step),
and records that are exactly its share (:func:`loadgen.shard.split_evenly`: requests
``first .. first + size - 1``, each once -- kept as a bool array of ``size``).

Times.  A record's ``intended_s``/``sent_s`` are seconds from its own shard's start of the
step (each shard has its own monotonic clock).  To put the shards on one time line, each
shard's times are shifted by the wall-clock gap between its start of the step and the
earliest shard's start (``started_at``, Unix seconds taken next to the shard's monotonic
zero).  Latencies and service times are durations on one shard's clock and are never
changed -- which is why the percentiles are exact.  The merged step starts at the earliest
start and ``total_s`` ends at the latest answer.  The start skew of the step is the
latest start minus the earliest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.results import RunWriter
from bench.results.chunks import ReadError, record_arrays
from bench.shard.merge_checks import MergeError, ShardInput
from bench.shard.step_frames import StepFrames
from loadgen.record_columns import ColumnBuilder
from loadgen.records import RECORD_COLUMNS, StepKey, StepResult
from loadgen.shard import split_evenly
from loadgen.stats import format_flags, summarize

__all__ = ["SHARD_COLUMN", "MergedFacts", "ShardPart", "merge_step", "shard_part"]

SHARD_COLUMN = "shard"
_SHIFTED = ("intended_s", "sent_s")


@dataclass(frozen=True)
class ShardPart:
    """One shard's part of one step as its summary row and meta.json record it."""

    shard: ShardInput
    started_at: float  # Unix seconds at the shard's zero of the step
    total_s: float  # the shard's own first intended send to last answer
    facts: dict[str, Any]  # per-shard figures to keep beside the merged step (offered, achieved, lateness)


@dataclass(frozen=True)
class MergedFacts:
    """What the merge keeps of a merged step once it is written: no records, so a merge holds
    one step's columns (at most EXACT_RECORDS rows) at a time, however long the run."""

    key: StepKey
    requests: int  # records in the union
    row: dict[str, Any]  # its summary row (loadgen.stats.summarize of the union)
    start_skew_s: float
    shards: tuple[dict[str, Any], ...]


def _label(key: StepKey) -> str:
    return f"step {key.mode} N={key.n_requests} trial {key.trial}"


def _same_step(found: StepKey, key: StepKey) -> bool:
    """Whether ``found`` (a shard's) is the plan's step ``key``: a shard records its own share's
    concurrency, which is not compared."""
    return (found.target, found.mode, found.n_requests, found.trial, float(found.rate)) == (
        key.target,
        key.mode,
        key.n_requests,
        key.trial,
        float(key.rate),
    )


def shard_part(shard: ShardInput, key: StepKey) -> ShardPart:
    """``shard``'s summary row of the plan's step ``key`` (exactly one, else MergeError) and its figures."""
    summaries = [s for s in shard.run.steps if _same_step(s.key, key)]
    if len(summaries) != 1:
        raise MergeError(
            f"{shard.name} has {len(summaries)} summary rows for {_label(key)} (expected 1): an incomplete "
            "or edited shard run"
        )
    row = summaries[0]
    lateness = next(
        (
            s.get("late_s")
            for s in (shard.run.meta.details["shard"].get("steps") or [])
            if s.get("mode") == key.mode and s.get("n_requests") == key.n_requests and s.get("trial") == key.trial
        ),
        None,
    )
    facts = {
        "concurrency": row.key.concurrency,
        "offered_rps": row.offered_rps,
        "achieved_rps": row.achieved_rps,
        "late_s": lateness,
        "flags": format_flags(row.flags),
    }
    return ShardPart(
        shard=shard, started_at=float(row.started_at or 0.0), total_s=float(row.total_s or 0.0), facts=facts
    )


def _add_chunk(
    part: ShardPart,
    key: StepKey,
    frame: pd.DataFrame,
    first: int,
    seen: np.ndarray,
    shift: float,
    builder: ColumnBuilder,
    writer: RunWriter,
) -> bool:
    """One chunk of ``part``'s records: marked in ``seen``, shifted, written and added; False (and
    nothing written) when a ``seq`` is outside the shard's share."""
    try:
        arrays, error_table, detail_table = record_arrays(frame, f"{part.shard.name}, {_label(key)}")
    except ReadError as exc:
        raise MergeError(str(exc)) from None
    offset = arrays["seq"] - first
    if np.any((offset < 0) | (offset >= seen.size)):
        return False
    seen[offset] = True
    if shift != 0.0:
        for name in _SHIFTED:
            arrays[name] = arrays[name] + shift
    builder.add_columns(arrays, error_table, detail_table)
    cells: dict[str, Any] = {name: arrays.get(name) for name in RECORD_COLUMNS}
    cells.update(error=frame["error"].to_numpy(), error_detail=frame["error_detail"].to_numpy())
    cells[SHARD_COLUMN] = np.full(len(frame), part.shard.index, dtype=np.int64)
    writer.append_request_columns(key, cells)
    return True


def _stream_share(
    part: ShardPart, key: StepKey, stream: StepFrames, shift: float, builder: ColumnBuilder, writer: RunWriter
) -> int:
    """Check, shift, write and add ``part``'s records of step ``key`` chunk by chunk; their count.

    MergeError when they are not exactly the shard's share (the message names the shard,
    the step and the count found).
    """
    shard = part.shard
    first, size = split_evenly(key.n_requests, shard.count)[shard.index]
    seen = np.zeros(size, dtype=bool)
    found = 0
    exact = True
    try:
        for frame in stream.take(lambda k: _same_step(k, key)):
            found += len(frame)
            if exact:
                exact = _add_chunk(part, key, frame, first, seen, shift, builder, writer)
    except ReadError as exc:
        raise MergeError(f"{shard.name}: {exc}") from None
    if not (exact and found == size and seen.all()):  # size distinct seqs seen and no more rows: each once
        raise MergeError(
            f"{shard.name} has {found} records for {_label(key)}, not its share (requests {first} to "
            f"{first + size - 1} of {key.n_requests})"
        )
    return found


def merge_step(
    key: StepKey, parts: Sequence[ShardPart], streams: Sequence[StepFrames], writer: RunWriter
) -> MergedFacts:
    """The union of ``parts`` as the plan's step ``key`` (whole N, C and rate): every record written
    to ``writer`` with its shard, the summary row appended; what is kept of it returned.

    ``streams[i]`` reads ``parts[i]``'s shard's records; see the module docstring for the
    time line, the checks and the memory.
    """
    if not parts:
        raise ValueError(f"no shard has step {key}")
    earliest = min(p.started_at for p in parts)
    latest = max(p.started_at for p in parts)
    builder = ColumnBuilder()
    counts = [
        _stream_share(part, key, stream, part.started_at - earliest, builder, writer)
        for part, stream in zip(parts, streams, strict=True)
    ]
    total_s = float(np.max([p.started_at - earliest + p.total_s for p in parts]))
    columns = builder.finish()  # no live peak in flight: the saturation verdict estimates it from the sample
    row = summarize(StepResult(key=key, records=columns, total_s=total_s, started_at=earliest))
    writer.append_summary(row)
    shards = tuple(
        {
            "index": p.shard.index,
            "n": n,
            "started_at": p.started_at,
            "start_offset_s": p.started_at - earliest,
            "total_s": p.total_s,
            **p.facts,
        }
        for p, n in sorted(zip(parts, counts, strict=True), key=lambda pn: pn[0].shard.index)
    )
    return MergedFacts(key, sum(counts), row, latest - earliest, shards)
