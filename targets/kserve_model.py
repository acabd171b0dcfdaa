"""The MNIST predictor that the KServe stand-in serves: a ``kserve.Model`` over the SavedModel.

Why a module of its own: the model class must be importable by its real module path,
because ``kserve``'s multi-worker mode pickles it into *spawned* worker processes (a class
defined in ``__main__`` would not resolve there).  A loaded TensorFlow function does not
pickle, so the pickled state is only the path and settings and every worker loads the
SavedModel itself (see ``targets.kserve_loopback.LoopbackRESTServer.run``) -- the same
as one pod per replica on a cluster.

Request validation lives here too, as pure functions that raise kserve's ``InvalidInput``
(which the ModelServer maps to a 400 JSON error): a wrong shape, NaN/inf, too many
instances or a non-JSON body must never reach TensorFlow and never take the server down.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from kserve import Model
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from targets.kserve_server import resolve_savedmodel_dir

__all__ = [
    "MAX_INSTANCES",
    "MnistSavedModel",
    "instances_to_array",
    "v2_inputs_to_array",
]

#: Upper bound on images per request: one image is ~6 KB of JSON, and a bound keeps one
#: request from monopolising a worker (the body-size limit in the server backs it up).
MAX_INSTANCES = 512

_V2_DATATYPES = {"FP32", "FP64", "FP16", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


def _to_images(array: np.ndarray, what: str) -> np.ndarray:
    """(N,28,28) or (N,784) numbers -> finite float32 (N,28,28), else ``InvalidInput``."""
    if array.ndim == 3 and array.shape[1:] == (28, 28):
        images = array
    elif array.ndim == 2 and array.shape[1] == 784:
        images = array.reshape(-1, 28, 28)
    else:
        raise InvalidInput(f"{what} must be a list of 28x28 or 784-value images, got shape {list(array.shape)}")
    if images.shape[0] == 0:
        raise InvalidInput(f"{what} is empty")
    if images.shape[0] > MAX_INSTANCES:
        raise InvalidInput(f"{what} holds {images.shape[0]} images; at most {MAX_INSTANCES} per request")
    with np.errstate(over="ignore"):  # overflow to inf is caught just below
        images = images.astype(np.float32, copy=False)
    if not np.isfinite(images).all():
        raise InvalidInput(f"{what} contains NaN, infinite or null values (or numbers too large for float32)")
    return images


def _as_float_array(values: Any, what: str) -> np.ndarray:
    if isinstance(values, (str, bytes)) or values is None:
        raise InvalidInput(f"{what} must be a list of numbers, got {type(values).__name__}")
    try:
        array = np.asarray(values, dtype=np.float64)
    except (ValueError, TypeError) as exc:
        # Ragged nesting, strings, nulls or objects inside the list.
        raise InvalidInput(f"{what} must be a rectangular list of numbers ({exc})") from None
    return array


def instances_to_array(payload: Any) -> np.ndarray:
    """A V1 request body (``{"instances": [...]}``) -> float32 images (N,28,28).

    The V1 protocol (TF Serving's row format, which KServe's tensorflow runtime speaks)
    puts one model input per element of ``instances``; for MNIST that is an image of
    normalized pixels.  ``inputs`` (TF Serving's columnar format) is accepted too.
    """
    if isinstance(payload, (bytes, bytearray, str)):
        raise InvalidInput("request body must be JSON (Content-Type: application/json) with an 'instances' list")
    if not isinstance(payload, dict):
        raise InvalidInput(f"request body must be a JSON object with an 'instances' list, got {type(payload).__name__}")
    key = "instances" if "instances" in payload else "inputs" if "inputs" in payload else None
    if key is None:
        raise InvalidInput("request body has no 'instances' list")
    values = payload[key]
    if not isinstance(values, list):
        raise InvalidInput(f"'{key}' must be a list of images, got {type(values).__name__}")
    if not values:
        raise InvalidInput(f"'{key}' is empty")
    if len(values) > MAX_INSTANCES:
        raise InvalidInput(f"'{key}' holds {len(values)} images; at most {MAX_INSTANCES} per request")
    # Image by image, so 28x28 and 784-value images may be mixed in one request.
    images = []
    for i, value in enumerate(values):
        what = f"'{key}'[{i}]"
        array = _as_float_array(value, what)
        if array.shape not in ((28, 28), (784,)):
            raise InvalidInput(f"{what} must be a 28x28 or 784-value image, got shape {list(array.shape)}")
        images.append(array.reshape(28, 28))
    return _to_images(np.stack(images), f"'{key}'")


def v2_inputs_to_array(request: InferRequest) -> np.ndarray:
    """A V2 / Open Inference Protocol request -> float32 images (N,28,28).

    Exactly one input tensor, shape [N,28,28] or [N,784], a numeric datatype, and data
    (flat or nested) whose element count matches the shape.
    """
    if len(request.inputs) != 1:
        raise InvalidInput(f"expected exactly one input tensor, got {len(request.inputs)}")
    tensor = request.inputs[0]
    what = f"input '{tensor.name}'"
    if tensor.datatype not in _V2_DATATYPES:
        raise InvalidInput(f"{what} has datatype {tensor.datatype!r}; expected a numeric type such as FP32")
    shape = [int(d) for d in tensor.shape]
    if any(d < 0 for d in shape):
        raise InvalidInput(f"{what} has a negative dimension in shape {shape}")
    data = tensor.data
    array = data if isinstance(data, np.ndarray) else _as_float_array(data, what)
    expected = math.prod(shape)
    if array.size != expected:
        raise InvalidInput(f"{what} has {array.size} values but shape {shape} needs {expected}")
    return _to_images(np.asarray(array, dtype=np.float64).reshape(shape), what)


class MnistSavedModel(Model):
    """Serves the exported TF SavedModel's ``serving_default`` signature (logits out).

    Answers both protocols the way KServe's tensorflow runtime (TF Serving) does:
    V1 ``{"instances": [...]}`` -> ``{"predictions": [[10 logits], ...]}``; V2 one FP32
    output tensor ``logits`` of shape [N,10].  The client takes the argmax.
    """

    def __init__(self, name: str, model_dir: str | os.PathLike[str], tf_threads: int = 0) -> None:
        super().__init__(name)
        self.model_dir = str(model_dir)
        self.tf_threads = tf_threads
        self._signature: Any = None
        self._input_name = ""
        self._output_name = ""

    # -- lifetime ---------------------------------------------------------------------
    def load(self) -> bool:
        """Import TensorFlow (6-10 s) and load the serving signature; sets ``ready``."""
        import tensorflow as tf  # lazy: heavy, and only the server process needs it

        if self.tf_threads > 0:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(self.tf_threads)
                tf.config.threading.set_inter_op_parallelism_threads(self.tf_threads)
            except RuntimeError:
                pass  # already initialised in this process: keep what is set
        folder = resolve_savedmodel_dir(self.model_dir, self.name)
        loaded = tf.saved_model.load(str(folder))
        signature = loaded.signatures["serving_default"]
        _, kwargs = signature.structured_input_signature
        if len(kwargs) != 1 or len(signature.structured_outputs) != 1:
            raise ValueError(f"{folder}: serving_default must have one input and one output")
        self._loaded = loaded  # keep the owner of the signature's variables alive
        self._signature = signature
        self._input_name = next(iter(kwargs))
        self._output_name = next(iter(signature.structured_outputs))
        # One warm-up call so the first measured request does not pay for tracing.
        self._logits(np.zeros((1, 28, 28), dtype=np.float32))
        self.ready = True
        return self.ready

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the TF objects: kserve's workers are spawned processes."""
        state = self.__dict__.copy()
        for key in ("_loaded", "_signature"):
            state.pop(key, None)
        state["ready"] = False
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled in a worker: not loaded yet (``LoopbackRESTServer.run`` loads it).

        Loading here would run before kserve's liveness pipe answers pings; a worker
        that does not answer within 5 s is killed and respawned, forever.
        """
        self.__dict__.update(state)
        self._signature = None

    # -- inference --------------------------------------------------------------------
    def _logits(self, images: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        out = self._signature(**{self._input_name: tf.constant(images, dtype=tf.float32)})
        return out[self._output_name].numpy()

    def predict(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> dict | InferResponse:
        """Validate, run the signature, answer in the protocol the request came in."""
        if isinstance(payload, InferRequest):
            logits = self._logits(v2_inputs_to_array(payload))
            output = InferOutput(name="logits", shape=list(logits.shape), datatype="FP32")
            output.set_data_from_numpy(logits.astype(np.float32), binary_data=False)
            return InferResponse(
                response_id=payload.id or "",
                model_name=self.name,
                infer_outputs=[output],
            )
        logits = self._logits(instances_to_array(payload))
        return {"predictions": logits.tolist()}
