"""bench.toml: the one configuration file, parsed into small frozen value objects.

Why a module of its own: every command (train, run, serve, manifests, calibrate) reads the
same file, and every mistake in it must be reported the same way, naming the key
(see :mod:`ground.tables`).  Target tables are only checked for their ``adapter`` key
here; each adapter validates the rest of its table itself, because only it knows its
settings (an adapter added by a user must need no edit of this file).

The tables' types live with the code that reads them -- ``[model]`` in
:mod:`models.config`, ``[hpo]`` in :mod:`models.hpo.config`, ``[sweep]`` in
:mod:`loadgen.sweep_settings` (checked by the same code as the ``bench run`` flags), a
target's table as a :class:`targets.spec.TargetSpec` -- and this module composes them, so
that no lower layer imports the CLI layer for its settings.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ground.cpus import plan_cpus
from ground.tables import ConfigError, parse_table
from loadgen.objective import CapacityConfig
from loadgen.sweep_settings import SweepSettings
from models.config import ModelConfig
from models.hpo.config import HpoConfig
from targets.base import TargetContext
from targets.spec import TargetSpec

__all__ = [
    "BenchConfig",
    "ConfigError",
    "LoadgenConfig",
    "load_config",
    "parse_config",
    "target_context",
]


@dataclass(frozen=True)
class LoadgenConfig:
    """The HTTP client: which engine, its limits, and where it runs."""

    engine: Literal["auto", "fast", "aiohttp", "httpx"] = "auto"
    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    # "auto": on a machine with >= 2 CPUs the client takes the last CPU and stand-ins the
    # rest, so they never share a core; "none": no pinning; or an explicit list of CPUs.
    cpus: str | list[int] = "auto"
    max_rps: float = 0.0  # politeness cap for remote endpoints with quotas; 0 = no cap

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ValueError("timeout_s and connect_timeout_s must be > 0")
        if isinstance(self.cpus, str) and self.cpus not in ("auto", "none"):
            raise ValueError(f"cpus must be 'auto', 'none' or a list of CPU numbers, got {self.cpus!r}")
        if self.max_rps < 0:
            raise ValueError("max_rps must be >= 0")


@dataclass(frozen=True)
class BenchConfig:
    """The whole parsed bench.toml plus where it came from."""

    root: Path
    source: str
    model: ModelConfig
    loadgen: LoadgenConfig
    sweep: SweepSettings
    targets: Mapping[str, TargetSpec]
    results_dir: Path
    reports_dir: Path
    hpo: HpoConfig = field(default_factory=HpoConfig)
    capacity: CapacityConfig = field(default_factory=CapacityConfig)

    @property
    def sha256(self) -> str:
        """Hash of the file text: recorded in meta.json so two runs can be tied to configs."""
        return hashlib.sha256(self.source.encode()).hexdigest()

    @property
    def artifacts_dir(self) -> Path:
        return (self.root / self.model.artifacts_dir).resolve()


@dataclass(frozen=True)
class _Paths:
    results_dir: str = "results"
    reports_dir: str = "reports"


_TOP_LEVEL = ("model", "loadgen", "sweep", "targets", "paths", "hpo", "capacity")


def parse_config(source: str, root: Path) -> BenchConfig:
    """Parse bench.toml text; ``root`` is the folder relative paths are resolved against."""
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("bench.toml", f"not valid TOML: {exc}") from exc
    for key in data:
        if key not in _TOP_LEVEL:
            raise ConfigError(key, f"unknown table; known tables: {', '.join(_TOP_LEVEL)}")
    targets_table = data.get("targets", {})
    if not isinstance(targets_table, Mapping):
        raise ConfigError("targets", "must be a table of [targets.NAME] tables")
    targets: dict[str, TargetSpec] = {}
    for name, table in targets_table.items():
        where = f"targets.{name}"
        if not isinstance(table, Mapping):
            raise ConfigError(where, "must be a table")
        adapter = table.get("adapter")
        if adapter is None:
            raise ConfigError(f"{where}.adapter", "required key is missing")
        if not isinstance(adapter, str) or not adapter:
            raise ConfigError(f"{where}.adapter", f"must be a non-empty string, got {adapter!r}")
        input_data = table.get("input_data", "")
        if not isinstance(input_data, str):
            raise ConfigError(f"{where}.input_data", f"must be a path (a string), got {input_data!r}")
        settings = {k: v for k, v in table.items() if k not in ("adapter", "input_data")}
        targets[name] = TargetSpec(name=name, adapter=adapter, settings=settings, input_data=input_data)
    paths = parse_table(_Paths, data.get("paths"), "paths")
    return BenchConfig(
        root=root,
        source=source,
        model=parse_table(ModelConfig, data.get("model"), "model"),
        loadgen=parse_table(LoadgenConfig, data.get("loadgen"), "loadgen"),
        sweep=parse_table(SweepSettings, data.get("sweep"), "sweep"),
        targets=targets,
        results_dir=(root / paths.results_dir).resolve(),
        reports_dir=(root / paths.reports_dir).resolve(),
        hpo=parse_table(HpoConfig, data.get("hpo"), "hpo"),
        capacity=parse_table(CapacityConfig, data.get("capacity"), "capacity"),
    )


def load_config(path: str | Path = "bench.toml") -> BenchConfig:
    """Read and parse a bench.toml file; relative paths in it are relative to its folder."""
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "file not found (pass --config PATH or run from the project folder)") from None
    return parse_config(source, path.resolve().parent)


def target_context(
    config: BenchConfig, *, log_dir: Path | None = None, cpus: tuple[int, ...] | None = None
) -> TargetContext:
    """The :class:`targets.base.TargetContext` of a target built from ``config``: the model's folder,
    the stand-in's log folder and CPUs, and bench.toml's folder (which the table's paths are relative to).

    Without ``log_dir``/``cpus`` (the commands that start one stand-in: serve, ui,
    check-target, manifests): logs in ``.cache/logs`` beside bench.toml, the stand-in CPUs of
    ``[loadgen] cpus``.  A run passes its own: logs in its folder, the CPUs of its plan.
    """
    return TargetContext(
        artifacts_dir=config.artifacts_dir,
        log_dir=log_dir if log_dir is not None else (config.root / ".cache" / "logs").resolve(),
        cpus=cpus if cpus is not None else plan_cpus(config.loadgen.cpus).standins,
        config_dir=config.root,
    )
