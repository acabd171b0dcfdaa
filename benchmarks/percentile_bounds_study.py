"""How many answers a percentile needs, and do the 95 % bounds hold? (issue 21, part 2)

Writes ``benchmarks/results/percentile_bounds.md``:

1. for p50/p90/p95/p99/p99.9, the fewest answers with a lower bound and with both bounds
   (:func:`loadgen.quantile_bounds.quantile_ci_ranks`, 95 %) -- the table that
   docs/reading-the-report.md quotes;
2. the ranks of the bounding order statistics at the step sizes the report usually shows;
3. a seeded simulation (pure numpy, virtual: independent of the machine's load) of how
   often the bounds written to summary.csv hold the true percentile, on lognormal and
   exponential latencies, and how wide they are relative to the point estimate.

Usage: ``python benchmarks/percentile_bounds_study.py [--reps 4000]`` (about a minute).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadgen.quantile_bounds import quantile_ci_ranks
from loadgen.stats import LATENCY_PERCENTILES, PERCENTILE_CONFIDENCE

OUT = ROOT / "benchmarks" / "results" / "percentile_bounds.md"
ALPHA = 1.0 - PERCENTILE_CONFIDENCE
STEP_SIZES = (4, 16, 64, 256, 1000, 10_000)
SIM_SIZES = (16, 64, 256, 1000)
SIM_LEVELS = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
# Latency shapes (numpy generator method, its arguments, the true quantile function).
SHAPES = {
    "lognormal(0, 0.5)": (
        lambda rng, size: rng.lognormal(0.0, 0.5, size),
        lambda q: float(np.exp(0.5 * stats.norm.ppf(q))),
    ),
    "exponential(1)": (lambda rng, size: rng.exponential(1.0, size), lambda q: float(-np.log1p(-q))),
}


def first_n(q: float, side: int) -> int:
    """Fewest answers for which bound ``side`` (0 lower, 1 upper) exists."""
    n = 1
    while quantile_ci_ranks(n, q, ALPHA)[side] is None:
        n += 1 if n < 64 else max(1, n // 64)
    while n > 1 and quantile_ci_ranks(n - 1, q, ALPHA)[side] is not None:
        n -= 1
    return n


def needs_table() -> list[str]:
    lines = [
        "| percentile | lower bound from n = | two-sided from n = | upper bound at that n is |",
        "|---|---:|---:|---|",
    ]
    for q, suffix in LATENCY_PERCENTILES:
        lower_from = first_n(q / 100, 0)
        both = max(lower_from, first_n(q / 100, 1))
        lo, hi = quantile_ci_ranks(both, q / 100, ALPHA)
        hi_text = "the largest answer" if hi == both else f"X({hi})"
        lines.append(f"| {suffix} | {lower_from} | {both} | {hi_text} (lower: X({lo})) |")
    return lines


def ranks_table() -> list[str]:
    head = "| n | " + " | ".join(s for _, s in LATENCY_PERCENTILES) + " |"
    lines = [head, "|---:|" + "---|" * len(LATENCY_PERCENTILES)]
    for n in STEP_SIZES:
        cells = []
        for q, _ in LATENCY_PERCENTILES:
            lo, hi = quantile_ci_ranks(n, q / 100, ALPHA)
            cells.append(f"X({lo if lo else '—'}) .. " + (f"X({hi})" if hi else "open"))
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return lines


def simulate(reps: int, seed: int = 21) -> list[str]:
    """Coverage of the bounds over ``reps`` seeded steps per (shape, n, percentile)."""
    rng = np.random.default_rng(seed)
    lines = [
        "| latencies | n | percentile | bounds | held the true value | median width (hi − lo) / true |",
        "|---|---:|---|---|---:|---:|",
    ]
    for shape, (draw, true_q) in SHAPES.items():
        for n in SIM_SIZES:
            samples = np.sort(draw(rng, (reps, n)), axis=1)
            for suffix, q in SIM_LEVELS:
                lo_rank, hi_rank = quantile_ci_ranks(n, q, ALPHA)
                truth = true_q(q)
                if lo_rank is None:
                    lines.append(f"| {shape} | {n} | {suffix} | none | — | — |")
                    continue
                lo = samples[:, lo_rank - 1]
                if hi_rank is None:
                    held = float(np.mean(lo <= truth))
                    lines.append(f"| {shape} | {n} | {suffix} | lower only | {held:.3f} (nominal ≥ 0.975) | — |")
                    continue
                hi = samples[:, hi_rank - 1]
                held = float(np.mean((lo <= truth) & (truth <= hi)))
                width = float(np.median((hi - lo) / truth))
                lines.append(f"| {shape} | {n} | {suffix} | two-sided | {held:.3f} (nominal ≥ 0.95) | {width:.2f} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=4000, help="simulated steps per cell (default 4000)")
    args = parser.parse_args()
    load_before = Path("/proc/loadavg").read_text().strip()
    started = time.time()
    sim = simulate(args.reps)
    load_after = Path("/proc/loadavg").read_text().strip()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    text = "\n".join(
        [
            "# Percentile bounds: answers needed, ranks, simulated coverage",
            "",
            f"- command: `python benchmarks/percentile_bounds_study.py --reps {args.reps}`",
            f"- date (UTC): {time.strftime('%Y-%m-%d %H:%M', time.gmtime(started))}; commit {commit or 'unknown'}",
            f"- load average before / after: `{load_before}` / `{load_after}` (pure numpy on seeded draws: the "
            "figures do not depend on the load)",
            f"- confidence {PERCENTILE_CONFIDENCE:g} two-sided (each side ≤ {ALPHA / 2:g}); bounds are order "
            "statistics X(k) of the step's successful latencies, ranks from the binomial "
            "(`loadgen.quantile_bounds.quantile_ci_ranks`), as written to summary.csv by `loadgen.stats`",
            "",
            "## Answers a percentile needs",
            "",
            *needs_table(),
            "",
            "## Bounding order statistics at common step sizes (X(k) = k-th smallest answer)",
            "",
            *ranks_table(),
            "",
            f"## Simulated coverage ({args.reps} seeded steps per row)",
            "",
            *sim,
            "",
        ]
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
