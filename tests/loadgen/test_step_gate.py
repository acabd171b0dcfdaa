"""The ``--clients`` step gate (:class:`loadgen.barrier.StepGate`): shards wait, the parent releases.

Why: on one machine the parent starts each step of its shards itself, so a plan of several
steps needs no ``--step-interval``.  These tests run the real file protocol in a temporary
folder with real asyncio tasks: no step is released before every shard is ready for it,
every shard gets the same instant, and none starts before it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from loadgen.barrier import ShardRun, StepGate, release_ready_steps
from loadgen.shard import ShardSpec


def test_a_step_is_released_only_when_every_shard_is_ready(tmp_path: Path) -> None:
    gate = StepGate(tmp_path)
    gate.ready_path(0, 0).touch()
    assert release_ready_steps(gate, 2, set()) == [] and not gate.go_path(0).exists()
    gate.ready_path(0, 1).touch()
    assert release_ready_steps(gate, 2, set(), lead_s=0.5, clock=lambda: 1000.0) == [0]
    assert float(gate.go_path(0).read_text()) == 1000.5
    assert release_ready_steps(gate, 2, {0}) == []  # released once
    assert not list(tmp_path.glob(".go-*"))  # written through a temporary file, renamed


def _parent(gate: StepGate, count: int, steps: int) -> asyncio.Task[None]:
    async def loop() -> None:
        released: set[int] = set()
        while len(released) < steps:
            released.update(release_ready_steps(gate, count, released, lead_s=0.05))
            await asyncio.sleep(0.005)

    return asyncio.ensure_future(loop())


def test_shards_start_each_step_at_the_instant_the_parent_set(tmp_path: Path) -> None:
    gate = StepGate(tmp_path)
    runs = [ShardRun(ShardSpec(i, 3), gate=gate) for i in range(3)]

    async def shard(run: ShardRun, warmup_s: float) -> list[tuple[float, float]]:
        starts = []
        for step in range(2):
            await asyncio.sleep(warmup_s)  # shards get ready at different times
            await run.wait(step)
            starts.append((time.time(), run._due[step]))
        return starts

    async def main() -> list[list[tuple[float, float]]]:
        parent = _parent(gate, 3, 2)
        done = await asyncio.gather(*(shard(run, 0.02 * i) for i, run in enumerate(runs)))
        await parent
        return list(done)

    per_shard = asyncio.run(main())
    for step in range(2):
        instants = {starts[step][1] for starts in per_shard}
        assert len(instants) == 1  # one go instant per step, for every shard
        (instant,) = instants
        assert all(starts[step][0] >= instant for starts in per_shard)  # nobody started early
        # the slowest shard (0.04 s warm-up) was ready before the instant was set
        assert instant >= max(float(gate.ready_path(step, i).stat().st_mtime) for i in range(3)) - 0.01


def test_a_shard_does_not_pass_the_gate_while_another_is_missing(tmp_path: Path) -> None:
    gate = StepGate(tmp_path)
    run = ShardRun(ShardSpec(0, 2), gate=gate)

    async def main() -> None:
        parent = _parent(gate, 2, 1)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(run.wait(0), 0.3)  # shard 1 never says it is ready
        parent.cancel()

    asyncio.run(main())
    assert not gate.go_path(0).exists()
