"""Command-line interface: `python -m bench COMMAND ...`.

Why a registry: every command lives in its own module of :mod:`bench.commands`, which exports a
:class:`bench.commands.common.Command` -- the flags it takes and the function that runs it -- so
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

from bench.commands.common import Command
from bench.config import ConfigError, load_config
from bench.console import Console
from bench.redact_secrets import redactor_for

__all__ = [
    "COMMANDS",
    "GLOBAL_OPTIONS",
    "PROG",
    "RUN_ALIASES",
    "Registration",
    "build_parser",
    "flag_owners",
    "main",
    "parse_args",
    "unrecognized_message",
]

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
    Registration(
        "train", "bench.commands.train:TRAIN", "train the shared MNIST model and export TorchScript + SavedModel"
    ),
    Registration("targets", "bench.commands.targets:TARGETS", "list configured targets (adapter, local/remote, URL)"),
    Registration(
        "serve", "bench.commands.serve:SERVE", "start one target's local stand-in in the foreground until Ctrl-C"
    ),
    Registration(
        "manifests",
        "bench.commands.manifests:MANIFESTS",
        "render the manifests that create a target (or hpo, pipeline, ui, loadgen TARGET) on a real cluster",
    ),
    Registration(
        "ui", "bench.commands.ui:UI", "serve the digit-recognition page (the study's section 5.4) for one target"
    ),
    Registration(
        "check-target",
        "bench.commands.check_target:CHECK_TARGET",
        "run the target contract suite against one configured adapter (in-tree or not)",
    ),
    Registration("calibrate", "bench.commands.calibrate:CALIBRATE", "measure each load-generator engine's own ceiling"),
    Registration("run", "bench.commands.run:RUN", "run the benchmark sweep: `run all` or `run TARGET...`"),
    Registration("hpo", "bench.commands.hpo:HPO", "the study's hyperparameter tuning, Tables 1-2 (also `run hpo`)"),
    Registration(
        "pipeline",
        "bench.commands.pipeline:PIPELINE",
        "Kubeflow Pipelines: `pipeline run` (also `run pipeline`), `pipeline compile`",
    ),
    Registration("merge", "bench.commands.merge:MERGE", "merge shard runs (`run TARGET --shard I/N`) into one run"),
    Registration("report", "bench.commands.report:REPORT", "regenerate tables and figures from result CSVs"),
    Registration(
        "compare",
        "bench.commands.compare:COMPARE",
        "compare two runs over their trials (per-step and per-target verdicts)",
    ),
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
    redactor_for(config, console)  # from here on nothing printed shows a configured secret
    command: Command = args.command_spec
    return command.main(args, config, console)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv`` with the top-level options and the chosen command's own parser.

    The global options (:data:`GLOBAL_OPTIONS`: ``--config``, ``-q``) are accepted before
    or after the command word, by every command and nested action alike; given twice, the
    later one wins.  Usage errors exit 2 with argparse's message, which names the flag; an
    unknown flag is reported by the command's parser (its usage line), saying which other
    command takes that flag when one does (:func:`flag_owners`), and that no command does
    otherwise.
    """
    argv = list(argv)
    name, at = _command_word(argv)
    if name == "run" and 0 <= at < len(argv) - 1 and argv[at + 1] in RUN_ALIASES:
        alias = RUN_ALIASES[argv[at + 1]]
        argv, name = argv[:at] + list(alias) + argv[at + 2 :], alias[0]
    args, extras = _build({name}).parse_known_args(argv)
    if extras:
        innermost: argparse.ArgumentParser = args.command_parser  # `pipeline run`, not `pipeline`
        innermost.error(unrecognized_message(extras, innermost.prog))
    return args


def unrecognized_message(extras: Sequence[str], prog: str) -> str:
    """argparse's "unrecognized arguments" line, plus, per unknown flag, where it does belong (if anywhere).

    Building every command's parser imports every command module (a few seconds): only
    on this error path.
    """
    flags = list(dict.fromkeys(word.split("=", 1)[0] for word in extras if word.startswith("-") and word != "-"))
    notes = []
    owners = flag_owners(flags) if flags else {}
    for flag in flags:
        if owners is None:
            notes.append(f"{flag} is not an option of `{prog}`")
            continue
        where = [p for p in owners.get(flag, []) if p != prog]
        if where:
            notes.append(f"{flag} is not an option of `{prog}`; it belongs to " + ", ".join(f"`{p}`" for p in where))
        else:
            notes.append(f"{flag} is not an option of `{prog}` nor of any other command")
    return f"unrecognized arguments: {' '.join(extras)}" + "".join(f"; {n}" for n in notes) + f" (see `{prog} --help`)"


def flag_owners(flags: Collection[str]) -> dict[str, list[str]] | None:
    """For each of ``flags``, the parsers (by ``prog``, nested ones included) that accept it, in command order;
    None when not every command's parser could be built (an optional dependency missing)."""
    owners: dict[str, list[str]] = {flag: [] for flag in flags}

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:  # argparse offers no public walk over its parsers
            if isinstance(action, argparse._SubParsersAction):
                for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                    for flag in flags:
                        if flag in child._option_string_actions and flag not in _GLOBAL_FLAGS:
                            owners[flag].append(child.prog)
                    walk(child)

    try:
        parser = build_parser()
    except ImportError:  # a command's optional dependency is missing: the owners are unknown, not none
        return None
    walk(parser)
    return owners


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The parser with the flags of ``commands`` (default: every command, which imports them all)."""
    return _build(set(commands) if commands is not None else {r.name for r in COMMANDS})


#: The options every command accepts, before or after its command word: (flags, argparse keywords, help).
GLOBAL_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any], str], ...] = (
    (("--config",), {"default": "bench.toml", "metavar": "FILE"}, "path to bench.toml (default: bench.toml)"),
    (("-q", "--quiet"), {"action": "store_true", "default": False}, "no progress display, fewer messages"),
)
_GLOBAL_FLAGS = frozenset(flag for flags, _, _ in GLOBAL_OPTIONS for flag in flags)


def _add_global_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """The global options on ``parser``; below the top level their default is SUPPRESS, so a value given
    before the command word is kept unless the same option is given again after it."""
    group = parser if top_level else parser.add_argument_group("global options (also accepted before the command)")
    for flags, kwargs, help_text in GLOBAL_OPTIONS:
        group.add_argument(
            *flags, **{**kwargs, **({} if top_level else {"default": argparse.SUPPRESS})}, help=help_text
        )


class _CommandParser(argparse.ArgumentParser):
    """A command's parser, or one nested in it: the innermost one used reports unknown flags, with its usage.

    Every one takes the global options (``with_globals=False`` only for the first pass's empty
    parsers, which must leave every word after the command word unparsed).
    """

    def __init__(self, *args: Any, with_globals: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.set_defaults(command_parser=self)  # a nested parser's default overrides its parent's
        if with_globals:
            _add_global_options(self, top_level=False)


def _build(chosen: Collection[str]) -> argparse.ArgumentParser:
    """The top-level parser; only the ``chosen`` commands get their flags (and ``-h``)."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="servebench: benchmark one MNIST model across deployment targets."
    )
    _add_global_options(parser, top_level=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_CommandParser)
    for registration in COMMANDS:
        full = registration.name in chosen
        p = sub.add_parser(registration.name, help=registration.help, add_help=full, with_globals=full)
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
