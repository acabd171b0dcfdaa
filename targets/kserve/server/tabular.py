"""The tabular predictor the KServe stand-in serves: a ``kserve.Model`` over ``weights.npz``.

Why its own class beside :class:`targets.kserve.server.model.MnistSavedModel`: the second
model of issue 24 must look different on the wire -- input ``features`` FP64 [-1, F],
outputs ``probabilities`` FP32 [-1, C] and ``label`` INT64 [-1] -- and needs no
TensorFlow: it is a standardising step and a softmax layer, four arrays read with
``numpy.load(..., allow_pickle=False)`` (never pickle).  The forward pass repeats
:meth:`models.tabular.weights.TabularWeights.predict` because this process imports
nothing of servebench's own side; the tests check both answer the same.

Picklable for kserve's spawned workers like the MNIST model: only the path travels, each
worker loads the arrays itself.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from kserve import Model
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from targets.kserve.server.tabular_inputs import INPUT_DATATYPE, INPUT_NAME, features_from_v1, features_from_v2

__all__ = ["OUTPUT_LABEL", "OUTPUT_PROBABILITIES", "TabularModel", "load_arrays"]

OUTPUT_PROBABILITIES = "probabilities"
OUTPUT_LABEL = "label"
_ARRAYS = ("mean", "scale", "coef", "intercept")


def load_arrays(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The four float64 arrays of ``weights.npz``, read without pickle, their shapes checked."""
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: not an .npz archive")
    with loaded as npz:
        missing = [k for k in _ARRAYS if k not in npz.files]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing}")
        arrays = {k: np.asarray(npz[k], dtype=np.float64) for k in _ARRAYS}
    n_classes, n_features = arrays["coef"].shape if arrays["coef"].ndim == 2 else (0, 0)
    if (
        n_classes < 2
        or arrays["mean"].shape != (n_features,)
        or arrays["scale"].shape != (n_features,)
        or arrays["intercept"].shape != (n_classes,)
    ):
        raise ValueError(f"{path}: inconsistent array shapes { ({k: list(v.shape) for k, v in arrays.items()}) }")
    return arrays


class TabularModel(Model):
    """Serves a tabular classifier: V2 ``features`` -> ``probabilities`` + ``label``; V1 too."""

    def __init__(self, name: str, weights_path: str | os.PathLike[str]) -> None:
        super().__init__(name)
        self.weights_path = str(weights_path)
        self._arrays: dict[str, np.ndarray] = {}

    def load(self) -> bool:
        self._arrays = load_arrays(self.weights_path)
        self.ready = True
        return self.ready

    def __getstate__(self) -> dict[str, Any]:
        """Pickled into kserve's spawned workers without the arrays; each worker loads them."""
        state = self.__dict__.copy()
        state["_arrays"] = {}
        state["ready"] = False
        return state

    @property
    def n_features(self) -> int:
        return int(self._arrays["mean"].shape[0])

    @property
    def n_classes(self) -> int:
        return int(self._arrays["intercept"].shape[0])

    # -- metadata (GET /v2/models/<name>) ------------------------------------------------
    def get_input_types(self) -> list[dict[str, Any]]:
        return [{"name": INPUT_NAME, "datatype": INPUT_DATATYPE, "shape": [-1, self.n_features]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [
            {"name": OUTPUT_PROBABILITIES, "datatype": "FP32", "shape": [-1, self.n_classes]},
            {"name": OUTPUT_LABEL, "datatype": "INT64", "shape": [-1]},
        ]

    # -- inference --------------------------------------------------------------------
    def _forward(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = self._arrays
        logits = ((features - a["mean"]) / a["scale"]) @ a["coef"].T + a["intercept"]
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        probs = exp / exp.sum(axis=1, keepdims=True)
        return probs.astype(np.float32), probs.argmax(axis=1).astype(np.int64)

    def predict(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> dict | InferResponse:
        """Validate, compute, answer in the protocol the request came in (binary outputs if asked)."""
        if isinstance(payload, InferRequest):
            probs, labels = self._forward(features_from_v2(payload, self.n_features))
            outputs = []
            for name, array, datatype in ((OUTPUT_PROBABILITIES, probs, "FP32"), (OUTPUT_LABEL, labels, "INT64")):
                output = InferOutput(name=name, shape=list(array.shape), datatype=datatype)
                output.set_data_from_numpy(array, binary_data=False)
                outputs.append(output)
            return InferResponse(
                response_id=payload.id or "",
                model_name=self.name,
                infer_outputs=outputs,
                use_binary_outputs=payload.use_binary_outputs,
                requested_outputs=payload.request_outputs,
            )
        probs, labels = self._forward(features_from_v1(payload, self.n_features))
        return {
            "predictions": [
                {OUTPUT_PROBABILITIES: p.tolist(), OUTPUT_LABEL: int(k)} for p, k in zip(probs, labels, strict=True)
            ]
        }
