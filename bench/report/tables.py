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

__all__ = [
    "FLAG_FRACTION",
    "MODE_ORDER",
    "ceiling_for",
    "error_accuracy_table",
    "flag_near_ceiling",
    "format_seconds",
    "markdown_table",
    "modes_in",
    "step_means",
    "study_side_by_side",
    "table3",
    "table3_rows",
    "target_summary_table",
]

# A point whose throughput reaches this share of the client's calibrated ceiling may be
# measuring the load generator rather than the target; reports flag it.
FLAG_FRACTION = 0.5
MODE_ORDER = ("sequential", "concurrent", "rate")


def modes_in(summary: pd.DataFrame) -> list[str]:
    """Modes present, sequential first (the study's method), then the rest in a fixed order."""
    present = list(dict.fromkeys(summary["mode"]))
    return [m for m in MODE_ORDER if m in present] + sorted(m for m in present if m not in MODE_ORDER)


def step_means(summary: pd.DataFrame) -> pd.DataFrame:
    """Trials averaged per (target, mode, n_requests): means of every numeric column, plus
    ``trials`` and ``total_s_std`` (sample std over trials; NaN for one trial)."""
    keys = ["target", "mode", "n_requests"]
    numeric = [c for c in summary.columns if c not in keys and pd.api.types.is_numeric_dtype(summary[c])]
    grouped = summary.groupby(keys, sort=True)
    means = grouped[numeric].mean()
    means["trials"] = grouped.size()
    means["total_s_std"] = grouped["total_s"].std(ddof=1)
    return means.reset_index()


def table3(summary: pd.DataFrame, mode: str, targets: Sequence[str]) -> pd.DataFrame:
    """Rows: number of requests; columns: targets; cells: total seconds (mean over trials)."""
    means = step_means(summary[summary["mode"] == mode])
    wide = means.pivot(index="n_requests", columns="target", values="total_s")
    wide = wide.reindex(columns=[t for t in targets if t in wide.columns]).sort_index()
    wide.index.name = "n_requests"
    return wide


def ceiling_for(concurrency: float, ceiling: Mapping[str, Any] | None) -> float | None:
    """The client's calibrated req/s at this concurrency (an estimate between measured points).

    Calibration measures a few concurrencies (e.g. 1 and 64); between two of them the
    ceiling is interpolated linearly in log(concurrency)-log(req/s) space, outside them the
    nearest measured value is used. None when no calibration was recorded.
    """
    if not ceiling:
        return None
    points = sorted((float(k), float(v)) for k, v in (ceiling.get("rps_by_concurrency") or {}).items() if v)
    if not points:
        return None
    c = max(float(concurrency or 1), 1.0)
    if c <= points[0][0]:
        return points[0][1]
    if c >= points[-1][0]:
        return points[-1][1]
    for (c0, r0), (c1, r1) in zip(points, points[1:]):
        if c0 <= c <= c1:
            w = (math.log(c) - math.log(c0)) / (math.log(c1) - math.log(c0))
            return float(math.exp(math.log(r0) + w * (math.log(r1) - math.log(r0))))
    return points[-1][1]  # unreachable: the loop covers every c between the ends


def flag_near_ceiling(frame: pd.DataFrame, ceiling: Mapping[str, Any] | None) -> pd.Series:
    """True where throughput >= FLAG_FRACTION x the client's ceiling at that concurrency."""
    if not ceiling or "throughput_rps" not in frame or "concurrency" not in frame:
        return pd.Series(False, index=frame.index)
    limits = frame["concurrency"].map(lambda c: ceiling_for(c, ceiling))
    limits = pd.to_numeric(limits, errors="coerce")
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


def table3_rows(
    summary: pd.DataFrame, mode: str, targets: Sequence[str], ceiling: Mapping[str, Any] | None = None
) -> tuple[list[str], list[list[str]]]:
    """Table 3 as text cells; a trailing '*' marks points near the client ceiling."""
    wide = table3(summary, mode, targets)
    means = step_means(summary[summary["mode"] == mode])
    flagged = set()
    if ceiling:
        flags = flag_near_ceiling(means, ceiling)
        flagged = {(r.target, int(r.n_requests)) for r, f in zip(means.itertuples(), flags) if f}
    columns = ["No of Req", *wide.columns]
    rows = []
    for n, row in wide.iterrows():
        cells = [str(int(n))]
        for t in wide.columns:
            cell = format_seconds(row[t])
            cells.append(cell + ("*" if (t, int(n)) in flagged else ""))
        rows.append(cells)
    return columns, rows


def study_side_by_side(summary: pd.DataFrame, study: pd.DataFrame, targets: Sequence[str], mode: str) -> tuple[list[str], list[list[str]]]:
    """Per N and target: 'this run / the study = ratio' of total seconds (one compact cell)."""
    ours = step_means(summary[summary["mode"] == mode]).set_index(["target", "n_requests"])["total_s"]
    theirs = study.set_index(["target", "n_requests"])["total_s"]
    columns = ["No of Req", *[f"{t}: run / study = ratio" for t in targets]]
    ns = sorted(set(int(n) for n in summary.loc[summary["mode"] == mode, "n_requests"]))
    rows = []
    for n in ns:
        cells = [str(n)]
        for t in targets:
            a = float(ours.get((t, n), np.nan))
            b = float(theirs.get((t, n), np.nan))
            ratio = a / b if b and not np.isnan(a) and not np.isnan(b) else np.nan
            cells.append(f"{format_seconds(a)} / {format_seconds(b)} = " + ("-" if np.isnan(ratio) else f"{ratio:.3f}"))
        rows.append(cells)
    return columns, rows


def target_summary_table(summary: pd.DataFrame, mode: str, targets: Sequence[str],
                         ceiling: Mapping[str, Any] | None = None) -> tuple[list[str], list[list[str]]]:
    """Per target x N: total, throughput, p50/p90/p99 latency (ms), errors, accuracy."""
    means = step_means(summary[summary["mode"] == mode])
    flags = flag_near_ceiling(means, ceiling)
    columns = ["target", "N", "total (s)", "throughput (req/s)", "p50 (ms)", "p90 (ms)", "p99 (ms)",
               "errors", "accuracy", "near ceiling"]
    rows = []
    order = {t: i for i, t in enumerate(targets)}
    means = means.assign(flag_=flags.values, order_=means["target"].map(order))
    for r in means.sort_values(["order_", "n_requests"]).itertuples():
        rows.append([
            r.target, str(int(r.n_requests)), format_seconds(r.total_s),
            _fmt(getattr(r, "throughput_rps", np.nan), 1),
            _ms(getattr(r, "lat_p50_s", np.nan)), _ms(getattr(r, "lat_p90_s", np.nan)),
            _ms(getattr(r, "lat_p99_s", np.nan)),
            _fmt(getattr(r, "errors", np.nan), 1 if r.trials > 1 else 0),
            _fmt(getattr(r, "accuracy", np.nan), 3),
            "yes" if r.flag_ else "",
        ])
    return columns, rows


def error_accuracy_table(summary: pd.DataFrame, targets: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Per target x mode over all steps: requests, errors by class, accuracy (correct / sent)."""
    columns = ["target", "mode", "requests", "errors", "error classes", "accuracy"]
    rows = []
    for t in targets:
        for mode in modes_in(summary):
            part = summary[(summary["target"] == t) & (summary["mode"] == mode)]
            if part.empty:
                continue
            sent = int(part["n_requests"].sum())
            errors = int(part["errors"].sum()) if "errors" in part else 0
            correct = float((part["accuracy"] * part["n_requests"]).sum()) if "accuracy" in part else np.nan
            rows.append([t, mode, str(sent), str(errors), _merge_classes(part.get("errors_by_class")),
                         _fmt(correct / sent if sent else np.nan, 4)])
    return columns, rows


def _merge_classes(column: pd.Series | None) -> str:
    if column is None:
        return ""
    totals: dict[str, int] = {}
    for text in column.dropna().astype(str):
        for part in text.split(";"):
            if ":" in part:
                name, count = part.split(":", 1)
                try:
                    totals[name.strip()] = totals.get(name.strip(), 0) + int(float(count))
                except ValueError:
                    continue
    return ", ".join(f"{k}: {v}" for k, v in sorted(totals.items()))


def _fmt(value: Any, digits: int) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(v) else f"{v:.{digits}f}"


def _ms(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(v) else f"{v * 1000:.2f}"
