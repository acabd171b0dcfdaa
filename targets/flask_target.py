"""Adapter ``flask``: the study's bare-metal Flask app (target ``greene-linserv``).

Local stand-in: ``targets.flask_app`` under gunicorn with ``workers`` buffering sync workers
(:class:`targets.gunicorn_worker.BufferingSyncWorker`: each request is read in full, under
``header_timeout_s`` / ``body_timeout_s`` deadlines, before the app runs it) on a free
loopback port.  Remote: any deployment of the same app (``endpoint``), e.g. the systemd +
nginx setup that :meth:`FlaskTarget.manifests` renders.

``model_loading`` defaults to ``"per-request"``: the study's linserv app loaded the PyTorch
model on every request (its insights, section 7), and that cost is part of what its
Table 3 measured.  ``"startup"`` loads it once per worker.

:class:`GunicornStandIn` is shared with the ``k8s`` adapter, whose stand-in is several of
these processes sharing one port.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from targets.base import DecodeError, Request, Target, TargetContext, TargetError
from targets.manifests import render
from targets.process import ManagedProcess, Probe, free_port, http_probe, spawn, wait_ready
from targets.remote import RemoteAccess, RemoteSettings, check_remote_ready, open_remote, public_remote_settings
from targets.wire import dumps_compact, wire_instance

__all__ = ["AppSettings", "FlaskSettings", "FlaskTarget", "GunicornStandIn", "decode_predictions"]

TORCH_VERSION = "2.13.0"
#: gunicorn's worker class for the stand-ins and the rendered manifests (module docstring).
WORKER_CLASS = "targets.gunicorn_worker.BufferingSyncWorker"
#: The gunicorn the rendered Dockerfile installs: the worker uses gunicorn's sync-worker
#: internals (RequestParser, handle_request) and is tested with this version.
GUNICORN_VERSION = "27.0.1"


@dataclass(frozen=True)
class AppSettings(RemoteSettings):
    """Keys shared by the adapters that serve ``targets.flask_app`` (``flask``, ``k8s``).

    ``model_loading``: "per-request" (the study's app) or "startup" (once per worker).
    ``workers``: gunicorn sync workers per server process.  ``cpus``: pin the stand-in to
    these CPUs instead of the run's stand-in CPUs.  ``image``: container image named by the
    rendered manifests.
    ``header_timeout_s`` / ``body_timeout_s``: how long a client may take to send its
    request head / body before it is answered 408 (a slow client never holds the worker
    meanwhile; these only free its connection slot).
    """

    model_loading: Literal["per-request", "startup"] = "per-request"
    workers: int = 1
    path: str = "/predict"
    health_path: str = "/healthz"
    cpus: tuple[int, ...] = ()
    torch_threads: int = 1
    max_instances: int = 64
    image: str = "servebench-mnist:latest"
    header_timeout_s: float = 5.0
    body_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.workers < 1 or self.torch_threads < 1 or self.max_instances < 1:
            raise ValueError("workers, torch_threads and max_instances must be >= 1")
        for key in ("header_timeout_s", "body_timeout_s"):
            if not 0 < getattr(self, key) <= 600:
                raise ValueError(f"{key} must be in (0, 600] seconds, got {getattr(self, key)}")
        for key in ("path", "health_path"):
            if not getattr(self, key).startswith("/"):
                raise ValueError(f"{key} must start with '/', got {getattr(self, key)!r}")
        if any(c < 0 for c in self.cpus):
            raise ValueError(f"cpus must be CPU numbers >= 0, got {list(self.cpus)}")


@dataclass(frozen=True)
class FlaskSettings(AppSettings):
    """``[targets.NAME]`` keys of a ``flask`` target (plus the remote-mode keys).

    ``app_port`` and ``server_name`` only shape the rendered systemd unit / nginx config.
    ``hpc_dir`` and the ``slurm_*`` keys only shape the rendered Slurm training script
    (:mod:`targets.manifests_training`): the project's folder on the HPC cluster (shell
    variables such as ``$SCRATCH`` expand there), the job's time limit, memory, partition
    and account ("" = the cluster's default) and the environment modules it loads.
    """

    app_port: int = 8000
    server_name: str = "linserv.example.org"
    hpc_dir: str = "$SCRATCH/servebench"
    slurm_time: str = "01:00:00"
    slurm_mem: str = "8G"
    slurm_partition: str = ""
    slurm_account: str = ""
    slurm_modules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from targets.manifests_training import check_slurm_settings

        super().__post_init__()
        if not 0 < self.app_port < 65536:
            raise ValueError(f"app_port must be a TCP port, got {self.app_port}")
        check_slurm_settings(self)


def decode_predictions(status: int, body: bytes) -> int:
    """``{"predictions": [d]}`` (one digit 0..9) -> d; anything else -> DecodeError."""
    if not 200 <= status < 300:
        raise DecodeError(f"HTTP {status}: {body[:200]!r}")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"response is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("predictions"), list):
        raise DecodeError(f"response has no 'predictions' list: {body[:200]!r}")
    preds = doc["predictions"]
    if len(preds) != 1:
        raise DecodeError(f"expected 1 prediction, got {len(preds)}")
    digit = preds[0]
    if isinstance(digit, bool) or not isinstance(digit, int) or not 0 <= digit <= 9:
        raise DecodeError(f"prediction is not a digit 0..9: {digit!r}")
    return digit


class GunicornStandIn:
    """``replicas`` independent gunicorn masters of ``targets.flask_app:app`` on one port.

    With one replica this is the plain Flask stand-in; with more, each binds the same
    loopback port with ``--reuse-port`` (SO_REUSEPORT) and the kernel spreads incoming
    connections over them, as kube-proxy spreads them over pods.
    """

    def __init__(self, name: str, settings: AppSettings, context: TargetContext, replicas: int = 1) -> None:
        self.name = name
        self.settings = settings
        self.context = context
        self.replicas = replicas
        self.processes: list[ManagedProcess] = []
        self.base_url = ""

    def _argv(self, host: str, port: int) -> list[str]:
        argv = [
            sys.executable, "-m", "gunicorn",
            "--bind", f"{host}:{port}",
            "--workers", str(self.settings.workers),
            "--worker-class", WORKER_CLASS,
            "--no-control-socket",
            "--timeout", "120",
            "--graceful-timeout", "5",
            "--log-level", "info",
        ]  # fmt: skip
        if self.replicas > 1:
            argv.append("--reuse-port")
        return [*argv, "targets.flask_app:app"]

    def _env(self, artifacts: Path, replica: int) -> dict[str, str]:
        threads = str(self.settings.torch_threads)
        return {
            **os.environ,
            "SERVEBENCH_ARTIFACTS_DIR": str(artifacts),
            "SERVEBENCH_MODEL_LOADING": self.settings.model_loading,
            "SERVEBENCH_REPLICA": f"{self.name}-{replica}",
            "SERVEBENCH_MAX_INSTANCES": str(self.settings.max_instances),
            "SERVEBENCH_TORCH_THREADS": threads,
            "SERVEBENCH_HEADER_TIMEOUT_S": repr(float(self.settings.header_timeout_s)),
            "SERVEBENCH_BODY_TIMEOUT_S": repr(float(self.settings.body_timeout_s)),
            "OMP_NUM_THREADS": threads,
            "PYTHONUNBUFFERED": "1",
        }

    def _replica_probe(self, url: str) -> Probe:
        """Ready once every replica has answered /healthz (fresh connection per probe)."""
        seen: set[str] = set()
        wanted = {f"{self.name}-{i}" for i in range(self.replicas)}
        probe = http_probe(url)

        async def check() -> tuple[bool, str]:
            ok, answer = await probe()
            if ok:
                try:
                    seen.add(str(json.loads(answer.split(" ", 2)[2])["replica"]))
                except (IndexError, ValueError, KeyError, TypeError):
                    return False, answer
            return ok and seen >= wanted, f"{answer} (replicas seen: {sorted(seen)})"

        return check

    async def start(self) -> str:
        artifacts = Path(self.context.artifacts_dir).resolve()
        model = artifacts / "torchscript" / "model.pt"
        if not model.is_file():
            raise TargetError(
                f"target {self.name!r}: TorchScript model not found at {model} (run `python -m bench train`)"
            )
        host = self.context.bind_host
        port = free_port(host)
        log_dir = Path(self.context.log_dir or tempfile.gettempdir())
        cpus = tuple(self.settings.cpus) or tuple(self.context.cpus)
        try:
            for i in range(self.replicas):
                suffix = f"-replica{i}" if self.replicas > 1 else ""
                self.processes.append(
                    spawn(
                        self._argv(host, port),
                        env=self._env(artifacts, i),
                        log_path=log_dir / f"{self.name}{suffix}.log",
                        cpus=cpus,
                    )
                )
            url_host = f"[{host}]" if ":" in host else host
            self.base_url = f"http://{url_host}:{port}"
            health = self.base_url + self.settings.health_path
            timeout = self.settings.ready_timeout_s or self.context.ready_timeout_s
            what = f"target {self.name!r} stand-in"
            probe: str | Probe = health
            if self.replicas > 1:  # a callable probe: name the URL ourselves
                probe, what = self._replica_probe(health), f"{what} ({self.replicas} replicas at {health})"
            await wait_ready(probe, timeout=timeout, process=self.processes, what=what)
        except BaseException:
            await self.stop()
            raise
        return self.base_url

    async def stop(self) -> None:
        procs, self.processes = self.processes, []
        if procs:
            await asyncio.gather(*(p.astop() for p in procs))

    @property
    def pgids(self) -> list[int]:
        return [p.pgid for p in self.processes]


class FlaskTarget(Target):
    """The Flask app under gunicorn (local) or an existing deployment of it (remote)."""

    adapter: ClassVar[str] = "flask"
    Settings: ClassVar[type] = FlaskSettings
    settings: FlaskSettings

    def __init__(self, name: str, settings: FlaskSettings, context: TargetContext) -> None:
        super().__init__(name, settings, context)
        self._standin: GunicornStandIn | None = None
        self._access: RemoteAccess | None = None
        self._headers: dict[str, str] | None = None
        if self.is_remote:
            self.base_url = settings.endpoint.rstrip("/")

    @property
    def is_remote(self) -> bool:
        return bool(self.settings.endpoint)

    @property
    def replicas(self) -> int:
        """Server processes of the local stand-in (1 here; the k8s adapter has more)."""
        return 1

    @property
    def processes(self) -> list[ManagedProcess]:
        """The local stand-in's live processes (empty for remote or stopped targets)."""
        return list(self._standin.processes) if self._standin else []

    # -- lifetime ---------------------------------------------------------------------
    async def start(self) -> None:
        if self.is_remote:
            self._access = open_remote(self.name, self.settings)
            self._headers = None
            timeout = self.settings.ready_timeout_s or self.context.ready_timeout_s
            await check_remote_ready(self.name, self._access, self.settings.health_path, timeout_s=timeout)
            return
        if self._standin is not None:
            return
        standin = GunicornStandIn(self.name, self.settings, self.context, replicas=self.replicas)
        self.base_url = await standin.start()
        self._standin = standin

    async def stop(self) -> None:
        standin, self._standin = self._standin, None
        if standin is not None:
            await standin.stop()

    # -- requests ---------------------------------------------------------------------
    def _request_headers(self) -> dict[str, str]:
        if self._headers is None:
            headers = {"Content-Type": "application/json"}
            if self.is_remote:
                if self._access is None:  # encode() before start(): read the env now
                    self._access = open_remote(self.name, self.settings)
                headers.update(self._access.headers)
            self._headers = headers
        return self._headers

    def encode(self, image: np.ndarray) -> Request:
        body = dumps_compact({"instances": [wire_instance(image)]})
        return Request("POST", self.settings.path, body, self._request_headers())

    def decode(self, status: int, body: bytes) -> int:
        return decode_predictions(status, body)

    # -- description and deployment ---------------------------------------------------
    def describe(self) -> dict[str, Any]:
        facts = super().describe()
        facts.update(
            model_loading=self.settings.model_loading,
            workers=self.settings.workers,
            replicas=self.replicas,
            server="gunicorn (buffering sync workers) + Flask, TorchScript model",
        )
        facts.update(public_remote_settings(self.settings))
        return facts

    def _manifest_values(self) -> dict[str, object]:
        return {
            "target": self.name,
            "image": self.settings.image,
            "model_loading": self.settings.model_loading,
            "workers": self.settings.workers,
            "torch_threads": self.settings.torch_threads,
            "worker_class": WORKER_CLASS,
        }

    def _artifacts_rel(self) -> str:
        path = Path(self.context.artifacts_dir)
        try:
            return str(path.resolve().relative_to(Path.cwd().resolve()))
        except ValueError:
            return "artifacts/model"

    def manifests(self) -> dict[str, str]:
        """Dockerfile, systemd unit running gunicorn on loopback, nginx reverse proxy."""
        base = self._manifest_values()
        unit = f"servebench-{self.name}.service"
        return {
            "Dockerfile": render(
                "Dockerfile.flask",
                {
                    **base,
                    "torch_version": TORCH_VERSION,
                    "gunicorn_version": GUNICORN_VERSION,
                    "artifacts_rel": self._artifacts_rel(),
                },
            ),
            unit: render(
                "linserv-gunicorn.service",
                {
                    **{k: base[k] for k in ("target", "model_loading", "workers", "torch_threads", "worker_class")},
                    "unit_name": unit,
                    "artifacts_rel": self._artifacts_rel(),
                    "app_port": self.settings.app_port,
                },
            ),
            f"nginx-{self.name}.conf": render(
                "linserv-nginx.conf",
                {
                    "target": self.name,
                    "server_name": self.settings.server_name,
                    "app_port": self.settings.app_port,
                    "max_instances": self.settings.max_instances,
                    "max_body_mb": 4,
                },
            ),
        }

