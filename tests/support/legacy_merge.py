"""A frozen copy of how ``bench merge`` built a merged step before it streamed (main before issue 25's merge).

Why keep it: the streamed merge (:mod:`bench.shard.merge_records`) must give, on runs that
fit in memory, exactly the summary rows and records the old one gave. The old merge read
each shard's step as RequestRecord objects (``request_records``), shifted the send times by
the shard's start offset, sorted the union by (``seq``, shard) and summarised it; that is
all this module does, for the equality tests. Not used by the product.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.results import load_run
from bench.results.parse import read_requests_csv, request_records
from loadgen.records import RECORD_COLUMNS, RequestRecord, StepKey, StepResult
from loadgen.stats import summarize
from loadgen.sweep import SweepPlan

__all__ = ["legacy_merge"]


def _same(found: StepKey, key: StepKey) -> bool:
    return (found.target, found.mode, found.n_requests, found.trial, float(found.rate)) == (
        key.target,
        key.mode,
        key.n_requests,
        key.trial,
        float(key.rate),
    )


def _shifted(record: RequestRecord, shift: float) -> RequestRecord:
    if shift == 0.0:
        return record
    return dataclasses.replace(record, intended_s=record.intended_s + shift, sent_s=record.sent_s + shift)


def legacy_merge(shard_dirs: list[Path], target: str) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """The old merge's summary rows (plan order) and records (one row per record, with ``shard``,
    in the old file order: by step, then ``seq``) of the shard runs ``shard_dirs``."""
    runs = sorted((load_run(path) for path in shard_dirs), key=lambda r: int(r.meta.details["shard"]["index"]))
    plan = SweepPlan(**runs[0].meta.details["sweep"])
    records = [request_records(read_requests_csv(run.requests_file)) for run in runs]
    rows: list[dict[str, Any]] = []
    frames = []
    for key in plan.steps(target):
        parts = []
        for run, by_key in zip(runs, records, strict=True):
            (summary,) = [s for s in run.steps if _same(s.key, key)]
            found = [recs for k, recs in by_key.items() if _same(k, key)]
            parts.append((int(run.meta.details["shard"]["index"]), summary, found[0] if found else ()))
        earliest = min(float(s.started_at) for _, s, _ in parts)
        tagged = []
        ends = []
        for index, summary, recs in parts:
            shift = float(summary.started_at) - earliest
            ends.append(shift + float(summary.total_s))
            tagged += [(r.seq, index, _shifted(r, shift)) for r in recs]
        tagged.sort(key=lambda item: (item[0], item[1]))
        union = tuple(r for _, _, r in tagged)
        rows.append(summarize(StepResult(key=key, records=union, total_s=float(np.max(ends)), started_at=earliest)))
        frame = pd.DataFrame([[getattr(r, c) for c in RECORD_COLUMNS] for r in union], columns=list(RECORD_COLUMNS))
        for name, value in (("target", key.target), ("mode", key.mode), ("n_requests", key.n_requests)):
            frame[name] = value
        frame["concurrency"], frame["rate"], frame["trial"] = key.concurrency, key.rate, key.trial
        frame["shard"] = [i for _, i, _ in tagged]
        frames.append(frame)
    return rows, pd.concat(frames, ignore_index=True)
