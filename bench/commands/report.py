"""`python -m bench report [RUN ...]`: the command's flags; the reports are written by :mod:`bench.report.write`."""

from __future__ import annotations

import argparse

from bench.commands.common import Command
from bench.config import BenchConfig
from bench.console import Console
from bench.report import write  # called as write.report: one place to patch in tests

__all__ = ["REPORT"]


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs",
        nargs="*",
        help="run folders or ids (default: the latest run); 2-6 pipeline runs "
        "of one pipeline also get a side-by-side report in reports/A--vs--B/",
    )
    parser.add_argument("--no-study-overlay", action="store_true", help="leave the study's numbers off Figure 21")


def _main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    return write.report(config, runs=args.runs, study_overlay=not args.no_study_overlay, console=console)


REPORT = Command(_add_arguments, _main)
