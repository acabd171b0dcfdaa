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

from loadgen.inference.v2_json import InputSet, OutputSet
from targets.base import DecodeError, Request, TargetContext, TargetError
from targets.cluster_endpoint import ClusterEndpoint
from targets.kserve.protocols import (
    TENSOR_PROTOCOLS,
    decode_answer,
    decode_tensors,
    encode_image,
    encode_tensors,
    infer_path,
)
from targets.kserve.protocols import metadata_json as protocol_metadata_json
from targets.kserve.protocols import metadata_request as protocol_metadata_request
from targets.kserve.readiness import grpc_model_ready_probe
from targets.kserve.settings import KServeSettings
from targets.local_server import LocalServerTarget
from targets.process import Probe, free_port, http_probe, log_tail
from targets.remote import RemoteAccess

# KServeSettings is defined in targets.kserve.settings (shared with the manifest renderer)
# and stays importable from here, where adapters are looked up.
__all__ = ["KServeSettings", "KServeTarget", "find_savedmodel", "find_tabular_model"]

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


def find_tabular_model(artifacts_dir: str | os.PathLike[str], name: str) -> Path:
    """``artifacts/<name>/`` (the MNIST folder's sibling) holding the tabular model's ``weights.npz``."""
    from models.tabular.artifacts import WEIGHTS_FILE, tabular_artifacts_dir

    folder = tabular_artifacts_dir(artifacts_dir, name)
    if not (folder / WEIGHTS_FILE).is_file():
        raise TargetError(f"no {WEIGHTS_FILE} in {folder} (train it first: python -m bench train --model {name})")
    return folder


class KServeTarget(LocalServerTarget):
    """KServe ModelServer stand-in (local) or an InferenceService endpoint (remote)."""

    adapter = "kserve"
    Settings = KServeSettings

    def __init__(self, name: str, settings: KServeSettings, context: TargetContext) -> None:
        super().__init__(name, settings, context)
        self.settings: KServeSettings = settings
        self.savedmodel_dir: Path | None = None
        self.tabular_dir: Path | None = None
        s = settings
        self._path = infer_path(s.protocol, s.model_name)
        self._grpc_port = 0  # the local stand-in's gRPC port (protocol grpc-v2), once chosen

    @property
    def health_path(self) -> str:
        s = self.settings
        return f"/v1/models/{s.model_name}" if s.protocol == "v1" else "/v2/health/ready"  # REST, also for grpc-v2

    @property
    def page_protocol(self) -> str | None:
        """The digit page builds KServe V1 or V2 JSON bodies itself; it cannot speak gRPC nor a tabular model."""
        protocol = self.settings.protocol
        if not self.settings.serves_mnist or protocol == "grpc-v2":
            return None
        return "kserve-v1" if protocol == "v1" else "kserve-v2"

    # -- the stand-in -------------------------------------------------------------------
    def command(self, host: str, port: int) -> list[str]:
        if self.settings.serves_mnist:
            self.savedmodel_dir = find_savedmodel(self.context.artifacts_dir)  # fails before any spawn
            model_args = ["--model-dir", str(self.savedmodel_dir)]
        else:
            self.tabular_dir = find_tabular_model(self.context.artifacts_dir, self.settings.model)
            model_args = ["--model-kind", "tabular", "--model-dir", str(self.tabular_dir)]
        cpus = self.cpus
        tf_threads = self.settings.tf_threads or max(1, len(cpus) or len(os.sched_getaffinity(0)))
        return [
            sys.executable,
            "-m",
            "targets.kserve.server.main",
            *model_args,
            "--model-name",
            self.settings.model_name,
            "--host",
            host,
            "--http-port",
            str(port),
            *self._grpc_args(host),
            "--workers",
            str(self.settings.workers),
            "--tf-threads",
            str(tf_threads),
        ]

    def _grpc_args(self, host: str) -> list[str]:
        """``--grpc-port N`` on a free port of ``host`` for protocol grpc-v2, else nothing."""
        if self.settings.protocol != "grpc-v2":
            return []
        self._grpc_port = free_port(host)
        return ["--grpc-port", str(self._grpc_port)]

    async def start(self) -> None:
        """Start (or reach) the server; for grpc-v2 the sweep's base URL is then its gRPC address."""
        await super().start()
        if self.settings.protocol == "grpc-v2" and not self.is_remote and self._grpc_port:
            host = self.context.bind_host
            self.base_url = f"grpc://{'[' + host + ']' if ':' in host else host}:{self._grpc_port}"

    def remote_readiness_probe(self, access: RemoteAccess) -> Probe | None:
        """A remote grpc-v2 endpoint is ready when gRPC ``ModelReady`` says so (with the access headers)."""
        if self.settings.protocol != "grpc-v2":
            return None
        from loadgen.engines.grpc_engine import grpc_target

        address, tls = grpc_target(access.base_url)
        return grpc_model_ready_probe(address, self.settings.model_name, tls=tls, metadata=access.headers)

    def environment(self) -> dict[str, str]:
        return {"TF_CPP_MIN_LOG_LEVEL": "2"}

    def readiness_probe(self, url: str) -> Probe:
        """Ready when the health URL answers AND every worker logged its start-up.

        With several workers the shared socket answers as soon as ONE is up; waiting for
        every worker keeps the first seconds of a run from measuring fewer.
        """
        http_ready = http_probe(url)
        workers = self.settings.workers

        grpc_ready = grpc_model_ready_probe(self._grpc_address(), self.settings.model_name) if self._grpc_port else None

        async def all_workers_ready() -> tuple[bool, str]:
            ok, answer = await http_ready()
            if not ok:
                return ok, answer
            if grpc_ready is not None:
                ok, grpc_answer = await grpc_ready()
                if not ok:
                    return ok, f"{answer}; gRPC: {grpc_answer}"
            started = _workers_started(self.log_path)
            if started < workers:
                return False, f"{answer} ({started} of {workers} workers started)"
            return True, answer

        return all_workers_ready

    def _grpc_address(self) -> str:
        host = self.context.bind_host
        return f"{'[' + host + ']' if ':' in host else host}:{self._grpc_port}"

    # -- requests ---------------------------------------------------------------------
    def _refuse_images(self) -> None:
        """A tabular stand-in has no MNIST wire format: say what to send instead."""
        if not self.settings.serves_mnist:
            raise TargetError(
                f"target {self.name!r} serves the tabular model {self.settings.model!r}, not MNIST images: "
                f"send it the samples of artifacts/{self.settings.model}/input-data.json (docs/own-model.md)"
            )

    def encode(self, image: np.ndarray) -> Request:
        self._refuse_images()
        return encode_image(self.settings.protocol, self.settings.model_name, image, self.request_headers())

    def decode(self, status: int, body: bytes) -> int:
        self._refuse_images()
        return decode_answer(self.settings.protocol, status, body)

    # -- any model's named tensors (loadgen.inference.tensor_samples.TensorCodec) ----------
    # Every V2 protocol sends them (JSON, binary tensors, gRPC); the metadata comes from
    # GET /v2/models/NAME or, over gRPC, the ModelMetadata RPC (metadata_json converts it).
    def metadata_request(self) -> Request | None:
        """The model's V2 metadata request (None for V1, which has no V2 metadata)."""
        if self.settings.protocol not in TENSOR_PROTOCOLS:
            return None
        return protocol_metadata_request(self.settings.protocol, self.settings.model_name, self.request_headers())

    def metadata_json(self, body: bytes) -> bytes:
        """The metadata answer as REST's JSON document (what ``parse_metadata`` reads)."""
        return protocol_metadata_json(self.settings.protocol, body)

    def tensor_request(self, inputs: InputSet) -> Request:
        """One input set as a V2 infer request (JSON, binary tensors or gRPC, by protocol)."""
        if self.settings.protocol not in TENSOR_PROTOCOLS:
            raise TargetError(
                f"target {self.name!r} speaks {self.settings.protocol}, which has no named tensors: set a V2 "
                'protocol ("v2", "v2-binary" or "grpc-v2"), or give a JSON-lines file of request bodies'
            )
        return encode_tensors(self.settings.protocol, self.settings.model_name, inputs, self.request_headers())

    def decode_outputs(self, status: int, body: bytes) -> OutputSet:
        """A V2 answer (JSON, binary tensors or gRPC) -> its output set (ValueError naming what is wrong)."""
        if not 200 <= status < 300:
            raise DecodeError(f"HTTP {status} is not an answer")
        return decode_tensors(self.settings.protocol, body)

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
        if not s.serves_mnist:
            facts["model"] = s.model
        if s.protocol == "grpc-v2":
            import grpc

            # meta.json's "engine" is the run's HTTP engine; this target's requests go through grpc.
            facts["client_engine"] = f"grpc (grpcio {grpc.__version__})"
        if not self.is_remote:
            facts.update(workers=s.workers, cpus=list(self.cpus))
            if self.savedmodel_dir is not None:
                facts["savedmodel_dir"] = str(self.savedmodel_dir)
            if self.tabular_dir is not None:
                facts["tabular_dir"] = str(self.tabular_dir)
        return facts


def _workers_started(log_path: Path | None) -> int:
    """How many serving processes logged readiness since the last spawn marker."""
    text = log_tail(log_path, 400)
    marker = text.rfind("--- servebench spawn:")
    return text[max(marker, 0) :].count(_WORKER_READY)
