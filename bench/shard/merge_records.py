"""One step of a sharded run, put back together from the shards' raw records. Pure.

Why from the raw records: statistics of a union are not statistics of statistics -- the
p99 of two shards is not the mean of their p99s.  So each merged step is a plain
:class:`~loadgen.records.StepResult` holding every shard's records, and the summary row is
computed from it by :func:`loadgen.stats.summarize`, the same function a one-client run
uses: the merged percentiles *are* the percentiles of the union (tested for equality).

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

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from loadgen.records import RequestRecord, StepKey, StepResult

__all__ = ["MergedFacts", "MergedStep", "ShardStep", "merge_step"]


@dataclass(frozen=True)
class ShardStep:
    """One shard's part of one step: its records (own times) and when it started."""

    index: int
    records: tuple[RequestRecord, ...]
    started_at: float  # Unix seconds at the shard's zero of the step
    total_s: float  # the shard's own first intended send to last answer
    facts: dict[str, Any]  # per-shard figures to keep beside the merged step (offered, achieved, lateness)


@dataclass(frozen=True)
class MergedStep:
    """The merged step: the union StepResult, which record came from which shard, and the start skew."""

    result: StepResult
    shard_of_record: tuple[int, ...]  # parallel to result.records
    start_skew_s: float
    shards: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class MergedFacts:
    """What the merge keeps of a merged step once it is written: no records, so a merge holds
    one step's records at a time, however long the run."""

    key: StepKey
    requests: int  # records in the union
    row: dict[str, Any]  # its summary row (loadgen.stats.summarize of the union)
    start_skew_s: float
    shards: tuple[dict[str, Any], ...]


def _shifted(record: RequestRecord, shift: float) -> RequestRecord:
    """``record`` on the common time line: its intended and actual send times moved by ``shift``."""
    if shift == 0.0:
        return record
    return dataclasses.replace(record, intended_s=record.intended_s + shift, sent_s=record.sent_s + shift)


def merge_step(key: StepKey, parts: Sequence[ShardStep]) -> MergedStep:
    """The union of ``parts`` as one step of ``key`` (the plan's step: whole N, C and rate).

    Records are ordered by ``seq`` (the shards number their records within the whole step,
    so the numbers are unique); see the module docstring for the time line.
    """
    if not parts:
        raise ValueError(f"no shard has step {key}")
    earliest = min(p.started_at for p in parts)
    latest = max(p.started_at for p in parts)
    tagged: list[tuple[int, int, RequestRecord]] = []
    ends = []
    for part in parts:
        shift = part.started_at - earliest
        ends.append(shift + part.total_s)
        tagged += [(r.seq, part.index, _shifted(r, shift)) for r in part.records]
    tagged.sort(key=lambda item: (item[0], item[1]))
    seqs = [seq for seq, _, _ in tagged]
    if len(set(seqs)) != len(seqs):
        duplicates = sorted({s for s in seqs if seqs.count(s) > 1})[:5]
        raise ValueError(
            f"step {key.mode} N={key.n_requests} trial {key.trial}: request numbers {duplicates} "
            "come from more than one shard (were these shards of one plan?)"
        )
    result = StepResult(
        key=key, records=tuple(r for _, _, r in tagged), total_s=float(np.max(ends)), started_at=earliest
    )
    shard_facts = tuple(
        {
            "index": p.index,
            "n": len(p.records),
            "started_at": p.started_at,
            "start_offset_s": p.started_at - earliest,
            "total_s": p.total_s,
            **p.facts,
        }
        for p in sorted(parts, key=lambda p: p.index)
    )
    return MergedStep(
        result=result,
        shard_of_record=tuple(i for _, i, _ in tagged),
        start_skew_s=latest - earliest,
        shards=shard_facts,
    )
