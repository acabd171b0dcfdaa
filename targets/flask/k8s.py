"""Adapter ``k8s``: the Flask app as a Kubernetes Deployment behind a LoadBalancer Service (``k8s-ibm``).

Runs in servebench's process (a :class:`~targets.flask.target.FlaskTarget` with replicas).

Local stand-in: ``replicas`` independent gunicorn processes of the same Flask app, each
binding ONE loopback port with ``--reuse-port``.  Linux's SO_REUSEPORT hashes every new
connection to one of the listening sockets, which is how kube-proxy spreads connections
over pods: each "pod" has its own process, its own model copy and its own queue.  Each
replica names itself in the ``X-Replica`` response header so spreading can be counted.

Remote: the Service's external address (``endpoint``).  :meth:`K8sTarget.manifests` renders
the Dockerfile, the Deployment (replicas, resources, readiness probe on /healthz,
``SERVEBENCH_MODEL_LOADING``) and the Service of type LoadBalancer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from models.training_manifests import k8s_training_manifests
from targets.base import TargetContext
from targets.cluster_endpoint import CLUSTER_DOMAIN, ClusterEndpoint
from targets.flask.target import GUNICORN_VERSION, TORCH_VERSION, WORKER_CLASS, AppSettings, FlaskTarget
from targets.manifests import dns_label, render

__all__ = ["K8sSettings", "K8sTarget"]

_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")


@dataclass(frozen=True)
class K8sSettings(AppSettings):
    """``[targets.NAME]`` keys of a ``k8s`` target (plus the remote-mode keys).

    ``replicas``: pods of the Deployment = server processes of the local stand-in.
    ``namespace``, ``service_port`` and the ``cpu_*``/``memory_*`` quantities only shape
    the rendered manifests (the stand-in's CPU budget is the run's stand-in CPU set).
    ``model_claim``: the PersistentVolumeClaim the training Job writes the model to and the
    Deployment's pods copy it from; ``train_image``: an image with servebench installed,
    which runs ``bench train`` in that Job (:mod:`models.training_manifests`).
    """

    replicas: int = 2
    namespace: str = "default"
    service_port: int = 80
    cpu_request: str = "500m"
    cpu_limit: str = "1"
    memory_request: str = "512Mi"
    memory_limit: str = "1Gi"
    model_claim: str = "servebench-trained-model"
    train_image: str = "servebench:latest"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.replicas <= 64:
            raise ValueError(f"replicas must be in 1..64, got {self.replicas}")
        if not 0 < self.service_port < 65536:
            raise ValueError(f"service_port must be a TCP port, got {self.service_port}")
        dns_label(self.namespace)
        if dns_label(self.model_claim) != self.model_claim:
            raise ValueError(f"model_claim must be a lowercase DNS label (a PVC name), got {self.model_claim!r}")
        if not self.train_image or any(c.isspace() or c in "\"'`$" for c in self.train_image):
            raise ValueError(f"train_image must be an image reference, got {self.train_image!r}")
        for key in ("cpu_request", "cpu_limit", "memory_request", "memory_limit"):
            if not _QUANTITY.match(getattr(self, key)):
                raise ValueError(f"{key} must be a Kubernetes quantity like 500m or 1Gi, got {getattr(self, key)!r}")


class K8sTarget(FlaskTarget):
    """``replicas`` gunicorn processes sharing one port (local) or a LoadBalancer (remote)."""

    adapter: ClassVar[str] = "k8s"
    Settings: ClassVar[type] = K8sSettings
    settings: K8sSettings

    def __init__(self, name: str, settings: K8sSettings, context: TargetContext) -> None:
        super().__init__(name, settings, context)

    @property
    def replicas(self) -> int:
        return self.settings.replicas

    def describe(self) -> dict[str, Any]:
        facts = super().describe()
        facts["server"] = (
            f"{self.replicas} gunicorn processes (buffering sync workers) sharing one port via SO_REUSEPORT, "
            "Flask, TorchScript model"
            if not self.is_remote
            else "Kubernetes Deployment behind a LoadBalancer Service"
        )
        return facts

    def manifests(self) -> dict[str, str]:
        """Dockerfile, Deployment and Service (type LoadBalancer)."""
        s = self.settings
        name = dns_label(self.name)
        common = {"target": self.name, "name": name, "namespace": s.namespace}
        return {
            "Dockerfile": render(
                "Dockerfile.flask",
                {
                    "target": self.name,
                    "image": s.image,
                    "model_loading": s.model_loading,
                    "workers": s.workers,
                    "torch_threads": s.torch_threads,
                    "torch_version": TORCH_VERSION,
                    "gunicorn_version": GUNICORN_VERSION,
                    "worker_class": WORKER_CLASS,
                    "artifacts_rel": self._artifacts_rel(),
                },
            ),
            "deployment.yaml": render(
                "k8s-deployment.yaml",
                {
                    **common,
                    "replicas": s.replicas,
                    "image": s.image,
                    "model_loading": s.model_loading,
                    "workers": s.workers,
                    "torch_threads": s.torch_threads,
                    "cpu_request": s.cpu_request,
                    "cpu_limit": s.cpu_limit,
                    "memory_request": s.memory_request,
                    "memory_limit": s.memory_limit,
                    "health_path": s.health_path,
                    "model_claim": s.model_claim,
                },
            ),
            "service.yaml": render("k8s-service.yaml", {**common, "service_port": s.service_port}),
        }

    def training_manifests(self, *, model_table: Mapping[str, Any], train_threads: int) -> dict[str, str]:
        """``train-configmap.yaml``, ``model-pvc.yaml``, ``train-job.yaml``: training on the cluster.

        Called by :func:`targets.manifests.training_manifests` (``bench manifests``).
        """
        return k8s_training_manifests(self.name, self.settings, model_table=model_table, train_threads=train_threads)

    def cluster_endpoint(self) -> ClusterEndpoint:
        """The Service's cluster DNS name and port: kube-proxy's ClusterIP path, not the LoadBalancer."""
        s = self.settings
        name = dns_label(self.name)
        port = "" if s.service_port == 80 else f":{s.service_port}"
        return ClusterEndpoint(
            f"http://{name}.{s.namespace}.svc.{CLUSTER_DOMAIN}{port}",
            how=f"the Service {name!r} in namespace {s.namespace!r} by its cluster DNS name "
            "(ClusterIP through kube-proxy, not the LoadBalancer)",
        )
