"""Simulation study of one rate's verdict: the episode rule against the shipped design effect.

    python benchmarks/slo_rule_sim.py [--reps 1000] [--rules shipped,episodes] [--fractions 0.3] [--seed 1]

Why a study of its own (beside benchmarks/capacity_sim.py, which runs whole searches): a
capacity is only as good as the verdict at one rate. On a server whose true p99 is at,
10 % or 50 % over the bound, how often does the sequential rule (looks of n1, n1, 2 n1
requests, Bonferroni over them) say "met" (it must stay <= delta), and on a server whose
p99 sits well under the bound, how often and how fast does it say "met"? Each repetition
draws one contiguous series of (send time, latency) at a fixed rate -- a queue's looks
continue the same queue, as on a real socket -- and judges it look by look.

Rules (same seeds, same series):

- ``shipped``: the rule before this study (commit 52734a8, kept in benchmarks/shipped_rule.py):
  n and h divided by the larger design effect (Geyer) of the 0/1 series "latency > bound"
  and "latency > 0.25 x bound", no floor of time.
- ``episodes``: :func:`loadgen.slo_evidence.judge` as shipped now -- episodes of
  overlapping slow requests as the unit of "met", cluster level ``fraction`` x bound,
  "met" only after ``min_met_seconds`` of arrivals.

Servers (objective p99 <= 100 ms; F = true p99 / bound):

- ``M/M/1 mu=500`` (a fast queue, a KServe stand-in's scale) and ``mu=66`` (a Flask one's):
  rate such that p99 = ln(100) / (mu - lambda) is F x bound; F >= 1 is the knee.
- ``M/H2/1 mu=500``: hyperexponential service, squared CV 4 (burstier); rates from long runs.
- ``M/M/c mu=100`` (c = 2, 4; a worker pool): rates from the Erlang-C sojourn tail.
- ``lognormal``: load-independent, independent latencies (sigma 0.8), 100 req/s.
- ``mixture``: the issue's tail server, 4 ms or 150 ms with probability 2 % (F = 1.5) or
  0.2 % (meets), 200 req/s.
- ``stalls``: load-independent pauses (200 req/s; a pause every ~1 s on average, requests
  arriving in one wait for its end): bursts without any queue, hidden state.

Output: benchmarks/results/slo_rule_sim.csv and .md: per (server, F, rule) the share of
repetitions ending met / violated / undecided, the false-"met" rate's 95 % upper bound on
F >= 1 (Clopper-Pearson; ~3 / reps when 0), median requests and seconds per verdict.
Virtual time: the figures do not depend on the machine's load.
"""

from __future__ import annotations

import argparse
import heapq
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.capacity_sim import facts
from benchmarks.shipped_rule import shipped_judge
from loadgen.quantile_bounds import SloDecision
from loadgen.slo_evidence import SequentialRule, judge

RESULTS = ROOT / "benchmarks" / "results"
BOUND_S = 0.1
PERCENTILE = 99.0
Series = tuple[np.ndarray, np.ndarray]  # send offsets (s), latencies (s), in send order
Draw = Callable[[np.random.Generator, int], Series]
WARMUP = 20_000  # requests discarded so each series starts from (near) the stationary queue


@dataclass(frozen=True)
class Case:
    """A server at one rate: ``draw(rng, n)`` -> n (send offset, latency) in send order."""

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


def _queue(rate: float, service: Callable[[np.random.Generator, int], np.ndarray]) -> Draw:
    def draw(rng: np.random.Generator, n: int) -> Series:
        m = n + WARMUP
        gaps = rng.exponential(1.0 / rate, m)
        lat = _lindley(service(rng, m), gaps)[WARMUP:]
        return np.concatenate(([0.0], np.cumsum(gaps[WARMUP:-1]))), lat

    return draw


def _multi(rate: float, servers: int, mu: float, warmup: int = 3_000) -> Draw:
    """FCFS M/M/c by direct simulation (a heap of the servers' free times)."""

    def draw(rng: np.random.Generator, n: int) -> Series:
        m = n + warmup
        arrivals = np.cumsum(rng.exponential(1.0 / rate, m))
        service = rng.exponential(1.0 / mu, m)
        free = [0.0] * servers
        lat = np.empty(m)
        for i in range(m):
            start = max(arrivals[i], heapq.heappop(free))
            heapq.heappush(free, start + service[i])
            lat[i] = start + service[i] - arrivals[i]
        return arrivals[warmup:] - arrivals[warmup], lat[warmup:]

    return draw


def _independent(rate: float, sample: Callable[[np.random.Generator, int], np.ndarray]) -> Draw:
    def draw(rng: np.random.Generator, n: int) -> Series:
        return np.concatenate(([0.0], np.cumsum(rng.exponential(1.0 / rate, n - 1)))), sample(rng, n)

    return draw


def _exp_service(mu: float) -> Callable[[np.random.Generator, int], np.ndarray]:
    return lambda rng, m: rng.exponential(1.0 / mu, m)


def _h2_service(mu: float, scv: float = 4.0) -> Callable[[np.random.Generator, int], np.ndarray]:
    """Balanced-means two-phase hyperexponential with mean 1/mu and squared CV ``scv``."""
    p = 0.5 * (1 + math.sqrt((scv - 1) / (scv + 1)))
    m1, m2 = 1 / (2 * p * mu), 1 / (2 * (1 - p) * mu)
    return lambda rng, m: np.where(rng.random(m) < p, rng.exponential(m1, m), rng.exponential(m2, m))


def mm1_cases(mu: float, factors: tuple[float, ...]) -> list[Case]:
    rates = [(f, mu - math.log(100) / (f * BOUND_S)) for f in factors]
    return [Case(f"M/M/1 mu={mu:g}", f, r, _queue(r, _exp_service(mu))) for f, r in rates if r > 0]


def h2_cases(mu: float, factors: tuple[float, ...], seed: int) -> list[Case]:
    """Rates whose p99 is F x bound, by bisection on long runs (common random numbers)."""
    service = _h2_service(mu)
    state = np.random.default_rng(seed).integers(2**32)
    out = []
    for f in factors:
        lo, hi = 0.3 * mu, 0.995 * mu
        for _ in range(18):
            mid = 0.5 * (lo + hi)
            _, lat = _queue(mid, service)(np.random.default_rng(state), 400_000)
            lo, hi = (mid, hi) if np.percentile(lat, PERCENTILE) < f * BOUND_S else (lo, mid)
        rate = 0.5 * (lo + hi)
        out.append(Case(f"M/H2/1 mu={mu:g} scv=4", f, rate, _queue(rate, service)))
    return out


def mmc_tail(rate: float, servers: int, mu: float, t: float) -> float:
    """P(sojourn > t) in M/M/c FCFS: Erlang C wait (exponential at c mu - lambda) plus service."""
    a = rate / mu
    head = sum(a**k / math.factorial(k) for k in range(servers))
    last = a**servers / math.factorial(servers) / (1 - a / servers)
    wait_p = last / (head + last)
    theta = servers * mu - rate
    if math.isclose(theta, mu):
        return (1 - wait_p) * math.exp(-mu * t) + wait_p * (1 + mu * t) * math.exp(-mu * t)
    both = (theta * math.exp(-mu * t) - mu * math.exp(-theta * t)) / (theta - mu)
    return (1 - wait_p) * math.exp(-mu * t) + wait_p * both


def mmc_cases(servers: int, mu: float, factors: tuple[float, ...]) -> list[Case]:
    out = []
    for f in factors:
        t = f * BOUND_S
        if mmc_tail(1e-9, servers, mu, t) >= 0.01:
            continue  # even an idle pool misses p99 <= F x bound
        rate = optimize.brentq(lambda r, t=t: mmc_tail(r, servers, mu, t) - 0.01, 1e-9, servers * mu * (1 - 1e-9))
        out.append(Case(f"M/M/{servers} mu={mu:g}", f, rate, _multi(rate, servers, mu)))
    return out


def lognormal_case(f: float, rate: float = 100.0, sigma: float = 0.8) -> Case:
    mu = math.log(f * BOUND_S) - stats.norm.ppf(0.99) * sigma
    return Case(
        f"lognormal sigma 0.8, {rate:g} req/s", f, rate, _independent(rate, lambda g, n: g.lognormal(mu, sigma, n))
    )


def mixture_case(p_slow: float, rate: float = 200.0) -> Case:
    factor = 1.5 if p_slow > 0.01 else 0.04
    sample = lambda g, n: np.where(g.random(n) < p_slow, 0.150, 0.004)  # noqa: E731
    return Case(f"mixture 4 ms / 150 ms, {p_slow:.1%}", factor, rate, _independent(rate, sample))


def stall_case(f: float, rate: float = 200.0, gap_s: float = 1.0, base_s: float = 0.004) -> Case:
    """Pauses of D s after exponential gaps of mean ``gap_s``; P(latency > x) = (D - x') / (gap + D)
    for x' = x - base < D, so D is chosen to put the true p99 at F x bound."""
    pause = (f * BOUND_S - base_s + 0.01 * gap_s) / 0.99

    def draw(rng: np.random.Generator, n: int) -> Series:
        arrivals = np.cumsum(rng.exponential(1.0 / rate, n))
        k = int(arrivals[-1] / gap_s * 2) + 10
        starts = np.cumsum(rng.exponential(gap_s, k) + pause) - pause
        idx = np.searchsorted(starts, arrivals, side="right") - 1
        since = arrivals - np.where(idx >= 0, starts[np.maximum(idx, 0)], -np.inf)
        wait = np.where((idx >= 0) & (since < pause), pause - since, 0.0)
        return arrivals - arrivals[0], base_s + wait

    return Case(f"stalls {rate:g} req/s, gap {gap_s:g} s", f, rate, draw)


def cases(seed: int) -> list[Case]:
    return (
        mm1_cases(500.0, (0.3, 0.5, 0.7, 1.0, 1.1, 1.5))
        + mm1_cases(66.0, (0.5, 0.9, 1.0, 1.1, 1.5))
        + h2_cases(500.0, (0.3, 0.5, 1.0, 1.1, 1.5), seed)
        + mmc_cases(2, 100.0, (0.3, 0.5, 1.0, 1.1, 1.5))
        + mmc_cases(4, 100.0, (0.3, 0.5, 1.0, 1.1, 1.5))
        + [lognormal_case(f) for f in (0.3, 0.5, 1.0, 1.1, 1.5)]
        + [mixture_case(0.02), mixture_case(0.002)]
        + [stall_case(f) for f in (0.3, 0.5, 1.0, 1.1, 1.5)]
    )


def verdict(
    sent: np.ndarray, lat: np.ndarray, rule: SequentialRule, n1: int, name: str, fraction: float
) -> tuple[str, int]:
    """The rate's final decision and the requests it took, looks cut from one series."""
    edges = np.cumsum([0] + [rule.look_size(k, n1) for k in range(1, rule.max_looks + 1)])
    for look in range(1, rule.max_looks + 1):
        cuts = [slice(edges[k], edges[k + 1]) for k in range(look)]
        judge_fn = shipped_judge if name == "shipped" else judge
        ev = judge_fn(
            [lat[c] for c in cuts], PERCENTILE, BOUND_S, rule, sent=[sent[c] for c in cuts], cluster_fraction=fraction
        )
        decision = ev.decision
        if decision is not SloDecision.UNDECIDED:
            return decision.value, int(edges[look])
    return SloDecision.UNDECIDED.value, int(edges[-1])


def upper95(k: int, n: int) -> float:
    """Upper end of the two-sided 95 % Clopper-Pearson interval of k / n (~3/n at k = 0)."""
    return 1.0 if k >= n else float(stats.beta.ppf(0.975, k + 1, n - k))


def run(
    reps: int, rules: list[tuple[str, float]], confidence: float, seed: int, min_seconds: float, min_met: float
) -> pd.DataFrame:
    rule = SequentialRule(confidence, 3, min_met)
    rows = []
    for ci, case in enumerate(cases(seed)):
        n1 = max(rule.first_look(PERCENTILE), math.ceil(case.rate * min_seconds))
        total = sum(rule.look_size(k, n1) for k in range(1, rule.max_looks + 1))
        series = [case.draw(np.random.default_rng([seed, ci, r]), total) for r in range(reps)]
        for name, fraction in rules:
            out = [verdict(s, lat, rule, n1, name, fraction) for s, lat in series]
            dec = np.array([d for d, _ in out])
            met = int((dec == "met").sum())
            used = np.array([u for _, u in out])
            rows.append(
                {
                    "server": case.server,
                    "true_p99_over_bound": case.factor,
                    "rate_rps": round(case.rate, 1),
                    "rule": name if name == "shipped" else f"episodes f={fraction:g}",
                    "reps": reps,
                    "met": met / reps,
                    "violated": float((dec == "violated").mean()),
                    "undecided": float((dec == "undecided").mean()),
                    "false_met_ci95_hi": upper95(met, reps) if case.factor >= 1.0 else math.nan,
                    "median_requests": float(np.median(used)),
                    "median_seconds": float(np.median(used) / case.rate),
                }
            )
            r = rows[-1]
            print(
                f"{case.server:<30} F={case.factor:<4g} {r['rule']:<14} met {r['met']:.3f} "
                f"viol {r['violated']:.3f} n {r['median_requests']:.0f}",
                flush=True,
            )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--rules", default="shipped,episodes")
    parser.add_argument("--fractions", default="0.3", help="cluster levels of the episode rule (x bound)")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-seconds", type=float, default=2.0, help="as [capacity] min_seconds")
    parser.add_argument("--min-met-seconds", type=float, default=4.0, help="as [capacity] min_met_seconds")
    parser.add_argument("--out", default="slo_rule_sim")
    args = parser.parse_args(argv)
    rules: list[tuple[str, float]] = []
    for name in args.rules.split(","):
        if name == "shipped":
            rules.append(("shipped", 0.25))
        elif name == "episodes":
            rules += [("episodes", float(f)) for f in args.fractions.split(",")]
        else:
            parser.error(f"--rules: unknown rule {name!r} (shipped, episodes)")
    before = facts()
    t0 = time.perf_counter()
    frame = run(args.reps, rules, args.confidence, args.seed, args.min_seconds, args.min_met_seconds)
    wall = time.perf_counter() - t0
    after = facts()
    RESULTS.mkdir(parents=True, exist_ok=True)
    cmd = ("python benchmarks/slo_rule_sim.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    frame.assign(command=cmd, date=after["date"], commit=before["commit"]).to_csv(
        RESULTS / f"{args.out}.csv", index=False, float_format="%.4g"
    )
    lines = [
        "# One rate's verdict, simulated: the episode rule against the shipped design effect",
        "",
        f"- command: `{cmd}`",
        f"- date: {after['date']}, commit {before['commit']}",
        f"- load average before / after: {before['loadavg']} / {after['loadavg']} (virtual time: no effect)",
        f"- wall time: {wall:.0f} s",
        "",
        f"Each row: `reps` contiguous series at one rate, judged look by look (confidence {args.confidence}, "
        f"3 looks, Bonferroni; first look max(408, rate x {args.min_seconds:g} s) as the search's; the episode "
        f"rule's floor of time {args.min_met_seconds:g} s). `met` on a row with true p99 / bound >= 1 is a false "
        "met: it must stay <= 1 - confidence; `false_met_ci95_hi` is its 95 % upper bound. On rows under 1, "
        "`met` is the power. Same seeds for both rules.",
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
