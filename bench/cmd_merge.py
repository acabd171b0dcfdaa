"""``python -m bench merge SHARD_RUN... -o RUN``: write the merged run and show what each shard did.

Exit codes: 0 merged; 2 refused (not shard runs, shards that disagree, a duplicate or
missing shard, an output that already holds a run) -- the message names the problem.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.cli_args import Command
from bench.config import BenchConfig
from bench.console import Console
from bench.merge import MergeError, MergeResult, merge_runs
from bench.results import ResultsError, resolve_run
from bench.shard_run import sharding_warnings
from loadgen.stats import summarize

__all__ = ["MERGE", "merge", "output_dir", "print_merge", "shard_rows"]


def output_dir(output: str, results_dir: Path) -> Path:
    """``-o``: a path (it has a folder separator), or a run id under ``results_dir``."""
    return Path(output) if ("/" in output or "\\" in output) else results_dir / output


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value) * 1000:.1f}"


def _rps(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if number != number else f"{number:.1f}"


def shard_rows(result: MergeResult) -> list[list[str]]:
    """Per step: one row per shard (its own offered/achieved rate, start offset, lateness), then the merged row."""
    rows = []
    for step in result.steps:
        key = step.result.key
        label = f"{key.mode} N={key.n_requests} t{key.trial}"
        for shard in step.shards:
            rows.append([label, str(shard["index"]), str(shard["n"]), str(shard.get("concurrency", "")),
                         _rps(shard.get("offered_rps")), _rps(shard.get("achieved_rps")),
                         _ms(shard.get("start_offset_s")), _ms(shard.get("late_s"))])
        merged: Mapping[str, Any] = summarize(step.result)
        rows.append([label, "merged", str(len(step.result.records)), str(key.concurrency),
                     _rps(merged["offered_rps"]), _rps(merged["achieved_rps"]),
                     f"skew {_ms(step.start_skew_s)}", "-"])
    return rows


def print_merge(result: MergeResult, console: Console) -> None:
    console.table(f"Merged run {result.run_id}: each shard and the union ({result.run_dir})",
                  ["step", "shard", "requests", "in flight / conns", "offered req/s", "achieved req/s",
                   "start offset ms", "late vs schedule ms"],
                  shard_rows(result))
    for warning in sharding_warnings(result.meta.details):
        console.warn(warning)


def merge(config: BenchConfig, *, shards: Sequence[str], output: str, console: Console) -> int:
    """Merge the named shard runs (folders or ids under results_dir) into ``output``."""
    from bench.redact_secrets import redactor_for

    try:
        paths = [resolve_run(ref, config.results_dir) for ref in shards]
        result = merge_runs(paths, output_dir(output, config.results_dir), redactor=redactor_for(config, console))
    except (MergeError, ResultsError) as exc:
        console.error(f"cannot merge: {exc}")
        return 2
    print_merge(result, console)
    console.print(f"merged run: {result.run_dir} (`python -m bench report {result.run_dir}` renders it)")
    return 0


# --- `python -m bench merge` (registered in bench/cli.py) ---


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Merge the shard runs of one plan into one ordinary run: raw records concatenated (with a "
                     "shard column), statistics recomputed from their union. See docs/loadgen-in-cluster.md.")
    p.add_argument("shards", nargs="+", metavar="SHARD_RUN", help="shard run folders or ids, one per shard")
    p.add_argument("-o", "--output", required=True, metavar="RUN",
                   help="the merged run: a folder path, or a run id under the results folder")


def _main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    return merge(config, shards=args.shards, output=args.output, console=console)


MERGE = Command(_add_arguments, _main)
