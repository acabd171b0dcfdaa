"""``python -m bench merge SHARD_RUN... -o RUN``: write the merged run and show what each shard did.

Exit codes: 0 merged; 2 refused (not shard runs, shards that disagree, a duplicate or
missing shard, an output that already holds a run) -- the message names the problem.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from bench.commands.common import Command
from bench.config import BenchConfig
from bench.console import Console
from bench.redact_secrets import redactor_for
from bench.results import ResultsError, resolve_run
from bench.shard.merge import MergeError, merge_runs
from bench.shard.merge_table import print_merge

__all__ = ["MERGE", "merge", "output_dir"]


def output_dir(output: str, results_dir: Path) -> Path:
    """``-o``: a path (it has a folder separator), or a run id under ``results_dir``."""
    return Path(output) if ("/" in output or "\\" in output) else results_dir / output


def merge(config: BenchConfig, *, shards: Sequence[str], output: str, console: Console) -> int:
    """Merge the named shard runs (folders or ids under results_dir) into ``output``."""
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
    p.description = (
        "Merge the shard runs of one plan into one ordinary run: raw records concatenated (with a "
        "shard column), statistics recomputed from their union. See docs/loadgen-in-cluster.md."
    )
    p.add_argument("shards", nargs="+", metavar="SHARD_RUN", help="shard run folders or ids, one per shard")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="RUN",
        help="the merged run: a folder path, or a run id under the results folder",
    )


def _main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    return merge(config, shards=args.shards, output=args.output, console=console)


MERGE = Command(_add_arguments, _main)
