"""Writing TOML text from plain tables: the inverse of ``tomllib.loads`` for bench.toml's shapes.

Why our own writer: Python reads TOML (``tomllib``) but cannot write it, and rendered
manifests (a load-generator Job's bench.toml in a ConfigMap, a training Job's) must carry
a configuration that servebench parses back exactly.  bench.toml only uses strings,
integers, finite floats, booleans, lists of those, (nested) tables, and lists of inline
tables (``[sweep] stages = [{duration = "2m", rate = 100}]``), so that is all this
writes; anything else is an error rather than text that reads back differently.
``dumps(t)`` round-trips: ``tomllib.loads(dumps(t)) == t`` (tested).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["TomlWriteError", "dumps", "toml_value"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class TomlWriteError(ValueError):
    """A value that this writer cannot express in TOML so that it reads back equal."""


def _key(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise TomlWriteError(f"table keys must be non-empty strings, got {name!r}")
    return name if _BARE_KEY.match(name) else _string(name)


def _string(text: str) -> str:
    # JSON string escapes are TOML basic-string escapes, except that TOML also forbids a raw
    # DEL and has no surrogates: non-ASCII is kept as is (ensure_ascii=False), DEL escaped.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_value(value: Any) -> str:
    """One TOML value: string, int, finite float, bool, a list of those, or an inline table
    (a mapping in a list, such as a stage of ``[sweep] stages``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TomlWriteError(f"non-finite number {value!r} (bench.toml values are finite)")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TomlWriteError(f"cannot write a {type(value).__name__} as a TOML value: {value!r}")


def _write_table(path: tuple[str, ...], table: Mapping[str, Any], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    if path and (scalars or not tables):
        lines.append("[" + ".".join(_key(part) for part in path) + "]")
    for name, value in scalars.items():
        lines.append(f"{_key(name)} = {toml_value(value)}")
    if path and (scalars or not tables):
        lines.append("")
    for name, sub in tables.items():
        _write_table((*path, name), sub, lines)


def dumps(tables: Mapping[str, Any], header: str = "") -> str:
    """TOML text for ``tables`` (top-level scalars first, then one ``[section]`` per table).

    ``header``: comment lines put first (each prefixed with ``# ``).
    """
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    if lines:
        lines.append("")
    top = {k: v for k, v in tables.items() if not isinstance(v, Mapping)}
    for name, value in top.items():
        lines.append(f"{_key(name)} = {toml_value(value)}")
    if top:
        lines.append("")
    _write_table((), {k: v for k, v in tables.items() if isinstance(v, Mapping)}, lines)
    return "\n".join(lines).rstrip("\n") + "\n"
