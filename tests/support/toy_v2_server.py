"""A tiny V2 model served by the real KServe ModelServer on 127.0.0.1: not MNIST, for end-to-end tests.

``python -m tests.support.toy_v2_server PORT`` serves model ``toy``: input ``tokens`` INT64
[-1, 4] (a different name, shape and dtype than MNIST's ``pixels`` FP32 [-1, 28, 28]),
output ``scores`` FP32 [-1, 3], one-hot at ``sum(tokens) % 3`` -- so a test can compute
every right answer itself.  Through :class:`targets.kserve.server.loopback.LoopbackModelServer`
(kserve's ModelServer bound to loopback only, gRPC off), as the KServe stand-ins are.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

MODEL_NAME = "toy"


def toy_scores(tokens: np.ndarray) -> np.ndarray:
    """The model: one-hot FP32 scores [N, 3] at ``tokens.sum(axis=1) % 3``."""
    tokens = np.asarray(tokens, dtype=np.int64).reshape(-1, 4)
    scores = np.zeros((tokens.shape[0], 3), np.float32)
    scores[np.arange(tokens.shape[0]), tokens.sum(axis=1) % 3] = 1.0
    return scores


def main(port: int) -> int:
    from kserve import InferOutput, InferRequest, InferResponse, Model

    from targets.kserve.server.loopback import LoopbackModelServer

    class ToyModel(Model):
        def load(self) -> bool:
            self.ready = True
            return True

        def get_input_types(self) -> list[dict[str, Any]]:
            return [{"name": "tokens", "datatype": "INT64", "shape": [-1, 4]}]

        def get_output_types(self) -> list[dict[str, Any]]:
            return [{"name": "scores", "datatype": "FP32", "shape": [-1, 3]}]

        def predict(self, payload: InferRequest, headers: dict[str, str] | None = None) -> InferResponse:
            (tensor,) = payload.inputs
            if tensor.name != "tokens" or tensor.datatype != "INT64":
                raise ValueError(f"expected tokens INT64, got {tensor.name} {tensor.datatype}")
            scores = toy_scores(tensor.as_numpy())
            output = InferOutput(name="scores", shape=list(scores.shape), datatype="FP32")
            output.set_data_from_numpy(scores, binary_data=False)
            return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=[output])

    model = ToyModel(MODEL_NAME)
    model.load()
    server = LoopbackModelServer(host="127.0.0.1", max_body_bytes=1 << 20, http_port=port, workers=1)
    server.start([model])
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
