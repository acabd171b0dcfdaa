"""Simulation study of the timeline's drift flag: false alarms on steady runs, detection of a drift.

    python benchmarks/drift_sim.py [--steady 1000] [--drifting 300] [--seed 1]

What is judged: :class:`bench.report.drift.DriftBatches` -- a step's last quarter against
its first after a 10 % warm-up, 5 batches per quarter, Welch's t over the batches' log
p50/p99 at 97.5 % each, flagged when the interval excludes 1 and the ratio is beyond ±10 %
-- exactly as the report runs it (the same class is fed the synthetic rows). Beside it,
the rule a per-request analysis would give (**naive**): the distribution-free 95 % bounds
of each quarter's percentile (:func:`loadgen.quantile_bounds.quantile_ci`, which assume
independent latencies), flagged when the two quarters' bounds do not overlap and the
ratio is beyond ±10 %. Latencies are autocorrelated, so the naive rule is expected to be
too sure of itself; this script measures by how much.

Each repetition is one 10-minute open-loop step at 100 req/s (60,000 requests; sends
every 10 ms) with latencies from one of these servers:

- ``ar1-2s``: lognormal (sigma 0.3, median 8 ms) times an AR(1) log-level with a 2 s
  correlation time (sd 0.25), plus a 0.3 s pause every ~90 s (requests sent during it wait
  for its end) -- the synthetic soak of ``benchmarks/timeline_synth.py``;
- ``ar1-20s``: the same with a 20 s correlation time (slow wander: fewer independent
  stretches per quarter);
- ``mm1-0.8``: an M/M/1 queue at 80 % utilisation (service rate 125/s, Poisson arrivals at
  100/s; latency = wait + service, Lindley's recursion): a real queue's autocorrelation.

A **drift of r** multiplies every latency by 1 + s x (send time / step length), with the
slope s chosen so that the multiplier's mean over the last quarter is (1 + r) times its
mean over the first quarter after the warm-up: r = 20 % means the last quarter is 20 %
slower than the first, at every percentile. Virtual time: nothing here depends on the machine's load.

Output: benchmarks/results/drift_sim.csv and drift_sim.md -- per server and drift, the
share of repetitions flagged (p50, p99, either) by each rule, with 95 % Clopper-Pearson
intervals (one-sided upper bound for the false alarms).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import signal, stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report.drift import (
    DRIFT_THRESHOLD,
    N_BATCHES,
    WARMUP_FRACTION,
    DriftBatches,
)
from loadgen.quantile_bounds import quantile_ci

RESULTS = ROOT / "benchmarks" / "results"
RATE = 100.0
DURATION_S = 600.0
N = int(RATE * DURATION_S)
Server = Callable[[np.random.Generator], np.ndarray]


def _ar1_lognormal(tau_s: float) -> Server:
    def draw(rng: np.random.Generator) -> np.ndarray:
        t = np.arange(N) / RATE
        phi = float(np.exp(-1.0 / (tau_s * RATE)))
        level = signal.lfilter([1.0], [1.0, -phi], rng.normal(0.0, 0.25 * np.sqrt(1 - phi**2), N))
        lat = 0.008 * np.exp(level + rng.normal(0.0, 0.3, N))
        for p in rng.uniform(0, DURATION_S, size=int(DURATION_S / 90)):
            hit = (t >= p) & (t < p + 0.3)
            lat[hit] += p + 0.3 - t[hit]
        return lat

    return draw


def _mm1(rho: float) -> Server:
    mu = RATE / rho

    def draw(rng: np.random.Generator) -> np.ndarray:
        service = rng.exponential(1 / mu, N)
        gaps = rng.exponential(1 / RATE, N)
        wait = np.empty(N)
        w = 0.0
        for i in range(N):  # Lindley: the wait of request i
            wait[i] = w
            w = max(0.0, w + service[i] - gaps[i])
        return wait + service

    return draw


SERVERS: dict[str, Server] = {"ar1-2s": _ar1_lognormal(2.0), "ar1-20s": _ar1_lognormal(20.0), "mm1-0.8": _mm1(0.8)}


def _quarter_means(d: float) -> tuple[float, float]:
    """The multiplier 1 + d t/T averaged over the first quarter (after warm-up) and over the last."""
    warm = WARMUP_FRACTION
    q = (1 - warm) / 4
    return 1 + d * (warm + q / 2), 1 + d * (1 - q / 2)


def slope_for(ratio: float) -> float:
    """The d of 1 + d t/T whose last-quarter mean is ``ratio`` times its first-quarter mean."""
    warm = WARMUP_FRACTION
    q = (1 - warm) / 4
    return (ratio - 1) / ((1 - q / 2) - ratio * (warm + q / 2))


def judge(lat: np.ndarray) -> dict[str, bool]:
    """Both rules on one step: flagged p50/p99 (batch rule, as the report) and the naive per-request rule."""
    intended = np.arange(N) / RATE
    ok = np.ones(N, dtype=bool)
    batches = DriftBatches(DURATION_S)
    batches.add(intended, lat, ok)
    out = {f"batch_p{q * 100:g}": r.flagged for q, r in zip((0.5, 0.99), batches.results(), strict=True)}
    warm = WARMUP_FRACTION * DURATION_S
    quarter = (DURATION_S - warm) / 4
    first = lat[(intended >= warm) & (intended < warm + quarter)]
    last = lat[intended >= DURATION_S - quarter]
    for q in (0.5, 0.99):
        a_lo, a_hi = quantile_ci(first, q)
        b_lo, b_hi = quantile_ci(last, q)
        ratio = float(np.quantile(last, q) / np.quantile(first, q))
        apart = b_lo > a_hi or a_lo > b_hi
        out[f"naive_p{q * 100:g}"] = bool(apart and (ratio > 1 + DRIFT_THRESHOLD or ratio < 1 / (1 + DRIFT_THRESHOLD)))
    return out


def _rate_row(flags: list[bool], upper_only: bool) -> tuple[float, float, float]:
    k, n = int(sum(flags)), len(flags)
    if upper_only:
        return k / n, 0.0, float(stats.beta.ppf(0.95, k + 1, n - k)) if k < n else 1.0
    lo = float(stats.beta.ppf(0.025, k, n - k + 1)) if k > 0 else 0.0
    hi = float(stats.beta.ppf(0.975, k + 1, n - k)) if k < n else 1.0
    return k / n, lo, hi


def run(steady: int, drifting: int, seed: int, drifts: tuple[float, ...] = (0.2, 0.5)) -> pd.DataFrame:
    """``drifts``: last quarter / first quarter of the injected multiplier (0.2 = 20 % slower)."""
    rng = np.random.default_rng(seed)
    rows = []
    for server, draw in SERVERS.items():
        for drift in (0.0, *drifts):
            reps = steady if drift == 0 else drifting
            d = slope_for(1 + drift)
            t = np.arange(N) / RATE
            results = [judge(draw(rng) * (1 + d * t / DURATION_S)) for _ in range(reps)]
            frame = pd.DataFrame(results)
            for rule in ("batch", "naive"):
                cols = {"p50": frame[f"{rule}_p50"], "p99": frame[f"{rule}_p99"]}
                cols["either"] = cols["p50"] | cols["p99"]
                for what, flags in cols.items():
                    share, lo, hi = _rate_row(list(flags), upper_only=drift == 0)
                    rows.append(
                        {
                            "server": server,
                            "drift": drift,
                            "slope": round(d, 4),
                            "rule": rule,
                            "percentile": what,
                            "reps": reps,
                            "flagged": int(flags.sum()),
                            "share": round(share, 4),
                            "ci_low": round(lo, 4),
                            "ci_high": round(hi, 4),
                        }
                    )
            print(f"{server} drift {drift:g}: {reps} reps done", flush=True)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, command: str, seconds: float) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    lines = [
        "# Drift flag of the timeline: false alarms and detection (simulation)",
        "",
        f"- command: `{command}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; commit `{commit.stdout.strip()}`; "
        f"{seconds:.0f} s (virtual time: the numbers do not depend on the machine's load)",
        f"- each repetition: one open-loop step of {DURATION_S:g} s at {RATE:g} req/s ({N:,} requests); warm-up "
        f"{WARMUP_FRACTION:.0%}, {N_BATCHES} batches, threshold ±{DRIFT_THRESHOLD:.0%}; servers and rules in the "
        "script's docstring (`benchmarks/drift_sim.py`)",
        "- drift r: every latency x (1 + s x t / T), the slope s chosen so that the multiplier's mean over the last "
        "quarter is (1 + r) times its mean over the first (after the warm-up): r = 0.2 is a last quarter 20 % slower "
        "at every percentile, r = 0.5 50 % slower (s in the table)",
        "- share flagged: drift 0 = false alarms, with the one-sided 95 % upper bound (Clopper-Pearson); "
        "drift > 0 = detection, with its 95 % interval",
        "",
        "| server | drift r | slope s | rule | p50 flagged | p99 flagged | either flagged |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]

    def cell(row: pd.Series) -> str:
        if row["drift"] == 0:
            return f"{row['flagged']}/{row['reps']} ({row['share']:.1%}, ≤ {row['ci_high']:.1%})"
        return f"{row['flagged']}/{row['reps']} ({row['share']:.1%}, {row['ci_low']:.1%}-{row['ci_high']:.1%})"

    for (server, drift, rule), group in table.groupby(["server", "drift", "rule"], sort=False):
        by = {r["percentile"]: r for _, r in group.iterrows()}
        lines.append(
            f"| {server} | {drift:g} | {by['p50']['slope']:.2f} | {rule} | {cell(by['p50'])} | "
            f"{cell(by['p99'])} | {cell(by['either'])} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steady", type=int, default=1000, help="repetitions without drift, per server")
    parser.add_argument("--drifting", type=int, default=300, help="repetitions per server and drift")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.monotonic()
    table = run(args.steady, args.drifting, args.seed)
    RESULTS.mkdir(parents=True, exist_ok=True)
    table.to_csv(RESULTS / "drift_sim.csv", index=False)
    command = "python benchmarks/drift_sim.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = markdown(table, command.strip(), time.monotonic() - started)
    (RESULTS / "drift_sim.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
