"""Finds adapters (built-in names, ``module:Class`` import paths, entry points) and builds targets from their tables.

Why: adding a deployment target must need no edit of servebench.  A user writes a
:class:`targets.base.Target` subclass in their own package and names it in bench.toml
(``adapter = "mypkg.mod:MyTarget"``) or registers it under the entry-point group
``servebench.targets`` (then ``adapter = "myname"``).  Built-ins are imported lazily so
that ``bench targets`` never pays for torch or tensorflow.

Every mistake is reported as a :class:`ground.tables.ConfigError` naming the target and the
key: an unknown adapter, a path that does not import, a class that is not a Target, and
(through :func:`ground.tables.parse_table`) a missing, misspelt or wrongly typed setting.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points

from ground.tables import ConfigError, parse_table
from targets.base import Target, TargetContext
from targets.spec import TargetSpec

__all__ = [
    "target_spec",
    "BUILTIN_ADAPTERS",
    "ENTRY_POINT_GROUP",
    "build_target",
    "build_targets",
    "known_adapters",
    "resolve_adapter",
]

ENTRY_POINT_GROUP = "servebench.targets"

#: Built-in adapter name -> "module:Class" (imported only when used).
BUILTIN_ADAPTERS: dict[str, str] = {
    "flask": "targets.flask.target:FlaskTarget",
    "k8s": "targets.flask.k8s:K8sTarget",
    "kserve": "targets.kserve.target:KServeTarget",
}


def _entry_point_names() -> dict[str, object]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_adapters() -> list[str]:
    """Built-in names plus installed entry-point names (for error messages and docs)."""
    return sorted(set(BUILTIN_ADAPTERS) | set(_entry_point_names()))


def _import_path(path: str, where: str) -> object:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ConfigError(where, f"adapter path must look like 'package.module:ClassName', got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(where, f"cannot import module {module_name!r} for adapter {path!r}: {exc}") from exc
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(where, f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _check_target_class(obj: object, ref: str, where: str) -> type[Target]:
    if not (isinstance(obj, type) and issubclass(obj, Target)):
        raise ConfigError(where, f"adapter {ref!r} is {obj!r}, not a subclass of targets.base.Target")
    return obj


def resolve_adapter(spec: TargetSpec) -> type[Target]:
    """The Target class for ``spec.adapter``: built-in name, ``module:Class``, or entry point."""
    where = f"targets.{spec.name}.adapter"
    ref = spec.adapter
    if ref in BUILTIN_ADAPTERS:
        return _check_target_class(_import_path(BUILTIN_ADAPTERS[ref], where), ref, where)
    if ":" in ref:
        return _check_target_class(_import_path(ref, where), ref, where)
    eps = _entry_point_names()
    if ref in eps:
        try:
            obj = eps[ref].load()
        except Exception as exc:
            raise ConfigError(where, f"entry point {ref!r} ({ENTRY_POINT_GROUP}) failed to load: {exc}") from exc
        return _check_target_class(obj, ref, where)
    raise ConfigError(
        where,
        f"unknown adapter {ref!r}; known adapters: {', '.join(known_adapters())} "
        f"(or 'package.module:ClassName', or an entry point in group {ENTRY_POINT_GROUP!r})",
    )


def build_target(spec: TargetSpec, context: TargetContext) -> Target:
    """Resolve the adapter, validate the table into its ``Settings``, and construct it."""
    cls = resolve_adapter(spec)
    settings = parse_table(cls.Settings, spec.settings, f"targets.{spec.name}")
    return cls(spec.name, settings, context)


def build_targets(
    specs: Mapping[str, TargetSpec],
    names: Iterable[str],
    context_factory: Callable[[str], TargetContext],
) -> list[Target]:
    """Build targets by name from the configured ``specs`` (``["all"]`` = every one, in file order).

    All tables are validated before anything is started, so a typo in the last target
    fails the run at once rather than after an hour of benchmarking the first.
    """
    names = list(names)
    if names == ["all"]:
        names = list(specs)
    chosen = [target_spec(specs, n) for n in names]  # every name checked before any target is built
    return [build_target(spec, context_factory(n)) for spec, n in zip(chosen, names, strict=False)]


def target_spec(specs: Mapping[str, TargetSpec], name: str) -> TargetSpec:
    """The table of target ``name``; ConfigError naming it and the configured targets when there is none."""
    if name not in specs:
        raise ConfigError(
            f"targets.{name}", f"no such target in bench.toml; configured targets: {', '.join(specs) or '(none)'}"
        )
    return specs[name]
