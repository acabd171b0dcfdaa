"""Compare two runs and print the result: load them, compare, print in the chosen format, return the exit code.

What ``bench compare A B`` does (its flags are in :mod:`bench.commands.compare`). The
statistics live in :mod:`bench.compare.verdict` (+ :mod:`bench.compare.stats`) and the
wording in :mod:`bench.compare.render`; this module loads the runs, picks a format (terminal
table, Markdown or CSV -- legend and summary go to stdout in all three) and decides the exit
code (:mod:`bench.compare.gate`): with ``--fail-on-regression``, 1 on a regression (per
target by default, per step with ``gate="step"``), 3 when a target or step cannot be judged
(unless ``--allow-inconclusive``); 2 on bad input; else 0.
"""

from __future__ import annotations

from bench.compare.capacity import CANNOT_JUDGE
from bench.compare.capacity_show import show_capacity, split_capacity_runs
from bench.compare.gate import EXIT_BAD_INPUT, exit_code, judge
from bench.compare.render import (
    STEP_COLUMNS,
    TARGET_COLUMNS,
    csv_text,
    legend_lines,
    step_cells,
    summary_lines,
    target_cells,
)
from bench.compare.verdict import GATES, CompareError, CompareSettings, compare_runs
from bench.config import BenchConfig
from bench.console import Console
from bench.report.tables import markdown_table
from bench.results import ResultsError, RunData, load_run, resolve_run
from bench.results.status import HostView, resolve_status
from bench.results.status import status_and_noise_warnings as state_warnings

__all__ = ["compare", "compared_run_warnings"]


def compared_run_warnings(run_a: RunData, run_b: RunData) -> list[str]:
    """Warnings about the runs themselves, printed before the summary in every format.

    The place for facts that make a comparison less trustworthy than its statistics say:
    an abandoned or still-running run, a busy host (:mod:`bench.results.status`, :mod:`bench.hostnoise`).
    """
    host = HostView.current()
    return [w for run in (run_a, run_b) for w in state_warnings(resolve_status(run.meta, host))]


def compare(
    config: BenchConfig,
    *,
    a: str,
    b: str,
    threshold_pct: float,
    alpha: float,
    fail_on_regression: bool,
    fmt: str,
    console: Console,
    metric: str = "median",
    correction: str = "holm",
    gate: str = "target",
    seed: int = 0,
    allow_inconclusive: bool = False,
    detect_pct: float | None = None,
) -> int:
    """Compare run B against reference run A; the exit code is :func:`bench.compare.gate.exit_code`'s."""
    try:
        settings = CompareSettings(
            metric=metric,
            threshold_pct=threshold_pct,
            alpha=alpha,
            correction=correction,
            seed=seed,
            detect_pct=detect_pct,
        )
        if gate not in GATES:
            raise CompareError(f"unknown gate {gate!r}; gates: {', '.join(GATES)}")
        run_a = load_run(resolve_run(a, config.results_dir))
        run_b = load_run(resolve_run(b, config.results_dir))
        run_a, run_b, capacity = split_capacity_runs(run_a, run_b, threshold_pct=threshold_pct, console=console)
        capacity_only = capacity is not None and (run_a.summary.empty or run_b.summary.empty)
        result = None if capacity_only else compare_runs(run_a, run_b, settings)
    except (CompareError, ResultsError) as exc:
        console.error(str(exc))
        return EXIT_BAD_INPUT
    capacity_blind = [
        f"the capacity comparison cannot judge {c.target}: {c.verdict}"
        + (" (one search on a side has no spread; set [capacity] repeats = 3)" if c.verdict == "single search" else "")
        for c in (capacity or [])
        if c.verdict in CANNOT_JUDGE
    ]
    capacity_lower = show_capacity(
        capacity,
        title=f"A = {run_a.run_id} vs B = {run_b.run_id}",
        fmt=fmt,
        threshold_pct=threshold_pct,
        fail_on_regression=fail_on_regression,
        console=console,
    )
    if result is None:  # capacity searches only (bench/compare/capacity_show.py)
        return _finish(fail_on_regression, bool(capacity_lower), capacity_blind, allow_inconclusive, console)
    title = (
        f"A = {run_a.run_id} ({run_a.path})  vs  B = {run_b.run_id} ({run_b.path}); "
        f"metric {settings.metric}, threshold {threshold_pct:g} %, alpha {alpha:g}, {correction}"
    )
    legend = [] if console.quiet else legend_lines(result, settings.column)
    judged = judge(result, gate)
    blind = judged.lines() + capacity_blind
    warnings = compared_run_warnings(run_a, run_b) + result.notes + (blind if fail_on_regression else [])
    summary = summary_lines(result)
    failing = judged.regressions
    if failing:
        verdict = f"regression ({gate} gate): {', '.join(failing)}"
    elif blind:
        verdict = (
            f"no regression shown, but the {gate} gate cannot judge "
            f"{len(blind)} {'item' if len(blind) == 1 else 'items'} (see the warnings)"
        )
    else:
        verdict = f"no regression ({gate} gate)"
    if fmt == "csv":
        comments = [title, *legend, *(f"warning: {w}" for w in warnings), *summary, verdict]
        console.print(csv_text(result, comments))
    elif fmt == "md":
        parts = [
            f"**{title}**",
            markdown_table(STEP_COLUMNS, step_cells(result)),
            *legend_md(legend),
            *(f"**warning:** {w}" for w in warnings),
            markdown_table(TARGET_COLUMNS, target_cells(result)),
            "\n".join(f"- {line}" for line in summary),
            f"**{verdict}**",
        ]
        console.print("\n\n".join(p for p in parts if p))
    else:
        if not console.out.is_terminal:  # piped: rich would fold the table into 80 columns
            console.out.width = max(console.out.width, 170)
        console.table(title, STEP_COLUMNS, step_cells(result))
        for line in legend:
            console.print(line)
        for line in warnings:
            console.print(f"warning: {line}")
        console.table("per target: geometric mean of B/A over clean steps", TARGET_COLUMNS, target_cells(result))
        for line in summary:
            console.print(line)
        console.print(verdict)
    if fail_on_regression and failing:
        console.error(verdict)
    return _finish(fail_on_regression, bool(failing or capacity_lower), blind, allow_inconclusive, console)


def _finish(
    fail_on_regression: bool, regressed: bool, blind: list[str], allow_inconclusive: bool, console: Console
) -> int:
    """The exit code; 'cannot judge' is said on stderr so a CI log shows why it is 3."""
    if not fail_on_regression:
        return 0
    code = exit_code(regressed, bool(blind), allow_inconclusive=allow_inconclusive)
    if blind and not regressed:
        how = (
            "passing anyway (--allow-inconclusive)"
            if allow_inconclusive
            else "exit 3: cannot judge (--allow-inconclusive passes anyway)"
        )
        console.error(f"{how}: " + "; ".join(blind))
    return code


def legend_md(legend: list[str]) -> list[str]:
    """The legend as one Markdown bullet list (empty when quiet)."""
    return ["\n".join(f"- {line}" for line in legend)] if legend else []
