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
from typing import Any, Literal

from ground.tables import ConfigError, parse_table
from loadgen.objective import Objective
from loadgen.sweep_settings import SweepSettings
from models.config import ModelConfig
from models.hpo.config import HpoConfig
from targets.spec import TargetSpec

__all__ = [
    "BenchConfig",
    "CapacityConfig",
    "ConfigError",
    "LoadgenConfig",
    "load_config",
    "parse_config",
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


# ``[capacity]`` (``bench run --modes capacity``, docs/capacity.md) is the one table of a bench
# feature, so its type lives here rather than in a lower layer; the capacity package reads it.
# ``confidence`` is the one knob that trades time for certainty: every rate's verdict (met
# or violated) and the confirmation's are wrong with probability at most 1 - confidence,
# and the shortest probe that can show "met" grows with it (p99 with 3 looks: 339 requests
# at 90 %, 408 at 95 %, 590 at 99 %). The defaults aim at a search of all four local
# stand-ins in a few minutes on a 2-core machine: per target at most ``closed_loop_seconds``
# for the concurrency sweep plus ``max_seconds`` per search, plus the stand-in's start-up.
@dataclass(frozen=True)
class CapacityConfig:
    """What a capacity search aims for and how long it may take."""

    percentile: float = 99.0  # the objective: this latency percentile ...
    bound_ms: float = 100.0  # ... of successful requests stays at or under this many ms
    precision: float = 0.1  # bisect until first bad / last good <= 1 + precision
    growth: float = 2.0  # the ramp multiplies the offered rate by this while the objective holds
    start_rps: float = 0.0  # first offered rate; 0 = half the closed-loop throughput at concurrency 1
    confidence: float = 0.95  # of every verdict: met / violated is wrong with probability <= 1 - this
    max_looks: int = 3  # an undecided rate is extended up to this many looks (n1, 2 n1, 4 n1 requests)
    min_requests: int = 200  # closed-loop levels send at least this many; a floor for probes, whose
    # first look is at least what the objective and confidence need (p99 at 95 %: 408)
    min_seconds: float = 2.0  # ... and at least this many seconds of arrivals
    max_probes: int = 24  # open-loop probes (looks) per search, the confirmation included
    max_seconds: float = 90.0  # seconds of probing per search (a look starts only if it fits)
    repeats: int = 1  # searches per target (>= 2 shows their spread; `bench compare` uses it)
    max_concurrency: int = 32  # closed-loop sweep: 1, 2, 4, ... up to this (1: concurrency 1 only)
    closed_loop_seconds: float = 10.0  # seconds for the closed-loop sweep per target

    def __post_init__(self) -> None:
        Objective(self.percentile, self.bound_ms / 1000.0)  # raises ValueError naming the problem
        if not 0 < self.precision < 1:
            raise ValueError(f"precision must be in (0, 1), got {self.precision}")
        if not self.growth > 1:
            raise ValueError(f"growth must be > 1, got {self.growth}")
        if self.start_rps < 0:
            raise ValueError(f"start_rps must be >= 0 (0 = automatic), got {self.start_rps}")
        for key in ("min_requests", "repeats", "max_concurrency"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0.5, 1), e.g. 0.95, got {self.confidence}")
        if self.max_looks < 1:
            raise ValueError(f"max_looks must be >= 1, got {self.max_looks}")
        if self.max_probes < 2:
            raise ValueError(f"max_probes must be >= 2 (a search probe and the confirmation), got {self.max_probes}")
        for key in ("min_seconds", "max_seconds", "closed_loop_seconds"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)}")

    @property
    def objective(self) -> Objective:
        return Objective(self.percentile, self.bound_ms / 1000.0)


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
        settings = {k: v for k, v in table.items() if k != "adapter"}
        targets[name] = TargetSpec(name=name, adapter=adapter, settings=settings)
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
