"""`python -m bench hpo` (also `run hpo`): the command's flags; the tuning run is :func:`bench.hpo.run.run_hpo`."""

from __future__ import annotations

import argparse

from bench.commands.common import Command, choice_list, csv_ints, csv_words
from bench.config import BenchConfig
from bench.console import Console
from bench.hpo import run  # called as run.run_hpo: one place to patch in tests

__all__ = ["HPO"]


def _add_arguments(p: argparse.ArgumentParser) -> None:
    from models.hpo.search import ALGORITHMS

    p.description = (
        "The study's hyperparameter tuning (Tables 1-2, Figure 20): one Optuna study per repeat x "
        "max-trials x algorithm, trials as processes. Flags override [hpo] in bench.toml; "
        "see docs/hpo.md."
    )
    p.add_argument(
        "--algorithms",
        type=csv_words,
        default=None,
        metavar=choice_list(ALGORITHMS),
        help="search algorithms, comma-separated (default: [hpo] algorithms)",
    )
    p.add_argument("--max-trials", type=csv_ints, default=None, help="trial budgets, e.g. 5,10,15")
    p.add_argument("--parallel", type=int, default=None, help="parallel trials (Katib's parallelTrialCount)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs per trial")
    p.add_argument("--repeats", type=int, default=None, help="repeats of each algorithm x max-trials")
    p.add_argument("--run-id", default=None, help="name of the results folder (default: time-based)")
    p.add_argument("--no-report", action="store_true", help="skip writing the report")


def _main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    return run.run_hpo(
        config,
        algorithms=args.algorithms,
        max_trials=args.max_trials,
        parallel=args.parallel,
        epochs=args.epochs,
        repeats=args.repeats,
        run_id=args.run_id,
        write_report=not args.no_report,
        console=console,
    )


HPO = Command(_add_arguments, _main)
