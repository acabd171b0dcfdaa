"""``[hpo]`` of bench.toml: the study's hyperparameter search, as the tuning code reads it.

Why here and not in ``bench/config.py``: the search space (:mod:`models.hpo.space`) and
the Katib manifests (:mod:`models.hpo.katib`) are built from these settings, and the model
layer must not import the CLI layer; ``bench/config.py`` composes this into ``BenchConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["HpoConfig"]


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
