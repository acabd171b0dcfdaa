"""Real shard runs without stand-ins: K sharded sweeps against a tiny loopback server, written
to run folders exactly as ``bench run --shard`` writes them (RunWriter, meta.json with its
``shard`` section), for the merge tests.

Why real sweeps and not invented records: the merge must put back together what the
sharded sweep really produces (its request numbering, its keys, its times), so these run
:func:`loadgen.sweep.run_sweep` with :class:`loadgen.barrier.ShardRun` -- every shard in
one event loop, against one :class:`loadgen_helpers.TinyServer`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.results import RunWriter
from bench.results.header import new_meta
from bench.run.runner import TargetOutcome, finish_meta
from bench.shard_run import ShardOptions, shard_meta, shard_run_id
from ground.runmeta import RunStatus
from loadgen.barrier import ShardRun, StartSchedule
from loadgen.engines import engine_class
from loadgen.shard import ShardSpec
from loadgen.stats import SUMMARY_COLUMNS, summarize
from loadgen.sweep import SweepPlan, run_sweep
from tests.support.loadgen import FakeTarget, TinyServer, digit_images

__all__ = ["QUIET_HOST", "write_shard_runs"]

QUIET_HOST = {"load": [0.0, 0.0, 0.0], "n_cpus": 2, "at": 0.0}
CEILING = {"engine": "fast", "rps_by_concurrency": {"1": 2000.0, "64": 8000.0}}


async def _sweep_all(plan: SweepPlan, runs: list[ShardRun]) -> tuple[str, list[list[Any]]]:
    labels = np.arange(60) % 10
    images = digit_images(labels)
    async with TinyServer() as server:
        target = FakeTarget(server.base_url)

        async def one(run: ShardRun) -> list[Any]:
            return [step async for step in run_sweep(target, engine_class("fast"), plan, images, labels, shard=run)]

        return server.base_url, list(await asyncio.gather(*(one(r) for r in runs)))


def write_shard_runs(
    directory: Path, plan: SweepPlan, count: int, *, run_id: str = "sh", interval_s: float = 0.6
) -> list[Path]:
    """Run ``count`` shards of ``plan`` (barrier 0.3 s from now) and write their run folders."""
    schedule = StartSchedule(time.time() + 0.3, interval_s)
    options = [ShardOptions(ShardSpec(i, count), schedule) for i in range(count)]
    runs = [o.new_run() for o in options]
    base_url, results = asyncio.run(_sweep_all(plan, runs))
    paths = []
    for option, run, steps in zip(options, runs, results, strict=False):
        shard_id = shard_run_id(run_id, option)
        writer = RunWriter(directory / shard_id, shard_id, SUMMARY_COLUMNS)
        meta = new_meta(
            run_id=shard_id,
            root=directory,
            config_sha256="c" * 64,
            config_path="bench.toml",
            sweep=plan.describe(),
            targets=["fake"],
            load_at_start=QUIET_HOST,
        )
        meta.details.update(
            model={"torchscript_sha256": "t" * 64, "model_json_sha256": "m" * 64, "sha256": {"model.pt": "t"}},
            test_split={"images": 60, "dataset": "synthetic"},
            targets={
                "fake": {
                    "name": "fake",
                    "adapter": "fake",
                    "mode": "remote",
                    "base_url": base_url,
                    "start_s": 0.01 * (option.spec.index + 1),
                }
            },
            engine={"name": "fast", "version": "test", "chosen_by": "configured", "loop": "asyncio"},
            client_ceiling=CEILING,
            cpu_plan={"client": [], "standins": []},
            shard=shard_meta(option, run),
        )
        outcome = TargetOutcome("fake", status="ok", steps=len(steps), requests=sum(len(s.records) for s in steps))
        for step in steps:
            writer.append_summary(summarize(step))
            writer.append_requests(step.key, step.records)
        writer.write_meta(finish_meta(meta, [outcome], RunStatus.COMPLETE))
        writer.close()
        paths.append(directory / shard_id)
    return paths
