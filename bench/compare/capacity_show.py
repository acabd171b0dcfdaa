"""Print the capacity comparison of two runs (table, Markdown or CSV) and say whether capacity was lost.

The rendering side of :mod:`bench.compare.capacity`: one row per target, in the same three
formats as the step comparison of :mod:`bench.compare.show`, which calls
:func:`split_capacity_runs` before comparing steps and :func:`show_capacity` before printing
them.
"""

from __future__ import annotations

import csv
import io
import math

from bench.compare.capacity import (
    CAPACITY_COMPARISON_COLUMNS,
    CapacityComparison,
    compare_capacities,
    without_capacity,
)
from bench.compare.verdict import CompareError
from bench.console import Console
from bench.report.tables import markdown_table
from bench.results import RunData

__all__ = ["render_capacity_rows", "show_capacity", "split_capacity_runs"]

_COLUMNS = [
    "target",
    "objective",
    "A (req/s)",
    "B (req/s)",
    "B/A",
    "B/A range over searches",
    "searches A/B",
    "verdicts A | B",
    "verdict",
    "notes",
]


def split_capacity_runs(
    run_a: RunData, run_b: RunData, *, threshold_pct: float, console: Console
) -> tuple[RunData, RunData, list[CapacityComparison] | None]:
    """(A and B without capacity rows, the capacity comparison or None). When the capacity
    searches cannot be compared (only one run has one, no common target), that is a warning
    if the ordinary steps can still be compared, else a CompareError."""
    stripped_a, stripped_b = without_capacity(run_a), without_capacity(run_b)
    try:
        comparisons = compare_capacities(run_a, run_b, threshold_pct=threshold_pct)
    except ValueError as exc:
        if stripped_a.summary.empty or stripped_b.summary.empty:
            raise CompareError(str(exc)) from exc
        console.warn(f"capacity not compared: {exc}")
        comparisons = None
    return stripped_a, stripped_b, comparisons


def _rps(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f}"


def _ratio(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def render_capacity_rows(comparisons: list[CapacityComparison]) -> list[list[str]]:
    rows = []
    for c in comparisons:
        spread = "-" if math.isnan(c.ratio_low) else f"{_ratio(c.ratio_low)}-{_ratio(c.ratio_high)}"
        verdict = c.verdict
        if c.verdict in ("higher", "lower"):
            verdict = f"{c.ratio:.2f}x {c.verdict} capacity"
        rows.append(
            [
                c.target,
                c.objective,
                _rps(c.a_rps),
                _rps(c.b_rps),
                _ratio(c.ratio),
                spread,
                f"{c.n_a}/{c.n_b}",
                f"{c.a_verdicts} | {c.b_verdicts}",
                verdict,
                c.notes,
            ]
        )
    return rows


def show_capacity(
    comparisons: list[CapacityComparison] | None,
    *,
    title: str,
    threshold_pct: float,
    fmt: str,
    fail_on_regression: bool,
    console: Console,
) -> bool:
    """Print the capacity comparison (nothing when None); True when some target lost capacity
    (said as an error when ``fail_on_regression``, as the step regressions are)."""
    if comparisons is None:
        return False
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CAPACITY_COMPARISON_COLUMNS)
        for c in comparisons:
            row = c.as_row()
            writer.writerow([row[k] for k in CAPACITY_COMPARISON_COLUMNS])
        console.print(out.getvalue().rstrip("\n"))
    elif fmt == "md":
        console.print(f"**Capacity: {title}**\n\n" + markdown_table(_COLUMNS, render_capacity_rows(comparisons)))
    else:
        if not console.out.is_terminal:
            console.out.width = max(console.out.width, 170)
        console.table(f"Capacity: {title}", _COLUMNS, render_capacity_rows(comparisons))
    console.info(
        "capacity: median over each run's searches; B/A < 1 means B sustains less load. A change counts "
        f"when the two runs' ranges do not overlap and it exceeds {threshold_pct:g} % "
        "(docs/capacity.md); one search per side has no spread to judge by."
    )
    lower = [c for c in comparisons if c.is_regression]
    if lower:
        text = "lower capacity: " + "; ".join(f"{c.target} {c.ratio:.2f}x" for c in lower)
        (console.error if fail_on_regression else console.info)(("regression: " if fail_on_regression else "") + text)
    return bool(lower)
