"""Peak memory and wall time of ``bench merge`` on synthetic shard runs of millions of records.

Why: issue 25 wants every reader of a run bounded in memory at any run length; ``bench
merge`` used to hold a whole step of every shard as Python record objects (~1 KB each). This
script measures it the way a user meets it: ``python -m bench merge SHARD0 SHARD1 -o RUN`` as
a separate process, its peak resident set size (``ru_maxrss`` of the child, from
``os.wait4``) and wall time. A watchdog stops a child whose RSS passes ``--max-gb`` (default
8) or whose time passes ``--max-min`` (default 15) and records the point as stopped (its
peak is then at least the limit).

The shard runs are synthetic (tests/support/synthetic_shards.py: two shards of one soak-like
rate step at 1,000 req/s, seeded lognormal latencies, 1.5 % failures, written by the real
writer; never a measurement of a server):

    python benchmarks/bench_merge_memory.py generate --records 1000000 --dir /tmp/servebench-merge
    python benchmarks/bench_merge_memory.py measure --records 1000000 --dir /tmp/servebench-merge --label after
    git archive main | tar -x -C /tmp/merge-before   # the code before, run from its own root
    python benchmarks/bench_merge_memory.py measure --records 1000000 --dir /tmp/servebench-merge \
        --label before --tree /tmp/merge-before

Each measured row is printed and appended to ``benchmarks/out/bench_merge_memory.jsonl``
(git-ignored) with the load average before and after.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.child_rss import run_measured
from benchmarks.study_common import OUT_DIR, Scratch, loadavg

SHARDS = 2
RATE_RPS = 1000.0


def generate(records: int, directory: Path) -> list[Path]:
    """Two shard runs of one rate step of ``records`` requests in all, under ``directory/r<records>``."""
    from loadgen.sweep import SweepPlan
    from tests.support.synthetic_shards import write_synthetic_shards

    out = directory / f"r{records}"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    plan = SweepPlan(n_requests=(records,), modes=("rate",), rate_rps=RATE_RPS, trials=1, warmup=0)
    return write_synthetic_shards(out, plan, SHARDS, run_id=f"r{records}", chunk=200_000)


def measure(records: int, directory: Path, label: str, tree: Path, max_gb: float, max_min: float) -> dict[str, Any]:
    """``bench merge`` of ``r<records>``'s shards by the code in ``tree``; one row."""
    shards = sorted((directory / f"r{records}").glob("*-shard*of*"))
    if len(shards) != SHARDS:
        raise SystemExit(f"{directory / f'r{records}'}: {len(shards)} shard runs, not {SHARDS}: run `generate` first")
    size_mb = sum((s / "requests.csv.gz").stat().st_size for s in shards) / 1e6
    scratch = Scratch(directory=Path(tempfile.mkdtemp(prefix="servebench-merge-")))
    config = scratch.write_config("bench")
    out_dir = scratch.directory / "merged"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True)
    cmd = [sys.executable, "-m", "bench", "--config", str(config), "-q", "merge", *map(str, shards), "-o", str(out_dir)]
    before = loadavg()
    try:
        result = run_measured(cmd, tree, scratch.directory / "merge.log", max_gb, max_min)
        row = {
            "label": label,
            "command": "merge",
            "records": records,
            "shards": SHARDS,
            "requests_gz_mb": round(size_mb, 1),
            **result,
            "commit": commit.stdout.strip() or str(tree),
            "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_before": before,
            "load_after": loadavg(),
        }
        if result["exit"] != 0 and not result["stopped"]:
            row["log_tail"] = (scratch.directory / "merge.log").read_text()[-2000:]
        summary = out_dir / "summary.csv"
        if summary.is_file():
            with summary.open(newline="") as handle:
                row["merged_flags"] = [r["flags"] for r in csv.DictReader(handle)]
    finally:
        shutil.rmtree(scratch.directory, ignore_errors=True)
    print(
        f"{label:8} merge {records:>10,} records  {row['wall_s']:7.1f} s  {row['peak_mb']:7.0f} MB  exit {row['exit']}"
        f"{'  STOPPED: ' + row['stopped'] if row['stopped'] else ''}  load {before.split()[0]} -> "
        f"{row['load_after'].split()[0]}",
        flush=True,
    )
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with (OUT_DIR / "bench_merge_memory.jsonl").open("a") as handle:
        handle.write(json.dumps(row) + "\n")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("generate", "measure"))
    parser.add_argument("--records", type=int, required=True, help="records in all (split over the two shards)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "servebench-merge")
    parser.add_argument("--label", default="now", help="measure: what code this is (before, after, ...)")
    parser.add_argument("--tree", type=Path, default=ROOT, help="measure: the checkout whose code runs")
    parser.add_argument("--max-gb", type=float, default=8.0, help="measure: stop the merge past this RSS")
    parser.add_argument("--max-min", type=float, default=15.0, help="measure: stop the merge past this many minutes")
    args = parser.parse_args(argv)
    if args.action == "generate":
        started = time.monotonic()
        paths = generate(args.records, args.dir)
        size = sum((p / "requests.csv.gz").stat().st_size for p in paths) / 1e6
        took = time.monotonic() - started
        print(f"wrote {len(paths)} shard runs under {paths[0].parent} ({size:.0f} MB) in {took:.0f} s")
    else:
        measure(args.records, args.dir, args.label, args.tree.resolve(), args.max_gb, args.max_min)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
