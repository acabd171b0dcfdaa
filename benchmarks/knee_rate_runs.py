"""The stand-ins' knees, measured: the share over the bound against the rate, its burstiness,
and what locating the capacity within +-10 % would cost there.

    python benchmarks/knee_rate_runs.py greene-linserv=15,20,25,30 kubeflow-gcp=150,250,350,450
                                        [--seconds 120] [--block-seconds 5] [--bound-ms 100]
                                        [--percentile 99] [--config bench.toml] [--out knee_rate_runs]

Why: benchmarks/capacity_precision.py shows, on simulated queues, that locating a capacity
within a factor 1.1 needs about D (1 - p) / p x (1.96 / (e ln 1.1))^2 requests at the
knee, e the elasticity of the share over the bound (d ln p / d ln rate) and D its design
effect. This script measures e and D on real targets instead of models: for each target
it runs plain ``bench run TARGET --rate R --duration S`` at each rate given (a fresh start
of the stand-in per run, as every search has), then from each run's requests.csv.gz:

- the share p of successful requests over the bound, with its 95 % Wilson interval;
- the design effect D by batch means: the run cut into blocks of ``--block-seconds`` of
  arrivals, the variance of the blocks' shares over the binomial one (NaN with no slow
  request: nothing to measure it on);
- the run's own p99 and whether any request failed or the step was saturated.

Per target: e, the weighted least-squares slope of ln p on ln rate over the runs with slow
requests (weights: their slow requests); the rate where that line crosses p = 1 - q (the
knee, rough); and the requests an ideal estimator would need there for +-10 %, with the
largest D measured. Results: benchmarks/results/<out>.md and .csv (command, date, commit,
load before and after every run -- quote them only from a quiet machine).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.capacity_check import _load, bench
from benchmarks.capacity_sim import facts

RESULTS = ROOT / "benchmarks" / "results"
Z = 1.959964


def wilson(h: int, n: int) -> tuple[float, float]:
    """95 % Wilson interval of h / n."""
    if n == 0:
        return math.nan, math.nan
    p = h / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def measure(run_dir: Path, bound_s: float, percentile: float, block_s: float) -> dict[str, float | int | bool]:
    """One run's share over the bound, its design effect by batch means, p99, errors."""
    frame = pd.read_csv(run_dir / "requests.csv.gz")
    frame = frame[frame["mode"] == "rate"]
    ok = frame[frame["error"].isna() | (frame["error"] == "")]
    lat = ok["latency_s"].to_numpy(float)
    slow = lat > bound_s
    n, h = int(lat.size), int(slow.sum())
    p = h / n if n else math.nan
    block = np.floor((ok["intended_s"].to_numpy(float) - ok["intended_s"].min()) / block_s).astype(int)
    counts = np.bincount(block)
    slows = np.bincount(block, weights=slow.astype(float))
    used = counts > 0
    shares = slows[used] / counts[used]
    d = math.nan
    if 0 < h < n and used.sum() >= 3:
        d = float(np.var(shares, ddof=1) * counts[used].mean() / (p * (1 - p)))
    lo, hi = wilson(h, n)
    summary = pd.read_csv(run_dir / "summary.csv")
    saturated = bool(summary.get("saturated", pd.Series([False])).astype(str).str.lower().eq("true").any())
    return {
        "requests": int(len(frame)),
        "judged": n,
        "slow": h,
        "share": p,
        "share_lo": lo,
        "share_hi": hi,
        "blocks": int(used.sum()),
        "design_effect": d,
        f"p{percentile:g}_ms": float(np.percentile(lat, percentile) * 1000) if n else math.nan,
        "errors": int(len(frame) - n),
        "saturated": saturated,
    }


def per_target(rows: pd.DataFrame, target_share: float) -> dict[str, object]:
    """Local elasticities, the knee where the share crosses ``target_share`` and the cost of +-10 %.

    The share is often flat (background bursts) below a steep queueing knee, so one slope
    over every rate would average the two: the elasticity is taken between consecutive
    rates (both with slow requests), the knee by log-log interpolation between the two
    rates whose shares bracket ``target_share``, and the cost with the elasticity of that
    pair and the larger design effect of the two."""
    clean = rows[(rows["errors"] == 0) & ~rows["saturated"].astype(bool)].sort_values("rate")
    out: dict[str, object] = {"target": rows["target"].iloc[0]}
    pairs = []
    for (_, a), (_, b) in zip(clean.iterrows(), clean.iloc[1:].iterrows(), strict=False):
        if a["slow"] > 0 and b["slow"] > 0:
            e = math.log(b["share"] / a["share"]) / math.log(b["rate"] / a["rate"])
            pairs.append(f"{a['rate']:g}-{b['rate']:g}: {e:.3g}")
    out["elasticity_between_rates"] = "; ".join(pairs) or "-"
    knee = e = need = math.nan
    below = clean[clean["share"] < target_share]
    above = clean[clean["share"] >= target_share]
    if not below.empty and not above.empty:
        a, b = below.iloc[-1], above[above["rate"] > below.iloc[-1]["rate"]].head(1)
        if not b.empty and a["slow"] > 0:
            b = b.iloc[0]
            e = math.log(b["share"] / a["share"]) / math.log(b["rate"] / a["rate"])
            if e > 0:
                knee = math.exp(math.log(a["rate"]) + math.log(target_share / a["share"]) / e)
                d = float(np.nanmax([a["design_effect"], b["design_effect"], 1.0]))
                need = d * (1 - target_share) / target_share * (Z / (e * math.log(1.1))) ** 2
    out.update(
        knee_rps=knee,
        elasticity_at_knee=e,
        requests_for_10pct=need,
        minutes_at_knee=need / knee / 60 if knee == knee else math.nan,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("plan", nargs="*", help="TARGET=RATE,RATE,...")
    parser.add_argument(
        "--from-csv", default=None, help="re-analyse the runs of an earlier <out>.csv instead of running (same --out)"
    )
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--block-seconds", type=float, default=5.0)
    parser.add_argument("--bound-ms", type=float, default=100.0)
    parser.add_argument("--percentile", type=float, default=99.0)
    parser.add_argument("--config", default=str(ROOT / "bench.toml"))
    parser.add_argument("--out", default="knee_rate_runs")
    args = parser.parse_args(argv)
    config = Path(args.config).resolve()
    results_dir = config.parent / "results"
    before, t0, stamp = facts(), time.perf_counter(), time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    rows: list[dict] = []
    measured = None
    if args.from_csv:
        measured = pd.read_csv(args.from_csv)
        rows = measured.drop(columns=["command", "date", "commit"]).to_dict("records")
    for item in args.plan if measured is None else []:
        target, _, rates = item.partition("=")
        for rate in (float(r) for r in rates.split(",")):
            run_id = f"knee-{stamp}-{target}-{rate:g}"
            load_before, started = " ".join(f"{v:.2f}" for v in _load()), time.perf_counter()
            proc = bench(
                config,
                "run",
                target,
                "--rate",
                f"{rate:g}",
                "--duration",
                f"{args.seconds:g}s",
                "--run-id",
                run_id,
                "--no-report",
            )
            row = {"target": target, "rate": rate, "run_id": run_id, "exit": proc.returncode}
            if (results_dir / run_id / "requests.csv.gz").is_file():
                row.update(measure(results_dir / run_id, args.bound_ms / 1000, args.percentile, args.block_seconds))
            row.update(
                wall_s=round(time.perf_counter() - started, 1),
                load_before=load_before,
                load_after=" ".join(f"{v:.2f}" for v in _load()),
            )
            rows.append(row)
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    frame = pd.DataFrame(rows)
    share = 1 - args.percentile / 100
    targets = pd.DataFrame([per_target(part, share) for _, part in frame.groupby("target", sort=False)])
    after = facts()
    cmd = "python benchmarks/knee_rate_runs.py " + " ".join(argv if argv is not None else sys.argv[1:])
    RESULTS.mkdir(parents=True, exist_ok=True)
    if measured is None:
        frame.assign(command=cmd, date=after["date"], commit=before["commit"]).to_csv(
            RESULTS / f"{args.out}.csv", index=False, float_format="%.5g"
        )
        header = [
            f"- command: `{cmd}`",
            f"- date: {after['date']}, commit {before['commit']}",
            f"- load average before / after: {before['loadavg']} / {after['loadavg']}; per run in the table",
            f"- wall time: {time.perf_counter() - t0:.0f} s",
        ]
    else:
        first = measured.iloc[0]
        header = [
            f"- command: `{first['command']}`",
            f"- date: {first['date']}, commit {first['commit']}; load per run in the table",
            f"- analysed by `{cmd}` ({after['date']}, commit {before['commit']})",
        ]
    lines = [
        f"# The stand-ins' knees, measured: share over {args.bound_ms:g} ms against the rate",
        "",
        *header,
        "",
        f"One `bench run TARGET --rate R --duration {args.seconds:g}s` per row (a fresh stand-in each). `share`: "
        f"successful requests over {args.bound_ms:g} ms (95 % Wilson interval); `design_effect`: batch means over "
        f"blocks of {args.block_seconds:g} s of arrivals.",
        "",
        frame.drop(columns=["run_id"]).to_markdown(index=False, floatfmt=".4g"),
        "",
        "Per target: `elasticity_between_rates` e = d ln share / d ln rate between consecutive rates with slow "
        f"requests; `knee_rps` where the share crosses {share:g}, interpolated (log-log) between the two rates "
        "that bracket it (none: not bracketed); `requests_for_10pct` = D (1 - p) / p x (1.96 / (e ln 1.1))^2 with "
        "that pair's e and larger D: what an ideal estimator spending every request at the knee needs to put the "
        "capacity within a factor 1.1 at 95 % (benchmarks/capacity_precision.py).",
        "",
        targets.to_markdown(index=False, floatfmt=".4g"),
        "",
    ]
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines))
    print(f"wrote {RESULTS / args.out}.md and .csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
