"""Adapter ``flask``: starts the study's bare-metal Flask app under gunicorn (target ``greene-linserv``),
renders its files.

Runs in servebench's process; the app itself is :mod:`targets.flask.server`.

Local stand-in: ``targets.flask.server.app`` under gunicorn with ``workers`` buffering sync workers
(:class:`targets.flask.server.worker.BufferingSyncWorker`: each request is read in full, under
``header_timeout_s`` / ``body_timeout_s`` deadlines, before the app runs it) on a free
loopback port.  Remote: any deployment of the same app (``endpoint``), e.g. the systemd +
nginx setup that :meth:`FlaskTarget.manifests` renders.

``model_loading`` defaults to ``"per-request"``: the study's linserv app loaded the PyTorch
model on every request (its insights, section 7), and that cost is part of what its
Table 3 measured.  ``"startup"`` loads it once per worker.

The ``k8s`` adapter subclasses :class:`FlaskTarget`: its stand-in is several of these
processes sharing one port.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from models.training_manifests import check_slurm_settings, slurm_training_script
from targets.base import DecodeError, Request
from targets.local_server import LocalServerSettings, LocalServerTarget, SpawnSpec
from targets.manifests import render
from targets.process import Probe, http_probe
from targets.wire import instances_body

__all__ = ["AppSettings", "FlaskSettings", "FlaskTarget", "decode_predictions"]

TORCH_VERSION = "2.13.0"
#: gunicorn's worker class for the stand-ins and the rendered manifests (module docstring).
WORKER_CLASS = "targets.flask.server.worker.BufferingSyncWorker"
#: The gunicorn the rendered Dockerfile installs: the worker uses gunicorn's sync-worker
#: internals (RequestParser, handle_request) and is tested with this version.
GUNICORN_VERSION = "27.0.1"


@dataclass(frozen=True)
class AppSettings(LocalServerSettings):
    """Keys shared by the adapters that serve ``targets.flask.server.app`` (``flask``, ``k8s``).

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


@dataclass(frozen=True)
class FlaskSettings(AppSettings):
    """``[targets.NAME]`` keys of a ``flask`` target (plus the remote-mode keys).

    ``app_port`` and ``server_name`` only shape the rendered systemd unit / nginx config.
    ``hpc_dir`` and the ``slurm_*`` keys only shape the rendered Slurm training script
    (:mod:`models.training_manifests`): the project's folder on the HPC cluster (shell
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


class FlaskTarget(LocalServerTarget):
    """The Flask app under gunicorn (local) or an existing deployment of it (remote).

    Local stand-in: ``replicas`` independent gunicorn masters of ``targets.flask.server.app:app``
    on one port.  With one replica this is the plain Flask stand-in; with more (the ``k8s``
    adapter), each binds the same loopback port with ``--reuse-port`` (SO_REUSEPORT) and
    the kernel spreads incoming connections over them, as kube-proxy spreads them over pods.
    """

    adapter: ClassVar[str] = "flask"
    Settings: ClassVar[type] = FlaskSettings
    settings: FlaskSettings
    #: The app converts a photo itself (multipart field ``file``): the digit page sends it as is.
    page_protocol = "multipart"

    @property
    def health_path(self) -> str:
        return self.settings.health_path

    @property
    def replicas(self) -> int:
        """Server processes of the local stand-in (1 here; the k8s adapter has more)."""
        return 1

    # -- the stand-in ---------------------------------------------------------------------
    def command(self, host: str, port: int) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"{host}:{port}",
            "--workers",
            str(self.settings.workers),
            "--worker-class",
            WORKER_CLASS,
            "--no-control-socket",
            "--timeout",
            "120",
            "--graceful-timeout",
            "5",
            "--log-level",
            "info",
        ]
        if self.replicas > 1:
            argv.append("--reuse-port")
        return [*argv, "targets.flask.server.app:app"]

    def environment(self) -> dict[str, str]:
        threads = str(self.settings.torch_threads)
        return {
            "SERVEBENCH_ARTIFACTS_DIR": str(Path(self.context.artifacts_dir).resolve()),
            "SERVEBENCH_MODEL_LOADING": self.settings.model_loading,
            "SERVEBENCH_MAX_INSTANCES": str(self.settings.max_instances),
            "SERVEBENCH_TORCH_THREADS": threads,
            "SERVEBENCH_HEADER_TIMEOUT_S": repr(float(self.settings.header_timeout_s)),
            "SERVEBENCH_BODY_TIMEOUT_S": repr(float(self.settings.body_timeout_s)),
            "OMP_NUM_THREADS": threads,
        }

    def spawn_plan(self, host: str, port: int) -> list[SpawnSpec]:
        """One gunicorn master per replica; each names itself (``X-Replica``, /healthz)."""
        self.model_file("torchscript/model.pt", "TorchScript model")
        argv, env = self.command(host, port), self.environment()
        return [
            SpawnSpec(
                argv,
                {**env, "SERVEBENCH_REPLICA": f"{self.name}-{i}"},
                f"{self.name}-replica{i}" if self.replicas > 1 else self.name,
            )
            for i in range(self.replicas)
        ]

    def readiness_probe(self, url: str) -> Probe:
        """Ready once every replica has answered /healthz (a fresh connection per probe)."""
        probe = http_probe(url)
        if self.replicas == 1:
            return probe
        seen: set[str] = set()
        wanted = {f"{self.name}-{i}" for i in range(self.replicas)}

        async def check() -> tuple[bool, str]:
            ok, answer = await probe()
            if ok:
                try:
                    seen.add(str(json.loads(answer.split(" ", 2)[2])["replica"]))
                except (IndexError, ValueError, KeyError, TypeError):
                    return False, answer
            return ok and seen >= wanted, f"{answer} (replicas seen: {sorted(seen)})"

        return check

    # -- requests ---------------------------------------------------------------------
    def encode(self, image: np.ndarray) -> Request:
        return Request("POST", self.settings.path, instances_body(image), self.request_headers())

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

    def training_manifests(self, *, model_table: Mapping[str, Any], train_threads: int) -> dict[str, str]:
        """``slurm-train.sbatch``: the study trained this baseline as a batch job on an HPC cluster.

        Called by :func:`targets.manifests.training_manifests` (``bench manifests``); {} for
        a subclass whose settings are not :class:`FlaskSettings`.
        """
        if not isinstance(self.settings, FlaskSettings):
            return {}
        # The artifacts folder as the systemd unit beside the script names it.
        return {
            "slurm-train.sbatch": slurm_training_script(
                self.name, self.settings, artifacts_rel=self._artifacts_rel(), train_threads=train_threads
            )
        }
