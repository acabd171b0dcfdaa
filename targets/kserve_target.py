"""The ``kserve`` adapter: targets ``kubeflow-gcp`` and ``kubeflow-ibm``.

In the study these were KServe InferenceServices on Kubeflow serving the TensorFlow
SavedModel.  Locally the stand-in is the real ``kserve`` ModelServer (the KServe data
plane) with a predictor over the same SavedModel export (:mod:`targets.kserve_server`),
bound to loopback, ``workers`` processes, speaking V1 or V2 REST.  With ``endpoint`` set,
nothing is started and requests go to a real InferenceService (Istio ``host_header``,
credentials from environment variables named in the config, see :mod:`targets.remote`).

Why the answer is logits and the argmax is taken here: that is what KServe's tensorflow
runtime (TF Serving) returns for this model, so a local run and a cluster run are
decoded by the same code.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from targets.base import DecodeError, Request, Target, TargetContext, TargetError
from targets.kserve_settings import KServeSettings
from targets.remote import (
    RemoteAccess,
    check_remote_ready,
    open_remote,
    public_remote_settings,
)

# KServeSettings is defined in targets.kserve_settings (shared with the manifest renderer)
# and stays importable from here, where adapters are looked up.
__all__ = ["KServeSettings", "KServeTarget", "find_savedmodel"]

#: Log line uvicorn prints once per serving process when it is ready to accept.
_WORKER_READY = "Application startup complete"


def find_savedmodel(artifacts_dir: str | os.PathLike[str]) -> Path:
    """The SavedModel version folder under ``<artifacts>/savedmodel/`` (TF-Serving layout).

    ``savedmodel/<name>/<version>/saved_model.pb``: the name recorded in ``model.json``
    wins, else the only model folder; the highest version is served, as TF Serving does.
    """
    from targets.savedmodel import resolve_savedmodel_dir

    base = Path(artifacts_dir) / "savedmodel"
    hint = "train and export the model first: python -m bench train"
    if not base.is_dir():
        raise TargetError(f"no SavedModel export at {base} ({hint})")
    name = ""
    try:
        name = str(json.loads((Path(artifacts_dir) / "model.json").read_text()).get("name", ""))
    except (OSError, ValueError, AttributeError):
        pass
    folders = sorted(p.name for p in base.iterdir() if p.is_dir())
    if not name or name not in folders:
        if len(folders) != 1:
            raise TargetError(f"cannot tell which SavedModel to serve in {base}: found {folders or 'none'} ({hint})")
        name = folders[0]
    try:
        return resolve_savedmodel_dir(base / name)
    except FileNotFoundError as exc:
        raise TargetError(f"{exc} ({hint})") from None


class KServeTarget(Target):
    """KServe ModelServer stand-in (local) or an InferenceService endpoint (remote)."""

    adapter = "kserve"
    Settings = KServeSettings

    def __init__(self, name: str, settings: KServeSettings, context: TargetContext) -> None:
        super().__init__(name, settings, context)
        self.settings: KServeSettings = settings
        self._process: Any = None  # targets.process.ManagedProcess while running
        self._access: RemoteAccess | None = None
        self.log_path: Path | None = None
        self.savedmodel_dir: Path | None = None
        s = settings
        self._path = (
            f"/v1/models/{s.model_name}:predict" if s.protocol == "v1" else f"/v2/models/{s.model_name}/infer"
        )
        self._health_path = f"/v1/models/{s.model_name}" if s.protocol == "v1" else "/v2/health/ready"

    # -- lifetime ---------------------------------------------------------------------
    @property
    def is_remote(self) -> bool:
        return self.settings.is_remote

    @property
    def processes(self) -> list[Any]:
        """The stand-in's ManagedProcess (one process group: server + its workers)."""
        return [self._process] if self._process is not None else []

    @property
    def cpus(self) -> tuple[int, ...]:
        return tuple(self.settings.cpus) or tuple(self.context.cpus)

    def _timeout(self) -> float:
        return self.settings.ready_timeout_s or float(self.context.ready_timeout_s)

    async def start(self) -> None:
        if self._process is not None or self._access is not None:
            return
        if self.is_remote:
            access = open_remote(self.name, self.settings)
            await check_remote_ready(self.name, access, self._health_path, timeout_s=self._timeout())
            self._access = access
            self.base_url = access.base_url
            return
        await self._start_local()

    async def _start_local(self) -> None:
        from targets.process import free_port, http_probe, spawn, wait_ready

        self.savedmodel_dir = find_savedmodel(self.context.artifacts_dir)
        host = self.context.bind_host
        port = free_port(host)
        cpus = self.cpus
        tf_threads = self.settings.tf_threads or max(1, len(cpus) or len(os.sched_getaffinity(0)))
        argv = [
            sys.executable, "-m", "targets.kserve_server",
            "--model-dir", str(self.savedmodel_dir),
            "--model-name", self.settings.model_name,
            "--host", host,
            "--http-port", str(port),
            "--workers", str(self.settings.workers),
            "--tf-threads", str(tf_threads),
        ]  # fmt: skip
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
        self.log_path = Path(self.context.log_dir) / f"{self.name}.log"
        url_host = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{url_host}:{port}"
        self._process = spawn(argv, env=env, log_path=self.log_path, cpus=cpus)
        http_ready = http_probe(self.base_url + self._health_path)
        workers, log_path = self.settings.workers, self.log_path

        async def all_workers_ready() -> tuple[bool, str]:
            # With several workers the shared socket answers as soon as ONE is up; wait
            # for every worker, or the first seconds of a run would measure fewer.
            ok, answer = await http_ready()
            if not ok:
                return ok, answer
            started = _workers_started(log_path)
            if started < workers:
                return False, f"{answer} ({started} of {workers} workers started)"
            return True, answer

        try:
            await wait_ready(
                all_workers_ready,
                timeout=self._timeout(),
                process=self._process,
                what=f"target {self.name!r} (kserve stand-in) at {self.base_url}",
            )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        process, self._process = self._process, None
        self._access = None
        if process is not None:
            await process.astop()

    # -- requests ---------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.is_remote:
            if self._access is None:
                raise TargetError(f"target {self.name!r}: start() must run before encode() (it reads the credentials)")
            headers.update(self._access.headers)
        return headers

    def encode(self, image: np.ndarray) -> Request:
        from targets.wire import dumps_compact, wire_instance

        instance = wire_instance(image)
        if self.settings.protocol == "v1":
            doc: dict[str, Any] = {"instances": [instance]}
        else:
            flat = [value for row in instance for value in row]
            doc = {"inputs": [{"name": "pixels", "shape": [1, 28, 28], "datatype": "FP32", "data": flat}]}
        return Request(method="POST", path=self._path, body=dumps_compact(doc), headers=self._headers())

    def decode(self, status: int, body: bytes) -> int:
        if not 200 <= status < 300:
            raise DecodeError(f"HTTP {status} is not a prediction")
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DecodeError(f"response is not JSON: {exc}") from None
        try:
            if self.settings.protocol == "v1":
                (logits,) = doc["predictions"]
            else:
                (output,) = doc["outputs"]
                if list(output["shape"]) != [1, 10]:
                    raise DecodeError(f"expected an output of shape [1, 10], got {output['shape']}")
                logits = output["data"]
                if len(logits) == 1 and isinstance(logits[0], list):
                    (logits,) = logits
        except DecodeError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise DecodeError(f"unexpected {self.settings.protocol} response shape: {exc!r}") from None
        if not isinstance(logits, list) or len(logits) != 10 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in logits
        ):
            raise DecodeError("expected 10 numeric logits for one image")
        return int(np.argmax(np.asarray(logits, dtype=np.float64)))

    # -- deployment -------------------------------------------------------------------
    def manifests(self) -> dict[str, str]:
        """The InferenceService (+ predictor Dockerfile) and the Istio policy that keeps
        the predictor to the inference protocol (no model load/unload over HTTP)."""
        from targets.manifests_kserve import render_inference_only_policy, render_kserve_manifests

        files = render_kserve_manifests(self.name, self.settings)
        files["authorizationpolicy.yaml"] = render_inference_only_policy(self.name, self.settings)
        return files

    def describe(self) -> dict[str, Any]:
        facts = super().describe()
        s = self.settings
        facts.update(protocol=s.protocol, model_name=s.model_name, path=self._path)
        if self.is_remote:
            facts.update(public_remote_settings(s))
        else:
            facts.update(workers=s.workers, cpus=list(self.cpus))
            if self.savedmodel_dir is not None:
                facts["savedmodel_dir"] = str(self.savedmodel_dir)
        return facts


def _workers_started(log_path: Path | None) -> int:
    """How many serving processes logged readiness since the last spawn marker."""
    from targets.process import log_tail

    text = log_tail(log_path, 400)
    marker = text.rfind("--- servebench spawn:")
    return text[max(marker, 0) :].count(_WORKER_READY)
