"""The FastAPI example's adapter: LocalServerTarget spawns, waits, stops and handles remote mode."""

from __future__ import annotations

import sys

import numpy as np

from targets import LocalServerTarget, Request, decode_v1_logits, instances_body

__all__ = ["FastAPITarget"]


class FastAPITarget(LocalServerTarget):
    """uvicorn + FastAPI serving the TorchScript model in the KServe V1 JSON shape."""

    adapter = "fastapi-example"
    health_path = "/health"
    page_protocol = "kserve-v1"  # {"instances"} in, {"predictions": [logits]} out: `bench ui` works

    def command(self, host: str, port: int) -> list[str]:
        model = self.model_file("torchscript/model.pt", "TorchScript model")
        return [
            sys.executable,
            "-m",
            "servebench_fastapi_example.server",
            "--model",
            str(model),
            "--host",
            host,
            "--port",
            str(port),
        ]

    def encode(self, image: np.ndarray) -> Request:
        return Request("POST", "/v1/predict", instances_body(image), self.request_headers())

    def decode(self, status: int, body: bytes) -> int:
        return decode_v1_logits(status, body)
