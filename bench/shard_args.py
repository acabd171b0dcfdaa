"""`bench run`'s sharded-load flags (`--shard`, `--start-at`, `--step-interval`, `--step-gate`,
`--clients`, `--endpoint`, `--out`) and what they turn into: the CLI half of docs/loadgen-in-cluster.md.

Why a module of its own: `bench/cmd_run.py` owns the ordinary run; sharding adds six flags
and two ways to run (one shard, or N local shard processes merged), which read more easily
apart. argparse stays in the CLI layer (this module and ``bench/cmd_run.py``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from bench.cli_args import positive_float, positive_int
from bench.config import BenchConfig
from bench.console import Console

__all__ = ["add_shard_arguments", "run_clients_from_args", "shard_options"]


def _shard_spec(text: str) -> tuple[Any, bool]:
    """``--shard I/N`` or ``auto/N`` (index from $JOB_COMPLETION_INDEX, as an Indexed Job sets it):
    (ShardSpec, whether the index came from the environment)."""
    from loadgen.shard import ShardError, parse_shard

    try:
        return parse_shard(text, os.environ), text.strip().lower().startswith("auto")
    except ShardError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _start_at(text: str) -> float:
    from loadgen.shard import ShardError, parse_start_at

    try:
        return parse_start_at(text)
    except ShardError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_shard_arguments(p: argparse.ArgumentParser) -> None:
    """`run`'s sharded-load flags (docs/loadgen-in-cluster.md)."""
    group = p.add_argument_group("sharded load (one target; docs/loadgen-in-cluster.md)")
    group.add_argument("--shard", type=_shard_spec, default=None, metavar="I/N",
                       help="run shard I (0..N-1) of N of the plan: concurrent mode splits the requests and the "
                            "in-flight count, rate mode the offered rate; auto/N takes I from $JOB_COMPLETION_INDEX")
    group.add_argument("--start-at", type=_start_at, default=None, metavar="EPOCH",
                       help="with --shard: start step k at EPOCH + k x --step-interval (Unix seconds or ISO 8601 "
                            "with a zone), the same on every shard; measured start skew recorded")
    group.add_argument("--step-interval", type=positive_float, default=None, metavar="S",
                       help="with --start-at and more than one step: seconds from one step's start to the next "
                            "(--clients without it: the parent starts each step when every shard is ready)")
    group.add_argument("--step-gate", type=Path, default=None, metavar="DIR",
                       help="with --shard, on the --clients parent's machine: wait at each step until the parent "
                            "releases it (set by --clients N; other shards coordinate with --start-at)")
    group.add_argument("--clients", type=positive_int, default=None, metavar="N",
                       help="run N shard processes on this machine (one stand-in for all; the parent starts each "
                            "step on all of them together), then merge them")
    group.add_argument("--endpoint", default=None, metavar="URL",
                       help="send to this URL instead of starting the target's stand-in (remote mode)")
    group.add_argument("--out", type=Path, default=None, metavar="DIR",
                       help="write the run's folder under DIR instead of the results folder")


def shard_options(args: argparse.Namespace) -> Any:
    """The ShardOptions of a `run --shard`, or None; ValueError for flags that do not go together."""
    from bench.shard_run import ShardOptions, check_schedule_flags
    from loadgen.barrier import StartSchedule

    check_schedule_flags(args.start_at, args.step_interval, shard=args.shard is not None,
                         clients=args.clients is not None, gate=args.step_gate is not None)
    if args.clients is not None and args.shard is not None:
        raise ValueError("--clients N runs shards 0..N-1 itself: give --clients or --shard, not both")
    if args.shard is None:
        return None
    spec, from_env = args.shard
    return ShardOptions(spec, StartSchedule(args.start_at, args.step_interval or 0.0), index_from_env=from_env,
                        gate=args.step_gate)


def run_clients_from_args(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    """`run TARGET --clients N` (bench/clients.py)."""
    from bench.clients import run_clients

    try:
        shard_options(args)
    except ValueError as exc:
        console.error(str(exc))
        return 2
    return run_clients(
        config, config_path=Path(args.config), target_names=args.targets, clients=args.clients,
        n_requests=args.requests, modes=args.modes, trials=args.trials, rate_rps=args.rate,
        duration_s=args.duration, concurrency=args.concurrency, engine=args.engine, run_id=args.run_id,
        step_interval_s=args.step_interval, start_at=args.start_at, endpoint=args.endpoint, out=args.out,
        write_report=not args.no_report, slo=args.slo, console=console,
    )
