"""Pure table-building from summary rows: the study's Table 3 layout and per-target summaries.

Why pure (DataFrame in, DataFrame or text out): the same tables are printed at the end of
``bench run``, written by ``bench report`` and checked by tests; regenerating them from the
same CSV must give byte-identical text, so formatting is fixed here (no locale, no
``tabulate`` defaults).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bench.report.bounds import bounds_recorded, percentile_cell, trial_hull
from bench.report.flags import annotate_flags, flag_cell, merge_error_classes, offered_rate, step_keys
from loadgen.calibration import ceiling_for  # re-exported: merge.py and the tests read it here
from loadgen.modes import MODES
from loadgen.stats import BOUND_COLUMNS

__all__ = [
    "FLAG_FRACTION",
    "MODE_ORDER",
    "ceiling_for",
    "error_accuracy_table",
    "flag_near_ceiling",
    "format_seconds",
    "markdown_table",
    "modes_in",
    "row_labels",
    "shows_agreement",
    "step_means",
    "study_side_by_side",
    "table3",
    "table3_rows",
    "target_summary_table",
]

# A point whose throughput reaches this share of the client's calibrated ceiling may be
# measuring the load generator rather than the target; reports flag it.
FLAG_FRACTION = 0.5
MODE_ORDER = MODES  # loadgen.modes.Mode, in order


def modes_in(summary: pd.DataFrame) -> list[str]:
    """Modes present, sequential first (the study's method), then the rest in a fixed order."""
    present = list(dict.fromkeys(summary["mode"]))
    return [m for m in MODE_ORDER if m in present] + sorted(m for m in present if m not in MODE_ORDER)


def step_means(summary: pd.DataFrame) -> pd.DataFrame:
    """One row per step (target, mode, N, rate) averaged over trials, with its flags.

    Numeric columns are means over the trials that answered at least one request (a trial
    in which every request failed measured nothing, so it is left out of every average);
    ``total_s_std`` is their sample std (NaN for one). The percentile bounds are not
    averaged: a step's ``lat_pXX_lo_s``/``lat_pXX_hi_s`` are the hull of its trials' intervals
    (:func:`bench.report.bounds.trial_hull`). Added per step: ``trials`` (all of
    them), ``sent`` and ``failed`` (requests summed over all trials), ``error_classes``
    (class -> count, all trials) and the flags ``flag_errors`` / ``flag_saturated`` (any
    trial) and ``flag_all_failed`` (every trial failed completely: the step has no result).
    """
    keys = step_keys(summary)
    frame = annotate_flags(summary)
    frame["failed_"] = _failed_counts(frame)
    bounds = {c for pair in BOUND_COLUMNS.values() for c in pair}
    numeric = [
        c
        for c in summary.columns
        if c not in keys
        and c not in ("saturated", "trial")
        and c not in bounds
        and pd.api.types.is_numeric_dtype(summary[c])
        and not pd.api.types.is_bool_dtype(summary[c])
    ]
    groups = frame.groupby(keys, sort=True, dropna=False)
    out = pd.DataFrame(
        {
            "trials": groups.size(),
            "sent": groups["n_requests"].sum(),
            "failed": groups["failed_"].sum(),
            "flag_errors": groups["flag_errors"].any(),
            "flag_all_failed": groups["flag_all_failed"].all(),
            "flag_saturated": groups["flag_saturated"].any(),
        }
    )
    out["error_classes"] = [merge_error_classes(frame["errors_by_class"].loc[idx]) for idx in groups.groups.values()]
    usable = frame[~frame["flag_all_failed"]].groupby(keys, sort=True, dropna=False)
    means = usable[numeric].mean()
    means["total_s_std"] = usable["total_s"].std(ddof=1)
    means = means.join(trial_hull(frame[~frame["flag_all_failed"]], keys), how="left")
    return out.join(means, how="left").reset_index()


def _failed_counts(frame: pd.DataFrame) -> pd.Series:
    """Failed requests per row (the reader derived ``errors`` for files that lacked it)."""
    return frame["errors"].astype(int)


def row_labels(means: pd.DataFrame) -> list[tuple[str, tuple[Any, ...]]]:
    """(label, step key) per table row, in order: 'N', or 'N @ R req/s' when a mode ran at
    several offered rates (then N alone would name two steps)."""
    has_rate = means["rate"].nunique(dropna=False) > 1
    keys = sorted(
        {(float(r) if has_rate else 0.0, int(n)) for n, r in zip(means["n_requests"], means["rate"], strict=False)}
    )
    return [(f"{n} @ {r:g} req/s" if has_rate else str(n), (n, r)) for r, n in keys]


def table3(summary: pd.DataFrame, mode: str, targets: Sequence[str]) -> pd.DataFrame:
    """Rows: number of requests; columns: targets; cells: total seconds (mean over trials
    that answered; NaN for a step where every request failed)."""
    means = step_means(summary[summary["mode"] == mode])
    index = ["n_requests", "rate"] if means["rate"].nunique(dropna=False) > 1 else ["n_requests"]
    wide = means.pivot_table(index=index, columns="target", values="total_s", aggfunc="first", dropna=False)
    wide = wide.reindex(columns=[t for t in targets if t in set(means["target"])]).sort_index()
    wide.columns.name = "target"
    return wide


def flag_near_ceiling(
    frame: pd.DataFrame,
    ceiling: Mapping[str, Any] | None,
    by_target: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> pd.Series:
    """True where throughput >= FLAG_FRACTION x the client's ceiling at that concurrency.

    ``by_target`` overrides ``ceiling`` for the targets it names (:func:`bench.report.runfacts.target_ceilings`: a
    gRPC target's requests went through the grpc engine, whose ceiling is not the run's HTTP
    engine's); a target mapped to None has no measured ceiling, so none of its steps is flagged.
    """
    if "throughput_rps" not in frame or "concurrency" not in frame:
        return pd.Series(False, index=frame.index)
    by_target = by_target or {}
    if not ceiling and not any(by_target.values()):
        return pd.Series(False, index=frame.index)

    def limit(target: Any, concurrency: Any) -> Any:
        chosen = by_target[target] if target in by_target else ceiling
        return ceiling_for(concurrency, chosen) if chosen else np.nan

    targets = frame["target"] if "target" in frame else pd.Series("", index=frame.index)
    limits = [limit(t, c) for t, c in zip(targets, frame["concurrency"], strict=True)]
    limits = pd.to_numeric(pd.Series(limits, index=frame.index), errors="coerce")
    return (frame["throughput_rps"] >= FLAG_FRACTION * limits).fillna(False).astype(bool)


def format_seconds(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{float(value):.{digits}f}"


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub-flavoured Markdown table; first column left-aligned, the rest right-aligned."""
    align = align or ("l" + "r" * (len(columns) - 1))
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = [
        "| " + " | ".join(str(c) for c in columns) + " |",
        "|" + "|".join(marks[a] for a in align) + "|",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cells_by_key(means: pd.DataFrame) -> dict[tuple[str, int, float], dict[str, Any]]:
    """(target, N, rate) -> the step's row as a dict (rate 0 for closed-loop modes)."""
    has_rate = means["rate"].nunique(dropna=False) > 1
    return {
        (str(t), int(n), float(r) if has_rate else 0.0): row
        for t, n, r, row in zip(
            means["target"], means["n_requests"], means["rate"], means.to_dict("records"), strict=False
        )
    }


def table3_rows(
    summary: pd.DataFrame,
    mode: str,
    targets: Sequence[str],
    ceiling: Mapping[str, Any] | None = None,
    by_target: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Table 3 as text cells: total seconds, '*' near the client ceiling, and the step flags
    (``✗k/n``, ``⚠ saturated``; ``failed: n/n class`` instead of a total when nothing succeeded)."""
    means = step_means(summary[summary["mode"] == mode])
    means = means.assign(near_=flag_near_ceiling(means, ceiling, by_target).to_numpy())
    present = [t for t in targets if t in set(means["target"])]
    cells = _cells_by_key(means)
    rows = []
    for label, (n, rate) in row_labels(means):
        row = [label]
        for t in present:
            cell = cells.get((t, n, rate))
            if cell is None:
                row.append("-")
                continue
            total = format_seconds(cell.get("total_s")) + ("*" if cell["near_"] else "")
            row.append(flag_cell(total, cell))
        rows.append(row)
    return ["No of Req", *present], rows


def study_side_by_side(
    summary: pd.DataFrame, study: pd.DataFrame, targets: Sequence[str], mode: str
) -> tuple[list[str], list[list[str]]]:
    """Per N and target: 'this run / the study = ratio' of total seconds (one compact cell);
    a flagged step keeps its mark, and a step with no result has no ratio."""
    means = step_means(summary[summary["mode"] == mode])
    cells = _cells_by_key(means)
    theirs = study.set_index(["target", "n_requests"])["total_s"]
    columns = ["No of Req", *[f"{t}: run / study = ratio" for t in targets]]
    ns = sorted(set(int(n) for n in summary.loc[summary["mode"] == mode, "n_requests"]))
    rows = []
    for n in ns:
        row = [str(n)]
        for t in targets:
            cell = cells.get((t, n, 0.0)) or {}
            a = float(cell.get("total_s", np.nan))
            b = float(theirs.get((t, n), np.nan))
            ratio = a / b if b and not np.isnan(a) and not np.isnan(b) else np.nan
            ours = flag_cell(format_seconds(a), cell) if cell else format_seconds(a)
            row.append(f"{ours} / {format_seconds(b)} = " + ("-" if np.isnan(ratio) else f"{ratio:.3f}"))
        rows.append(row)
    return columns, rows


def target_summary_table(
    summary: pd.DataFrame,
    mode: str,
    targets: Sequence[str],
    ceiling: Mapping[str, Any] | None = None,
    by_target: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Per target x step: total (or achieved vs offered rate in ``rate`` mode), latency
    percentiles in ms with their 95 % bounds (``v (lo–hi)``, ``≥ lo`` or ``—``, see
    :func:`bench.report.bounds.percentile_cell`), failures, answers correct (%).

    The main number carries the step's flags (see :func:`bench.report.flags.flag_cell`); a
    'notes' column appears only when some step is near the client's ceiling.
    """
    means = step_means(summary[summary["mode"] == mode])
    means = means.assign(
        near_=flag_near_ceiling(means, ceiling, by_target).to_numpy(),
        order_=means["target"].map({t: i for i, t in enumerate(targets)}),
    )
    open_loop = mode == "rate"
    lat = ["p50 (ms)", "p90 (ms)", "p99 (ms)", "max (ms)"]
    if open_loop:
        columns = ["target", "offered (req/s)", "N", "achieved (req/s)", *lat, "send lag p50 (ms)"]
        order = ["order_", "rate", "n_requests"]
    else:
        columns = ["target", "N", "total (s)", "throughput (req/s)", *lat]
        order = ["order_", "n_requests"]
    columns += ["failed", "answers correct (%)"]
    agreeing = shows_agreement(summary)
    if agreeing:
        columns.append("answers agreeing (%)")
    notes = bool(means["near_"].any())
    recorded = bounds_recorded(summary)
    rows = []
    for r in means.sort_values(order).to_dict("records"):
        latency = [percentile_cell(r, s, recorded) for s in ("p50", "p90", "p99")]
        latency.append(_ms(r.get("lat_max_s")))
        if open_loop:
            offered = offered_rate(r)
            achieved = r.get("achieved_rps")
            achieved = achieved if achieved is not None and not pd.isna(achieved) else r.get("throughput_rps")
            row = [
                r["target"],
                "-" if offered is None else f"{offered:g}",
                str(int(r["n_requests"])),
                flag_cell(_fmt(achieved, 1), r),
                *latency,
                _ms(r.get("send_lag_p50_s")),
            ]
        else:
            row = [
                r["target"],
                str(int(r["n_requests"])),
                flag_cell(format_seconds(r.get("total_s")), r),
                _fmt(r.get("throughput_rps"), 1),
                *latency,
            ]
        row += [f"{int(r['failed'])}/{int(r['sent'])}" if r["failed"] else "0", _pct(r.get("accuracy"))]
        if agreeing:
            row.append(_pct(r.get("agreement")))
        if notes:
            row.append("near client ceiling" if r["near_"] else "")
        rows.append(row)
    return columns + (["notes"] if notes else []), rows


def shows_agreement(summary: pd.DataFrame) -> bool:
    """Whether a table needs an 'answers agreeing' column: some step checked its answers
    without a digit (an input-data file's expected outputs).  MNIST steps agree exactly when
    their digit is correct, so a study run's tables stay as they were."""
    if "agreement" not in summary.columns or summary.empty:
        return False
    agreement = pd.to_numeric(summary["agreement"], errors="coerce")
    accuracy = pd.to_numeric(summary.get("accuracy", pd.Series(np.nan, index=summary.index)), errors="coerce")
    return bool((agreement.notna() & accuracy.isna()).any())


def error_accuracy_table(summary: pd.DataFrame, targets: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Per target x mode over all steps: requests, failures by class, answers correct as a
    share of the requests sent and of those answered (summary.csv's ``accuracy`` and
    ``accuracy_ok``; "accuracy" alone read like a request success rate)."""
    columns = [
        "target",
        "mode",
        "requests",
        "failed",
        "error classes",
        "answers correct (% of sent)",
        "answers correct (% of answered)",
    ]
    agreeing = shows_agreement(summary)
    if agreeing:
        columns.append("answers agreeing (% of sent)")
    rows = []
    for t in targets:
        for mode in modes_in(summary):
            part = summary[(summary["target"] == t) & (summary["mode"] == mode)]
            if part.empty:
                continue
            sent = int(part["n_requests"].sum())
            failed = int(_failed_counts(part).sum())
            correct = float(part["n_correct"].sum(min_count=1))  # NaN when no row recorded it
            if "accuracy" in part.columns and part["accuracy"].isna().all():
                correct = np.nan  # no digit to be correct about (not MNIST)
            answered = sent - failed
            classes = merge_error_classes(part["errors_by_class"])
            rows.append(
                [
                    t,
                    mode,
                    str(sent),
                    str(failed),
                    ", ".join(f"{k}: {v}" for k, v in classes.items()),
                    _pct(correct / sent if sent else np.nan, 2),
                    _pct(correct / answered if answered else np.nan, 2),
                ]
            )
            if agreeing:
                agreed = float(part["n_agree"].sum(min_count=1)) if part["agreement"].notna().any() else np.nan
                rows[-1].append(_pct(agreed / sent if sent else np.nan, 2))
    return columns, rows


def _fmt(value: Any, digits: int) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(v) else f"{v:.{digits}f}"


def _pct(fraction: Any, digits: int = 1) -> str:
    """A fraction as a percentage without the sign (the column says %): 0.99 -> '99.0'."""
    try:
        v = float(fraction)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(v) else f"{100.0 * v:.{digits}f}"


def _ms(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(v) else f"{v * 1000:.2f}"
