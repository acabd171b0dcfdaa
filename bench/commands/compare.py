"""`python -m bench compare A B`: the command's flags; the comparison is :func:`bench.compare.show.compare`.

argparse stays here; :mod:`bench.compare.show` loads the runs, prints the comparison in the
chosen format and returns the exit code (0, 1 regression, 2 bad input, 3 cannot judge).
"""

from __future__ import annotations

import argparse

from bench.commands.common import Command

# called as show.compare: one place to patch in tests
from bench.compare import show
from bench.compare.verdict import GATES
from bench.config import BenchConfig
from bench.console import Console

__all__ = ["COMPARE"]


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Compare run B against reference run A. Each trial is one sample; record gateable runs "
        "with `bench run ... --trials 3` or more (each trial a fresh start of the stand-ins). "
        "See docs/compare.md."
    )
    p.epilog = (
        "exit codes: 0 = no regression (with --fail-on-regression: every target or step shown not slower "
        "than the threshold), 1 = regression, 2 = bad input, 3 = cannot judge (too few trials, no clean "
        "steps, in one run only, an interval crossing the threshold, or a noise floor above it); "
        "--allow-inconclusive turns 3 into 0."
    )
    p.add_argument("a", help="reference run folder, id or summary.csv")
    p.add_argument("b", help="new run folder, id or summary.csv")
    p.add_argument(
        "--metric",
        choices=("median", "mean", "p90", "p99", "total"),
        default="median",
        help="per-trial statistic of each step (default: %(default)s latency; total = the step's total_s)",
    )
    p.add_argument(
        "--threshold",
        type=float,
        default=5.0,
        help="minimum effect in %% that counts; the noise floor measured between trials can raise "
        "it (default: %(default)s)",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default: %(default)s)")
    p.add_argument(
        "--correction",
        choices=("holm", "bh"),
        default="holm",
        help="multiple-comparison correction across steps: Holm-Bonferroni or "
        "Benjamini-Hochberg (default: %(default)s)",
    )
    p.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit 1 when a target (or with --gate step, a step) is slower, 3 when one cannot be judged",
    )
    p.add_argument(
        "--allow-inconclusive",
        action="store_true",
        help="with --fail-on-regression: exit 0 instead of 3 when something cannot be judged "
        "(the reasons are still printed)",
    )
    p.add_argument(
        "--detect",
        type=_percent,
        default=None,
        metavar="PCT",
        help="a slow-down to plan for, e.g. 10%%: says how many trials per side would flag it "
        "80 %% of the time at these runs' spread",
    )
    p.add_argument(
        "--gate",
        choices=GATES,
        default="target",
        help="what --fail-on-regression judges: each target's geometric mean (default) or every step",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="accepted for old command lines; no longer used (the interval is a t interval, not a bootstrap)",
    )
    p.add_argument("--format", choices=("table", "md", "csv"), default="table", help="(default: %(default)s)")


def _main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    return show.compare(
        config,
        a=args.a,
        b=args.b,
        threshold_pct=args.threshold,
        alpha=args.alpha,
        fail_on_regression=args.fail_on_regression,
        fmt=args.format,
        console=console,
        metric=args.metric,
        correction=args.correction,
        gate=args.gate,
        seed=args.seed,
        allow_inconclusive=args.allow_inconclusive,
        detect_pct=args.detect,
    )


def _percent(text: str) -> float:
    """'10%' or '10' -> 10.0 (argparse type of --detect)."""
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--detect takes a percentage such as 10% or 10, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--detect must be > 0 %, got {text!r}")
    return value


COMPARE = Command(_add_arguments, _main)
