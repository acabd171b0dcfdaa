"""`python -m bench targets`: list the configured targets (adapter, local/remote, URL, settings)."""

from __future__ import annotations

import argparse

from bench.commands.common import Command, configured_target
from bench.config import BenchConfig
from bench.console import Console

__all__ = ["TARGETS", "list_targets"]


def list_targets(config: BenchConfig, *, console: Console) -> int:
    """Print one row per configured target: name, adapter, local/remote, URL, details."""
    rows = []
    for name, spec in config.targets.items():
        target = configured_target(config, name)
        facts = target.describe()
        url = target.base_url if target.is_remote else "(started on demand)"
        details = ", ".join(
            f"{key}={facts[key]}" for key in ("model_loading", "workers", "replicas", "protocol") if key in facts
        )
        rows.append((name, spec.adapter, "remote" if target.is_remote else "local", url, details))
    if not rows:
        console.warn("no targets configured in bench.toml")
        return 0
    console.table("targets", ("name", "adapter", "mode", "URL", "settings"), rows)
    return 0


# --- `python -m bench targets` (registered in bench/cli.py) ---


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """`targets` takes no flags of its own."""


def _main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    return list_targets(config, console=console)


TARGETS = Command(_no_arguments, _main)
