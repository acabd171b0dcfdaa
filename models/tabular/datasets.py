"""The tabular data sets by name, loaded from scikit-learn's bundled copies, and their split.

Why these: scikit-learn ships them inside the wheel (no download, so training works
offline and in CI), they are small (hundreds of rows, so training takes well under a
second), and they are real measurements with a known answer per row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["TABULAR_MODELS", "TabularDataset", "TabularSplit", "load_split"]


@dataclass(frozen=True)
class TabularDataset:
    """One bundled data set: how to load it and what it is."""

    loader: str  # the ``sklearn.datasets`` function's name
    description: str


#: Model name (also the KServe model and InferenceService name, so a DNS label) -> data set.
TABULAR_MODELS: dict[str, TabularDataset] = {
    "breast-cancer": TabularDataset(
        "load_breast_cancer", "Wisconsin diagnostic breast cancer: 569 tumours, 30 features, 2 classes"
    ),
    "wine": TabularDataset("load_wine", "UCI wine recognition: 178 wines, 13 features, 3 classes"),
}


@dataclass(frozen=True)
class TabularSplit:
    """A stratified train/test split: float64 features, int64 labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]


def _loader(name: str) -> Callable[..., Any]:
    if name not in TABULAR_MODELS:
        raise KeyError(f"unknown tabular model {name!r}; known: {', '.join(sorted(TABULAR_MODELS))}")
    import sklearn.datasets  # lazy: only training needs it

    return getattr(sklearn.datasets, TABULAR_MODELS[name].loader)


def load_split(name: str, *, seed: int, test_fraction: float) -> TabularSplit:
    """The data set ``name`` split into train and test, stratified by class, seeded."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    from sklearn.model_selection import train_test_split

    bunch = _loader(name)()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    train_x, test_x, train_y, test_y = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return TabularSplit(
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        feature_names=tuple(str(f) for f in bunch.feature_names),
        class_names=tuple(str(c) for c in bunch.target_names),
    )
