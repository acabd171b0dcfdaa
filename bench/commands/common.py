"""What the command modules share: the ``Command`` record, argparse value types, and two target helpers.

Each module in :mod:`bench.commands` builds its own subcommand parser (so ``bench run
--help`` shows run's flags only, and a new command is one module plus one registration
line in ``bench/cli.py``), and all of them need the same argparse types -- comma lists
that refuse empty items, bounded numbers -- with errors that argparse prefixes with the
flag's name (``argument --requests: ...``).  argparse stays in the command layer (this
package and ``bench/cli.py``): the functions a command calls receive plain values.
Command modules never import each other; what two of them share lives here.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from bench.config import BenchConfig, target_context
from bench.console import Console
from ground.durations import DURATION_FORMS, DurationError, parse_duration
from loadgen.stages import Stage, parse_stages_text
from targets.base import Target
from targets.registry import build_target, target_spec

__all__ = [
    "Command",
    "choice_list",
    "as_tuple",
    "choices_metavar",
    "configured_target",
    "csv_counts",
    "csv_ints",
    "csv_words",
    "int_at_least",
    "non_negative_int",
    "positive_duration",
    "positive_float",
    "positive_int",
    "serve_until_stopped",
    "stages_flag",
]


@dataclass(frozen=True)
class Command:
    """One subcommand: the flags it takes and the function that runs it.

    ``add_arguments`` fills the subcommand's own parser (it may set ``description`` or add
    nested subparsers); ``main`` gets the parsed flags, the loaded configuration and the
    console, and returns the exit code. Every command also takes the global options
    (``--config``, ``-q``: ``bench/cli.py`` adds them), and an unknown flag's error names
    the command that owns it, found from the parsers themselves (``bench.cli.flag_owners``).
    """

    add_arguments: Callable[[argparse.ArgumentParser], None]
    main: Callable[[argparse.Namespace, BenchConfig, Console], int]


def choices_metavar(values: Iterable[str]) -> str:
    """``{a,b,c}``: the values of a choice-valued flag, spelt as argparse spells ``choices``.

    For flags whose values are checked by the command itself (so a wrong one gets the
    command's own message and exit code), not by argparse, but still listed in --help.
    """
    return "{" + ",".join(values) + "}"


def choice_list(values: Iterable[str]) -> str:
    """``{a,b,c}[,...]``: the metavar of a comma-separated list of choices."""
    return choices_metavar(values) + "[,...]"


def _csv_parts(text: str, what: str) -> list[str]:
    """The comma-separated items of ``text``; an empty item (``1,,4``, ``1,4,``) is an error,
    not silently dropped: it is a typo whose intent nobody can guess. argparse prefixes the
    message with the flag's name (``argument --requests: ...``)."""
    parts = [part.strip() for part in text.split(",")]
    empty = [i for i, part in enumerate(parts, 1) if not part]
    if empty:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated {what}, got {text!r}: item {empty[0]} of {len(parts)} is empty"
        )
    return parts


def csv_ints(text: str) -> list[int]:
    """Comma-separated integers."""
    parts = _csv_parts(text, "integers")
    try:
        return [int(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def csv_counts(text: str) -> list[int]:
    """Comma-separated counts >= 1 (request counts)."""
    counts = csv_ints(text)
    if any(n < 1 for n in counts):
        raise argparse.ArgumentTypeError(f"expected comma-separated counts >= 1, got {text!r}")
    return counts


def csv_words(text: str) -> list[str]:
    """Comma-separated names (checked against their known values by the command)."""
    return _csv_parts(text, "names")


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``, with a message naming the bound."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_float(text: str) -> float:
    """A finite number > 0 (``inf`` and ``nan`` are numbers to float(), not to a benchmark)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def positive_duration(text: str) -> float:
    """A duration > 0: seconds (``90``, ``1.5``) or with units (``90s``, ``30m``, ``2h``, ``1h30m``).

    The one parser of :mod:`ground.durations`, as bench.toml's ``[sweep]`` uses it.
    """
    try:
        value = parse_duration(text, "duration")
    except DurationError:
        raise argparse.ArgumentTypeError(f"expected a duration > 0 -- {DURATION_FORMS} -- got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a duration > 0, got {text!r}")
    return value


def stages_flag(text: str) -> tuple[Stage, ...]:
    """``--stages 2m:0-100,30m:100,2m:0`` (:data:`loadgen.stages.STAGES_FORM`) as stages."""
    try:
        return parse_stages_text(text, "--stages")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def as_tuple(values: list | None) -> tuple | None:
    """A list flag's value as a tuple, for a frozen request (None: not given)."""
    return None if values is None else tuple(values)


def sweep_request_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The sweep flags that `run` and `manifests loadgen` share, as :class:`RunRequest` fields."""
    return {
        "n_requests": as_tuple(args.requests),
        "modes": as_tuple(args.modes),
        "trials": args.trials,
        "rate_rps": args.rate,
        "duration_s": args.duration,
        "concurrency": args.concurrency,
        "stages": args.stages,
    }


def configured_target(config: BenchConfig, name: str) -> Target:
    """Target ``name`` of bench.toml, built with the commands' context (:func:`bench.config.target_context`);
    a ConfigError naming the configured targets when there is none of that name."""
    target_spec(config.targets, name)
    return build_target(config.targets[name], target_context(config))


async def serve_until_stopped(target: Target, stop: asyncio.Event) -> int:
    """Wait for a signal; return 1 early if the stand-in's processes die by themselves."""
    processes = list(getattr(target, "processes", []) or [])
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        except TimeoutError:
            pass
        if any(getattr(p, "returncode", None) is not None for p in processes):
            return 1
    return 0
