"""`python -m bench run all | TARGET...`: run the benchmark sweep (or N local shards of it) and report.

This module turns the flags into one :class:`bench.run.request.RunRequest` and hands it to
the sweep (:func:`bench.run.session.run`) or, with ``--clients N``, to the local shard
processes (:func:`bench.shard.processes.run_clients`).  The sharded-load flags
(``--shard``, ``--start-at``, ``--step-interval``, ``--step-gate``, ``--clients``,
``--endpoint``, ``--out``) are the CLI half of docs/loadgen-in-cluster.md.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from bench.capacity.run import CAPACITY_MODE
from bench.commands.common import (
    Command,
    choice_list,
    choices_metavar,
    csv_counts,
    csv_words,
    non_negative_int,
    positive_duration,
    positive_float,
    positive_int,
    stages_flag,
    sweep_request_fields,
)
from bench.config import BenchConfig
from bench.console import Console
from bench.report.write import write_report
from bench.run import session
from bench.run.request import RunRequest
from bench.run.samples import SampleOptions
from bench.run.trial_design import DESIGNS, RESTART
from bench.shard import processes
from bench.shard_run import ShardOptions, check_schedule_flags
from loadgen.barrier import StartSchedule
from loadgen.engines import ENGINE_NAMES
from loadgen.inference.checking import CheckRule
from loadgen.inference.synthesis import parse_shape_overrides
from loadgen.modes import MODES
from loadgen.shard import ShardError, ShardSpec, parse_shard, parse_start_at

__all__ = ["RUN", "add_shard_arguments", "run_request", "shard_options"]


def run_request(args: argparse.Namespace, shard: ShardOptions | None = None) -> RunRequest:
    """The parsed `run` flags as a :class:`RunRequest` (``shard``: :func:`shard_options` of them)."""
    return RunRequest(
        targets=tuple(args.targets),
        **sweep_request_fields(args),
        engine=args.engine,
        run_id=args.run_id,
        write_report=not args.no_report,
        slo=args.slo,
        trial_design=args.trial_design,
        shard=shard,
        endpoint=args.endpoint,
        out=args.out,
        clients=args.clients,
        start_at=args.start_at,
        step_interval_s=args.step_interval,
        config_path=Path(args.config),
        samples=sample_options(args),
    )


def sample_options(args: argparse.Namespace) -> SampleOptions:
    """``--input-data``, ``--shape``, ``--synthetic``, ``--rtol``/``--atol``/``--argmax`` as
    :class:`SampleOptions`; ValueError naming the flag."""
    return SampleOptions(
        input_data=Path(args.input_data) if args.input_data else None,
        shapes=parse_shape_overrides(args.shape or ()),
        zeros=args.synthetic == "zero",
        rule=CheckRule(rtol=args.rtol, atol=args.atol, argmax=args.argmax),
    )


def _report(request: RunRequest, console: Console) -> Callable[[BenchConfig, Path], Path] | None:
    """How the run writes its report (None with ``--no-report``): the study's overlay included."""
    if not request.write_report:
        return None
    return lambda config, run_dir: write_report(config, run_dir, study_overlay=True, console=console)


def _shard_spec(text: str) -> tuple[ShardSpec, bool]:
    """``--shard I/N`` or ``auto/N`` (index from $JOB_COMPLETION_INDEX, as an Indexed Job sets it):
    (ShardSpec, whether the index came from the environment)."""
    try:
        return parse_shard(text, os.environ), text.strip().lower().startswith("auto")
    except ShardError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _start_at(text: str) -> float:
    try:
        return parse_start_at(text)
    except ShardError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_shard_arguments(p: argparse.ArgumentParser) -> None:
    """`run`'s sharded-load flags (docs/loadgen-in-cluster.md)."""
    group = p.add_argument_group("sharded load (one target; docs/loadgen-in-cluster.md)")
    group.add_argument(
        "--shard",
        type=_shard_spec,
        default=None,
        metavar="I/N",
        help="run shard I (0..N-1) of N of the plan: concurrent mode splits the requests and the "
        "in-flight count, rate mode the offered rate; auto/N takes I from $JOB_COMPLETION_INDEX",
    )
    group.add_argument(
        "--start-at",
        type=_start_at,
        default=None,
        metavar="EPOCH",
        help="with --shard: start step k at EPOCH + k x --step-interval (Unix seconds or ISO 8601 "
        "with a zone), the same on every shard; measured start skew recorded",
    )
    group.add_argument(
        "--step-interval",
        type=positive_float,
        default=None,
        metavar="S",
        help="with --start-at and more than one step: seconds from one step's start to the next "
        "(--clients without it: the parent starts each step when every shard is ready)",
    )
    group.add_argument(
        "--step-gate",
        type=Path,
        default=None,
        metavar="DIR",
        help="with --shard, on the --clients parent's machine: wait at each step until the parent "
        "releases it (set by --clients N; other shards coordinate with --start-at)",
    )
    group.add_argument(
        "--clients",
        type=positive_int,
        default=None,
        metavar="N",
        help="run N shard processes on this machine (one stand-in for all; the parent starts each "
        "step on all of them together), then merge them",
    )
    group.add_argument(
        "--endpoint",
        default=None,
        metavar="URL",
        help="send to this URL instead of starting the target's stand-in (remote mode)",
    )
    group.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the run's folder under DIR instead of the results folder",
    )


def shard_options(args: argparse.Namespace) -> ShardOptions | None:
    """The ShardOptions of a `run --shard`, or None; ValueError for flags that do not go together."""
    check_schedule_flags(
        args.start_at,
        args.step_interval,
        shard=args.shard is not None,
        clients=args.clients is not None,
        gate=args.step_gate is not None,
    )
    if args.clients is not None and args.shard is not None:
        raise ValueError("--clients N runs shards 0..N-1 itself: give --clients or --shard, not both")
    if args.shard is None:
        return None
    spec, from_env = args.shard
    return ShardOptions(
        spec, StartSchedule(args.start_at, args.step_interval or 0.0), index_from_env=from_env, gate=args.step_gate
    )


# --- `python -m bench run` (registered in bench/cli.py) ---


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Run the benchmark sweep against `all` targets or the named ones. The study's tuning is "
        "`python -m bench hpo` (also spelt `run hpo`), its pipelines `python -m bench pipeline run` "
        "(also spelt `run pipeline`); each has its own --help."
    )
    p.add_argument("targets", nargs="+", help="'all' or target names")
    p.add_argument("--requests", type=csv_counts, default=None, help="override [sweep] n_requests, e.g. 1,4,8")
    p.add_argument(
        "--modes",
        type=csv_words,
        default=None,
        metavar=choice_list((*MODES, CAPACITY_MODE)),
        help="override [sweep] modes (comma-separated); capacity = the capacity search (docs/capacity.md)",
    )
    p.add_argument("--trials", type=positive_int, default=None, help="override [sweep] trials")
    p.add_argument(
        "--trial-design",
        choices=DESIGNS,
        default=RESTART,
        help="restart: each trial of a local stand-in is a fresh start, targets in a seeded shuffled "
        "order per trial, so trials replicate what differs between runs; within-run: start each "
        "target once for all its trials (remote targets always are); default: %(default)s "
        "(docs/compare.md)",
    )
    p.add_argument(
        "--rate",
        type=positive_float,
        default=None,
        metavar="R",
        help="open-loop rate in req/s (override [sweep] rate_rps); implies --modes rate unless --modes is given",
    )
    p.add_argument(
        "--duration",
        type=positive_duration,
        default=None,
        metavar="D",
        help="length of each rate step (override [sweep] duration_s): seconds or 90s, 30m, 2h, 1h30m; "
        "each rate step sends round(R x D) requests instead of --requests; implies --modes rate "
        "unless --modes is given (a soak: docs/soak.md)",
    )
    p.add_argument(
        "--stages",
        type=stages_flag,
        default=None,
        metavar="D:RATE,...",
        help="k6-like stages for each rate step (override [sweep] stages): DURATION:RATE or "
        "DURATION:FROM-TO, the rate going linearly from the previous stage's, e.g. "
        "2m:0-100,30m:100,2m:0 (ramp up, hold, ramp down); implies --modes rate (docs/soak.md)",
    )
    p.add_argument(
        "--concurrency",
        type=non_negative_int,
        default=None,
        metavar="C",
        help="override [sweep] concurrency: requests in flight in concurrent mode, connection cap in rate mode (0 = N)",
    )
    p.add_argument(
        "--engine", default=None, metavar=choices_metavar(("auto", *ENGINE_NAMES)), help="override [loadgen] engine"
    )
    p.add_argument("--run-id", default=None, help="name of the results folder (default: time-based)")
    p.add_argument("--no-report", action="store_true", help="skip writing the report")
    p.add_argument(
        "--slo",
        default=None,
        help="the latency objective, e.g. p99=100ms: with --modes capacity, what the search finds the "
        "highest rate for (default: [capacity] percentile and bound_ms; docs/capacity.md); with rate steps, "
        "the line drawn on the report's timeline (docs/soak.md)",
    )
    add_sample_arguments(p)
    add_shard_arguments(p)


def add_sample_arguments(p: argparse.ArgumentParser) -> None:
    """What to send instead of the MNIST images, and how answers are checked (docs/own-model.md)."""
    defaults = CheckRule()
    group = p.add_argument_group("your own model's data (docs/own-model.md)")
    group.add_argument(
        "--input-data",
        default=None,
        metavar="FILE",
        help="send this file's samples to every target (over bench.toml's input_data): perf_analyzer's "
        "input-data JSON (named tensors, optional validation_data), or *.jsonl request bodies",
    )
    group.add_argument(
        "--shape",
        action="append",
        default=None,
        metavar="NAME:DIMS",
        help="size of an input's dynamic dimensions for synthesised inputs, e.g. tokens:16 (repeatable)",
    )
    group.add_argument(
        "--synthetic",
        choices=("random", "zero"),
        default="random",
        help="what a V2 model that is not MNIST gets without a file: seeded random values (default) or zeros",
    )
    group.add_argument(
        "--rtol",
        type=float,
        default=defaults.rtol,
        help=f"relative tolerance for float answers (default {defaults.rtol:g})",
    )
    group.add_argument(
        "--atol",
        type=float,
        default=defaults.atol,
        help=f"absolute tolerance for float answers (default {defaults.atol:g})",
    )
    group.add_argument(
        "--argmax", action="store_true", help="float answers agree when their argmax (last axis) does: for classifiers"
    )


def _main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    if len(args.targets) == 1 and args.targets[0] in ("hpo", "pipeline") and args.targets[0] not in config.targets:
        word = args.targets[0]  # e.g. `run --run-id x hpo`: the alias applies to the word right after `run` only
        console.error(
            f"{word!r} is not a target: write `python -m bench run {word} ...` with {word} right after "
            f"run (see `python -m bench {word} --help`)"
        )
        return 2
    try:
        shard = shard_options(args)
        request = run_request(args, shard)
    except ValueError as exc:
        console.error(str(exc))
        return 2
    if (request.clients is not None or shard is not None) and (
        request.samples.input_data is not None
        or any(config.targets[n].input_data for n in request.target_names(config) if n in config.targets)
    ):
        console.error("input-data files are not supported with --clients or --shard yet: run without them")
        return 2
    if request.clients is not None:
        return processes.run_clients(config, request, console, report=_report(request, console))
    return session.run(config, request, console, report=_report(request, console))


RUN = Command(_add_arguments, _main)
