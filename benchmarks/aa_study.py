"""A/A study: how often does `bench compare --fail-on-regression` fail on identical runs?

    python benchmarks/aa_study.py [--pairs 10] [--trials 3] [--targets greene-linserv kubeflow-gcp]
                                  [--requests 1,4,8,16,64] [--keep]

Why: issue 13 -- four identical back-to-back runs, compared pairwise, "regressed" in 6 of
12 comparisons. This script repeats that experiment against the current code: N pairs of
identical back-to-back `python -m bench run TARGETS --requests ... --trials K` (separate
processes, into a scratch results folder), each pair compared in both directions with
`python -m bench compare --fail-on-regression`. Every exit 1 is a false alarm; the goal
is at most 1 in 20 comparisons. It also measures what a *one-trial* run can tell: the
95th percentile of |log B/A| between the first trials of A and B over all steps -- the
figure to use as bench.compare.DEFAULT_NOISE_FLOOR_PCT (printed as a suggestion).

Defaults take about 12 minutes on a quiet 2-core machine (20 runs of ~35 s each plus 20
comparisons). `--pairs 2 --trials 2 --requests 1,4` is a smoke check. Results: a summary
on stdout and benchmarks/out/aa_study.json (git-ignored). The load average is printed
before and after; with a 1-minute load above 1 the results say "loaded machine".
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study_common import Scratch, loadavg, loaded, target_line, write_json  # noqa: E402

from bench.console import Console  # noqa: E402


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="A/A study of bench compare's false-alarm rate (issue 13).")
    p.add_argument("--pairs", type=int, default=10, help="pairs of identical runs (default: %(default)s)")
    p.add_argument("--trials", type=int, default=3, help="trials per run (default: %(default)s)")
    p.add_argument("--targets", nargs="+", default=["greene-linserv", "kubeflow-gcp"])
    p.add_argument("--requests", default="1,4,8,16,64", help="request counts (default: %(default)s)")
    p.add_argument("--modes", default=None, help="override [sweep] modes, e.g. sequential,concurrent")
    p.add_argument("--config", type=Path, default=Path(__file__).resolve().parents[1] / "bench.toml")
    p.add_argument("--compare-args", default="", help="extra `bench compare` arguments, e.g. '--gate step'")
    p.add_argument("--keep", action="store_true", help="keep the scratch results folder (path printed)")
    return p


def first_trial_log_ratios(a, b, column: str = "lat_p50_s") -> list[float]:
    """|log B/A| per step between the first clean trial of each run: what one-trial runs differ by."""
    out = []
    for key, ga in a.groupby(["target", "mode", "n_requests", "concurrency", "rate"]):
        gb = b[(b["target"] == key[0]) & (b["mode"] == key[1]) & (b["n_requests"] == key[2])
               & (b["concurrency"] == key[3]) & (b["rate"] == key[4])]
        ga, gb = ga[ga["errors"] == 0].sort_values("trial"), gb[gb["errors"] == 0].sort_values("trial")
        if len(ga) and len(gb) and ga[column].iloc[0] > 0 and gb[column].iloc[0] > 0:
            out.append(abs(math.log(gb[column].iloc[0] / ga[column].iloc[0])))
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console()
    if args.pairs < 1 or args.trials < 1:
        console.error("--pairs and --trials must be >= 1")
        return 2
    before = loadavg()
    console.print(f"load before: {before}")
    scratch = Scratch(config=args.config, keep=args.keep)
    started = time.monotonic()
    comparisons, ratios, run_codes = [], [], []
    try:
        config = scratch.write_config("aa")
        console.info(f"scratch: {scratch.directory}")
        scratch.train(config)
        for pair in range(args.pairs):
            ids = (f"aa-{pair:02d}-a", f"aa-{pair:02d}-b")
            for run_id in ids:
                console.info(f"pair {pair + 1}/{args.pairs}: bench run {run_id}")
                run_codes.append(scratch.run(config, run_id, targets=args.targets, requests=args.requests,
                                             trials=args.trials, modes=args.modes))
            ratios += first_trial_log_ratios(scratch.summary(ids[0]), scratch.summary(ids[1]))
            for a, b in (ids, ids[::-1]):
                code, targets = scratch.compare(config, a, b, args.compare_args.split())
                comparisons.append({"pair": pair, "a": a, "b": b, "exit": code, "targets": targets})
                console.print(f"{a} -> {b}: exit {code}{' FALSE ALARM' if code == 1 else ''}; "
                              f"{target_line(targets)}")
    finally:
        scratch.close()
    after = loadavg()
    elapsed = time.monotonic() - started
    alarms = sum(1 for c in comparisons if c["exit"] == 1)
    label = "loaded machine" if loaded(before, after) else "quiet machine (load1 <= 1)"
    p95 = float(np.percentile(ratios, 95)) if ratios else math.nan
    run_s = float(np.mean(scratch.run_seconds)) if scratch.run_seconds else math.nan
    compare_s = float(np.mean(scratch.compare_seconds)) if scratch.compare_seconds else math.nan
    result = {
        "label": label, "load_before": before, "load_after": after, "elapsed_s": round(elapsed, 1),
        "pairs": args.pairs, "trials": args.trials, "targets": args.targets, "requests": args.requests,
        "modes": args.modes, "compare_args": args.compare_args, "comparisons": comparisons,
        "false_alarms": alarms, "run_exit_codes": run_codes, "mean_run_s": run_s, "mean_compare_s": compare_s,
        "first_trial_step_log_ratio_p95": p95, "suggested_default_noise_floor_pct": (math.exp(p95) - 1) * 100,
        "scratch": str(scratch.directory) if args.keep else None,
    }
    path = write_json("aa_study", result)
    console.print(f"load after: {after}")
    console.print(f"[{label}] false alarms: {alarms} of {len(comparisons)} comparisons "
                  f"(target: <= 1 in 20); runs exiting 1 (failed requests): {run_codes.count(1)}")
    console.print(f"one-trial runs: 95th percentile of |B/A - 1| between first trials over {len(ratios)} steps: "
                  f"{(math.exp(p95) - 1) * 100:.1f} % (suggested DEFAULT_NOISE_FLOOR_PCT)")
    console.print(f"elapsed {elapsed / 60:.1f} min; mean `bench run` {run_s:.0f} s, `bench compare` {compare_s:.0f} s; "
                  f"at these settings {args.pairs} pair(s) take ~{args.pairs * 2 * (run_s + compare_s) / 60:.0f} min, "
                  f"10 pairs ~{20 * (run_s + compare_s) / 60:.0f} min")
    console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
