"""A/B study: does `bench compare --fail-on-regression` catch a real slow-down, and how small a one?

    python benchmarks/ab_study.py [--kind cpu] [--duties 10,20,40] [--pairs 10] [--trials 3]
    python benchmarks/ab_study.py --kind loading [--pairs 10]

Why: a gate that never fires is as useless as one that fires at random (aa_study.py). Two
kinds of real slow-down of the target itself, each run as pairs of separate `bench run`
processes (A = unchanged, B = slowed) compared with `bench compare A B
--fail-on-regression`; a pair counts as detected when that exits 1:

- ``--kind cpu`` (default): during B a competing CPU-bound process runs pinned (with
  ``os.sched_setaffinity``) to the stand-ins' CPUs, busy ``duty`` % of every 10 ms. Each
  duty level gets its own pairs; the script prints detections per level and the smallest
  slow-down (the median geometric-mean B/A of that level, in %) detected in >= 90 % of
  its pairs (>= 9 of 10).
- ``--kind loading``: greene-linserv with ``model_loading = "startup"`` (A) against
  ``"per-request"`` (B, the study's app, which reloads the model on every request).

A and B alternate which runs first (pair 0: A then B, pair 1: B then A, ...), so slow
drift of a shared machine does not look like the change. Defaults (cpu, 3 levels x 10
pairs, greene-linserv, requests 1,4,8,16,64, 3 trials) take about 15-20 minutes on a
2-core machine (60 runs of ~15-25 s, 30 comparisons). `--pairs 1 --duties 40 --trials 2 --requests 1,4` is a smoke check.
Results: stdout and benchmarks/out/ab_study.json (git-ignored); the load average is
printed before and after, and results say "loaded machine" when the 1-minute load > 1.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study_common import Scratch, busy_competitor, loadavg, loaded, stop, target_line, write_json  # noqa: E402

from bench.console import Console  # noqa: E402
from ground.cpus import plan_cpus  # noqa: E402

DETECTION_SHARE = 0.9  # "detected in >= 9 of 10 pairs"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="A/B study of bench compare's power to detect a slow-down (issue 13).")
    p.add_argument("--kind", choices=("cpu", "loading"), default="cpu")
    p.add_argument("--duties", default="10,20,40", help="cpu: competitor busy %% per 10 ms (default: %(default)s)")
    p.add_argument("--pairs", type=int, default=10, help="pairs per level (default: %(default)s)")
    p.add_argument("--trials", type=int, default=3, help="trials per run (default: %(default)s)")
    p.add_argument("--targets", nargs="+", default=["greene-linserv"],
                   help="cpu kind only; loading always uses greene-linserv (default: %(default)s)")
    p.add_argument("--requests", default="1,4,8,16,64", help="request counts (default: %(default)s)")
    p.add_argument("--modes", default=None, help="override [sweep] modes")
    p.add_argument("--config", type=Path, default=Path(__file__).resolve().parents[1] / "bench.toml")
    p.add_argument("--compare-args", default="", help="extra `bench compare` arguments, e.g. '--gate step'")
    p.add_argument("--keep", action="store_true", help="keep the scratch results folder (path printed)")
    return p


def _levels(args: argparse.Namespace) -> list[tuple[str, float | None]]:
    if args.kind == "loading":
        return [("per-request model loading", None)]
    duties = [float(d) for d in args.duties.split(",") if d.strip()]
    if not duties or any(not 0 < d <= 100 for d in duties):
        raise ValueError(f"--duties must be percentages in (0, 100], got {args.duties!r}")
    return [(f"duty {d:g} %", d / 100) for d in sorted(duties)]


def _standin_cpus(config: Path) -> tuple[int, ...]:
    """The CPUs bench run gives the stand-ins (loadgen.cpus), where the competitor must run."""
    setting = tomllib.loads(config.read_text(encoding="utf-8")).get("loadgen", {}).get("cpus", "auto")
    plan = plan_cpus(setting)
    return plan.standins or tuple(sorted(os.sched_getaffinity(0)))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console()
    try:
        levels = _levels(args)
    except ValueError as exc:
        console.error(str(exc))
        return 2
    if args.pairs < 1 or args.trials < 1:
        console.error("--pairs and --trials must be >= 1")
        return 2
    targets = ["greene-linserv"] if args.kind == "loading" else args.targets
    before = loadavg()
    console.print(f"load before: {before}")
    scratch = Scratch(config=args.config, keep=args.keep)
    started = time.monotonic()
    results = []
    try:
        if args.kind == "loading":
            config_a = scratch.write_config("a", {"targets.greene-linserv": {"model_loading": "startup"}})
            config_b = scratch.write_config("b", {"targets.greene-linserv": {"model_loading": "per-request"}})
        else:
            config_a = config_b = scratch.write_config("ab")
        cpus = _standin_cpus(args.config)
        console.info(f"scratch: {scratch.directory}; stand-in CPUs {list(cpus)}")
        scratch.train(config_a)
        for name, duty in levels:
            level = {"level": name, "duty": duty, "pairs": []}
            for pair in range(args.pairs):
                ids = {"a": f"ab-{len(results)}-{pair:02d}-a", "b": f"ab-{len(results)}-{pair:02d}-b"}
                for side in ("ab" if pair % 2 == 0 else "ba"):
                    console.info(f"{name}, pair {pair + 1}/{args.pairs}: run {side.upper()}")
                    competitor = busy_competitor(cpus, duty) if side == "b" and duty else None
                    try:
                        scratch.run(config_a if side == "a" else config_b, ids[side], targets=targets,
                                    requests=args.requests, trials=args.trials, modes=args.modes)
                    finally:
                        if competitor is not None:
                            stop(competitor)
                code, rows = scratch.compare(config_a, ids["a"], ids["b"], args.compare_args.split())
                level["pairs"].append({"exit": code, "targets": rows})
                console.print(f"{name}, pair {pair + 1}: {'detected' if code == 1 else 'NOT detected'}; "
                              f"{target_line(rows)}")
            results.append(level)
    finally:
        scratch.close()
    after = loadavg()
    label = "loaded machine" if loaded(before, after) else "quiet machine (load1 <= 1)"
    console.print(f"load after: {after}")
    smallest = None
    for level in results:
        detected = sum(1 for p in level["pairs"] if p["exit"] == 1)
        ratios = [r["ratio"] for p in level["pairs"] for r in p["targets"] if r["ratio"] is not None]
        level["detected"] = detected
        level["median_slowdown_pct"] = (float(np.median(ratios)) - 1) * 100 if ratios else math.nan
        console.print(f"[{label}] {level['level']}: detected in {detected} of {len(level['pairs'])} pairs; "
                      f"median slow-down {level['median_slowdown_pct']:.1f} %")
        if detected >= DETECTION_SHARE * len(level["pairs"]) and (
                smallest is None or level["median_slowdown_pct"] < smallest["median_slowdown_pct"]):
            smallest = level
    if smallest is None:
        console.print(f"[{label}] no level was detected in >= {DETECTION_SHARE:.0%} of its pairs")
    else:
        console.print(f"[{label}] smallest slow-down detected in >= {DETECTION_SHARE:.0%} of pairs: "
                      f"{smallest['median_slowdown_pct']:.1f} % ({smallest['level']})")
    elapsed = time.monotonic() - started
    run_s = float(np.mean(scratch.run_seconds)) if scratch.run_seconds else math.nan
    compare_s = float(np.mean(scratch.compare_seconds)) if scratch.compare_seconds else math.nan
    path = write_json("ab_study", {
        "label": label, "load_before": before, "load_after": after, "elapsed_s": round(elapsed, 1),
        "kind": args.kind, "pairs": args.pairs, "trials": args.trials, "targets": targets, "requests": args.requests,
        "modes": args.modes, "compare_args": args.compare_args, "stand_in_cpus": list(cpus), "levels": results,
        "smallest_detected": smallest and {"level": smallest["level"], "slowdown_pct": smallest["median_slowdown_pct"]},
        "mean_run_s": run_s, "mean_compare_s": compare_s,
    })
    console.print(f"elapsed {elapsed / 60:.1f} min; mean `bench run` {run_s:.0f} s, `bench compare` {compare_s:.0f} s; "
                  f"at these settings {len(levels)} level(s) x {args.pairs} pair(s) take ~"
                  f"{len(levels) * args.pairs * (2 * run_s + compare_s) / 60:.0f} min")
    console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
