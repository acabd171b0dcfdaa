"""Renders a ``kserve`` target's InferenceService, custom predictor Dockerfile and Istio policy; spells its
cluster host.

Why templates plus JSON-encoded values: the YAML files in ``targets/templates/kserve/``
carry the comments a user needs next to ``kubectl apply``, and every value is inserted as
a JSON scalar/list/map (valid YAML flow syntax), so a name or URI can never break the
document's structure.  The result is validated in the tests against KServe's own
InferenceService CRD schema.

:func:`render_inference_only_policy` renders the Istio AuthorizationPolicy that denies the
model repository extension (load/unload) on the predictor pods: on a cluster the mesh
protects those endpoints, as the stand-in's own guard does locally
(:mod:`targets.kserve.server.guards`).
"""

from __future__ import annotations

import json
from importlib import metadata
from typing import Any

from ground.tables import ConfigError
from targets.cluster_endpoint import CLUSTER_DOMAIN
from targets.kserve.settings import KServeSettings
from targets.manifests import dns_label, render

__all__ = [
    "DENIED_PATHS",
    "RAW_DEPLOYMENT_ANNOTATION",
    "kserve_cluster_host",
    "render_inference_only_policy",
    "render_kserve_manifests",
]

RAW_DEPLOYMENT_ANNOTATION = {"serving.kserve.io/deploymentMode": "RawDeployment"}

#: Istio path patterns (exact, ``prefix*`` or ``*suffix``: the forms Istio matches) of the
#: model repository extension in every spelling, and TF Serving's gRPC config reload.
DENIED_PATHS = (
    "/v2/repository/*",
    "*/load",
    "*/unload",
    "*:load",
    "*:unload",
    "/tensorflow.serving.ModelService/HandleReloadConfigRequest",
)


def kserve_cluster_host(model_name: str, namespace: str, raw_deployment: bool) -> str:
    """The cluster-local host of an InferenceService: the one spelling (the load Job's, the page's).

    Serverless (Knative): ``<name>.<ns>.svc.cluster.local``, served by Knative's local
    gateway (the address KServe reports in ``status.address.url``); RawDeployment: the
    predictor Service ``<name>-predictor.<ns>.svc.cluster.local`` (port 80 to the
    container's 8080).
    """
    name = f"{model_name}-predictor" if raw_deployment else model_name
    return f"{name}.{namespace}.svc.{CLUSTER_DOMAIN}"


def _version(dist: str, fallback: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return fallback


#: The predictor container's ports: REST, and gRPC for protocol grpc-v2.
HTTP_PORT, GRPC_PORT = 8080, 8081


def _ports_and_readiness(s: KServeSettings) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The container's ``ports`` and ``readinessProbe``: gRPC's port (``h2c``) exposed for grpc-v2.

    Knative (the default, serverless mode) routes one port per container, so a serverless
    grpc-v2 predictor declares ``h2c`` alone and is checked by a TCP probe of it; a
    RawDeployment declares both and keeps the REST readiness check.
    """
    http = {"containerPort": HTTP_PORT, "protocol": "TCP"}
    grpc = {"name": "h2c", "containerPort": GRPC_PORT, "protocol": "TCP"}
    rest_ready = {
        "httpGet": {"path": "/v2/health/ready", "port": HTTP_PORT},
        "periodSeconds": 5,
        "failureThreshold": 60,
    }
    if s.protocol != "grpc-v2":
        return [http], rest_ready
    if s.raw_deployment:
        return [{"name": "http1", **http}, grpc], rest_ready  # two ports: each named
    return [grpc], {"tcpSocket": {"port": GRPC_PORT}, "periodSeconds": 5, "failureThreshold": 60}


def render_kserve_manifests(target: str, s: KServeSettings) -> dict[str, str]:
    """File name -> text: ``inferenceservice.yaml`` (+ ``Dockerfile.kserve-predictor``).

    KServe's tensorflow runtime is TF Serving, which speaks V1 only; a ``v2`` target must
    use the custom container (our predictor answers both), else this raises a
    :class:`ConfigError` naming the key rather than render a service that cannot deploy.
    """
    j = json.dumps
    common = {
        "target": target,
        "target_label": j(dns_label(target)),
        "name": j(s.model_name),
        "namespace": j(s.namespace),
        "annotations": j(RAW_DEPLOYMENT_ANNOTATION if s.raw_deployment else {}),
        "replicas": s.workers,
        "storage_uri": j(s.storage_uri),
        "cpu": j(s.cpu),
        "memory": j(s.memory),
    }
    if not s.custom_container and not s.serves_mnist:
        raise ConfigError(
            f"targets.{target}.model",
            f"KServe's tensorflow runtime cannot serve the tabular model {s.model!r} (weights.npz); "
            "set custom_container = true to deploy servebench's predictor, with storage_uri "
            f"where artifacts/{s.model}/ is copied",
        )
    if not s.custom_container:
        comments = {"plain_name": s.model_name, "plain_namespace": s.namespace}
        if s.protocol != "v1":
            raise ConfigError(
                f"targets.{target}.protocol",
                "KServe's tensorflow runtime (TF Serving) speaks V1 only; "
                "set custom_container = true to deploy a V2 predictor",
            )
        isvc = render("kserve/inferenceservice-tensorflow.yaml", {**common, **comments, "protocol": j(s.protocol)})
        return {"inferenceservice.yaml": isvc}
    # One server process per pod: replicas (minReplicas) give the parallelism on a cluster.
    args = [
        "--model-dir",
        "/mnt/models",
        "--model-name",
        s.model_name,
        "--host",
        "0.0.0.0",
        "--http-port",
        "8080",
        "--workers",
        "1",
    ]
    if not s.serves_mnist:  # /mnt/models then holds artifacts/<model>/ (weights.npz)
        args += ["--model-kind", "tabular"]
    ports, readiness = _ports_and_readiness(s)
    if s.protocol == "grpc-v2":
        args += ["--grpc-port", str(GRPC_PORT)]
    isvc = render(
        "kserve/inferenceservice-custom.yaml",
        {
            **common,
            "plain_name": s.model_name,
            "image": j(s.image),
            "args": j(args),
            "ports": j(ports),
            "readiness": j(readiness),
        },
    )
    dockerfile = render(
        "kserve/Dockerfile.kserve-predictor",
        {
            "target": target,
            "image": s.image,
            "model_name": s.model_name,
            "workers": 1,
            "tensorflow_version": _version("tensorflow-cpu", "2.21.0"),
            "kserve_version": _version("kserve", "0.21.0"),
        },
    )
    return {"inferenceservice.yaml": isvc, "Dockerfile.kserve-predictor": dockerfile}


def render_inference_only_policy(target: str, s: KServeSettings) -> str:
    """``authorizationpolicy.yaml``: Istio DENY of :data:`DENIED_PATHS` on the predictor pods.

    The pods are selected by the label KServe puts on every pod of an InferenceService
    (``serving.kserve.io/inferenceservice: <name>``), in the service's namespace.
    """
    j = json.dumps
    return render(
        "kserve/authorizationpolicy.yaml",
        {
            "target": target,
            "target_label": j(dns_label(target)),
            "plain_name": s.model_name,
            "name": j(s.model_name),
            "namespace": j(s.namespace),
            "policy_name": j(f"{s.model_name}-inference-only"),
            "denied_paths": j(list(DENIED_PATHS)),
        },
    )
