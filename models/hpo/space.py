"""The search space: learning rate and batch size, with Katib's feasibleSpace semantics.

Why one object: the same space must drive the Optuna samplers (what a local run tries),
the grid (Katib's ``step``s) and the Katib Experiment's ``feasibleSpace`` (what a cluster
run tries), so the local and the cluster search cannot drift apart.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from models.hpo.config import HpoConfig

__all__ = ["PARAM_NAMES", "SearchSpace", "TrialParams"]

#: Parameter names, in declaration order (Katib's ``parameters`` list and the grid's nesting).
PARAM_NAMES: tuple[str, str] = ("lr", "batch_size")


@dataclass(frozen=True)
class TrialParams:
    """One suggestion: trial number within its study and the two hyperparameters."""

    number: int
    lr: float
    batch_size: int


def _steps(low: float, high: float, step: float) -> list[float]:
    """Katib's grid for a double: low, low+step, ... up to high (inclusive, float-safe)."""
    count = math.floor((high - low) / step + 1e-9) + 1
    return [round(low + i * step, 10) for i in range(count)]


@dataclass(frozen=True)
class SearchSpace:
    """lr: double in [lr_min, lr_max]; batch_size: int in [batch_min, batch_max]; grid steps."""

    lr_min: float = 0.01
    lr_max: float = 0.05
    lr_step: float = 0.01
    batch_min: int = 80
    batch_max: int = 100
    batch_step: int = 5

    def __post_init__(self) -> None:
        if not 0 < self.lr_min <= self.lr_max or self.lr_step <= 0:
            raise ValueError(f"bad lr range [{self.lr_min}, {self.lr_max}] step {self.lr_step}")
        if not 1 <= self.batch_min <= self.batch_max or self.batch_step < 1:
            raise ValueError(f"bad batch size range [{self.batch_min}, {self.batch_max}] step {self.batch_step}")

    @classmethod
    def from_config(cls, hpo: HpoConfig) -> SearchSpace:
        return cls(
            lr_min=hpo.lr_min,
            lr_max=hpo.lr_max,
            lr_step=hpo.lr_step,
            batch_min=hpo.batch_size_min,
            batch_max=hpo.batch_size_max,
            batch_step=hpo.batch_size_step,
        )

    def grid_values(self) -> dict[str, list[Any]]:
        """Each parameter's grid values (Katib: min, min+step, ..., <= max)."""
        return {
            "lr": _steps(self.lr_min, self.lr_max, self.lr_step),
            "batch_size": list(range(self.batch_min, self.batch_max + 1, self.batch_step)),
        }

    def grid_points(self) -> list[dict[str, Any]]:
        """All grid points in declaration order: lr outermost, batch size innermost."""
        values = self.grid_values()
        combos = itertools.product(*(values[n] for n in PARAM_NAMES))
        return [dict(zip(PARAM_NAMES, combo, strict=True)) for combo in combos]

    def suggest(self, trial: optuna.Trial) -> TrialParams:
        """Ask the trial's sampler for both parameters within the declared bounds."""
        lr = trial.suggest_float("lr", self.lr_min, self.lr_max)
        batch_size = trial.suggest_int("batch_size", self.batch_min, self.batch_max)
        return TrialParams(number=trial.number, lr=float(lr), batch_size=int(batch_size))

    def contains(self, params: TrialParams) -> bool:
        """Whether a suggestion lies in the declared space (tests and a runtime guard)."""
        return self.lr_min <= params.lr <= self.lr_max and self.batch_min <= params.batch_size <= self.batch_max
