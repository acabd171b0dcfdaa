"""The cost of the percentile bounds in ``summarize``: this checkout's loadgen/stats.py
against an older one, interleaved in one process so both see the same machine load.

Why not two pytest-benchmark runs: on a shared, loaded machine two runs a minute apart
differ by more than the change being measured; interleaving the two versions call by
call, and taking each one's minimum, compares them under the same conditions.

Usage (the base is any older checkout's stats.py, e.g. main before the bounds)::

    git archive e4964b2 | tar -x -C /tmp/base    # a checkout without the bounds
    python benchmarks/stats_cost_ab.py --base /tmp/base/loadgen/stats.py [--rounds 7]

Prints one Markdown table (minimum and median ms per version) and the load averages.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from micro_data import open_loop_step

import loadgen.stats as current
from loadgen.records import StepKey, StepResult


def _load(path: Path):
    spec = importlib.util.spec_from_file_location("base_stats", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--base {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="the older loadgen/stats.py to compare with")
    parser.add_argument("--rounds", type=int, default=7, help="calls per version and case (default 7)")
    parser.add_argument("--records", type=int, default=1_000_000, help="records in the step (default 1 M)")
    args = parser.parse_args()
    base = _load(args.base)
    step, arrays = open_loop_step(args.records, seed=11, mode="rate")
    closed = StepResult(
        key=StepKey(step.key.target, "concurrent", step.key.n_requests, 64, 0.0, 0),
        records=step.records,
        total_s=step.total_s,
        started_at=step.started_at,
    )
    cases = {
        "latency_stats (numpy part)": lambda m: m.latency_stats(arrays.latency_s),
        "summarize, closed-loop step": lambda m: m.summarize(closed),
        "summarize, rate step": lambda m: m.summarize(step),
    }
    load_before = Path("/proc/loadavg").read_text().strip()
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for case, call in cases.items():
            for name, module in (("base", base), ("bounds", current)):
                started = time.perf_counter()
                call(module)
                times.setdefault((case, name), []).append((time.perf_counter() - started) * 1000)
    load_after = Path("/proc/loadavg").read_text().strip()
    print(
        f"load average before / after: `{load_before}` / `{load_after}`; {args.rounds} interleaved calls each, "
        f"{args.records:,} records\n"
    )
    print("| case | base min (ms) | with bounds min (ms) | base median | with bounds median |")
    print("|---|---:|---:|---:|---:|")
    for case in cases:
        b, n = times[(case, "base")], times[(case, "bounds")]
        print(f"| {case} | {min(b):.1f} | {min(n):.1f} | {statistics.median(b):.1f} | {statistics.median(n):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
