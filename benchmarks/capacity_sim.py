"""Simulation study of the capacity rule: false-VALID and detection rates on known servers.

    python benchmarks/capacity_sim.py [--searches 300] [--confidence 0.9,0.95,0.99] [--seed 1]
                                      [--rule episodes|shipped] [--cluster-fraction F]
                                      [--max-requests N] [--max-seconds S] [--servers a,b]

Why a simulation: whether a rule keeps its stated error rate is a question about
thousands of searches, which real sockets cannot afford. Here each probe's latencies are
drawn from a server model whose true percentile is known, and the *real* search driver
(:func:`loadgen.capacity.find_capacity` with its default settings, the confidence varied)
judges them; time is the probes' own planned length, never a clock, so the figures do
not depend on the machine's load.

Servers (objective p99 <= 100 ms unless stated):

- ``lognormal xF``: latency independent of load, lognormal (sigma 0.8) scaled so that the
  true p99 is F x the bound. F = 1.0, 1.1, 1.5 violate (at the bound a "met" is already
  false); F = 0.9, 0.7, 0.5 meet at every rate.
- ``mixture 2 %`` / ``0.2 %``: the issue's server, 4 ms or 150 ms with probability 2 %
  (violates: true p99 150 ms) or 0.2 % (meets: true p99 4 ms).
- ``M/M/1 mu=500``: a queue (Poisson arrivals, exponential service at 500 req/s, FIFO),
  latency = wait + service, each probe starting from the stationary queue. Its sojourn
  time is exponential with rate mu - lambda, so p99 = ln(100) / (mu - lambda) and the
  true capacity is lambda* = mu - ln(100) / bound (453.9 req/s at 100 ms: 91 %
  utilisation, deep in the knee, where latencies are strongly autocorrelated;
  269.7 req/s at 20 ms). A "false VALID" is a VALID capacity above lambda*; also counted:
  above the rate whose true p99 is 1.1 x and 1.5 x the bound.

- ``stand-in-like``: two M/M/1 queues at the local stand-ins' scale (capacity 20 req/s,
  mu 66, like the Flask ones; 200 req/s, mu 246, like the KServe ones), the search
  starting at mu / 2 as bench starts at half the concurrency-1 throughput: what a search
  costs under the caps (median and p90 virtual seconds, median requests, searches ended
  NOT_FOUND by a cap).

For each (server, confidence): the share of searches that end VALID (false-VALID rate on
violating servers, detection rate on meeting ones) with a 95 % Clopper-Pearson interval,
the verdict counts, the median capacity, and the median seconds and probes a search
took. Output: benchmarks/results/capacity_sim.csv and .md (command, date, commit, load).
``--rule shipped`` judges with the rule shipped before the episode rule
(benchmarks/shipped_rule.py: Geyer design effect of the series over the bound and over a
quarter of it, no floor of time), on the same seeds, for comparison.

- ``stalls``: load-independent pauses about once a second (requests arriving in one wait
  for its end), sized so that the true p99 is F x the bound at every rate: hidden state.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import loadgen.capacity as capacity_module
import loadgen.slo_evidence as slo_evidence
from benchmarks.shipped_rule import shipped_judge
from loadgen.capacity import Objective, ProbeOutcome, ProbeSpec, SearchSettings, find_capacity

RESULTS = ROOT / "benchmarks" / "results"
LOGNORMAL_SIGMA = 0.8
Z99 = stats.norm.ppf(0.99)


@dataclass(frozen=True)
class Server:
    """A latency model: ``draw(rng, rate, n)`` -> latencies in send order (or (send offsets,
    latencies) when the model makes its own arrivals), or None if saturated."""

    name: str
    objective: Objective
    violates: bool  # at every rate (load-independent) or above lambda* (queue)
    draw: Callable[[np.random.Generator, float, int], np.ndarray | tuple[np.ndarray, np.ndarray] | None]
    true_capacity: float = math.inf  # highest rate meeting the objective (inf: every rate)
    capacity_at: tuple[tuple[str, float], ...] = ()  # (label, rate whose true p99 is x the bound)
    start_rps: float = math.nan  # NaN: 0.3 x the true capacity (or 50 req/s)


def lognormal(factor: float, bound_s: float = 0.1) -> Server:
    mu = math.log(factor * bound_s) - Z99 * LOGNORMAL_SIGMA  # p99 = exp(mu + z99 sigma) = factor x bound

    def draw(rng: np.random.Generator, rate: float, n: int) -> np.ndarray:
        return rng.lognormal(mu, LOGNORMAL_SIGMA, n)

    return Server(
        f"lognormal p99 = {factor:g} x bound",
        Objective(99.0, bound_s),
        factor >= 1.0,
        draw,
        true_capacity=0.0 if factor > 1.0 else math.inf,
    )


def mixture(p_slow: float) -> Server:
    def draw(rng: np.random.Generator, rate: float, n: int) -> np.ndarray:
        return np.where(rng.random(n) < p_slow, 0.150, 0.004)

    return Server(
        f"mixture 4 ms / 150 ms with {p_slow:.1%}",
        Objective(99.0, 0.1),
        p_slow > 0.01,
        draw,
        true_capacity=0.0 if p_slow > 0.01 else math.inf,
    )


def mm1(mu: float, bound_s: float, start_rps: float = math.nan, name: str = "") -> Server:
    """M/M/1 FIFO: Lindley's recursion, vectorised; the first request finds the stationary wait."""

    def draw(rng: np.random.Generator, rate: float, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        if rate >= mu:
            return None
        service = rng.exponential(1.0 / mu, n)
        gaps = rng.exponential(1.0 / rate, n)  # gaps[i]: from arrival i to arrival i+1
        rho = rate / mu
        w0 = rng.exponential(1.0 / (mu - rate)) if rng.random() < rho else 0.0
        steps = service[:-1] - gaps[:-1]
        walk = np.concatenate(([0.0], np.cumsum(steps)))  # P_0..P_{n-1}
        floor = np.minimum.accumulate(np.concatenate(([-w0], walk[1:])))  # min(-w0, P_1..P_k)
        wait = walk - floor  # W_k = P_k - min(-w0, P_1..P_k); W_0 = w0
        return np.concatenate(([0.0], np.cumsum(gaps[:-1]))), wait + service

    lam = mu - math.log(100) / bound_s
    at = tuple((f"{f:g}x", mu - math.log(100) / (f * bound_s)) for f in (1.1, 1.5))
    return Server(
        name or f"M/M/1 mu={mu:g}/s, p99 <= {bound_s * 1000:g} ms",
        Objective(99.0, bound_s),
        False,
        draw,
        true_capacity=lam,
        capacity_at=at,
        start_rps=start_rps,
    )


def stalls(factor: float, gap_s: float = 1.0, base_s: float = 0.004, bound_s: float = 0.1) -> Server:
    """Pauses after exponential gaps of mean ``gap_s`` (a GC-like server): a request arriving
    in a pause waits for its end. The pause D puts the true p99 at factor x bound at every
    rate: P(latency > x) = (D - (x - base)) / (gap + D)."""
    pause = (factor * bound_s - base_s + 0.01 * gap_s) / 0.99

    def draw(rng: np.random.Generator, rate: float, n: int) -> tuple[np.ndarray, np.ndarray]:
        arrivals = np.cumsum(rng.exponential(1.0 / rate, n))
        starts = np.cumsum(rng.exponential(gap_s, int(arrivals[-1] / gap_s * 2) + 10) + pause) - pause
        idx = np.searchsorted(starts, arrivals, side="right") - 1
        since = arrivals - np.where(idx >= 0, starts[np.maximum(idx, 0)], -np.inf)
        wait = np.where((idx >= 0) & (since < pause), pause - since, 0.0)
        return arrivals - arrivals[0], base_s + wait

    return Server(
        f"stalls ~1/s, p99 = {factor:g} x bound",
        Objective(99.0, bound_s),
        factor >= 1.0,
        draw,
        true_capacity=0.0 if factor >= 1.0 else math.inf,
    )


def _probe(server: Server) -> Callable[[ProbeSpec], object]:
    async def probe(spec: ProbeSpec) -> ProbeOutcome:
        rng = np.random.default_rng(spec.seed)
        drawn = server.draw(rng, spec.rate, spec.n_requests)
        saturated = drawn is None
        if isinstance(drawn, tuple):
            sent, lat = drawn
        else:  # load-independent: Poisson arrivals at the offered rate
            lat = np.full(spec.n_requests, 10.0) if drawn is None else drawn
            sent = np.concatenate(([0.0], np.cumsum(rng.exponential(1.0 / spec.rate, spec.n_requests - 1))))
        return ProbeOutcome(
            rate=spec.rate,
            n_requests=spec.n_requests,
            latency_s=float(np.percentile(lat, server.objective.percentile)),
            p50_s=float(np.median(lat)),
            achieved_rps=spec.rate * (0.5 if saturated else 1.0),
            errors=0,
            saturated=saturated,
            duration_s=spec.planned_s + 0.3,
            latencies_s=lat,
            sent_s=sent,
        )

    return probe


def run_cell(
    server: Server, confidence: float, searches: int, seed: int, limits: dict[str, float] | None = None
) -> dict[str, object]:
    limits = limits or {}
    verdicts, caps, secs, probes, reqs, capped = [], [], [], [], [], 0
    uppers: list[float] = []
    precise = 0
    start = server.true_capacity * 0.3 if math.isfinite(server.true_capacity) and server.true_capacity > 0 else 50.0
    start = start if math.isnan(server.start_rps) else server.start_rps
    for i in range(searches):
        settings = SearchSettings(
            start_rps=start,
            confidence=confidence,
            max_rate_rps=400.0 if not math.isfinite(server.true_capacity) or server.true_capacity == 0 else math.inf,
            max_rate_reason="the study's cap",
            seed=seed * 1_000_003 + i,
            **limits,
        )
        result = asyncio.run(find_capacity(_probe(server), server.objective, settings))
        verdicts.append(result.verdict)
        caps.append(result.capacity_rps)
        uppers.append(result.upper_rps)
        precise += bool(result.precision_reached)
        secs.append(result.seconds)
        probes.append(len(result.probes))
        reqs.append(sum(p.spec.n_requests for p in result.probes))
        capped += result.verdict == "NOT_FOUND" and result.stop_reason.startswith(("time cap", "request budget"))
    v = np.array(verdicts)
    c = np.array(caps, dtype=float)
    valid = v == "VALID"
    if math.isfinite(server.true_capacity) and server.true_capacity > 0:  # the queue
        false_valid = valid & (c > server.true_capacity)
        detect = valid & (c <= server.true_capacity)
    elif server.violates:
        false_valid, detect = valid, np.zeros_like(valid)
    else:
        false_valid, detect = np.zeros_like(valid), valid
    row: dict[str, object] = {
        "server": server.name,
        "violates": server.violates,
        "confidence": confidence,
        "searches": searches,
        "VALID": int(valid.sum()),
        "INVALID": int((v == "INVALID").sum()),
        "UNCONFIRMED": int((v == "UNCONFIRMED").sum()),
        "NOT_FOUND": int((v == "NOT_FOUND").sum()),
        "false_valid": int(false_valid.sum()),
        "false_valid_rate": false_valid.mean(),
        "false_valid_ci95_hi": _cp_hi(int(false_valid.sum()), searches),
        "detected": int(detect.sum()),
        "detection_rate": detect.mean(),
        "true_capacity_rps": server.true_capacity,
        "median_capacity_rps": float(np.nanmedian(c)) if np.isfinite(c).any() else math.nan,
        "median_capacity_over_true": (
            float(np.nanmedian(c[valid])) / server.true_capacity
            if valid.any() and math.isfinite(server.true_capacity) and server.true_capacity > 0
            else math.nan
        ),
        "median_seconds": float(np.median(secs)),
        "p90_seconds": float(np.percentile(secs, 90)),
        "median_requests": float(np.median(reqs)),
        "not_found_by_a_cap": int(capped),
        "median_probes": float(np.median(probes)),
    }
    row.update(_repeatability(c))
    row.update(_bracket(c, np.array(uppers, dtype=float), server.true_capacity, precise))
    for label, rate in server.capacity_at:
        row[f"valid_above_{label}_bound"] = int((valid & (c > rate)).sum())
    return row


def _repeatability(caps: np.ndarray) -> dict[str, object]:
    """Issue 21's repeatability test on simulated searches: consecutive triples of searches
    (as a user runs three), how many give three capacities within +-10 % of their median, and
    the spread (p10-p90 over the median) of every capacity found -- on a server that never
    changes, so any spread is the rule's own, not the server's."""
    triples = [caps[i : i + 3] for i in range(0, len(caps) - 2, 3)]
    found = [t for t in triples if np.isfinite(t).all()]
    within = sum(1 for t in found if np.max(np.abs(t - np.median(t))) <= 0.10 * np.median(t))
    finite = caps[np.isfinite(caps)]
    spread = (
        f"{np.percentile(finite, 10) / np.median(finite):.2f}-{np.percentile(finite, 90) / np.median(finite):.2f}"
        if finite.size
        else "-"
    )
    return {"triples": len(triples), "triples_within_10pct": within, "capacity_p10_p90_over_median": spread}


def _bracket(caps: np.ndarray, uppers: np.ndarray, true_capacity: float, precise: int) -> dict[str, object]:
    """The bracket [capacity, upper] as an interval of the true capacity: how often its upper
    end (a rate *violated*) lies below the true capacity -- a wrong "violated" --, how often
    both ends exist and hold the true capacity, and its median width (upper / capacity)."""
    both = np.isfinite(caps) & np.isfinite(uppers)
    known = math.isfinite(true_capacity) and true_capacity > 0
    width = float(np.median(uppers[both] / caps[both])) if both.any() else math.nan
    return {
        "precision_reached": int(precise),
        "bracketed": int(both.sum()),
        "bracket_holds_true": int((both & (caps <= true_capacity) & (uppers > true_capacity)).sum()) if known else -1,
        "upper_below_true": int((np.isfinite(uppers) & (uppers <= true_capacity)).sum()) if known else -1,
        "median_bracket_width": width,
    }


def _cp_hi(k: int, n: int) -> float:
    """Upper end of the two-sided 95 % Clopper-Pearson interval of k / n."""
    return 1.0 if k >= n else float(stats.beta.ppf(0.975, k + 1, n - k))


def servers() -> list[Server]:
    return (
        [lognormal(f) for f in (1.5, 1.1, 1.0)]
        + [mixture(0.02)]
        + [lognormal(f) for f in (0.9, 0.7, 0.5)]
        + [mixture(0.002)]
        + [stalls(1.1), stalls(0.3)]
        + [mm1(500.0, 0.100), mm1(500.0, 0.020)]
        + [STANDIN_SLOW, STANDIN_FAST]
    )


# The local stand-ins' scale (benchmarks/results/capacity_check_idle_start.md): two Flask
# targets with capacity ~20 req/s, two KServe ones ~200 req/s under p99 <= 100 ms; the
# search starts at half the closed-loop throughput at concurrency 1 (mu / 2), as bench does.
STANDIN_SLOW = mm1(66.05, 0.100, start_rps=33.0, name="stand-in-like slow M/M/1 mu=66 (capacity 20/s)")
STANDIN_FAST = mm1(246.05, 0.100, start_rps=123.0, name="stand-in-like fast M/M/1 mu=246 (capacity 200/s)")


def facts() -> dict[str, str]:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "loadavg": Path("/proc/loadavg").read_text().split(" ")[0:3].__str__(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--confidence", default="0.9,0.95,0.99")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rule", choices=("episodes", "shipped"), default="episodes")
    parser.add_argument("--out", default="capacity_sim")
    parser.add_argument("--cluster-fraction", type=float, default=None, help="override CLUSTER_FRACTION")
    parser.add_argument("--max-requests", type=int, default=None, help="override the request budget")
    parser.add_argument("--max-seconds", type=float, default=None, help="override the safety cap")
    parser.add_argument("--servers", default="", help="comma-separated substrings of server names to keep")
    args = parser.parse_args(argv)
    caps = {k: v for k, v in (("max_requests", args.max_requests), ("max_seconds", args.max_seconds)) if v is not None}
    if args.cluster_fraction is not None:
        slo_evidence.CLUSTER_FRACTION = args.cluster_fraction
    if args.rule == "shipped":
        capacity_module.judge = shipped_judge
    facts_before = facts()
    t0 = time.perf_counter()
    rows = []
    keep = [k.strip() for k in args.servers.split(",") if k.strip()]
    for server in servers():
        if keep and not any(k in server.name for k in keep):
            continue
        for conf in (float(c) for c in args.confidence.split(",")):
            rows.append(run_cell(server, conf, args.searches, args.seed, caps))
            r = rows[-1]
            print(
                f"{r['server']:<40} conf {conf:.2f}: VALID {r['VALID']:>4}/{args.searches} "
                f"false {r['false_valid']:>3} detect {r['detected']:>4} median cap {r['median_capacity_rps']:.4g} "
                f"{r['median_seconds']:.0f} s",
                flush=True,
            )
    wall = time.perf_counter() - t0
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    facts_after = facts()
    cmd = "python benchmarks/capacity_sim.py " + " ".join(argv if argv is not None else sys.argv[1:])
    frame.assign(command=cmd.strip(), date=facts_after["date"], commit=facts_before["commit"]).to_csv(
        RESULTS / f"{args.out}.csv", index=False, float_format="%.4g"
    )
    shipped = args.rule == "shipped"
    title = "the shipped design-effect rule, before" if shipped else "the episode rule"
    fraction = 0.25 if shipped else slo_evidence.CLUSTER_FRACTION
    lines = [
        f"# Capacity rule, simulated ({title}; cluster fraction {fraction:g}; caps {caps or 'default'})",
        "",
        f"- command: `{cmd.strip()}`",
        f"- date: {facts_after['date']}, commit {facts_before['commit']}",
        f"- load average (1, 5, 15 min) before / after: {facts_before['loadavg']} / {facts_after['loadavg']} "
        "(virtual time: the figures do not depend on it)",
        f"- wall time: {wall:.0f} s",
        "",
        "Search defaults (SearchSettings) except `confidence`; max_looks 3. False VALID: a VALID verdict on a "
        "server violating the objective (queue: a VALID capacity above lambda*); `fv CI95 hi`: upper end of "
        "its 95 % Clopper-Pearson interval. Detection: VALID on a meeting server (queue: VALID at or below "
        "lambda*). Bracket [capacity, upper] (upper: the lowest rate *violated* above the capacity; "
        "-1: no true capacity to compare): `bracketed` searches with both ends, `bracket_holds_true` "
        "of them holding lambda*, `upper_below_true` a violated rate at or under lambda* (a wrong "
        "violated), `median_bracket_width` upper / capacity.",
        "",
    ]
    cols = [
        "server",
        "confidence",
        "searches",
        "VALID",
        "INVALID",
        "UNCONFIRMED",
        "NOT_FOUND",
        "false_valid",
        "false_valid_ci95_hi",
        "detected",
        "median_capacity_rps",
        "median_capacity_over_true",
        "median_seconds",
        "p90_seconds",
        "median_requests",
        "median_probes",
        "not_found_by_a_cap",
        "triples",
        "triples_within_10pct",
        "capacity_p10_p90_over_median",
        "precision_reached",
        "bracketed",
        "bracket_holds_true",
        "upper_below_true",
        "median_bracket_width",
    ] + [c for c in frame.columns if c.startswith("valid_above")]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "---|" * len(cols))
    for r in frame[cols].itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r) + " |")
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / (args.out + '.csv')} and .md in {wall:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
