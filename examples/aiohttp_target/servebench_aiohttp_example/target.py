"""The example adapter: starts ``server.py`` as a local stand-in, or talks to a remote one.

:class:`targets.LocalServerTarget` does the lifetime (spawn on a free
loopback port, wait for ``health_path``, stop the whole process group), remote mode
(``endpoint``, Host, credentials) and ``processes``; this adapter supplies the command
line and this server's own wire format (``{"image": ...}`` -> ``{"digit": d}``).  Its
server speaks none of the digit page's shapes, so ``bench ui`` refuses it by name (the
FastAPI example, which speaks KServe V1, declares ``page_protocol``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

from targets import DecodeError, LocalServerTarget, Request, dumps_compact, wire_instance

__all__ = ["AiohttpTarget"]


class AiohttpTarget(LocalServerTarget):
    """Example target: one aiohttp process serving the TorchScript model."""

    adapter = "aiohttp-example"
    health_path = "/health"

    def command(self, host: str, port: int) -> list[str]:
        model = self.model_file("torchscript/model.pt", "TorchScript model")
        return [
            sys.executable,
            "-m",
            "servebench_aiohttp_example.server",
            "--model",
            str(model),
            "--host",
            host,
            "--port",
            str(port),
        ]

    def encode(self, image: np.ndarray) -> Request:
        return Request("POST", "/v1/classify", dumps_compact({"image": wire_instance(image)}), self.request_headers())

    def decode(self, status: int, body: bytes) -> int:
        if not 200 <= status < 300:
            raise DecodeError(f"HTTP {status}: {body[:200]!r}")
        try:
            digit = json.loads(body)["digit"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DecodeError(f"no 'digit' in response: {exc}") from None
        if isinstance(digit, bool) or not isinstance(digit, int) or not 0 <= digit <= 9:
            raise DecodeError(f"'digit' is not 0..9: {digit!r}")
        return digit

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "server": "aiohttp (example adapter)"}
