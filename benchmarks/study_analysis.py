"""The A/A and A/B studies' statistics: rows from `bench compare` CSV output, rates with exact intervals.

Why apart from the recording scripts: the counts and their Clopper-Pearson intervals are
the same for both studies, and a study's analysis must be re-runnable on recorded runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from bench.compare.power import trials_for_effect

__all__ = ["aa_rows", "aa_summary", "cached_compare", "clopper_pearson", "rate_text"]


def cached_compare(scratch: Any, config: Path, a: str, b: str, extra: Sequence[str]) -> tuple[int, list[dict]]:
    """``scratch.compare`` remembered in DIR/compare-cache, keyed by the code's commit and the arguments.

    The same runs compared by the same commit give the same answer (compare is pure and
    deterministic), so re-running an analysis after more pairs were recorded only compares
    the new ones. A checkout with uncommitted changes is never cached.
    """
    import json

    from study_common import git_commit

    commit = git_commit()
    path = Path(scratch.directory) / "compare-cache" / f"{commit}--{a}--{b}--{'_'.join(extra)}.json"
    if not commit.endswith("+dirty") and commit != "unknown" and path.is_file():
        data = json.loads(path.read_text())
        return int(data["exit"]), list(data["targets"])
    code, targets = scratch.compare(config, a, b, extra)
    if not commit.endswith("+dirty") and commit != "unknown":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"exit": code, "targets": targets}))
    return code, targets


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided interval of a binomial rate k/n (0..1); (nan, nan) when n == 0."""
    if n == 0:
        return math.nan, math.nan
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def rate_text(k: int, n: int) -> str:
    """'2 of 31 (6.5 %, 95 % CI 0.8-21.4 %)'."""
    low, high = clopper_pearson(k, n)
    return f"{k} of {n} ({100 * k / n:.1f} %, 95 % CI {100 * low:.1f}-{100 * high:.1f} %)" if n else "0 of 0"


def aa_rows(scratch: Any, config: Path, pairs: Sequence[Mapping[str, Any]], extra: Sequence[str]) -> list[dict]:
    """One row per recorded pair: `bench compare A B --fail-on-regression` once, its target row and exit code."""
    rows = []
    for pair in pairs:
        a, b = (r["run_id"] for r in pair["runs"])
        code, targets = cached_compare(scratch, config, a, b, extra)
        t = targets[0]
        rows.append(
            {
                "pair": pair["pair"],
                "target": pair["target"],
                "trials": pair["trials"],
                "exit": code,
                "verdict": t["verdict"],
                "ratio": t["ratio"],
                "ci_low": t["ci_low"],
                "ci_high": t["ci_high"],
                "ci_level": t.get("ci_level"),
                "contains_1": bool(t["ci_low"] <= 1 <= t["ci_high"]) if t["ci_low"] is not None else None,
                "independent": t.get("independent"),
                "trial_sd": t.get("trial_sd"),
                "dof": t.get("dof"),
                "between_trial_sd": t.get("between_trial_sd"),
                "within_trial_sd": t.get("within_trial_sd"),
                "detectable_pct": t.get("detectable_pct"),
                "threshold_pct": t["threshold_pct"],
                "load_a": pair["runs"][0]["load_before"],
                "load_b": pair["runs"][1]["load_before"],
                "run_s": sum(r["seconds"] for r in pair["runs"]),
            }
        )
    return rows


def _median(values: Sequence[float]) -> float:
    data = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.median(data)) if data else math.nan


def aa_summary(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The A/A study's findings as Markdown lines."""
    n = len(rows)
    exits = [r["exit"] for r in rows]
    covered = [r for r in rows if r["contains_1"] is not None]
    per_target = ", ".join(
        f"{t} {sum(1 for r in rows if r['target'] == t)}" for t in dict.fromkeys(r["target"] for r in rows)
    )
    lines = [
        "## Gate outcomes on identical runs (`bench compare A B --fail-on-regression`, once per pair)",
        "",
        f"- pairs: {n} ({per_target})",
        f"- exit 1 (false alarm: nothing changed): {rate_text(exits.count(1), n)}",
        f"- exit 3 (cannot judge): {rate_text(exits.count(3), n)}",
        f"- exit 0 (shown not slower than the threshold): {rate_text(exits.count(0), n)}",
        f"- the per-target interval contains 1 (coverage on real pairs, nominal "
        f"{100 * float(covered[0]['ci_level']) if covered else math.nan:.0f} %): "
        f"{rate_text(sum(1 for r in covered if r['contains_1']), len(covered))}",
        "",
        "## Per target: spread between restarts and what the default trials can detect",
        "",
        "| target | pairs | B/A range | median trial sd | of it: between restarts / step noise within a trial "
        "| median detectable (80 % power) | trials/side for 10 % | for 20 % | exit 1 / 3 / 0 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for target in dict.fromkeys(r["target"] for r in rows):
        part = [r for r in rows if r["target"] == target]
        sd = _median([r["trial_sd"] for r in part])
        level = float(part[0]["ci_level"] or 0.95)
        need = [
            trials_for_effect(sd, math.log1p(x), math.log1p(float(part[0]["threshold_pct"]) / 100), level)
            for x in (0.10, 0.20)
        ]
        ratios = [r["ratio"] for r in part]
        codes = [r["exit"] for r in part]
        between = _median([r["between_trial_sd"] for r in part])
        within = _median([r["within_trial_sd"] for r in part])
        lines.append(
            f"| {target} | {len(part)} | {min(ratios):.3f}-{max(ratios):.3f} | {100 * sd:.1f} % | "
            f"{100 * between:.1f} % / {100 * within:.1f} % | "
            f"{_median([r['detectable_pct'] for r in part]):.1f} % | {need[0] or '>1000'} | "
            f"{need[1] or '>1000'} | {codes.count(1)} / {codes.count(3)} / {codes.count(0)} |"
        )
    lines += [
        "",
        "trial sd: the sd of a trial's mean log latency over the target's steps (each trial a fresh "
        "start of the stand-in); between restarts: what moves a whole trial; step noise: the step-by-step "
        "spread inside one trial (per step, so it enters a trial's mean divided by the 8 steps).",
    ]
    return lines
