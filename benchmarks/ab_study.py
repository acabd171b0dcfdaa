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
2-core machine (60 runs of ~15-25 s, 30 comparisons). `--pairs 1 --duties 40 --trials 2 --requests 1,4` is a
smoke check.
Results: stdout and benchmarks/out/ab_study.json (git-ignored); the load average is
printed before and after, and results say "loaded machine" when the 1-minute load > 1.
Each level's detection count comes with its 95 % Clopper-Pearson interval, and exit 3
(cannot judge) is counted apart from "not detected".

``--scaled-from DIR`` (no new runs): every A/A pair recorded by ``aa_study.py record --dir
DIR`` is compared again with its B run's latencies multiplied by 1.10, 1.25 and 1.5
(`--factors`): how often the gate catches a slow-down of that size *on the real noise of
those runs*. A multiplied copy is not a real slow-down (a slower server also queues
differently), so this complements the real kinds above and does not replace them.
Written to benchmarks/results/ab_scaled.md and .csv with the command, date, commit, loads.
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

from study_analysis import cached_compare, rate_text
from study_common import Scratch, busy_competitor, loadavg, loaded, stop, target_line, write_json

from bench.console import Console
from ground.cpus import plan_cpus

DETECTION_SHARE = 0.9  # "detected in >= 9 of 10 pairs"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="A/B study of bench compare's power to detect a slow-down (issue 13).")
    p.add_argument("--kind", choices=("cpu", "loading"), default="cpu")
    p.add_argument("--duties", default="10,20,40", help="cpu: competitor busy %% per 10 ms (default: %(default)s)")
    p.add_argument("--pairs", type=int, default=10, help="pairs per level (default: %(default)s)")
    p.add_argument("--trials", type=int, default=3, help="trials per run (default: %(default)s)")
    p.add_argument(
        "--targets",
        nargs="+",
        default=["greene-linserv"],
        help="cpu kind only; loading always uses greene-linserv (default: %(default)s)",
    )
    p.add_argument("--requests", default="1,4,8,16,64", help="request counts (default: %(default)s)")
    p.add_argument("--modes", default=None, help="override [sweep] modes")
    p.add_argument("--config", type=Path, default=Path(__file__).resolve().parents[1] / "bench.toml")
    p.add_argument("--compare-args", default="", help="extra `bench compare` arguments, e.g. '--gate step'")
    p.add_argument("--keep", action="store_true", help="keep the scratch results folder (path printed)")
    p.add_argument(
        "--scaled-from",
        type=Path,
        default=None,
        help="no new runs: scale the B runs of the A/A pairs recorded in this folder",
    )
    p.add_argument("--factors", default="1.10,1.25,1.5", help="--scaled-from: slow-down factors")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "ab_scaled")
    return p


def _scaled_copy(src: Path, dst: Path, factor: float) -> None:
    """summary.csv with every latency and total times ``factor``, and meta.json (no requests: not needed)."""
    import json
    import shutil

    import pandas as pd

    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    summary = pd.read_csv(src / "summary.csv")
    for col in [c for c in summary.columns if c.startswith("lat_")] + ["total_s"]:
        summary[col] = summary[col] * factor
    summary.to_csv(dst / "summary.csv", index=False)
    meta = json.loads((src / "meta.json").read_text())
    meta["run_id"] = dst.name
    (dst / "meta.json").write_text(json.dumps(meta), encoding="utf-8")


def scaled(args: argparse.Namespace, console: Console) -> int:
    """Detection rates on the recorded A/A pairs with B scaled (see the module docstring)."""
    import json

    from study_common import study_header, write_study

    factors = [float(f) for f in args.factors.split(",") if f.strip()]
    directory = args.scaled_from.resolve()
    scratch = Scratch(keep=True, directory=directory)
    config = directory / "aa.toml"
    pairs = [json.loads(line) for line in (directory / "pairs.jsonl").read_text().splitlines()]
    rows = []
    for factor in factors:
        for pair in pairs:
            a, b = (r["run_id"] for r in pair["runs"])
            scaled_id = f"{b}-x{factor:g}"
            _scaled_copy(directory / "results" / b, directory / "results" / scaled_id, factor)
            code, targets = cached_compare(scratch, config, a, scaled_id, args.compare_args.split())
            t = targets[0]
            rows.append(
                {
                    "factor": factor,
                    "pair": pair["pair"],
                    "target": pair["target"],
                    "exit": code,
                    "verdict": t["verdict"],
                    "ratio": t["ratio"],
                    "ci_low": t["ci_low"],
                    "ci_high": t["ci_high"],
                    "detectable_pct": t.get("detectable_pct"),
                }
            )
        console.info(f"x{factor:g}: {sum(1 for r in rows if r['factor'] == factor and r['exit'] == 1)} detected")
    loads = [r[k] for p in pairs for r in p["runs"] for k in ("load_before", "load_after")]
    header = study_header(
        f"python benchmarks/ab_study.py --scaled-from DIR --factors {args.factors} (DIR: "
        f"{len(pairs)} A/A pairs, {pairs[0]['trials']} trials, requests {pairs[0]['requests']})",
        "loaded machine" if loaded(*loads) else "quiet machine (load1 <= 1)",
        loads,
    )
    summary = [
        "## Detection of a scaled slow-down on real A/A noise (`--fail-on-regression`, threshold 5 %)",
        "",
        "| slow-down | detected (exit 1) | cannot judge (exit 3) | passed (exit 0) |",
        "|---|---|---|---|",
    ]
    for factor in factors:
        part = [r["exit"] for r in rows if r["factor"] == factor]
        summary.append(
            f"| {100 * (factor - 1):.0f} % | {rate_text(part.count(1), len(part))} | "
            f"{rate_text(part.count(3), len(part))} | {rate_text(part.count(0), len(part))} |"
        )
    summary += ["", "Per target (detected / pairs):", ""]
    for target in dict.fromkeys(r["target"] for r in rows):
        cells = [
            f"x{f:g} {sum(1 for r in rows if r['target'] == target and r['factor'] == f and r['exit'] == 1)}/"
            f"{sum(1 for r in rows if r['target'] == target and r['factor'] == f)}"
            for f in factors
        ]
        summary.append(f"- {target}: " + ", ".join(cells))
    md, csv_path = write_study(args.out, header, summary, rows)
    console.print(md.read_text())
    console.print(f"wrote {md} and {csv_path}")
    return 0


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
    if args.scaled_from is not None:
        return scaled(args, console)
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
                for side in "ab" if pair % 2 == 0 else "ba":
                    console.info(f"{name}, pair {pair + 1}/{args.pairs}: run {side.upper()}")
                    competitor = busy_competitor(cpus, duty) if side == "b" and duty else None
                    try:
                        scratch.run(
                            config_a if side == "a" else config_b,
                            ids[side],
                            targets=targets,
                            requests=args.requests,
                            trials=args.trials,
                            modes=args.modes,
                        )
                    finally:
                        if competitor is not None:
                            stop(competitor)
                code, rows = scratch.compare(config_a, ids["a"], ids["b"], args.compare_args.split())
                level["pairs"].append({"exit": code, "targets": rows})
                word = {1: "detected", 3: "NOT detected (exit 3: cannot judge)"}.get(code, "NOT detected")
                console.print(f"{name}, pair {pair + 1}: {word}; {target_line(rows)}")
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
        level["cannot_judge"] = sum(1 for p in level["pairs"] if p["exit"] == 3)
        level["detected_text"] = rate_text(detected, len(level["pairs"]))  # with its Clopper-Pearson interval
        level["median_slowdown_pct"] = (float(np.median(ratios)) - 1) * 100 if ratios else math.nan
        console.print(
            f"[{label}] {level['level']}: detected {level['detected_text']}; cannot judge (exit 3) in "
            f"{level['cannot_judge']}; median slow-down {level['median_slowdown_pct']:.1f} %"
        )
        if detected >= DETECTION_SHARE * len(level["pairs"]) and (
            smallest is None or level["median_slowdown_pct"] < smallest["median_slowdown_pct"]
        ):
            smallest = level
    if smallest is None:
        console.print(f"[{label}] no level was detected in >= {DETECTION_SHARE:.0%} of its pairs")
    else:
        console.print(
            f"[{label}] smallest slow-down detected in >= {DETECTION_SHARE:.0%} of pairs: "
            f"{smallest['median_slowdown_pct']:.1f} % ({smallest['level']})"
        )
    elapsed = time.monotonic() - started
    run_s = float(np.mean(scratch.run_seconds)) if scratch.run_seconds else math.nan
    compare_s = float(np.mean(scratch.compare_seconds)) if scratch.compare_seconds else math.nan
    path = write_json(
        "ab_study",
        {
            "label": label,
            "load_before": before,
            "load_after": after,
            "elapsed_s": round(elapsed, 1),
            "kind": args.kind,
            "pairs": args.pairs,
            "trials": args.trials,
            "targets": targets,
            "requests": args.requests,
            "modes": args.modes,
            "compare_args": args.compare_args,
            "stand_in_cpus": list(cpus),
            "levels": results,
            "smallest_detected": smallest
            and {"level": smallest["level"], "slowdown_pct": smallest["median_slowdown_pct"]},
            "mean_run_s": run_s,
            "mean_compare_s": compare_s,
        },
    )
    console.print(
        f"elapsed {elapsed / 60:.1f} min; mean `bench run` {run_s:.0f} s, `bench compare` {compare_s:.0f} s; "
        f"at these settings {len(levels)} level(s) x {args.pairs} pair(s) take ~"
        f"{len(levels) * args.pairs * (2 * run_s + compare_s) / 60:.0f} min"
    )
    console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
