"""Synthetic shard runs, written without servers or record objects -- never a measurement.

Why: the merge's equality, thinning and refusal tests (and ``benchmarks/bench_merge_memory.py``,
which needs shard runs of millions of records) must not wait for real sweeps. Each shard's
share of each step follows :func:`loadgen.shard.step_share` (its ``seq`` block, its own
concurrency), its records are seeded random columns written through the real writer
(:meth:`bench.results.RunWriter.append_request_columns`), its summary row is
:func:`loadgen.stats.summarize` of those columns, and its meta.json has the ``shard``
section ``bench run --shard`` writes (measured step starts a few milliseconds apart).

``completion_order``: each chunk's rows are written ordered by completion time (as a
streamed step writes them) instead of by ``seq``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bench.results import RunWriter
from bench.results.header import new_meta
from bench.run.runner import TargetOutcome, finish_meta
from bench.shard_run import ShardOptions, shard_meta, shard_run_id
from ground.runmeta import RunStatus
from loadgen.barrier import StartSchedule
from loadgen.record_columns import ColumnBuilder
from loadgen.records import StepKey, StepResult
from loadgen.shard import ShardSpec, StepShare, step_share
from loadgen.stats import SUMMARY_COLUMNS, summarize
from loadgen.sweep import SweepPlan

__all__ = ["TARGET", "write_synthetic_shards"]

TARGET = "fake"
QUIET_HOST = {"load": [0.0, 0.0, 0.0], "n_cpus": 2, "at": 0.0}
CEILING = {"engine": "fast", "rps_by_concurrency": {"1": 2000.0, "64": 8000.0}}
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z: fixed, so two writes of one seed are the same files
ERRORS = (("timeout", 'no complete response within 30 s, "read" pending'), ("refused", "connection refused"))


def _chunks(
    share: StepShare, rng: np.random.Generator, chunk: int, completion_order: bool
) -> Iterator[dict[str, np.ndarray]]:
    """Seeded record columns of one shard's share (``seq`` from its first), ``chunk`` rows at a time;
    a rate step's intended send times are the shard's own schedule (:func:`loadgen.shard.shard_offsets`)."""
    share_first, n = share.first, share.sent.n_requests
    intended_all = np.asarray(share.offsets, dtype=np.float64) if share.offsets is not None else np.zeros(n)
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        intended = intended_all[start : start + size]
        lag = rng.exponential(0.0002, size)
        service = 0.004 * rng.lognormal(0.0, 0.3, size)
        pick = rng.random(size)
        error = np.where(pick < 0.01, 1, np.where(pick < 0.015, 2, 0))  # 1 % timeouts, 0.5 % refused
        failed = error > 0
        labels = rng.integers(0, 10, size)
        columns = {
            "seq": np.arange(share_first + start, share_first + start + size, dtype=np.int64),
            "intended_s": intended,
            "sent_s": intended + lag,
            "latency_s": np.where(error == 1, 30.0, lag + service),
            "service_s": np.where(error == 1, 30.0, service),
            "status": np.where(failed, 0, 200),
            "error": np.array(["", *(e for e, _ in ERRORS)], dtype=object)[error],
            "error_detail": np.array(["", *(d for _, d in ERRORS)], dtype=object)[error],
            "bytes_out": np.full(size, 6163),
            "bytes_in": np.where(failed, 0, 31),
            "label": labels,
            "predicted": np.where(failed, -1, np.where(rng.random(size) < 0.02, (labels + 1) % 10, labels)),
            "sample": (share_first + start + np.arange(size)) % 1000,
        }
        columns["agree"] = np.where(failed, -1, (columns["predicted"] == labels).astype(np.int64))
        if completion_order:
            order = np.argsort(columns["intended_s"] + columns["latency_s"], kind="stable")
            columns = {name: values[order] for name, values in columns.items()}
        yield columns


def _add(builder: ColumnBuilder, columns: dict[str, np.ndarray]) -> None:
    """One chunk of columns into ``builder`` (text columns as codes into their tables)."""
    errors, error_codes = np.unique(columns["error"].astype(str), return_inverse=True)
    details, detail_codes = np.unique(columns["error_detail"].astype(str), return_inverse=True)
    chunk = {**columns, "error_code": error_codes, "detail_code": detail_codes}
    builder.add_columns(chunk, [str(e) for e in errors], [str(d) for d in details])


def write_synthetic_shards(
    directory: Path,
    plan: SweepPlan,
    count: int,
    *,
    run_id: str = "syn",
    seed: int = 0,
    chunk: int = 200_000,
    completion_order: bool = False,
) -> list[Path]:
    """Write ``count`` shard runs of ``plan`` under ``directory``; their folders, by index."""
    paths = []
    schedule = StartSchedule(START, 3600.0)
    for index in range(count):
        option = ShardOptions(ShardSpec(index, count), schedule)
        run = option.new_run()
        rng = np.random.default_rng([seed, index])
        shard_id = shard_run_id(run_id, option)
        writer = RunWriter(directory / shard_id, shard_id, SUMMARY_COLUMNS)
        steps = plan.steps(TARGET)
        total_requests = 0
        for number, key in enumerate(steps):
            share = step_share(plan, option.spec, key)
            shard_key = StepKey(key.target, key.mode, key.n_requests, share.sent.concurrency, key.rate, key.trial)
            builder = ColumnBuilder()
            ends = []
            for columns in _chunks(share, rng, chunk, completion_order):
                writer.append_request_columns(shard_key, columns)
                _add(builder, columns)
                ends.append(float(np.max(columns["intended_s"] + columns["latency_s"])))
            due = schedule.scheduled(number)
            started_at = float(due) + 0.001 + 0.002 * index  # each shard a little late, shard 0 first
            total_s = max(ends, default=0.0)
            records = builder.finish()
            writer.append_summary(
                summarize(StepResult(key=shard_key, records=records, total_s=total_s, started_at=started_at))
            )
            run.starts.append(
                {
                    "step": number,
                    **share.describe(),
                    "scheduled_at": due,
                    "started_at": started_at,
                    "late_s": started_at - float(due),
                    "waited_s": 0.0,
                    "total_s": total_s,
                }
            )
            total_requests += share.sent.n_requests
        meta = new_meta(
            run_id=shard_id,
            root=directory,
            config_sha256="c" * 64,
            config_path="bench.toml",
            sweep=plan.describe(),
            targets=[TARGET],
            load_at_start=QUIET_HOST,
        )
        meta.details.update(
            model={"torchscript_sha256": "t" * 64, "model_json_sha256": "m" * 64, "sha256": {"model.pt": "t"}},
            test_split={"images": 60, "dataset": "synthetic"},
            targets={TARGET: {"name": TARGET, "adapter": "fake", "mode": "remote", "base_url": "http://127.0.0.1:9"}},
            engine={"name": "fast", "version": "test", "chosen_by": "configured", "loop": "asyncio"},
            client_ceiling=CEILING,
            cpu_plan={"client": [], "standins": []},
            shard=shard_meta(option, run),
            synthetic="tests/support/synthetic_shards.py: seeded records, not a measurement",
        )
        outcome = TargetOutcome(TARGET, status="ok", steps=len(steps), requests=total_requests)
        writer.write_meta(finish_meta(meta, [outcome], RunStatus.COMPLETE))
        writer.close()
        paths.append(directory / shard_id)
    return paths
