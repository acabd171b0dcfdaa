"""`python -m bench compare A B`: load two runs, print the comparison, set the exit code.

Why this thin: the statistics live in :mod:`bench.compare` (+ :mod:`bench.compare_stats`)
and the wording in :mod:`bench.compare_render`; this module only loads the runs, picks a
format (terminal table, Markdown or CSV -- legend and summary go to stdout in all three)
and decides the exit code: 1 on a regression when ``--fail-on-regression`` is given
(per target by default, per step with ``gate="step"``), 2 on bad input, else 0.
"""

from __future__ import annotations

import argparse

from bench.cli_args import Command
from bench.cmd_compare_capacity import show_capacity, split_capacity_runs
from bench.compare import GATES, CompareError, CompareResult, CompareSettings, compare_runs, regressions
from bench.compare_render import (
    STEP_COLUMNS,
    TARGET_COLUMNS,
    csv_text,
    legend_lines,
    step_cells,
    summary_lines,
    target_cells,
)
from bench.config import BenchConfig
from bench.console import Console
from bench.report.tables import markdown_table
from bench.results import ResultsError, RunData, load_run, resolve_run
from bench.runstate import HostView, resolve_status
from bench.runstate import run_warnings as state_warnings

__all__ = ["COMPARE", "compare", "run_warnings"]


def run_warnings(run_a: RunData, run_b: RunData) -> list[str]:
    """Warnings about the runs themselves, printed before the summary in every format.

    The place for facts that make a comparison less trustworthy than its statistics say:
    an abandoned or still-running run, a busy host (:mod:`bench.runstate`, :mod:`bench.hostload`).
    """
    host = HostView.current()
    return [w for run in (run_a, run_b) for w in state_warnings(resolve_status(run.meta, host))]


def _gate_lines(result: CompareResult, gate: str) -> list[str]:
    """Which targets or steps the gate cannot judge (too few trials): a gate must not pass silently."""
    if gate == "target":
        blind = [t.target for t in result.targets if t.verdict == "too few trials"]
    else:
        blind = [s.label for s in result.steps if s.verdict == "too few trials"]
    if not blind:
        return []
    return [f"the {gate} gate cannot judge {', '.join(blind)}: too few trials; "
            "record both runs with `python -m bench run ... --trials 3` (or more)"]


def compare(config: BenchConfig, *, a: str, b: str, threshold_pct: float, alpha: float, fail_on_regression: bool,
            fmt: str, console: Console, metric: str = "median", correction: str = "holm", gate: str = "target",
            seed: int = 0) -> int:
    """Compare run B against reference run A; exit 1 on regression if asked, 2 on bad input."""
    try:
        settings = CompareSettings(metric=metric, threshold_pct=threshold_pct, alpha=alpha, correction=correction,
                                   seed=seed)
        if gate not in GATES:
            raise CompareError(f"unknown gate {gate!r}; gates: {', '.join(GATES)}")
        run_a = load_run(resolve_run(a, config.results_dir))
        run_b = load_run(resolve_run(b, config.results_dir))
        run_a, run_b, capacity = split_capacity_runs(run_a, run_b, threshold_pct=threshold_pct, console=console)
        capacity_only = capacity is not None and (run_a.summary.empty or run_b.summary.empty)
        result = None if capacity_only else compare_runs(run_a, run_b, settings)
    except (CompareError, ResultsError) as exc:
        console.error(str(exc))
        return 2
    capacity_lower = show_capacity(capacity, title=f"A = {run_a.run_id} vs B = {run_b.run_id}", fmt=fmt,
                                   threshold_pct=threshold_pct, fail_on_regression=fail_on_regression, console=console)
    if result is None:  # capacity searches only (bench/cmd_compare_capacity.py)
        return 1 if fail_on_regression and capacity_lower else 0
    title = (f"A = {run_a.run_id} ({run_a.path})  vs  B = {run_b.run_id} ({run_b.path}); "
             f"metric {settings.metric}, threshold {threshold_pct:g} %, alpha {alpha:g}, {correction}")
    legend = [] if console.quiet else legend_lines(result, settings.column)
    warnings = run_warnings(run_a, run_b) + result.notes + (_gate_lines(result, gate) if fail_on_regression else [])
    summary = summary_lines(result)
    failing = regressions(result, gate)
    verdict = (f"regression ({gate} gate): {', '.join(failing)}" if failing
               else f"no regression ({gate} gate)")
    if fmt == "csv":
        comments = [title, *legend, *(f"warning: {w}" for w in warnings), *summary, verdict]
        console.print(csv_text(result, comments))
    elif fmt == "md":
        parts = [f"**{title}**", markdown_table(STEP_COLUMNS, step_cells(result)), *legend_md(legend),
                 *(f"**warning:** {w}" for w in warnings),
                 markdown_table(TARGET_COLUMNS, target_cells(result)), "\n".join(f"- {line}" for line in summary),
                 f"**{verdict}**"]
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
        return 1
    if fail_on_regression and capacity_lower:
        return 1
    return 0


def legend_md(legend: list[str]) -> list[str]:
    """The legend as one Markdown bullet list (empty when quiet)."""
    return ["\n".join(f"- {line}" for line in legend)] if legend else []


# --- `python -m bench compare A B` (registered in bench/cli.py) ---


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = ("Compare run B against reference run A. Each trial is one sample; record gateable runs "
                     "with `bench run ... --trials 3` or more. See docs/compare.md.")
    p.add_argument("a", help="reference run folder, id or summary.csv")
    p.add_argument("b", help="new run folder, id or summary.csv")
    p.add_argument("--metric", choices=("median", "mean", "p90", "p99", "total"), default="median",
                   help="per-trial statistic of each step (default: %(default)s latency; total = the step's total_s)")
    p.add_argument("--threshold", type=float, default=5.0,
                   help="minimum effect in %% that counts; the noise floor measured between trials can raise "
                        "it (default: %(default)s)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default: %(default)s)")
    p.add_argument("--correction", choices=("holm", "bh"), default="holm",
                   help="multiple-comparison correction across steps: Holm-Bonferroni or "
                        "Benjamini-Hochberg (default: %(default)s)")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when a target (or with --gate step, a step) is slower")
    p.add_argument("--gate", choices=GATES, default="target",
                   help="what --fail-on-regression judges: each target's geometric mean (default) or every step")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the bootstrap confidence intervals (default: %(default)s)")
    p.add_argument("--format", choices=("table", "md", "csv"), default="table", help="(default: %(default)s)")


def _main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    return compare(config, a=args.a, b=args.b, threshold_pct=args.threshold, alpha=args.alpha,
                   fail_on_regression=args.fail_on_regression, fmt=args.format, console=console, metric=args.metric,
                   correction=args.correction, gate=args.gate, seed=args.seed)


COMPARE = Command(_add_arguments, _main)
