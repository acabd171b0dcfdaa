"""Load the exported model files and run them: the helpers servers, tests and parity share.

Why here: the parity check at export, the Flask/Kubernetes app and the KServe predictor
must load the artifacts the same way, so "the served model" and "the checked model" are
the same code.  tensorflow is imported inside :func:`load_savedmodel` only (6-10 s).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "SERVING_SIGNATURE",
    "SavedModelPredictor",
    "load_savedmodel",
    "load_torchscript",
    "quiet_tensorflow",
    "torch_logits",
]

#: The SavedModel signature TF Serving and KServe call by default.
SERVING_SIGNATURE: str = "serving_default"


def quiet_tensorflow() -> None:
    """Silence TensorFlow's C++ info/warning logs unless the user set the level.

    Call before the first ``import tensorflow``/``keras``: the level is read at import time.
    (TF 2.21 still prints its oneDNN banner, logged before absl initialises; harmless.)
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    """Load the TorchScript file on CPU, in eval mode (no pickle: TorchScript is code + tensors).

    torch 2.13 marks ``torch.jit`` deprecated in favour of ``torch.export``; TorchScript is
    still the format the Flask/Kubernetes targets load (the study's stack), so the
    warning is silenced here rather than repeated in every server log.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    module.eval()
    return module


def _as_input(x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3 or arr.shape[1:] != (28, 28):
        raise ValueError(f"expected normalised images of shape (N, 28, 28), got {np.shape(x)}")
    return np.ascontiguousarray(arr)


@torch.no_grad()
def torch_logits(module: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Logits (N, 10) float32 for normalised inputs (N, 28, 28) (or one (28, 28) image)."""
    return module(torch.from_numpy(_as_input(x))).numpy()


class SavedModelPredictor:
    """Callable wrapper of a SavedModel's serving signature: normalised (N, 28, 28) -> logits (N, 10)."""

    def __init__(self, directory: str | Path) -> None:
        quiet_tensorflow()
        import tensorflow as tf  # lazy: only the KServe path and the parity check need it

        self._tf = tf
        self.directory = Path(directory)
        self._loaded = tf.saved_model.load(str(self.directory))
        if SERVING_SIGNATURE not in self._loaded.signatures:
            raise ValueError(f"{self.directory}: SavedModel has no {SERVING_SIGNATURE!r} signature")
        self._fn = self._loaded.signatures[SERVING_SIGNATURE]
        _, kwargs = self._fn.structured_input_signature
        if len(kwargs) != 1:
            raise ValueError(f"{self.directory}: expected one input in {SERVING_SIGNATURE}, got {list(kwargs)}")
        self.input_name: str = next(iter(kwargs))
        outputs = self._fn.structured_outputs
        if len(outputs) != 1:
            raise ValueError(f"{self.directory}: expected one output in {SERVING_SIGNATURE}, got {list(outputs)}")
        self.output_name: str = next(iter(outputs))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self._fn(**{self.input_name: self._tf.constant(_as_input(x))})
        return out[self.output_name].numpy()


def load_savedmodel(directory: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """Load a SavedModel (the ``savedmodel/<name>/1`` folder) as a numpy-in, logits-out callable."""
    return SavedModelPredictor(directory)
