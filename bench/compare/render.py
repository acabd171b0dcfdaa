"""Text for ``bench compare``: verdict wording, table cells, legend, summary lines and CSV.

Apart from :mod:`bench.compare.verdict` so that the statistics are tested on numbers and the
wording on strings; :mod:`bench.compare.show` picks a format and prints. Nothing here
prints.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from bench.compare.verdict import CompareResult, StepComparison, TargetSummary

__all__ = [
    "CSV_COLUMNS",
    "STEP_COLUMNS",
    "TARGET_COLUMNS",
    "csv_text",
    "legend_lines",
    "ratio_text",
    "step_cells",
    "step_verdict_text",
    "summary_lines",
    "target_cells",
    "target_verdict_text",
]

STEP_COLUMNS = [
    "target",
    "mode",
    "N",
    "A",
    "B",
    "B/A",
    "trials A/B",
    "p",
    "p adj",
    "floor",
    "verdict",
    "MWU p (requests)",
]
TARGET_COLUMNS = [
    "target",
    "steps",
    "trials A/B",
    "trials are",
    "geomean B/A",
    "CI",
    "threshold",
    "detectable",
    "verdict",
]
CSV_COLUMNS = (
    "level",
    "target",
    "mode",
    "n_requests",
    "concurrency",
    "rate",
    "metric",
    "n_a",
    "n_b",
    "a_value",
    "b_value",
    "ratio",
    "ci_low",
    "ci_high",
    "ci_level",
    "p_value",
    "p_adjusted",
    "p_requests",
    "noise_floor_pct",
    "floor_source",
    "threshold_pct",
    "steps",
    "excluded",
    "independent",
    "trial_sd",
    "dof",
    "detectable_pct",
    "trials_needed",
    "between_trial_sd",
    "within_trial_sd",
    "verdict",
    "verdict_text",
)
_CORRECTION_NAMES = {"holm": "Holm-Bonferroni", "bh": "Benjamini-Hochberg"}


def ratio_text(ratio: float) -> str:
    """'1.30x slower', '1.10x faster', 'same', '-' (no ratio)."""
    if math.isnan(ratio):
        return "-"
    if ratio == 1:
        return "same"
    return f"{ratio:.2f}x slower" if ratio > 1 else f"{1 / ratio:.2f}x faster"


def _p(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2g}"


def _seconds(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value * 1000:.2f} ms" if value < 1 else f"{value:.3f} s"


def step_verdict_text(s: StepComparison) -> str:
    """What a reader sees in the verdict column; flags and missing data never read as a speed."""
    if s.verdict in ("slower", "faster"):
        return ratio_text(s.ratio)
    if s.verdict == "within noise":
        return f"within noise ({ratio_text(s.ratio)} <= {s.threshold_pct:.1f} %)"
    if s.verdict == "not significant":
        return f"not significant ({ratio_text(s.ratio)})"
    if s.verdict == "too few trials":
        return f"too few trials (n={min(s.n_a, s.n_b)}): {ratio_text(s.ratio)}"
    if s.verdict in ("failed", "saturated"):
        return s.detail
    return s.verdict  # only in A / only in B


def target_verdict_text(t: TargetSummary) -> str:
    if t.verdict in ("slower", "faster"):
        return ratio_text(t.ratio)
    if t.verdict == "within threshold":
        return f"within ±{t.threshold_pct:.1f} % ({ratio_text(t.ratio)})"
    if t.verdict == "not slower":
        return f"not slower than +{t.threshold_pct:.1f} % ({ratio_text(t.ratio)})"
    if t.verdict == "inconclusive":
        return f"inconclusive ({ratio_text(t.ratio)}; the CI crosses the +{t.threshold_pct:.1f} % threshold)"
    if t.verdict == "too few trials":
        return f"too few trials (n={min(t.n_a, t.n_b)}): {ratio_text(t.ratio)}"
    return f"{t.verdict} ({t.detail})" if t.detail else t.verdict


def _n_label(s: StepComparison) -> str:
    label = str(s.n_requests)
    if s.mode == "rate":
        label += f" @{s.rate:g}/s"
    default_c = 1 if s.mode == "sequential" else s.n_requests
    if s.concurrency not in (default_c, 0):
        label += f" c={s.concurrency}"
    return label


def step_cells(result: CompareResult) -> list[list[str]]:
    """Rows of the step table, in :data:`STEP_COLUMNS` order."""
    rows = []
    for s in result.steps:
        floor = (
            "-"
            if math.isnan(s.noise_floor_pct)
            else f"{s.noise_floor_pct:.1f} %" + ("*" if s.floor_source == "default" else "")
        )
        rows.append(
            [
                s.target,
                s.mode,
                _n_label(s),
                _seconds(s.a_value),
                _seconds(s.b_value),
                "-" if math.isnan(s.ratio) else f"{s.ratio:.3f}",
                f"{s.n_a}/{s.n_b}",
                _p(s.p_value),
                _p(s.p_adjusted),
                floor,
                step_verdict_text(s),
                _p(s.p_requests),
            ]
        )
    return rows


def _ci(t: TargetSummary) -> str:
    if math.isnan(t.ci_low):
        return "-"
    return f"{t.ci_low:.3f}-{t.ci_high:.3f} ({t.ci_level * 100:.4g} %)"


def _trials_are(t: TargetSummary) -> str:
    """What one trial replicates: a fresh start of the stand-in in both runs, or one start for all."""
    if t.verdict.startswith("only in"):
        return "-"
    return "fresh starts" if t.independent else "within one start"


def target_cells(result: CompareResult) -> list[list[str]]:
    """Rows of the per-target summary table, in :data:`TARGET_COLUMNS` order."""
    rows = []
    for t in result.targets:
        steps = f"{t.steps}" + (f" (+{t.excluded} excluded)" if t.excluded else "")
        threshold = (
            "-"
            if t.verdict.startswith("only in")
            else f"{t.threshold_pct:.1f} %"
            + ("*" if t.floor_source == "default" and t.noise_floor_pct >= t.threshold_pct else "")
        )
        rows.append(
            [
                t.target,
                steps,
                f"{t.n_a}/{t.n_b}",
                _trials_are(t),
                "-" if math.isnan(t.ratio) else f"{t.ratio:.3f}",
                _ci(t),
                threshold,
                "-" if math.isnan(t.detectable_pct) else f"{t.detectable_pct:.1f} %",
                target_verdict_text(t),
            ]
        )
    return rows


def legend_lines(result: CompareResult, metric_column: str) -> list[str]:
    """How to read the tables: what was measured, tested, adjusted and gated on."""
    st = result.settings
    tested = sum(1 for s in result.steps if not math.isnan(s.p_value))
    correction = _CORRECTION_NAMES[st.correction]
    return [
        f"metric: the per-trial {st.metric} ({metric_column}), one sample per trial; A and B are geometric "
        "means over trials; B/A > 1 means B is slower.",
        f"steps: Welch's t-test on log per-trial values (>= 2 trials each side), p adjusted by {correction} "
        f"over the {tested} tested steps; 'slower'/'faster' only when adjusted p < {st.alpha:g} and B/A lies "
        "beyond the effective threshold = max(--threshold, noise floor).",
        f"floor: the ratio two single trials of identical code reach by chance (two-sided {1 - st.alpha:g}), "
        f"from the spread between trials, at least the between-run default {st.default_noise_floor_pct:g} % (*); "
        "only for trials inside one start of the stand-in or one trial per side (none for fresh starts).",
        "MWU p (requests): Mann-Whitney U over pooled per-request latencies; a detail only, never the verdict "
        "(requests of one run are not independent samples).",
        "targets: geometric mean of B/A over the steps not failed/saturated in either run; CI = Welch t interval "
        f"over one score per trial (its mean log value over those steps), level 1 - {st.alpha:g}/targets tested; "
        "slower = CI above 1 and B/A beyond 1 + threshold (faster alike), within = the whole CI inside "
        "±threshold, not slower = its upper end inside +threshold, inconclusive = otherwise.",
        "trials are: 'fresh starts' = every trial a new start of the stand-in in both runs (bench run's default), "
        "so trials replicate what differs between runs and no floor applies; 'within one start' (remote targets, "
        "--trial-design within-run, older runs): the floor raises the threshold. detectable = the smallest "
        "slow-down flagged 80 % of the time at these runs' spread and trial counts.",
    ]


def summary_lines(result: CompareResult) -> list[str]:
    """One line per target, then what was left out and why (nothing is dropped silently)."""
    lines = []
    for t in result.targets:
        if t.verdict.startswith("only in") or t.verdict == "no clean steps":
            lines.append(f"{t.target}: {target_verdict_text(t)}")
            continue
        ci = "" if math.isnan(t.ci_low) else f", {t.ci_level * 100:.4g} % CI {t.ci_low:.3f}-{t.ci_high:.3f}"
        if t.independent:
            floor = "no floor: trials are fresh starts"
        elif t.floor_source == "default":
            floor = f"the between-run default floor {t.noise_floor_pct:.1f} %: trials within one start or one trial"
        else:
            floor = f"noise floor {t.noise_floor_pct:.1f} % from the trials: trials within one start"
        lines.append(
            f"{t.target}: geometric mean B/A {t.ratio:.3f} over {t.steps} steps{ci}, trials A {t.n_a} / "
            f"B {t.n_b}; threshold {t.threshold_pct:.1f} % ({floor}) -> {target_verdict_text(t)}"
        )
        lines += _spread_lines(t, result.settings.detect_pct)
    if result.only_in_a:
        lines.append("only in A: " + ", ".join(result.only_in_a))
    if result.only_in_b:
        lines.append("only in B: " + ", ".join(result.only_in_b))
    flagged = [s for s in result.steps if s.verdict in ("failed", "saturated")]
    if flagged:
        lines.append(
            "excluded from the geometric means (never read as faster or slower): "
            + "; ".join(f"{s.label}: {s.detail}" for s in flagged)
        )
    return lines


def _spread_lines(t: TargetSummary, detect_pct: float | None) -> list[str]:
    """The target's trial-to-trial spread (between restarts or within one start) and what it can detect."""
    if math.isnan(t.trial_sd):
        return []
    kind = "between restarts" if t.independent else "within one start (understates the spread between runs)"
    parts = ""
    if not math.isnan(t.between_trial_sd):
        whole = "between restarts" if t.independent else "between passes of one start"
        parts = (
            f" (whole-trial shifts {whole} sd {t.between_trial_sd * 100:.1f} %, step noise within a trial "
            f"sd {t.within_trial_sd * 100:.1f} %)"
        )
    lines = [
        f"  spread {kind}: sd {t.trial_sd * 100:.1f} % per trial{parts}; smallest slow-down these runs could "
        f"detect (80 % power): {t.detectable_pct:.1f} %"
    ]
    if detect_pct is not None:
        if t.trials_needed is None:
            why = (
                "it is not beyond the threshold"
                if detect_pct <= t.threshold_pct
                else "more than 1000 trials per side would be needed"
            )
            lines.append(f"  to detect {detect_pct:g} %: not reachable ({why})")
        else:
            lines.append(
                f"  to detect {detect_pct:g} % with 80 % power: {t.trials_needed} trials per side "
                f"at this spread (`bench run ... --trials {t.trials_needed}`)"
            )
    return lines


def _num(value: Any) -> Any:
    return "" if isinstance(value, float) and math.isnan(value) else value


def csv_text(result: CompareResult, comment_lines: list[str]) -> str:
    """``#`` comment lines, then one CSV table: a row per step (level=step), then per target.

    Read it back with ``pandas.read_csv(path, comment="#")``.
    """
    out = io.StringIO()
    for line in comment_lines:
        out.write(f"# {line}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    metric = result.settings.metric
    for s in result.steps:
        row = {
            "level": "step",
            "target": s.target,
            "mode": s.mode,
            "n_requests": s.n_requests,
            "concurrency": s.concurrency,
            "rate": s.rate,
            "metric": metric,
            "n_a": s.n_a,
            "n_b": s.n_b,
            "a_value": s.a_value,
            "b_value": s.b_value,
            "ratio": s.ratio,
            "p_value": s.p_value,
            "p_adjusted": s.p_adjusted,
            "p_requests": s.p_requests,
            "noise_floor_pct": s.noise_floor_pct,
            "floor_source": s.floor_source,
            "threshold_pct": s.threshold_pct,
            "verdict": s.verdict,
            "ci_low": s.ci_low,
            "ci_high": s.ci_high,
            "independent": s.independent,
            "verdict_text": step_verdict_text(s),
        }
        writer.writerow([_num(row.get(c, math.nan)) for c in CSV_COLUMNS])
    for t in result.targets:
        row = {
            "level": "target",
            "target": t.target,
            "metric": f"geomean {metric}",
            "n_a": t.n_a,
            "n_b": t.n_b,
            "ratio": t.ratio,
            "ci_low": t.ci_low,
            "ci_high": t.ci_high,
            "ci_level": t.ci_level,
            "noise_floor_pct": t.noise_floor_pct,
            "floor_source": t.floor_source,
            "threshold_pct": t.threshold_pct,
            "steps": t.steps,
            "excluded": t.excluded,
            "verdict": t.verdict,
            "independent": t.independent,
            "trial_sd": t.trial_sd,
            "dof": t.dof,
            "detectable_pct": t.detectable_pct,
            "trials_needed": "" if t.trials_needed is None else t.trials_needed,
            "between_trial_sd": t.between_trial_sd,
            "within_trial_sd": t.within_trial_sd,
            "verdict_text": target_verdict_text(t),
        }
        writer.writerow([_num(row.get(c, math.nan)) for c in CSV_COLUMNS])
    return out.getvalue().rstrip("\n")
