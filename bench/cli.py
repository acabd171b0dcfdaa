"""Command-line interface: `python -m bench COMMAND ...`.

Why a registry: every command lives in its own ``bench.cmd_*`` module, which exports a
:class:`bench.cli_args.Command` -- the flags it takes and the function that runs it -- so
``bench run --help`` shows run's flags only, and adding a command is one module plus one
line in :data:`COMMANDS`. Only the chosen command's module is imported (the others'
names and one-line help are enough for the command list), so heavy imports (torch,
pandas, kfp) happen only for the command that needs them. argparse objects never leave
the CLI layer: the functions a command calls receive plain values.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from bench.cli_args import Command
from bench.config import ConfigError, load_config
from bench.console import Console

__all__ = ["COMMANDS", "PROG", "RUN_ALIASES", "Registration", "build_parser", "main", "parse_args"]

PROG = "python -m bench"


@dataclass(frozen=True)
class Registration:
    """A command name, where its :class:`Command` lives (``module:ATTRIBUTE``) and its one-line help."""

    name: str
    command: str
    help: str

    def load(self) -> Command:
        """Import the command's module (only now: it may import torch, pandas, kfp)."""
        module, _, attribute = self.command.partition(":")
        return getattr(importlib.import_module(module), attribute)


# One line per command; the order is the order of `python -m bench --help`.
COMMANDS: tuple[Registration, ...] = (
    Registration("train", "bench.cmd_train:TRAIN", "train the shared MNIST model and export TorchScript + SavedModel"),
    Registration("targets", "bench.cmd_targets:TARGETS", "list configured targets (adapter, local/remote, URL)"),
    Registration("serve", "bench.cmd_targets:SERVE", "start one target's local stand-in in the foreground until Ctrl-C"),
    Registration("manifests", "bench.cmd_manifests:MANIFESTS",
                 "render the manifests that create a target (or hpo, pipeline, ui, loadgen TARGET) on a real cluster"),
    Registration("ui", "bench.cmd_ui:UI", "serve the digit-recognition page (the study's section 5.4) for one target"),
    Registration("check-target", "bench.cmd_check_target:CHECK_TARGET",
                 "run the target contract suite against one configured adapter (in-tree or not)"),
    Registration("calibrate", "bench.cmd_calibrate:CALIBRATE", "measure each load-generator engine's own ceiling"),
    Registration("run", "bench.cmd_run:RUN", "run the benchmark sweep: `run all` or `run TARGET...`"),
    Registration("hpo", "bench.cmd_hpo:HPO", "the study's hyperparameter tuning, Tables 1-2 (also `run hpo`)"),
    Registration("pipeline", "bench.cmd_pipeline:PIPELINE",
                 "Kubeflow Pipelines: `pipeline run` (also `run pipeline`), `pipeline compile`"),
    Registration("merge", "bench.cmd_merge:MERGE", "merge shard runs (`run TARGET --shard I/N`) into one run"),
    Registration("report", "bench.cmd_report:REPORT", "regenerate tables and figures from result CSVs"),
    Registration("compare", "bench.cmd_compare:COMPARE",
                 "compare two runs over their trials (per-step and per-target verdicts)"),
)

# `run hpo ...` and `run pipeline ...` predate the `hpo` and `pipeline run` commands and keep
# working: the words after `run` are rewritten to the command that owns their flags.
RUN_ALIASES: dict[str, tuple[str, ...]] = {"hpo": ("hpo",), "pipeline": ("pipeline", "run")}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    console = Console(quiet=args.quiet)
    try:
        return _dispatch(args, console)
    except ConfigError as exc:
        console.error(f"bad configuration: {exc}")
        return 2
    except KeyboardInterrupt:
        console.error("interrupted")
        return 130


def _dispatch(args: argparse.Namespace, console: Console) -> int:
    """Load bench.toml, hide its secrets from every printed line, run the chosen command."""
    config = load_config(args.config)
    from bench.redaction import redactor_for

    redactor_for(config, console)  # from here on nothing printed shows a configured secret
    command: Command = args.command_spec
    return command.main(args, config, console)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv`` with the top-level options and the chosen command's own parser.

    Usage errors exit 2 with argparse's message, which names the flag; an unknown flag is
    reported by the command's parser (its usage line, plus the command's hint).
    """
    argv = list(argv)
    name, at = _command_word(argv)
    if name == "run" and 0 <= at < len(argv) - 1 and argv[at + 1] in RUN_ALIASES:
        alias = RUN_ALIASES[argv[at + 1]]
        argv, name = argv[:at] + list(alias) + argv[at + 2:], alias[0]
    args, extras = _build({name}).parse_known_args(argv)
    if extras:
        hint = args.command_spec.hint
        innermost: argparse.ArgumentParser = args.command_parser  # `pipeline run`, not `pipeline`
        innermost.error(f"unrecognized arguments: {' '.join(extras)}" + (f"; {hint}" if hint else "")
                        + f" (see `{innermost.prog} --help`)")
    return args


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The parser with the flags of ``commands`` (default: every command, which imports them all)."""
    return _build(set(commands) if commands is not None else {r.name for r in COMMANDS})


class _CommandParser(argparse.ArgumentParser):
    """A command's parser, or one nested in it: the innermost one used reports unknown flags, with its usage."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.set_defaults(command_parser=self)  # a nested parser's default overrides its parent's


def _build(chosen: Collection[str]) -> argparse.ArgumentParser:
    """The top-level parser; only the ``chosen`` commands get their flags (and ``-h``)."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="servebench: benchmark one MNIST model across deployment targets.")
    parser.add_argument("--config", default="bench.toml", help="path to bench.toml (default: %(default)s)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress display, fewer messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser)
    for registration in COMMANDS:
        full = registration.name in chosen
        p = sub.add_parser(registration.name, help=registration.help, add_help=full)
        if full:
            command = registration.load()
            command.add_arguments(p)
            p.set_defaults(command_spec=command)
    return parser


def _command_word(argv: list[str]) -> tuple[str, int]:
    """The command word of ``argv`` and its index (-1: not found), found without importing any command.

    A first pass with empty command parsers: top-level errors (no command, an unknown one,
    ``--config`` without a value) and the top-level ``--help`` exit here already, exactly as
    the full parser would report them.
    """
    args, rest = _build(set()).parse_known_args(argv)
    at = len(argv) - len(rest) - 1  # every word after the command word is the command's
    if not (0 <= at < len(argv) and argv[at] == args.command):
        at = -1  # not where it should be (a `--` argparse consumed?): no alias applies
    return args.command, at


if __name__ == "__main__":
    sys.exit(main())
