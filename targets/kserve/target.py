"""The ``kserve`` adapter (targets ``kubeflow-gcp``, ``kubeflow-ibm``): starts the KServe stand-in, speaks V1/V2 to it.

Runs in servebench's process; the stand-in's own code is :mod:`targets.kserve.server`.

In the study these were KServe InferenceServices on Kubeflow serving the TensorFlow
SavedModel.  Locally the stand-in is the real ``kserve`` ModelServer (the KServe data
plane) with a predictor over the same SavedModel export (:mod:`targets.kserve.server.main`),
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

from loadgen.inference.v2_json import InputSet, OutputSet, decode_response, encode_request
from targets.base import DecodeError, Request, TargetContext, TargetError
from targets.cluster_endpoint import ClusterEndpoint
from targets.kserve.settings import KServeSettings
from targets.local_server import LocalServerTarget
from targets.process import Probe, http_probe, log_tail
from targets.wire import argmax_logits, decode_v1_logits, dumps_compact, instances_body, wire_instance

# KServeSettings is defined in targets.kserve.settings (shared with the manifest renderer)
# and stays importable from here, where adapters are looked up.
__all__ = ["KServeSettings", "KServeTarget", "find_savedmodel"]

#: Log line uvicorn prints once per serving process when it is ready to accept.
_WORKER_READY = "Application startup complete"


def find_savedmodel(artifacts_dir: str | os.PathLike[str]) -> Path:
    """The SavedModel version folder under ``<artifacts>/savedmodel/`` (TF-Serving layout).

    ``savedmodel/<name>/<version>/saved_model.pb``: the name recorded in ``model.json``
    wins, else the only model folder; the highest version is served, as TF Serving does.
    """
    from targets.kserve.server.savedmodel import resolve_savedmodel_dir

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


class KServeTarget(LocalServerTarget):
    """KServe ModelServer stand-in (local) or an InferenceService endpoint (remote)."""

    adapter = "kserve"
    Settings = KServeSettings

    def __init__(self, name: str, settings: KServeSettings, context: TargetContext) -> None:
        super().__init__(name, settings, context)
        self.settings: KServeSettings = settings
        self.savedmodel_dir: Path | None = None
        s = settings
        self._path = f"/v1/models/{s.model_name}:predict" if s.protocol == "v1" else f"/v2/models/{s.model_name}/infer"

    @property
    def health_path(self) -> str:  # type: ignore[override]
        s = self.settings
        return f"/v1/models/{s.model_name}" if s.protocol == "v1" else "/v2/health/ready"

    @property
    def page_protocol(self) -> str:
        """The digit page builds KServe V1 or V2 bodies itself, like ``encode``."""
        return "kserve-v1" if self.settings.protocol == "v1" else "kserve-v2"

    # -- the stand-in -------------------------------------------------------------------
    def command(self, host: str, port: int) -> list[str]:
        self.savedmodel_dir = find_savedmodel(self.context.artifacts_dir)  # fails before any spawn
        cpus = self.cpus
        tf_threads = self.settings.tf_threads or max(1, len(cpus) or len(os.sched_getaffinity(0)))
        return [
            sys.executable,
            "-m",
            "targets.kserve.server.main",
            "--model-dir",
            str(self.savedmodel_dir),
            "--model-name",
            self.settings.model_name,
            "--host",
            host,
            "--http-port",
            str(port),
            "--workers",
            str(self.settings.workers),
            "--tf-threads",
            str(tf_threads),
        ]

    def environment(self) -> dict[str, str]:
        return {"TF_CPP_MIN_LOG_LEVEL": "2"}

    def readiness_probe(self, url: str) -> Probe:
        """Ready when the health URL answers AND every worker logged its start-up.

        With several workers the shared socket answers as soon as ONE is up; waiting for
        every worker keeps the first seconds of a run from measuring fewer.
        """
        http_ready = http_probe(url)
        workers = self.settings.workers

        async def all_workers_ready() -> tuple[bool, str]:
            ok, answer = await http_ready()
            if not ok:
                return ok, answer
            started = _workers_started(self.log_path)
            if started < workers:
                return False, f"{answer} ({started} of {workers} workers started)"
            return True, answer

        return all_workers_ready

    # -- requests ---------------------------------------------------------------------
    def encode(self, image: np.ndarray) -> Request:
        if self.settings.protocol == "v1":
            body = instances_body(image)
        else:
            flat = [value for row in wire_instance(image) for value in row]
            body = dumps_compact(
                {"inputs": [{"name": "pixels", "shape": [1, 28, 28], "datatype": "FP32", "data": flat}]}
            )
        return Request(method="POST", path=self._path, body=body, headers=self.request_headers())

    def decode(self, status: int, body: bytes) -> int:
        if self.settings.protocol == "v1":
            return decode_v1_logits(status, body)
        if not 200 <= status < 300:
            raise DecodeError(f"HTTP {status} is not a prediction")
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise DecodeError(f"response is not JSON: {exc}") from None
        try:
            (output,) = doc["outputs"]
            if list(output["shape"]) != [1, 10]:
                raise DecodeError(f"expected an output of shape [1, 10], got {output['shape']}")
            logits = output["data"]
            if len(logits) == 1 and isinstance(logits[0], list):
                (logits,) = logits
        except DecodeError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise DecodeError(f"unexpected v2 response shape: {exc!r}") from None
        return argmax_logits(logits)

    # -- any model's named tensors (loadgen.inference.tensor_samples.TensorCodec) ----------
    # Only protocol "v2" (JSON) has a tensor codec here; another V2 protocol (binary tensors,
    # gRPC) adds its branch to these three methods, or its requests are refused by name.
    def metadata_request(self) -> Request | None:
        """``GET /v2/models/NAME`` (None for V1, which has no V2 metadata)."""
        if self.settings.protocol != "v2":
            return None
        headers = {k: v for k, v in self.request_headers().items() if k.lower() != "content-type"}
        return Request(method="GET", path=f"/v2/models/{self.settings.model_name}", body=b"", headers=headers)

    def tensor_request(self, inputs: InputSet) -> Request:
        """One input set as a V2 infer request (JSON)."""
        if self.settings.protocol != "v2":
            raise TargetError(
                f"target {self.name!r} speaks {self.settings.protocol}, for which servebench has no tensor "
                'encoder: set protocol = "v2", or give a JSON-lines file of request bodies'
            )
        body = encode_request(self.settings.model_name, inputs)
        return Request(method="POST", path=self._path, body=body, headers=self.request_headers())

    def decode_outputs(self, status: int, body: bytes) -> OutputSet:
        """A V2 JSON answer -> its output set (ValueError naming what is wrong)."""
        if not 200 <= status < 300:
            raise DecodeError(f"HTTP {status} is not an answer")
        return decode_response(body)

    # -- deployment -------------------------------------------------------------------
    def manifests(self) -> dict[str, str]:
        """The InferenceService (+ predictor Dockerfile) and the Istio policy that keeps
        the predictor to the inference protocol (no model load/unload over HTTP)."""
        from targets.kserve.manifests import render_inference_only_policy, render_kserve_manifests

        files = render_kserve_manifests(self.name, self.settings)
        files["authorizationpolicy.yaml"] = render_inference_only_policy(self.name, self.settings)
        return files

    def cluster_endpoint(self) -> ClusterEndpoint:
        """The InferenceService's cluster-local address (no Host header: the URL's host routes).

        The Istio ingress route (what an outside client takes) is documented as an
        alternative in docs/loadgen-in-cluster.md.
        """
        from targets.kserve.manifests import kserve_cluster_host

        s = self.settings
        host = kserve_cluster_host(s.model_name, s.namespace, s.raw_deployment)
        how = (
            "the predictor Service of the RawDeployment InferenceService"
            if s.raw_deployment
            else "the InferenceService's cluster-local address (Knative local gateway)"
        )
        return ClusterEndpoint(f"http://{host}", how=f"{how} {s.model_name!r} in namespace {s.namespace!r}")

    def describe(self) -> dict[str, Any]:
        facts = super().describe()
        s = self.settings
        facts.update(protocol=s.protocol, model_name=s.model_name, path=self._path)
        if not self.is_remote:
            facts.update(workers=s.workers, cpus=list(self.cpus))
            if self.savedmodel_dir is not None:
                facts["savedmodel_dir"] = str(self.savedmodel_dir)
        return facts


def _workers_started(log_path: Path | None) -> int:
    """How many serving processes logged readiness since the last spawn marker."""
    text = log_tail(log_path, 400)
    marker = text.rfind("--- servebench spawn:")
    return text[max(marker, 0) :].count(_WORKER_READY)
