"""Flagged steps: which summary rows must not be read as plain results, and how to say so.

A step where every request was refused finishes in milliseconds, so without a mark its
"total" is the fastest number in Table 3 -- the opposite of the truth. Every table, figure
and sentence of a report takes its flags from here, so the console table, ``table3.md``,
report.md/html and the figures cannot disagree.

Rules (pure functions of summary rows, via :func:`loadgen.stats.step_flags`):

- a step with some failed requests keeps its numbers (they describe the requests that
  succeeded) and carries ``✗failed/sent``;
- a step where every request failed has no total, latency or throughput at all: its cell
  reads ``failed: 100/100 refused``;
- an open-loop step that did not sustain its offered rate carries ``⚠ saturated``;
- a step the run ended during (killed mid-step: ``partial``, :mod:`bench.results.partial`)
  is named in a sentence with the records it kept;
- averaged over trials, a cell is flagged when any of its trials is; trials in which every
  request failed are left out of the averages (they measured nothing) but their requests
  still count in ``✗failed/sent``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from bench.results.partial import FLAG_PARTIAL
from loadgen.cells import cell_count, cell_number
from loadgen.log_histogram import RELATIVE_ERROR
from loadgen.record_columns import EXACT_RECORDS
from loadgen.stats import (
    FLAG_ALL_FAILED,
    FLAG_ERRORS,
    FLAG_HISTOGRAM,
    FLAG_SATURATED,
    parse_error_counts,
    step_flags,
)

__all__ = [
    "FAILED_MARK",
    "FLAG_COLUMNS",
    "SATURATED_MARK",
    "annotate_flags",
    "flag_cell",
    "flag_legend",
    "flag_sentences",
    "merge_error_classes",
    "offered_rate",
    "step_keys",
]

FAILED_MARK = "✗"  # followed by failed/sent, e.g. "✗3/512"
SATURATED_MARK = "⚠ saturated"
# Per-row (and, after step_means, per-cell) flag columns added to summary frames.
FLAG_COLUMNS = ("flag_errors", "flag_all_failed", "flag_saturated")


def step_keys(summary: pd.DataFrame) -> list[str]:
    """Columns that identify one step across trials: target, mode, N and the offered rate
    (two rate steps with the same N at different rates are different steps; closed-loop
    steps all have rate 0). ``summary`` is a :class:`bench.results.RunData` frame, which has
    every column whatever schema wrote the file."""
    return ["target", "mode", "n_requests", "rate"]


def annotate_flags(summary: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``summary`` with boolean :data:`FLAG_COLUMNS`, one set per row (trial)."""
    out = summary.copy()
    flags = [step_flags(row) for row in summary.to_dict("records")]
    out["flag_errors"] = [FLAG_ERRORS in f for f in flags]
    out["flag_all_failed"] = [FLAG_ALL_FAILED in f for f in flags]
    out["flag_saturated"] = [FLAG_SATURATED in f for f in flags]
    out["flag_partial"] = [FLAG_PARTIAL in f for f in flags]  # a sentence, not a cell mark: see flag_sentences
    out["flag_histogram"] = [FLAG_HISTOGRAM in f for f in flags]  # a sentence too: the row is a result
    return out


def merge_error_classes(texts: Iterable[Any]) -> dict[str, int]:
    """Sum ``errors_by_class`` cells ("refused:3;timeout:1") over rows; unreadable cells are skipped."""
    totals: dict[str, int] = {}
    for text in texts:
        try:
            counts = parse_error_counts(text if isinstance(text, str) else "")
        except ValueError:
            continue
        for name, count in counts.items():
            totals[name] = totals.get(name, 0) + count
    return totals


def _classes_text(classes: Mapping[str, int], failed: int) -> str:
    """'refused' when one class explains every failure, else 'refused 60, reset 40'."""
    if not classes:
        return ""
    if len(classes) == 1 and next(iter(classes.values())) == failed:
        return next(iter(classes))
    return ", ".join(f"{name} {count}" for name, count in classes.items())


def _int(value: Any) -> int:
    """A count cell, 0 when missing."""
    return cell_count(value) or 0


def flag_cell(value_text: str, cell: Mapping[str, Any]) -> str:
    """The text of one table cell for a step (or a cell averaged over trials).

    ``cell`` needs the flag columns and ``failed``/``sent``/``error_classes`` as produced by
    :func:`bench.report.tables.step_means`. An all-failed cell drops ``value_text``
    entirely: there is no total to show.
    """
    failed, sent = _int(cell.get("failed")), _int(cell.get("sent"))
    if bool(cell.get("flag_all_failed")):
        classes = _classes_text(cell.get("error_classes") or {}, failed)
        text = f"failed: {failed}/{sent}" + (f" {classes}" if classes else "")
        return text + (f" {SATURATED_MARK}" if bool(cell.get("flag_saturated")) else "")
    parts = [value_text]
    if bool(cell.get("flag_errors")):
        parts.append(f"{FAILED_MARK}{failed}/{sent}")
    if bool(cell.get("flag_saturated")):
        parts.append(SATURATED_MARK)
    return " ".join(parts)


def flag_legend(cells: Iterable[str]) -> list[str]:
    """One line per kind of mark that appears in ``cells`` (a legend lists only what is shown)."""
    cells = list(cells)
    lines = []
    if any(c.startswith("failed:") for c in cells):
        lines.append(
            "failed: k/n class = every request of the step failed (k of n, by error class): "
            "there is no result, so no total is shown."
        )
    if any(FAILED_MARK in c for c in cells):
        lines.append(
            f"{FAILED_MARK}k/n = k of the n requests failed: the number describes only the requests that succeeded."
        )
    if any(SATURATED_MARK in c for c in cells):
        lines.append(
            f"{SATURATED_MARK} = the open loop did not sustain the offered rate: the number describes "
            "a growing queue, not the service at that rate."
        )
    if lines and any(c == "-" for c in cells):
        lines.append("- = not measured (its target had stopped, or the step was not in that target's plan).")
    return lines


def offered_rate(row: Mapping[str, Any]) -> float | None:
    """The offered rate of an open-loop row: ``offered_rps``, or ``rate`` in runs written
    before that column existed."""
    offered = cell_number(row.get("offered_rps"))
    return offered if offered is not None else cell_number(row.get("rate"))


def _step_name(row: Mapping[str, Any], trials: int) -> str:
    rate = offered_rate(row)
    at = f" at {rate:g} req/s" if row.get("mode") == "rate" and rate is not None else ""
    trial = f" (trial {_int(row.get('trial'))})" if trials > 1 else ""
    return f"`{row.get('target')}` {row.get('mode')} N={_int(row.get('n_requests'))}{at}{trial}"


def flag_sentences(summary: pd.DataFrame, targets: Sequence[str], modes: Sequence[str]) -> list[str]:
    """One plain sentence per flagged row (each trial separately): which step, and why."""
    frame = annotate_flags(summary)
    flagged = frame[frame["flag_errors"] | frame["flag_saturated"] | frame["flag_partial"] | frame["flag_histogram"]]
    if flagged.empty:
        return []
    trials = int(frame["trial"].nunique())
    order_t = {t: i for i, t in enumerate(targets)}
    order_m = {m: i for i, m in enumerate(modes)}
    flagged = flagged.assign(
        _t=flagged["target"].map(order_t).fillna(len(order_t)), _m=flagged["mode"].map(order_m).fillna(len(order_m))
    )
    sort_cols = ["_t", "_m", "rate", "n_requests", "trial"]
    out = []
    for row in flagged.sort_values(sort_cols).to_dict("records"):
        sent, ok = _int(row.get("n_requests")), _int(row.get("n_ok"))
        failed = _int(row.get("errors")) or sent - ok
        classes = merge_error_classes([row.get("errors_by_class")])
        by_class = " (" + ", ".join(f"{k}: {v}" for k, v in classes.items()) + ")" if classes else ""
        reasons = []
        if row["flag_partial"]:  # its requests are the records on disk, not the N planned
            failed = _int(row.get("errors"))
            reasons.append(
                f"partial: the run ended during this step; its row is summarised from the {ok + failed} "
                f"records checkpointed to disk (of {sent} planned)"
            )
            sent = ok + failed
        if row["flag_all_failed"]:
            what = "its only request failed" if sent == 1 else f"all {sent} requests failed"
            reasons.append(f"{what}{by_class}: no total, latency or throughput is shown for it")
        elif row["flag_errors"]:
            reasons.append(
                f"{failed} of {sent} requests failed{by_class}: its total and latencies describe "
                f"only the {ok} that succeeded"
            )
        if row["flag_saturated"]:
            reasons.append("saturated: " + _saturation_reason(row))
        if row["flag_histogram"]:
            reasons.append(
                f"histogram: longer than the {EXACT_RECORDS:,} requests a step keeps exactly, so its "
                "percentiles and their bounds come from a log histogram of every latency (each within "
                f"{RELATIVE_ERROR:.1%}; counts exact)"
            )
        out.append(f"{_step_name(row, trials)}: " + "; ".join(reasons) + ".")
    return out


def _saturation_reason(row: Mapping[str, Any]) -> str:
    offered = offered_rate(row)
    achieved = cell_number(row.get("achieved_rps"))
    achieved = achieved if achieved is not None else cell_number(row.get("throughput_rps"))
    text = "the open loop did not keep up"
    if offered is not None and achieved is not None:
        text = f"{achieved:.1f} req/s answered of {offered:g} req/s offered"
    growth = cell_number(row.get("lag_growth_s"))
    if growth is not None and growth > 0:
        text += f", the client's send lag grew by {growth * 1000:.1f} ms over the step"
    return text + " (the numbers describe a queue, not the service at that rate)"
