"""One shard's run (``bench run TARGET --shard I/N [--start-at EPOCH]``): its checks, run id, CPUs and meta.json.

``bench/run/session.py`` runs a shard exactly as any other run (same
targets, engine, writer, runner); all that differs is decided here, in a few functions it
calls -- whether the plan and targets can be sharded, the shard's run id, its CPU
placement, and the ``shard`` section of its meta.json that ``bench merge`` reads back.
What a shard sends is :mod:`loadgen.shard`'s business, when it starts
:mod:`loadgen.barrier`'s.

The shard's results are an ordinary run folder with two differences a reader must know:
its rows are recorded under the plan's steps (``n_requests`` and ``rate`` are the whole
step's N and R, so that the shards' rows line up) while its records are its share only
(``n_ok + errors`` is its own count, ``offered_rps`` about R/K), and its ``concurrency``
column is its own in-flight limit or connection cap.  A shard writes no report: it is
raw material for ``bench merge``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import BenchConfig
from ground.clock import clock_facts, utc_stamp
from ground.cpus import CpuPlan, available_cpus, plan_cpus
from loadgen.barrier import ShardRun, StartSchedule, StepGate
from loadgen.shard import SHARD_INDEX_ENV, ShardError, ShardSpec, check_shardable
from targets.spec import TargetSpec

__all__ = [
    "ShardOptions",
    "check_shard_run",
    "shard_cpu_plan",
    "shard_meta",
    "shard_run_id",
    "with_endpoint",
]


@dataclass(frozen=True)
class ShardOptions:
    """What ``--shard``, ``--start-at``, ``--step-interval`` and ``--step-gate`` asked for."""

    spec: ShardSpec
    schedule: StartSchedule = dataclasses.field(default_factory=StartSchedule)
    index_from_env: bool = False  # ``--shard auto/N``: the index came from $JOB_COMPLETION_INDEX
    gate: Path | None = None  # ``--step-gate DIR``: the --clients parent releases each step (one machine)

    def new_run(self) -> ShardRun:
        return ShardRun(self.spec, self.schedule, gate=StepGate(self.gate) if self.gate is not None else None)


def check_schedule_flags(
    start_at: float | None, interval_s: float | None, *, shard: bool, clients: bool, gate: bool = False
) -> None:
    """``--start-at`` and ``--step-interval`` only mean something for shards, and for one ``--shard`` the
    interval only with a start (``--clients`` chooses the start itself); ``--step-gate`` is one shard's
    alternative to both, written by ``--clients``."""
    if start_at is not None and not (shard or clients):
        raise ValueError("--start-at aligns the steps of several shards: give --shard I/N too (or --clients N)")
    if interval_s is not None and not clients and start_at is None:
        raise ValueError(
            "--step-interval spaces the steps of the --start-at schedule: give --start-at too"
            + ("" if shard else " and --shard I/N (or --clients N)")
        )
    if gate and not shard:
        raise ValueError(
            "--step-gate is how a --clients parent starts each step of its shards: it goes with "
            "--shard I/N (run `--clients N` and it is set for you)"
        )
    if gate and start_at is not None:
        raise ValueError("--step-gate and --start-at are two ways to start the steps: give one")


def check_shard_run(plan: Any, targets: Sequence[str], options: ShardOptions, *, capacity: bool) -> None:
    """Raise ValueError naming why this sharded run cannot go ahead (before anything starts)."""
    if len(targets) != 1:
        raise ValueError(
            f"a sharded run measures one target, got {len(targets)} ({', '.join(targets)}): the "
            "shards' step schedule cannot include other targets' start-up times; run one target "
            "per sharded run"
        )
    try:
        if capacity or plan is not None:
            check_shardable(plan, options.spec.count, capacity=capacity)
    except ShardError as exc:
        raise ValueError(str(exc)) from None
    if plan is None:
        raise ValueError("a sharded run needs concurrent or rate steps; this plan has none")
    steps = len(plan.steps(targets[0]))
    schedule = options.schedule
    if options.gate is None and schedule.start_at is not None and steps > 1 and schedule.interval_s <= 0:
        raise ValueError(
            f"this plan has {steps} steps: with --start-at, give --step-interval S too -- step k "
            "starts at EPOCH + k x S on every shard, so S must be longer than any step takes with "
            "its warm-up (a step that overruns delays the next, and its skew is recorded)"
        )


def shard_run_id(base: str | None, options: ShardOptions) -> str:
    """``BASE-shardIofN``; BASE is ``--run-id``, else the UTC time of ``--start-at`` (the same on every
    shard of one launch), else now."""
    if base is None:
        when = options.schedule.start_at if options.schedule.start_at is not None else time.time()
        base = utc_stamp(when)
    return f"{base}-shard{options.spec.index}of{options.spec.count}"


def with_endpoint(config: BenchConfig, target: str, endpoint: str) -> BenchConfig:
    """``config`` with ``target`` pointed at ``endpoint`` (remote mode: nothing is started).

    Used by ``--clients``: the parent starts the stand-in once and every shard sends to
    it. The configuration text (and so its sha256) is unchanged; the run's meta.json
    records the endpoint in the target's description.
    """
    if target not in config.targets:
        raise ValueError(f"--endpoint: no target {target!r} in the configuration")
    spec = config.targets[target]
    settings = {**spec.settings, "endpoint": endpoint}
    targets = {
        **config.targets,
        target: TargetSpec(name=spec.name, adapter=spec.adapter, settings=settings, input_data=spec.input_data),
    }
    return dataclasses.replace(config, targets=targets)


def shard_cpu_plan(setting: str | Sequence[int], cpus: Sequence[int] | None = None) -> CpuPlan:
    """The client's CPUs in a shard: ``loadgen.cpus`` as usual, unless this process already runs
    within the configured CPUs (``--clients`` pinned it there): then it stays where it was put."""
    cpus = tuple(cpus if cpus is not None else available_cpus())
    if not isinstance(setting, str) and cpus and set(cpus) < set(int(c) for c in setting):
        return CpuPlan(cpus, ())
    return plan_cpus(setting, cpus)


def shard_meta(options: ShardOptions, run: ShardRun) -> dict[str, Any]:
    """meta.json's ``shard`` section; ``steps`` is the run's live list of measured starts."""
    return {
        "index": options.spec.index,
        "count": options.spec.count,
        "index_from": f"${SHARD_INDEX_ENV}" if options.index_from_env else "--shard",
        "schedule": options.schedule.describe(),
        "step_gate": None
        if options.gate is None
        else "each step released by the --clients parent when every shard "
        "was ready for it (scheduled_at = the instant it set)",
        "clock": clock_facts(),
        "steps": run.starts,
    }


def describe_share_rule() -> Mapping[str, str]:
    """The splitting rules in words, for meta.json of merged runs (and the docs)."""
    return {
        "concurrent": "N requests and C in flight split as evenly as possible: shard i gets N//K, plus one "
        "if i < N%K (likewise of C); shard i sends the step's requests first_i..first_i+n_i-1",
        "rate": "window T = N/R; shard i draws its n_i send times uniformly on [0, T) from its own seed "
        "(run seed, trial, N, K, i): the union is a rate-R Poisson stream given N arrivals in T",
        "barrier": "step k starts at start_at + k x step_interval_s on every shard, after its warm-up; a "
        "busy shard starts late, never early, and the lateness is recorded; with --clients on one "
        "machine and no --start-at, the parent starts step k a moment after every shard is ready",
    }


#: A merged step whose shards started further apart than this share of the step's time is
#: warned about: for that long, fewer than all shards were sending (the offered load was
#: ramping up, not at its rate).
SKEW_WARN_SHARE = 0.05
#: ... and never below this: a few milliseconds are timer and scheduler noise on a loaded host.
SKEW_WARN_FLOOR_S = 0.010


def sharding_warnings(meta: Mapping[str, Any]) -> list[str]:
    """Warnings about a merged run's shards (start skew, unsynchronised clocks); [] for other runs."""
    sharding = meta.get("sharding")
    if not isinstance(sharding, Mapping):
        return []
    warnings = []
    totals = {(s.get("mode"), s.get("n_requests"), s.get("trial")): s for s in sharding.get("steps") or []}
    for step in totals.values():
        skew = float(step.get("start_skew_s") or 0.0)
        longest = max((float(s.get("total_s") or 0.0) for s in step.get("shards") or []), default=0.0)
        if skew > max(SKEW_WARN_FLOOR_S, SKEW_WARN_SHARE * longest):
            warnings.append(
                f"step {step.get('mode')} N={step.get('n_requests')} trial {step.get('trial')}: the "
                f"shards started {skew * 1000:.0f} ms apart (more than {SKEW_WARN_FLOOR_S * 1000:.0f} ms "
                f"and {SKEW_WARN_SHARE:.0%} of the step's {longest:.2f} s): for that long not every "
                "shard was sending"
            )
    if "several hosts" in str(sharding.get("clocks", "")):
        for shard in meta.get("shards") or []:
            clock = shard.get("clock") or {}
            if clock.get("synchronised") is False:
                warnings.append(
                    f"shard {shard.get('index')}'s clock was not NTP-synchronised (kernel estimate): "
                    "the start skew between hosts is unknown"
                )
    return warnings


def sharding_text(meta: Mapping[str, Any]) -> str | None:
    """One line for a report's Run table: how many shards, from which hosts, the largest start skew."""
    sharding = meta.get("sharding")
    if not isinstance(sharding, Mapping):
        return None
    hosts = sorted({str((s.get("host") or {}).get("hostname", "?")) for s in meta.get("shards") or []})
    skews = [float(s.get("start_skew_s") or 0.0) for s in sharding.get("steps") or []]
    worst = f"; largest start skew {max(skews) * 1000:.1f} ms" if skews else ""
    return (
        f"{sharding.get('count', '?')} shards merged (on {', '.join(hosts)}){worst}; per shard and step: "
        "meta.json shards / sharding"
    )
