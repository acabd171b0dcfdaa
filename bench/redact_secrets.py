"""Redact the configuration's secrets: the one Redactor for them, and files redacted afterwards.

:func:`redactor_for` collects the secret values the configuration names (once) into a
:class:`ground.redactor.Redactor`, the one redaction rule; :func:`redact_file` and
:func:`redact_tree` apply it to files written by processes servebench does not control
(stand-in logs, kfp.log) once their writers have stopped.

Why here: ``bench/`` is the layer that has both the configuration (which targets name which
environment variables) and the environment; it builds the one
:class:`ground.redactor.Redactor` and hands it to each sink -- the console, the results
writer, ``meta.json``, stand-in logs, ``kfp.log``, reports, the digit page's proxy.

Which settings name secrets is each adapter's own declaration (:mod:`targets.secrets`:
fields ending in ``_env``, or listed in ``Settings.secret_env_fields``), so a user's
adapter is covered without an edit here.  A target table that does not parse (its error
is reported by the command itself) still contributes every ``*_env`` key it has.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from ground.redactor import MIN_SECRET_CHARS, Redactor
from ground.tables import ConfigError, parse_table
from targets.registry import resolve_adapter
from targets.secrets import SECRET_ENV_SUFFIX, read_secret_values, secret_env_names

if TYPE_CHECKING:  # types only: every caller has built these already
    from bench.config import BenchConfig
    from bench.console import Console

__all__ = ["configured_secret_variables", "redact_file", "redact_tree", "redactor_for"]


def configured_secret_variables(config: BenchConfig) -> list[str]:
    """Every environment variable NAME the configuration's target tables declare as a secret."""
    names: list[str] = []
    for name, spec in config.targets.items():
        for key, value in (spec.settings or {}).items():
            if str(key).replace("-", "_").endswith(SECRET_ENV_SUFFIX) and isinstance(value, str) and value:
                names.append(value)
        try:
            settings = parse_table(resolve_adapter(spec).Settings, spec.settings, f"targets.{name}")
            names.extend(secret_env_names(settings).values())
        except (ConfigError, ValueError, TypeError):
            pass  # the command that uses this target reports the problem, naming the key
    return list(dict.fromkeys(names))


def redactor_for(
    config: BenchConfig,
    console: Console | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Redactor:
    """The redactor for every secret ``config`` names (values read from ``environ``).

    With ``console``, it is also added to the console's own redactor (everything printed
    is redacted from then on), with one warning per secret shorter than
    :data:`ground.redactor.MIN_SECRET_CHARS`: it is still redacted, but ordinary text that
    contains it is redacted too.  Calling it again adds nothing new and warns no more.
    """
    redactor = Redactor(read_secret_values(configured_secret_variables(config), environ))
    if console is not None:
        already = set(console.redactor.short_names)
        console.redactor = console.redactor.merge(redactor)
        for name in redactor.short_names:
            if name not in already:
                console.warn(
                    f"the value of ${name} is shorter than {MIN_SECRET_CHARS} characters: it is still "
                    "redacted from everything servebench writes, and so is any ordinary text that "
                    "happens to contain it"
                )
    return redactor


def redact_file(path: Path, redactor: Redactor) -> bool:
    """Rewrite text file ``path`` with every secret redacted (atomically); True when it changed.

    Why after the fact: stand-in servers and kfp.local's tasks write their logs themselves,
    so their text can only be redacted once the writer has stopped.  Binary files (a NUL
    byte in the first 8 KiB: PNG figures, gzip) are left alone: replacing bytes would
    corrupt them, and compressed data holds no searchable text anyway.
    """
    if not redactor:
        return False
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return False
    redacted = redactor.redact_bytes(data)
    if redacted == data:
        return False
    tmp = path.with_name(path.name + ".redacting")
    tmp.write_bytes(redacted)
    os.replace(tmp, path)
    return True


def redact_tree(directory: Path, redactor: Redactor) -> list[Path]:
    """:func:`redact_file` on every regular file under ``directory``; the files that changed."""
    if not redactor or not Path(directory).is_dir():
        return []
    changed = []
    for path in sorted(Path(directory).rglob("*")):
        if path.is_file() and not path.is_symlink() and redact_file(path, redactor):
            changed.append(path)
    return changed
