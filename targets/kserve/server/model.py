"""The MNIST predictor that the KServe stand-in serves: a ``kserve.Model`` over the SavedModel.

The class lives at a real module path because ``kserve``'s multi-worker mode pickles it
into *spawned* worker processes (a class defined in ``__main__`` would not resolve there).  A loaded
TensorFlow function does not
pickle, so the pickled state is only the path and settings and every worker loads the
SavedModel itself (see ``targets.kserve.server.loopback.LoopbackRESTServer.run``) -- the same
as one pod per replica on a cluster.

Request validation (:mod:`targets.kserve.server.inputs`) raises kserve's ``InvalidInput``, which
the ModelServer answers as a 400 JSON error.  V2 model metadata (``GET /v2/models/<name>``)
lists the serving signature's real input and output tensors, so a V2 client can build a
request from the metadata alone; kserve's default is empty lists.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from kserve import Model
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from targets.kserve.server.inputs import MAX_INSTANCES, instances_to_array, v2_inputs_to_array
from targets.kserve.server.savedmodel import resolve_savedmodel_dir

__all__ = [
    "MAX_INSTANCES",
    "OUTPUT_NAME",
    "MnistSavedModel",
    "instances_to_array",
    "tensor_metadata",
    "v2_inputs_to_array",
]

#: The V2 output tensor's name (the signature's own is TF's generic ``output_0``).
OUTPUT_NAME = "logits"

#: TensorFlow dtype name -> Open Inference Protocol datatype.
_V2_TYPE_OF = {
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "bool": "BOOL",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
}


def tensor_metadata(name: str, spec: Any) -> dict[str, Any]:
    """V2 metadata of one signature tensor: name, datatype, shape (-1 for a free dimension)."""
    dtype = spec.dtype.name
    if dtype not in _V2_TYPE_OF:
        raise ValueError(f"tensor {name!r} has dtype {dtype}, which the V2 protocol cannot name")
    shape = [-1 if d is None else int(d) for d in spec.shape.as_list()]
    return {"name": name, "datatype": _V2_TYPE_OF[dtype], "shape": shape}


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
        self._inputs_metadata: list[dict[str, Any]] = []
        self._outputs_metadata: list[dict[str, Any]] = []

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
        self._inputs_metadata = [tensor_metadata(self._input_name, kwargs[self._input_name])]
        output_spec = signature.structured_outputs[self._output_name]
        self._outputs_metadata = [tensor_metadata(OUTPUT_NAME, output_spec)]
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

    # -- metadata (GET /v2/models/<name>) ------------------------------------------------
    def get_input_types(self) -> list[dict[str, Any]]:
        """The signature's input: e.g. ``pixels``, FP32, [-1, 28, 28] ([N, 784] is accepted too)."""
        return [dict(t) for t in self._inputs_metadata]

    def get_output_types(self) -> list[dict[str, Any]]:
        """The output the responses carry: ``logits``, FP32, [-1, 10]."""
        return [dict(t) for t in self._outputs_metadata]

    # -- inference --------------------------------------------------------------------
    def _logits(self, images: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        out = self._signature(**{self._input_name: tf.constant(images, dtype=tf.float32)})
        return out[self._output_name].numpy()

    def predict(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> dict | InferResponse:
        """Validate, run the signature, answer in the protocol the request came in."""
        if isinstance(payload, InferRequest):
            logits = self._logits(v2_inputs_to_array(payload, self._input_name))
            # Raw (binary) logits when the request asks for them: ``binary_data_output`` over
            # REST (the binary-tensor extension), raw inputs over gRPC; JSON numbers otherwise.
            binary = bool(payload.use_binary_outputs)
            output = InferOutput(name=OUTPUT_NAME, shape=list(logits.shape), datatype="FP32")
            output.set_data_from_numpy(logits.astype(np.float32), binary_data=binary)
            return InferResponse(
                response_id=payload.id or "",
                model_name=self.name,
                infer_outputs=[output],
                use_binary_outputs=binary,
            )
        logits = self._logits(instances_to_array(payload))
        return {"predictions": logits.tolist()}
