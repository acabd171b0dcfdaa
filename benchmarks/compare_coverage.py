"""Coverage and power of bench compare's per-target interval, by simulation (pure numpy, load-independent).

    python benchmarks/compare_coverage.py [--reps 2000] [--out benchmarks/results/compare_coverage]

Why: issue 21 -- the old per-target interval (a percentile bootstrap over whole trials)
held the truth about 82 % of the time at 3 trials per side, and trials inside one start of
a stand-in do not replicate what differs between runs. This script checks the current
rules (:mod:`bench.compare.power`) against a truth we control.

The model of one target's per-trial log latency at step s (8 steps: 4 request counts x 2
modes, as the A/A study's runs) is

    step_mean[s] + start + host + trial + noise[s]

``start`` (placement, worker balance, caches: what a fresh start of the stand-in
re-draws), ``host`` (what a restart does not re-draw: the host's load during the whole
run), ``trial`` and ``noise`` normal with the scenario's sds. Design ``restart``: a new
``start`` per trial (bench run's default); ``within-run``: one ``start`` per run.

For each scenario, design and trial count (3, 5, 10 per side) it reports:

- **coverage** of the nominal 95 % interval (how often it contains the true ratio 1) for
  the Welch t interval on per-trial scores (the current rule) and the old bootstrap;
- the A/A **gate outcomes** of the current rules at a 5 % threshold: exit 1 (false alarm),
  exit 3 (cannot judge), exit 0;
- **power**: how often a true 10 %, 25 % or 50 % slow-down is flagged "slower" by the
  current rule, by the old rule (bootstrap with the noise floor), and the median
  "detectable" figure bench compare states -- at which the current rule should fire
  about 80 % of the time.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study_common import loadavg, study_header, write_study

from bench.compare.power import detectable_log_effect
from bench.compare.verdict import DEFAULT_NOISE_FLOOR_PCT, target_verdict

STEPS = 8
LEVEL = 0.95
THRESHOLD = 0.05


@dataclass(frozen=True)
class Scenario:
    name: str
    start: float
    host: float
    trial: float
    noise: float


# sds on the log scale (0.10 ~ 10 %). "issue 21": runs differ far more than trials of one
# start (the 8 back-to-back pairs gave B/A 0.76-1.60 with tight within-run intervals).
SCENARIOS = (
    Scenario("quiet", start=0.03, host=0.0, trial=0.02, noise=0.04),
    Scenario("issue-21 spread", start=0.15, host=0.0, trial=0.03, noise=0.05),
    Scenario("issue-21 + host drift", start=0.15, host=0.04, trial=0.03, noise=0.05),
)


def _runs(rng: np.random.Generator, sc: Scenario, reps: int, trials: int, design: str, effect: float) -> np.ndarray:
    """reps x trials x steps log values: ``reps`` independent runs of one target."""
    step_mean = np.linspace(-1.0, 1.0, STEPS)
    host = rng.normal(0, sc.host, size=(reps, 1, 1))
    shape = (reps, trials, 1) if design == "restart" else (reps, 1, 1)
    start = rng.normal(0, sc.start, size=shape)
    trial = rng.normal(0, sc.trial, size=(reps, trials, 1))
    noise = rng.normal(0, sc.noise, size=(reps, trials, STEPS))
    return step_mean + effect + host + start + trial + noise


def _welch(sa: np.ndarray, sb: np.ndarray) -> tuple[np.ndarray, ...]:
    """Vectorised :func:`bench.compare.power.welch_interval` over reps: (estimate, low, high, se, dof)."""
    na, nb = sa.shape[1], sb.shape[1]
    va, vb = sa.var(axis=1, ddof=1) / na, sb.var(axis=1, ddof=1) / nb
    se = np.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    est = sb.mean(axis=1) - sa.mean(axis=1)
    half = stats.t.ppf(1 - (1 - LEVEL) / 2, dof) * se
    return est, est - half, est + half, se, dof


def _floor_bound(la: np.ndarray, lb: np.ndarray, between_run_default: bool = False) -> np.ndarray:
    """log(1 + max(threshold, noise floor)) per rep, as bench compare computes the floor for within-run trials."""
    ss = ((la - la.mean(axis=1, keepdims=True)) ** 2).sum(axis=1) + ((lb - lb.mean(axis=1, keepdims=True)) ** 2).sum(
        axis=1
    )
    sd = np.median(np.sqrt(ss / (la.shape[1] + lb.shape[1] - 2)), axis=1)  # median over steps of the pooled sd
    floor = np.expm1(stats.norm.ppf(1 - (1 - LEVEL) / 2) * np.sqrt(2) * sd)
    if between_run_default:  # bench compare's rule since issue 21: at least the between-run default
        floor = np.maximum(floor, DEFAULT_NOISE_FLOOR_PCT / 100)
    return np.log1p(np.maximum(THRESHOLD, floor))


def _verdicts(low: np.ndarray, high: np.ndarray, est: np.ndarray, bound: np.ndarray | float) -> np.ndarray:
    columns = np.broadcast_arrays(low, high, est, np.asarray(bound, dtype=float))
    return np.array([target_verdict(lo, hi, e, b) for lo, hi, e, b in zip(*columns, strict=True)])


def _current(la: np.ndarray, lb: np.ndarray, design: str) -> tuple[np.ndarray, ...]:
    """The current rule per rep: (low, high, verdict, detectable log effect)."""
    sa, sb = _scores(la, lb)
    est, low, high, se, dof = _welch(sa, sb)
    bound = np.full(est.shape, math.log1p(THRESHOLD)) if design == "restart" else _floor_bound(la, lb, True)
    detectable = np.array(
        [detectable_log_effect(s, d, LEVEL, b) for s, d, b in zip(se[:200], dof[:200], bound[:200], strict=False)]
    )
    return low, high, _verdicts(low, high, est, bound), detectable


def _scores(la: np.ndarray, lb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`bench.compare.power.trial_scores` (no missing steps here)."""
    centre = np.concatenate([la, lb], axis=1).mean(axis=1, keepdims=True)
    return (la - centre).mean(axis=2), (lb - centre).mean(axis=2)


def _bootstrap(
    la: np.ndarray, lb: np.ndarray, rng: np.random.Generator, resamples: int = 1000
) -> tuple[np.ndarray, ...]:
    """The old percentile bootstrap over whole trials, per rep: (low, high). Row means suffice (no NaN)."""
    ra, rb = la.mean(axis=2), lb.mean(axis=2)
    lows, highs = [], []
    for start in range(0, ra.shape[0], 200):
        a, b = ra[start : start + 200], rb[start : start + 200]
        ia = rng.integers(0, a.shape[1], size=(a.shape[0], resamples, a.shape[1]))
        ib = rng.integers(0, b.shape[1], size=(b.shape[0], resamples, b.shape[1]))
        diffs = np.take_along_axis(b[:, None, :], ib, axis=2).mean(axis=2) - np.take_along_axis(
            a[:, None, :], ia, axis=2
        ).mean(axis=2)
        lo, hi = np.quantile(diffs, [(1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2], axis=1)
        lows.append(lo)
        highs.append(hi)
    return np.concatenate(lows), np.concatenate(highs)


def _cannot_judge(verdict: np.ndarray, design: str) -> np.ndarray:
    """bench.compare.gate's exit 3: inconclusive; within-run trials also whenever the floor (>= the
    between-run default, above the 5 % threshold) raised the threshold -- all but slower/faster."""
    if design == "restart":
        return verdict == "inconclusive"
    return (verdict != "slower") & (verdict != "faster")


def simulate(reps: int, seed: int = 0) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for si, sc in enumerate(SCENARIOS):
        for design in ("restart", "within-run"):
            for trials in (3, 5, 10):
                rng = np.random.default_rng([seed, si, trials, design == "restart"])
                la, lb = _runs(rng, sc, reps, trials, design, 0.0), _runs(rng, sc, reps, trials, design, 0.0)
                low, high, verdict, _ = _current(la, lb, design)
                b_low, b_high = _bootstrap(la, lb, rng)
                row: dict[str, object] = {
                    "scenario": sc.name,
                    "sd_start": sc.start,
                    "sd_host": sc.host,
                    "sd_trial": sc.trial,
                    "sd_step": sc.noise,
                    "design": design,
                    "trials": trials,
                    "reps": reps,
                    "coverage_t": round(float(np.mean((low <= 0) & (0 <= high))), 4),
                    "coverage_bootstrap": round(float(np.mean((b_low <= 0) & (0 <= b_high))), 4),
                    "aa_exit1": round(float(np.mean(verdict == "slower")), 4),
                    "aa_exit3": round(float(np.mean(_cannot_judge(verdict, design))), 4),
                }
                row["aa_exit0"] = round(1 - row["aa_exit1"] - row["aa_exit3"], 4)
                for slow in (0.10, 0.25, 0.50):
                    la, lb = (
                        _runs(rng, sc, reps, trials, design, 0.0),
                        _runs(rng, sc, reps, trials, design, math.log1p(slow)),
                    )
                    _, _, verdict, detectable = _current(la, lb, design)
                    b_low, _ = _bootstrap(la, lb, rng)
                    pct = int(slow * 100)
                    row[f"power_new_{pct}"] = round(float(np.mean(verdict == "slower")), 3)
                    row[f"power_old_{pct}"] = round(float(np.mean(b_low > _floor_bound(la, lb))), 3)
                    if slow == 0.10:
                        row["detectable_median_pct"] = round(math.expm1(float(np.median(detectable))) * 100, 1)
                rows.append(row)
    return rows


def _check_detectable(reps: int, seed: int = 1) -> list[dict[str, object]]:
    """At the true effect bench compare states as detectable, does the rule fire ~80 %?"""
    out = []
    sc = SCENARIOS[1]
    for trials in (3, 5, 10):
        sd = math.sqrt(sc.start**2 + sc.trial**2 + sc.noise**2 / STEPS)
        effect = detectable_log_effect(sd * math.sqrt(2 / trials), 2 * trials - 2, LEVEL, math.log1p(THRESHOLD))
        rng = np.random.default_rng([seed, trials])
        _, _, verdict, _ = _current(
            _runs(rng, sc, reps, trials, "restart", 0.0), _runs(rng, sc, reps, trials, "restart", effect), "restart"
        )
        out.append(
            {
                "trials": trials,
                "stated_detectable_pct": round(math.expm1(effect) * 100, 1),
                "flagged": round(float(np.mean(verdict == "slower")), 3),
            }
        )
    return out


def _summary(rows: list[dict[str, object]], check: list[dict[str, object]]) -> list[str]:
    lines = [
        "## Coverage of the nominal 95 % interval (truth: B = A)",
        "",
        "| scenario | design | trials/side | Welch t (current) | bootstrap (before) | A/A exit 1 | A/A exit 3 |"
        " A/A exit 0 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['design']} | {r['trials']} | {r['coverage_t']:.3f} | "
            f"{r['coverage_bootstrap']:.3f} | {r['aa_exit1']:.3f} | {r['aa_exit3']:.3f} | "
            f"{r['aa_exit0']:.3f} |"
        )
    lines += [
        "",
        "## Power: how often a true slow-down is flagged 'slower' (threshold 5 %)",
        "",
        "| scenario | design | trials/side | 10 % new / old | 25 % new / old | 50 % new / old | "
        "median stated detectable |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['design']} | {r['trials']} | {r['power_new_10']:.2f} / "
            f"{r['power_old_10']:.2f} | {r['power_new_25']:.2f} / {r['power_old_25']:.2f} | "
            f"{r['power_new_50']:.2f} / {r['power_old_50']:.2f} | {r['detectable_median_pct']} % |"
        )
    lines += [
        "",
        "'new' = the current rule: Welch t on per-trial scores; for within-run trials the threshold is "
        f"raised to the noise floor, at least the between-run default {DEFAULT_NOISE_FLOOR_PCT:g} %; "
        "'old' = the rule before issue 21: bootstrap CI above 1 + max(threshold, noise floor from trials). "
        "The detectable column is the median over 200 of the reps. "
        "Coverage is of the interval alone (the floor does not change it): it is what the within-run rows "
        "show to be far from nominal, which is why the floor stays for within-run trials.",
        "",
        "## The stated detectable slow-down, checked ('issue-21 spread', restart design)",
        "",
        "| trials/side | stated detectable | flagged 'slower' at that true slow-down |",
        "|---|---|---|",
    ]
    lines += [f"| {c['trials']} | {c['stated_detectable_pct']} % | {c['flagged']:.3f} |" for c in check]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=2000)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "compare_coverage")
    args = p.parse_args(argv)
    before = loadavg()
    rows = simulate(args.reps)
    check = _check_detectable(args.reps)
    header = study_header(
        f"python benchmarks/compare_coverage.py --reps {args.reps}",
        "simulation on numpy: the figures do not depend on the load",
        [before, loadavg()],
    )
    md, csv_path = write_study(args.out, header, _summary(rows, check), rows)
    print(md.read_text())
    print(f"wrote {md} and {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
