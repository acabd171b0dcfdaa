"""The ``http.server`` example's adapter: settings ``backlog`` and ``nodelay`` become server flags."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from targets import LocalServerSettings, LocalServerTarget, Request, decode_v1_logits, instances_body

__all__ = ["HttpServerSettings", "HttpServerTarget"]


@dataclass(frozen=True)
class HttpServerSettings(LocalServerSettings):
    """``backlog``: the listen backlog (http.server's default 5); ``nodelay``: TCP_NODELAY on or off."""

    backlog: int = 5
    nodelay: bool = False


class HttpServerTarget(LocalServerTarget):
    """Python's ``ThreadingHTTPServer`` serving the TorchScript model in the KServe V1 JSON shape."""

    adapter = "http-server-example"
    Settings = HttpServerSettings
    health_path = "/health"
    page_protocol = "kserve-v1"

    def command(self, host: str, port: int) -> list[str]:
        model = self.model_file("torchscript/model.pt", "TorchScript model")
        argv = [
            sys.executable,
            "-m",
            "servebench_http_server_example.server",
            "--model",
            str(model),
            "--host",
            host,
            "--port",
            str(port),
            "--backlog",
            str(self.settings.backlog),
        ]
        return argv + (["--nodelay"] if self.settings.nodelay else [])

    def encode(self, image: np.ndarray) -> Request:
        return Request("POST", "/v1/models/mnist:predict", instances_body(image), self.request_headers())

    def decode(self, status: int, body: bytes) -> int:
        return decode_v1_logits(status, body)
