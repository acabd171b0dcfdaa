"""The example adapter: starts ``server.py`` as a local stand-in, or talks to a remote one.

Everything servebench needs from an adapter is here, in about a hundred lines:

* ``Settings``: a frozen dataclass; servebench validates the target's bench.toml table
  into it (unknown/misspelt keys and wrong types are errors naming the key).  Inheriting
  :class:`targets.remote.RemoteSettings` adds ``endpoint``, ``host_header``,
  ``bearer_token_env``, ``cookie_env`` and ``verify_tls``.
* ``start``/``stop``: spawn the server with :func:`targets.process.spawn` (own process
  group, log file, CPU pinning), wait with :func:`targets.process.wait_ready`, stop the
  whole group.
* ``encode``/``decode``: this server's wire format.
* ``manifests``: how to run it elsewhere.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from targets.base import DecodeError, Request, Target, TargetContext, TargetError
from targets.process import ManagedProcess, free_port, spawn, wait_ready
from targets.remote import RemoteAccess, RemoteSettings, check_remote_ready, open_remote, public_remote_settings
from targets.wire import dumps_compact, wire_instance

__all__ = ["AiohttpSettings", "AiohttpTarget"]

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[1])


@dataclass(frozen=True)
class AiohttpSettings(RemoteSettings):
    """``[targets.NAME]`` keys: only the remote-mode ones plus a CPU override."""

    cpus: tuple[int, ...] = ()


class AiohttpTarget(Target):
    """Example target: one aiohttp process serving the TorchScript model."""

    adapter: ClassVar[str] = "aiohttp-example"
    Settings: ClassVar[type] = AiohttpSettings
    settings: AiohttpSettings

    def __init__(self, name: str, settings: AiohttpSettings, context: TargetContext) -> None:
        super().__init__(name, settings, context)
        self.processes: list[ManagedProcess] = []
        self._access: RemoteAccess | None = None
        if settings.endpoint:
            self.base_url = settings.endpoint.rstrip("/")

    @property
    def is_remote(self) -> bool:
        return bool(self.settings.endpoint)

    async def start(self) -> None:
        timeout = self.settings.ready_timeout_s or self.context.ready_timeout_s
        if self.is_remote:
            self._access = open_remote(self.name, self.settings)
            await check_remote_ready(self.name, self._access, "/health", timeout_s=timeout)
            return
        if self.processes:
            return
        model = Path(self.context.artifacts_dir).resolve() / "torchscript" / "model.pt"
        if not model.is_file():
            raise TargetError(f"target {self.name!r}: model not found at {model} (run `python -m bench train`)")
        host = self.context.bind_host
        port = free_port(host)
        # PYTHONPATH lets the server import this package even when it is not pip-installed.
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))}
        argv = [sys.executable, "-m", "servebench_aiohttp_example.server", "--model", str(model),
                "--host", host, "--port", str(port)]  # fmt: skip
        log = Path(self.context.log_dir or tempfile.gettempdir()) / f"{self.name}.log"
        self.processes.append(spawn(argv, env=env, log_path=log, cpus=self.settings.cpus or self.context.cpus))
        self.base_url = f"http://{host}:{port}"
        try:
            await wait_ready(
                self.base_url + "/health", timeout=timeout, process=self.processes, what=f"target {self.name!r}"
            )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        procs, self.processes = self.processes, []
        for proc in procs:
            await proc.astop()

    def encode(self, image: np.ndarray) -> Request:
        headers = {"Content-Type": "application/json"}
        if self.is_remote:
            self._access = self._access or open_remote(self.name, self.settings)
            headers.update(self._access.headers)
        return Request("POST", "/v1/classify", dumps_compact({"image": wire_instance(image)}), headers)

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
        return {**super().describe(), "server": "aiohttp (example adapter)", **public_remote_settings(self.settings)}

    def manifests(self) -> dict[str, str]:
        return {
            "run.sh": (
                "#!/bin/sh\n# Start the example server on a host (loopback; put a reverse proxy in front).\n"
                "exec python -m servebench_aiohttp_example.server --model artifacts/model/torchscript/model.pt "
                "--host 127.0.0.1 --port 8081\n"
            )
        }
