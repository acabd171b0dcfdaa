"""Simulation study of one rate's verdict: which design-effect rule keeps "met" honest.

    python benchmarks/slo_rule_sim.py [--reps 1000] [--fractions 0.25,0.5,0.75,1] [--seed 1]

Why a study of its own (beside benchmarks/capacity_sim.py, which runs whole searches):
a capacity is only as good as the verdict at one rate, and the question the design
effect answers is narrow -- on a server whose true percentile is at, 10 % or 50 % over
the bound, how often does the sequential rule (:func:`loadgen.slo_evidence.judge`,
looks of n1, n1, 2 n1 requests, Bonferroni over them) say "met" (it must be <= delta),
and on a server whose percentile sits well under the bound, how often and how fast does
it say "met"? Each repetition draws one contiguous latency series at a fixed rate (a
queue's looks continue the same queue, as on a real socket) and judges it look by look,
with the cluster series "latency > fraction x bound" at each fraction compared
(:func:`loadgen.slo_evidence.design_effect`; fraction 1 = the exceedance series alone).

Servers (objective p99 <= 100 ms; F = true p99 / bound):

- ``M/M/1 mu=500``: a fast queue (a KServe stand-in's scale); rate chosen so that the
  true p99 is F x the bound (p99 = ln(100) / (mu - lambda)): F >= 1 is at/over its knee
  (utilisation 91-94 %), exceedances in long bursts.
- ``M/M/1 mu=66``: a slow queue (a Flask stand-in's scale, capacity ~20 req/s).
- ``M/H2/1 mu=500``: service hyperexponential with squared coefficient of variation 4
  (a few slow requests hold the queue): burstier than M/M/1; its rates come from a long
  run's p99 (numerically, printed in the table).
- ``lognormal``: load-independent, independent latencies (sigma 0.8).
- ``mixture``: the issue's tail server, 4 ms or 150 ms with probability 2 % (F = 1.5).
- ``stalls``: load-independent pauses (200 req/s; a pause every ~1 s on average, requests
  arriving in one wait for its end): exceedances in bursts without any queue.

Output: benchmarks/results/slo_rule_sim.csv and .md: per (server, F, fraction) the share
of repetitions ending met / violated / undecided, the false-"met" rate on F >= 1 with its
95 % upper bound (Clopper-Pearson; rule of three when 0), and the median requests judged.
Virtual time: the figures do not depend on the machine's load.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.capacity_sim import facts
from loadgen.quantile_bounds import SloDecision
from loadgen.slo_evidence import SequentialRule, judge

RESULTS = ROOT / "benchmarks" / "results"
BOUND_S = 0.1
PERCENTILE = 99.0
Draw = Callable[[np.random.Generator, int], np.ndarray]


@dataclass(frozen=True)
class Case:
    """A server at one rate: ``draw(rng, n)`` -> n latencies in send order."""

    server: str
    factor: float  # true p99 / bound
    rate: float
    draw: Draw


def _lindley(service: np.ndarray, gaps: np.ndarray) -> np.ndarray:
    """Sojourn times of a FIFO queue starting empty: W_{k+1} = max(0, W_k + S_k - A_k)."""
    steps = service[:-1] - gaps[:-1]
    walk = np.concatenate(([0.0], np.cumsum(steps)))
    wait = walk - np.minimum.accumulate(np.minimum(walk, 0.0))
    return wait + service


WARMUP = 20_000  # requests discarded so each series starts from (near) the stationary queue


def _queue(rate: float, service: Callable[[np.random.Generator, int], np.ndarray]) -> Draw:
    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        m = n + WARMUP
        return _lindley(service(rng, m), rng.exponential(1.0 / rate, m))[WARMUP:]

    return draw


def _exp_service(mu: float) -> Callable[[np.random.Generator, int], np.ndarray]:
    return lambda rng, m: rng.exponential(1.0 / mu, m)


def _h2_service(mu: float, scv: float = 4.0) -> Callable[[np.random.Generator, int], np.ndarray]:
    """Balanced-means two-phase hyperexponential with mean 1/mu and squared CV ``scv``."""
    p = 0.5 * (1 + math.sqrt((scv - 1) / (scv + 1)))
    m1, m2 = 1 / (2 * p * mu), 1 / (2 * (1 - p) * mu)

    def service(rng: np.random.Generator, m: int) -> np.ndarray:
        return np.where(rng.random(m) < p, rng.exponential(m1, m), rng.exponential(m2, m))

    return service


def mm1_cases(mu: float, factors: tuple[float, ...]) -> list[Case]:
    out = []
    for f in factors:
        rate = mu - math.log(100) / (f * BOUND_S)
        if rate <= 0:
            continue
        out.append(Case(f"M/M/1 mu={mu:g}", f, rate, _queue(rate, _exp_service(mu))))
    return out


def h2_cases(mu: float, factors: tuple[float, ...], seed: int) -> list[Case]:
    """Rates whose true p99 is F x bound, found by bisection on long runs (1 M requests, common random numbers)."""
    service = _h2_service(mu)
    rng = np.random.default_rng(seed)
    out = []
    for f in factors:
        lo, hi = 0.3 * mu, 0.995 * mu
        state = rng.integers(2**32)
        for _ in range(20):  # common random numbers: p99 is monotone in the rate across iterations
            mid = 0.5 * (lo + hi)
            p99 = np.percentile(_queue(mid, service)(np.random.default_rng(state), 1_000_000), PERCENTILE)
            lo, hi = (mid, hi) if p99 < f * BOUND_S else (lo, mid)
        out.append(Case(f"M/H2/1 mu={mu:g} scv=4", f, 0.5 * (lo + hi), _queue(0.5 * (lo + hi), service)))
    return out


def lognormal_case(f: float, sigma: float = 0.8) -> Case:
    mu = math.log(f * BOUND_S) - stats.norm.ppf(0.99) * sigma
    return Case("lognormal sigma 0.8", f, math.nan, lambda rng, n: rng.lognormal(mu, sigma, n))


def mixture_case() -> Case:
    return Case(
        "mixture 4 ms / 150 ms, 2 %", 1.5, math.nan, lambda rng, n: np.where(rng.random(n) < 0.02, 0.150, 0.004)
    )


def stall_case(f: float, rate: float = 200.0, gap_s: float = 1.0, base_s: float = 0.004) -> Case:
    """Pauses of D s after exponential gaps of mean ``gap_s``; P(latency > x) = (D - x') / (gap + D)
    for x' = x - base < D, so D is chosen to put the true p99 at F x bound."""
    x = f * BOUND_S - base_s
    pause = (x + 0.01 * gap_s) / 0.99

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        arrivals = np.cumsum(rng.exponential(1.0 / rate, n))
        k = int(arrivals[-1] / gap_s * 2) + 10
        starts = np.cumsum(rng.exponential(gap_s, k) + pause) - pause
        idx = np.searchsorted(starts, arrivals, side="right") - 1
        since = arrivals - np.where(idx >= 0, starts[np.maximum(idx, 0)], -np.inf)
        wait = np.where((idx >= 0) & (since < pause), pause - since, 0.0)
        return base_s + wait

    return Case(f"stalls {rate:g} req/s, gap {gap_s:g} s", f, rate, draw)


def cases(seed: int) -> list[Case]:
    factors = (0.3, 0.5, 0.7, 0.9, 1.0, 1.1, 1.5)
    return (
        mm1_cases(500.0, factors)
        + mm1_cases(66.0, factors)
        + h2_cases(500.0, (0.3, 0.7, 1.0, 1.1, 1.5), seed)
        + [lognormal_case(f) for f in (0.3, 0.7, 1.0, 1.1, 1.5)]
        + [mixture_case()]
        + [stall_case(f) for f in (0.3, 1.0, 1.1, 1.5)]
    )


def first_look(rule: SequentialRule, rate: float, min_seconds: float) -> int:
    """The search's first look at ``rate``: what the objective needs, and ``min_seconds`` of arrivals."""
    n1 = rule.first_look(PERCENTILE)
    return n1 if math.isnan(rate) else max(n1, math.ceil(rate * min_seconds))


def verdict(series: np.ndarray, rule: SequentialRule, n1: int, fraction: float) -> tuple[str, int]:
    """The rate's final decision and the requests it took, looks cut from one series."""
    looks: list[np.ndarray] = []
    used = 0
    for look in range(1, rule.max_looks + 1):
        size = rule.look_size(look, n1)
        looks.append(series[used : used + size])
        used += size
        ev = judge(looks, PERCENTILE, BOUND_S, rule, cluster_fraction=fraction)
        if ev.decision is not SloDecision.UNDECIDED:
            return ev.decision.value, used
    return SloDecision.UNDECIDED.value, used


def upper95(k: int, n: int) -> float:
    """Upper end of the two-sided 95 % Clopper-Pearson interval of k / n (~3/n at k = 0)."""
    return 1.0 if k >= n else float(stats.beta.ppf(0.975, k + 1, n - k))


def run(reps: int, fractions: list[float], confidence: float, seed: int, min_seconds: float) -> pd.DataFrame:
    rule = SequentialRule(confidence, 3)
    rows = []
    for ci, case in enumerate(cases(seed)):
        n1 = first_look(rule, case.rate, min_seconds)
        total = sum(rule.look_size(k, n1) for k in range(1, rule.max_looks + 1))
        series = [case.draw(np.random.default_rng([seed, ci, r]), total) for r in range(reps)]
        for fraction in fractions:
            out = [verdict(s, rule, n1, fraction) for s in series]
            dec = np.array([d for d, _ in out])
            met = int((dec == "met").sum())
            violating = case.factor >= 1.0
            rows.append(
                {
                    "server": case.server,
                    "true_p99_over_bound": case.factor,
                    "rate_rps": round(case.rate, 1),
                    "fraction": fraction,
                    "confidence": confidence,
                    "reps": reps,
                    "met": met / reps,
                    "violated": float((dec == "violated").mean()),
                    "undecided": float((dec == "undecided").mean()),
                    "false_met_ci95_hi": upper95(met, reps) if violating else math.nan,
                    "median_requests": float(np.median([u for _, u in out])),
                }
            )
            r = rows[-1]
            print(
                f"{case.server:<28} F={case.factor:<4g} frac={fraction:<5g} met {r['met']:.3f} "
                f"viol {r['violated']:.3f} und {r['undecided']:.3f} n {r['median_requests']:.0f}",
                flush=True,
            )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--fractions", default="0.25,0.5,0.75,1")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-seconds", type=float, default=2.0, help="as [capacity] min_seconds")
    parser.add_argument("--out", default="slo_rule_sim")
    args = parser.parse_args(argv)
    before = facts()
    t0 = time.perf_counter()
    frame = run(args.reps, [float(x) for x in args.fractions.split(",")], args.confidence, args.seed, args.min_seconds)
    wall = time.perf_counter() - t0
    after = facts()
    RESULTS.mkdir(parents=True, exist_ok=True)
    cmd = "python benchmarks/slo_rule_sim.py " + " ".join(argv if argv is not None else sys.argv[1:])
    frame.assign(command=cmd.strip(), date=after["date"], commit=before["commit"]).to_csv(
        RESULTS / f"{args.out}.csv", index=False, float_format="%.4g"
    )
    lines = [
        "# One rate's verdict, simulated: design-effect rules compared",
        "",
        f"- command: `{cmd.strip()}`",
        f"- date: {after['date']}, commit {before['commit']}",
        f"- load average before / after: {before['loadavg']} / {after['loadavg']} (virtual time: no effect)",
        f"- wall time: {wall:.0f} s",
        "",
        "Each row: `reps` contiguous latency series at one rate, judged look by look (sequential rule, "
        f"confidence {args.confidence}, 3 looks, Bonferroni; first look max(408, rate x {args.min_seconds:g} s) "
        "as the search's) with the cluster series at `fraction` x bound. "
        "`met` on a row with true p99 / bound >= 1 is a false met: it must stay <= 1 - confidence; "
        "`false_met_ci95_hi` is its 95 % upper bound (~3 / reps when 0). On rows under 1, `met` is the power.",
        "",
    ]
    cols = list(frame.columns)
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for r in frame.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r) + " |")
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / (args.out + '.csv')} and .md in {wall:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
