"""`python -m bench compare A B`: the rendering side of :mod:`bench.compare`.

Why separate: statistics are pure functions tested on their own; this module only loads the
runs, turns comparisons into a terminal table, Markdown or CSV, and sets the exit code
(1 on a significant regression when ``--fail-on-regression`` is given, 2 on bad input).
"""

from __future__ import annotations

import csv
import io
import math

from bench.cmd_compare_capacity import show_capacity, split_capacity_runs
from bench.compare import COMPARISON_COLUMNS, CompareError, Comparison, compare_runs, has_regression, verdict_text
from bench.config import BenchConfig
from bench.console import Console
from bench.report.tables import markdown_table
from bench.results import ResultsError, load_run, resolve_run

__all__ = ["compare", "render_rows"]

_COLUMNS = ["target", "mode", "N", "metric", "A", "B", "B/A", "test n(A/B)", "p", "verdict"]
_TEST_SHORT = {"mann-whitney": "MWU", "welch": "Welch", "no test": "none"}
_METRIC_SHORT = {"median latency": "median", "mean total_s": "total"}


def _fmt_s(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value * 1000:.2f} ms" if value < 1 else f"{value:.3f} s"


def render_rows(comparisons: list[Comparison]) -> list[list[str]]:
    """Cells for the terminal and Markdown tables (metric: 'median' latency or mean 'total' time)."""
    return [
        [c.target, c.mode, str(c.n_requests), _METRIC_SHORT.get(c.metric, c.metric), _fmt_s(c.a_value),
         _fmt_s(c.b_value),
         "-" if math.isnan(c.ratio) else f"{c.ratio:.3f}", f"{_TEST_SHORT.get(c.test, c.test)} {c.n_a}/{c.n_b}",
         "-" if math.isnan(c.p_value) else f"{c.p_value:.2g}", verdict_text(c)]
        for c in comparisons
    ]


def compare(config: BenchConfig, *, a: str, b: str, threshold_pct: float, alpha: float,
            fail_on_regression: bool, fmt: str, console: Console) -> int:
    """Compare run B against reference run A; exit 1 on regression if asked, 2 on bad input."""
    try:
        run_a = load_run(resolve_run(a, config.results_dir))
        run_b = load_run(resolve_run(b, config.results_dir))
        run_a, run_b, capacity = split_capacity_runs(run_a, run_b, threshold_pct=threshold_pct, console=console)
        comparisons = [] if capacity is not None and (run_a.summary.empty or run_b.summary.empty) else \
            compare_runs(run_a, run_b, threshold_pct=threshold_pct, alpha=alpha)
    except (CompareError, ResultsError) as exc:
        console.error(str(exc))
        return 2
    capacity_lower = show_capacity(capacity, title=f"A = {run_a.run_id} vs B = {run_b.run_id}", fmt=fmt,
                                   threshold_pct=threshold_pct, fail_on_regression=fail_on_regression, console=console)
    if capacity is not None and not comparisons:  # capacity searches only (bench/cmd_compare_capacity.py)
        return 1 if fail_on_regression and capacity_lower else 0
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COMPARISON_COLUMNS)
        for c in comparisons:
            row = c.as_row()
            writer.writerow([row[k] for k in COMPARISON_COLUMNS])
        console.print(out.getvalue().rstrip("\n"))
    else:
        title = (f"A = {run_a.run_id} ({run_a.path})  vs  B = {run_b.run_id} ({run_b.path}); "
                 f"threshold {threshold_pct:g} %, alpha {alpha:g}")
        if fmt == "md":
            console.print(f"**{title}**\n\n" + markdown_table(_COLUMNS, render_rows(comparisons)))
        else:
            if not console.out.is_terminal:  # piped: rich would fold the table into 80 columns
                console.out.width = max(console.out.width, 150)
            console.table(title, _COLUMNS, render_rows(comparisons))
        console.info("metric: median per-request latency (Mann-Whitney U) where both runs kept requests.csv.gz, "
                     "else mean total_s over trials (Welch's t-test, >= 2 trials each), else no test. "
                     "B/A > 1 means B is slower.")
    slower = [c for c in comparisons if c.is_regression]
    faster = [c for c in comparisons if c.verdict == "faster"]
    console.info(f"{len(comparisons)} steps compared: {len(slower)} significantly slower, "
                 f"{len(faster)} significantly faster (beyond {threshold_pct:g} %)")
    if fail_on_regression and capacity_lower and not has_regression(comparisons):
        return 1
    if fail_on_regression and has_regression(comparisons):
        console.error("regression: " + "; ".join(f"{c.target}/{c.mode}/N={c.n_requests} {verdict_text(c)}"
                                                 for c in slower))
        return 1
    return 0
