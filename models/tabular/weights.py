"""The tabular model as plain arrays: its ``.npz`` file and its forward pass.

Why arrays and not a pickled estimator: a pickle (or joblib) file runs code when it is
loaded, so serving one means trusting whoever wrote it.  The model is a standardising
step and a softmax (multinomial logistic) layer -- four arrays -- stored with
``numpy.savez`` and read with ``allow_pickle=False``, which refuses object arrays.

The KServe stand-in's process computes the same forward pass in
:mod:`targets.kserve.server.tabular` (it may import nothing of servebench's own side);
the tests check both give the same answers as the fitted scikit-learn estimator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["WEIGHT_ARRAYS", "TabularWeights", "load_weights", "save_weights"]

#: The arrays of the ``.npz`` file, in order: feature mean, feature scale, coef, intercept.
WEIGHT_ARRAYS = ("mean", "scale", "coef", "intercept")


@dataclass(frozen=True)
class TabularWeights:
    """``mean``, ``scale`` (n_features,); ``coef`` (n_classes, n_features); ``intercept`` (n_classes,)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    def __post_init__(self) -> None:
        n_features = self.mean.shape[0] if self.mean.ndim == 1 else -1
        n_classes = self.intercept.shape[0] if self.intercept.ndim == 1 else -1
        expected = {
            "mean": (n_features,),
            "scale": (n_features,),
            "coef": (n_classes, n_features),
            "intercept": (n_classes,),
        }
        for key, shape in expected.items():
            array = getattr(self, key)
            if array.dtype != np.float64 or array.shape != shape or min(shape) < 1:
                raise ValueError(
                    f"weight {key!r}: expected float64 {list(shape)}, got {array.dtype} {list(array.shape)}"
                )
        if n_classes < 2:
            raise ValueError(f"a classifier needs >= 2 classes, got {n_classes}")
        if not all(np.isfinite(getattr(self, k)).all() for k in WEIGHT_ARRAYS) or (self.scale <= 0).any():
            raise ValueError("weights must be finite and every feature scale > 0")

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.intercept.shape[0])

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities, float64 (N, n_classes), of float64 features (N, n_features)."""
        logits = ((features - self.mean) / self.scale) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def predict(self, features: np.ndarray) -> dict[str, np.ndarray]:
        """The output set the stand-in answers: ``probabilities`` FP32 (N, C), ``label`` INT64 (N,)."""
        probs = self.probabilities(features)
        return {"probabilities": probs.astype(np.float32), "label": probs.argmax(axis=1).astype(np.int64)}


def save_weights(weights: TabularWeights, path: Path) -> None:
    """Write the four arrays to ``path`` (``.npz``, uncompressed, no pickled objects)."""
    with path.open("wb") as fh:
        np.savez(fh, **{key: getattr(weights, key) for key in WEIGHT_ARRAYS})


def load_weights(path: str | Path) -> TabularWeights:
    """Read ``path`` with ``allow_pickle=False``; ``ValueError`` naming the file and what is wrong."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive (a single .npy array)")
        with loaded as npz:
            missing = [key for key in WEIGHT_ARRAYS if key not in npz.files]
            if missing:
                raise ValueError(f"missing arrays {missing} (has {sorted(npz.files)})")
            arrays = {key: np.asarray(npz[key]) for key in WEIGHT_ARRAYS}
        return TabularWeights(**arrays)
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npz file: {exc}") from None
    except ValueError as exc:  # includes numpy's refusal of pickled objects
        raise ValueError(f"{path}: {exc}") from None
