"""Check sharded load: does a merged `--clients 2` run equal the single-client run of the same plan?

    python benchmarks/shard_check.py [TARGET] [--rate 100] [--duration 5] [--trials 3]
                                     [--rounds 2] [--clients 2] [--step-interval 10]

Why: `bench run --shard I/N` + `bench merge` (and `--clients N`, which runs both) claim that
the merged run is an ordinary run of the whole plan. Two things must hold, and this script
measures both with the real commands (separate `python -m bench` processes, as a user runs
them):

1. **Exact statistics.** Every percentile in the merged run's summary.csv equals numpy's
   percentile of the union of the shards' own raw records (bit for bit).
2. **Same result within noise.** Per round, one single-client run and one `--clients N`
   run of the same plan (order alternated between rounds), compared with
   `bench compare` (trials as samples, its noise floor and verdict), plus the per-trial
   median latencies side by side. Also per step: each shard's offered and achieved rate,
   the merged rates, and the start skew between shards.

Runs go under ``benchmarks/out/shard_check/<timestamp>/`` (``--out``), never into results/.
Load only goes to the stand-in on 127.0.0.1, for ``--trials`` steps of ``--duration`` s.
The load average before and after each run is printed; above 1 the figures are from a
loaded machine. A standalone script (its own argparse), not a test.
"""

from __future__ import annotations

import argparse
import glob
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from study_common import loadavg, loaded

OUT_DIR = ROOT / "benchmarks" / "out" / "shard_check"
PERCENTILES = ((50, "p50"), (90, "p90"), (95, "p95"), (99, "p99"), (99.9, "p999"))


def bench(*argv: str, timeout_s: float = 900.0) -> subprocess.CompletedProcess[str]:
    """One `python -m bench` command from the repository root (its bench.toml)."""
    return subprocess.run(
        [sys.executable, "-m", "bench", "-q", *argv],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )


def exact_percentiles(run_dir: Path) -> int:
    """Assert every percentile of the merged run equals the union's; the number checked."""
    from bench.results import read_requests

    summary = pd.read_csv(run_dir / "summary.csv", float_precision="round_trip")
    shards = pd.concat(
        [read_requests(Path(p) / "requests.csv.gz") for p in sorted(glob.glob(str(run_dir / "shards" / "*-shard*")))]
    )
    checked = 0
    for _, row in summary.iterrows():
        part = shards[
            (shards["mode"] == row["mode"])
            & (shards["n_requests"] == row["n_requests"])
            & (shards["trial"] == row["trial"])
        ]
        ok = part[part["error"].fillna("") == ""]["latency_s"].to_numpy(float)
        for q, name in PERCENTILES:
            if row[f"lat_{name}_s"] != np.percentile(ok, q):
                raise AssertionError(
                    f"{run_dir.name} trial {row['trial']} {name}: summary "
                    f"{row[f'lat_{name}_s']!r} != union {np.percentile(ok, q)!r}"
                )
            checked += 1
    return checked


def trial_p50s(run_dir: Path) -> list[float]:
    summary = pd.read_csv(run_dir / "summary.csv")
    return [float(v) * 1000 for v in summary.sort_values("trial")["lat_p50_s"]]


def shard_table(run_dir: Path) -> list[dict[str, Any]]:
    """Per step: each shard's offered/achieved rate and start offset, the merged rates, the skew."""
    meta = json.loads((run_dir / "meta.json").read_text())
    summary = pd.read_csv(run_dir / "summary.csv")
    rows = []
    for step in meta["sharding"]["steps"]:
        merged = summary[
            (summary["mode"] == step["mode"])
            & (summary["n_requests"] == step["n_requests"])
            & (summary["trial"] == step["trial"])
        ].iloc[0]
        rows.append(
            {
                "trial": step["trial"],
                "shards": [
                    (
                        s["index"],
                        round(s["offered_rps"], 1),
                        round(s["achieved_rps"], 1),
                        round(s["start_offset_s"] * 1000, 2),
                        round(s["late_s"] * 1000, 2),
                    )
                    for s in step["shards"]
                ],
                "merged_offered_rps": round(float(merged["offered_rps"]), 1),
                "merged_achieved_rps": round(float(merged["achieved_rps"]), 1),
                "start_skew_ms": round(step["start_skew_s"] * 1000, 2),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", default="kubeflow-gcp")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--step-interval", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = args.out or OUT_DIR / time.strftime("%Y%m%dT%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    plan = [
        "--rate",
        str(args.rate),
        "--duration",
        str(args.duration),
        "--trials",
        str(args.trials),
        "--out",
        str(out),
        "--no-report",
    ]
    loads: list[str] = []
    report: dict[str, Any] = {"target": args.target, "plan": plan, "rounds": []}
    for round_no in range(1, args.rounds + 1):
        single, sharded = f"single-{round_no}", f"clients{args.clients}-{round_no}"
        order = [single, sharded] if round_no % 2 else [sharded, single]
        for run_id in order:
            before = loadavg()
            extra = (
                ["--clients", str(args.clients), "--step-interval", str(args.step_interval)]
                if run_id == sharded
                else []
            )
            started = time.monotonic()
            done = bench("run", args.target, *plan, *extra, "--run-id", run_id)
            after = loadavg()
            loads += [before, after]
            print(
                f"{run_id}: exit {done.returncode} in {time.monotonic() - started:.0f} s "
                f"(load before {before.split()[0]}, after {after.split()[0]})"
            )
            if done.returncode != 0:
                print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
                return 1
        compared = bench("compare", str(out / single), str(out / sharded))
        verdict = [line for line in compared.stdout.splitlines() if args.target in line]
        checked = exact_percentiles(out / sharded)
        entry = {
            "single_p50_ms": [round(v, 2) for v in trial_p50s(out / single)],
            "sharded_p50_ms": [round(v, 2) for v in trial_p50s(out / sharded)],
            "exact_percentiles_checked": checked,
            "compare": verdict,
            "steps": shard_table(out / sharded),
        }
        report["rounds"].append(entry)
        print(
            f"round {round_no}: per-trial p50 ms single {entry['single_p50_ms']} vs "
            f"--clients {args.clients} {entry['sharded_p50_ms']}"
        )
        print(f"  {checked} percentiles of the merged run equal the union's, bit for bit")
        for line in verdict:
            print(f"  compare: {line.strip()}")
        for step in entry["steps"]:
            shards = "; ".join(
                f"shard {i}: offered {o} achieved {a} req/s, start +{s} ms, late {late} ms"
                for i, o, a, s, late in step["shards"]
            )
            print(
                f"  trial {step['trial']}: {shards}; merged offered {step['merged_offered_rps']} "
                f"achieved {step['merged_achieved_rps']} req/s; start skew {step['start_skew_ms']} ms"
            )
    report["loadavg"] = loads
    report["machine"] = "loaded machine" if loaded(*loads) else "quiet machine (1-min load <= 1)"
    (out / "shard_check.json").write_text(json.dumps(report, indent=1))
    print(f"{report['machine']}; load averages {[s.split()[0] for s in loads]}; details in {out / 'shard_check.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
