"""Merge shard runs (``bench run --shard I/N``) into one ordinary run (``bench merge SHARD_RUN... -o RUN``).

Why an ordinary run: ``bench report`` and ``bench compare`` must work on the merged run
unchanged, so it is written like any other -- summary.csv, requests.csv.gz, meta.json --
with three additions: a ``shard`` column in requests.csv.gz (which shard sent each
request), ``shards`` in meta.json (every shard's host, writer, engine, calibration, client
ceiling, clock estimate and measured step starts, as recorded) and ``sharding`` (the
splitting rules, the start schedule and, per step, the start skew between shards and each
shard's offered and achieved rate).

The jobs, one module each: reading the shards and refusing what cannot be merged, naming
the difference (:mod:`bench.shard.merge_checks`); reading each shard's records step by
step in bounded chunks (:mod:`bench.shard.step_frames`); merging one step from them --
share checks, one time line, written rows, summary row recomputed from the union
(:mod:`bench.shard.merge_records`); the merged meta.json (:mod:`bench.shard.merge_meta`).
Here they are run in order: the plan's steps one at a time, so a merge holds one chunk per
shard and at most :data:`loadgen.record_columns.EXACT_RECORDS` rows of columns, however
long the run; when a later step cannot be merged, what was written is removed again.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.results import SHARDS_DIR, ResultsError, RunWriter, holds_run, validate_run_id
from bench.shard.merge_checks import MergeError, check_shards, read_shards, shard_plan
from bench.shard.merge_meta import combined_ceiling, merged_meta
from bench.shard.merge_records import SHARD_COLUMN, MergedFacts, merge_step, shard_part
from bench.shard.step_frames import StepFrames
from ground.redactor import Redactor
from ground.runmeta import RunMeta
from loadgen.stats import SUMMARY_COLUMNS

__all__ = ["MergeError", "MergeResult", "combined_ceiling", "merge_runs", "read_shards"]


@dataclass(frozen=True)
class MergeResult:
    run_dir: Path
    run_id: str
    steps: tuple[MergedFacts, ...]
    meta: RunMeta


def merge_runs(
    paths: Sequence[Path],
    run_dir: Path,
    *,
    redactor: Redactor | None = None,
    cpu_groups: Sequence[Sequence[int]] | None = None,
    extra_meta: Mapping[str, Any] | None = None,
) -> MergeResult:
    """Check and merge the shard runs at ``paths`` into a new run folder ``run_dir``.

    Raises MergeError (nothing left written) when they cannot be merged; ResultsError when
    ``run_dir`` already holds a run. ``extra_meta`` is added to meta.json (``--clients``
    records its CPU placement and stand-in there).
    """
    run_id = validate_run_id(Path(run_dir).name)
    if holds_run(Path(run_dir), ignoring=(SHARDS_DIR,)):  # --clients merges beside its shards
        raise ResultsError(f"{run_dir} already holds a run; choose another output")
    shards = read_shards(paths)
    check_shards(shards)
    ordered = sorted(shards, key=lambda s: s.index)
    plan = shard_plan(ordered[0].meta)
    target = (ordered[0].meta.get("targets_order") or [None])[0]
    if not target:
        raise MergeError(f"{ordered[0].name} names no target in meta.json")
    streams = [StepFrames(s.requests_file) for s in ordered]
    steps: list[MergedFacts] = []
    writer = RunWriter(
        run_dir,
        run_id,
        SUMMARY_COLUMNS,
        redactor=redactor,
        extra_request_columns=(SHARD_COLUMN,),
        expected=(SHARDS_DIR,),
    )
    try:
        for key in plan.steps(target):  # one step at a time: streamed, written, summarised
            parts = [shard_part(s, key) for s in ordered]
            steps.append(merge_step(key, parts, streams, writer))
        meta = merged_meta(ordered, run_id, steps, [s.row for s in steps], cpu_groups)
        meta.details.update(copy.deepcopy(dict(extra_meta or {})))
        writer.write_meta(meta)
    except BaseException:
        writer.close()
        _remove_partial(writer)  # nothing written when the shards cannot be merged
        raise
    writer.close()
    return MergeResult(run_dir=Path(run_dir), run_id=run_id, steps=tuple(steps), meta=meta)


def _remove_partial(writer: RunWriter) -> None:
    """Delete what ``writer`` wrote so far (and its folder when that leaves it empty)."""
    for path in (writer.summary_path, writer.requests_path, writer.meta_path):
        path.unlink(missing_ok=True)
    try:
        writer.directory.rmdir()
    except OSError:
        pass  # not empty: it holds the shards (``--clients``) or something else that was there
