"""Fit a tabular classifier and export it as arrays, checked against the fitted estimator.

Why scikit-learn's logistic regression: deterministic (the lbfgs solver has no random
state), trains in well under a second on these data sets, and its answer is a softmax
over a linear layer, so it exports exactly to four arrays
(:class:`models.tabular.weights.TabularWeights`) that a server can apply without
scikit-learn or pickle.  The export is refused unless the arrays reproduce the
estimator's probabilities on the test split (``PARITY_ATOL``) and every label.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.tabular.datasets import TabularSplit, load_split
from models.tabular.weights import TabularWeights

__all__ = ["PARITY_ATOL", "ParityError", "TabularRecipe", "TrainedTabular", "fit"]

#: Largest |probability difference| allowed between the arrays and the fitted estimator.
PARITY_ATOL = 1e-9


@dataclass(frozen=True)
class TabularRecipe:
    """Everything that decides the weights (recorded in model.json)."""

    name: str
    seed: int = 0
    test_fraction: float = 0.25
    regularization_c: float = 1.0  # scikit-learn's C: inverse L2 strength
    max_iter: int = 1000


@dataclass(frozen=True)
class TrainedTabular:
    """A fitted model: its arrays, its split, and the facts model.json records."""

    weights: TabularWeights
    split: TabularSplit
    test_accuracy: float
    train_accuracy: float
    parity_max_abs_diff: float
    training_seconds: float

    def facts(self) -> dict[str, Any]:
        """The trained model's numbers for model.json."""
        return {
            "accuracy": {"test": self.test_accuracy, "train": self.train_accuracy},
            "split": {"train": int(self.split.train_y.size), "test": int(self.split.test_y.size)},
            "parity": {"max_abs_probability_diff": self.parity_max_abs_diff, "allowed": PARITY_ATOL},
            "training_seconds": self.training_seconds,
            "features": list(self.split.feature_names),
            "classes": list(self.split.class_names),
        }


class ParityError(RuntimeError):
    """The exported arrays do not answer like the fitted estimator."""


def fit(recipe: TabularRecipe) -> TrainedTabular:
    """Fit standardisation + multinomial logistic regression on the train split, export, check."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    split = load_split(recipe.name, seed=recipe.seed, test_fraction=recipe.test_fraction)
    started = time.perf_counter()
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=recipe.regularization_c, max_iter=recipe.max_iter))
    pipeline.fit(split.train_x, split.train_y)
    seconds = time.perf_counter() - started
    scaler, classifier = pipeline[0], pipeline[1]
    coef = np.asarray(classifier.coef_, dtype=np.float64)
    intercept = np.asarray(classifier.intercept_, dtype=np.float64)
    if coef.shape[0] == 1:  # binary: scikit-learn keeps one row; softmax over [-z/2, z/2] is the same sigmoid
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    weights = TabularWeights(
        mean=np.asarray(scaler.mean_, dtype=np.float64),
        scale=np.asarray(scaler.scale_, dtype=np.float64),
        coef=coef,
        intercept=intercept,
    )
    expected = pipeline.predict_proba(split.test_x)
    ours = weights.probabilities(split.test_x)
    diff = float(np.abs(expected - ours).max())
    if diff > PARITY_ATOL or not (ours.argmax(axis=1) == pipeline.predict(split.test_x)).all():
        raise ParityError(f"exported arrays differ from the estimator by {diff:.3g} (allowed {PARITY_ATOL:g})")
    return TrainedTabular(
        weights=weights,
        split=split,
        test_accuracy=float((ours.argmax(axis=1) == split.test_y).mean()),
        train_accuracy=float((weights.probabilities(split.train_x).argmax(axis=1) == split.train_y).mean()),
        parity_max_abs_diff=diff,
        training_seconds=seconds,
    )
