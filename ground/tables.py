"""Typed parsing of TOML tables into frozen dataclasses, with errors that name the key.

Why: a malformed bench.toml must say *which* key is wrong and *why* (unknown key with a
did-you-mean, missing key, wrong type) instead of failing later with a KeyError deep in a
run.  Target adapters reuse this to validate their own settings tables, so every adapter
reports mistakes the same way.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, get_args, get_origin

__all__ = ["ConfigError", "parse_table"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type.

    ``where`` is the dotted location (e.g. ``targets.k8s-ibm.replicas``) so that the
    message always names the table and the key.
    """

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"{where}: {problem}")


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return " | ".join(repr(m.value) for m in tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if tp is type(None):
        return "nothing"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` checked (and minimally converted) against type hint ``tp``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if isinstance(tp, type) and issubclass(tp, enum.Enum):  # e.g. loadgen.modes.Mode: by value
        allowed = [m.value for m in tp]
        if isinstance(value, bool) or value not in allowed:
            raise ConfigError(where, f"must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
        return tp(value)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(where, f"must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in get_args(tp):
            if arg is type(None) and value is None:
                return None
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(exc.problem)
        raise ConfigError(where, f"must be {_type_name(tp)}, got {type(value).__name__} {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(where, f"must be a list, got {type(value).__name__} {value!r}")
        (item_tp,) = get_args(tp)[:1] or (Any,)
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(where, f"must be true or false, got {type(value).__name__} {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(where, f"must be an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(where, f"must be a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(where, f"must be a string, got {type(value).__name__} {value!r}")
        return value
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(where, f"must be {_type_name(tp)}, got {type(value).__name__} {value!r}")


def parse_table(cls: type[T], table: Mapping[str, Any] | None, where: str) -> T:
    """Build dataclass ``cls`` from a TOML table, validating every key.

    Unknown keys are errors (with a close-match suggestion) because a misspelt key would
    otherwise be silently ignored and the default used: the worst kind of benchmark bug.
    Field names use underscores; TOML keys may use either ``-`` or ``_``.
    """
    if table is None:
        table = {}
    if not isinstance(table, Mapping):
        raise ConfigError(where, f"must be a table, got {type(table).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = raw_key.replace("-", "_")
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{where}.{raw_key}", f"unknown key{hint}; known keys: {known}")
        values[key] = _coerce(value, hints[key], f"{where}.{raw_key}")
    for name, field in fields.items():
        if name in values:
            continue
        if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{where}.{name}", "required key is missing")
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(where, str(exc)) from exc
