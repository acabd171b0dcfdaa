"""The study's TFJob (Kubeflow training operator, ``kubeflow.org/v1``), rendered and checked offline.

Why rendered here and checked field by field: the TFJob CRD ships without a usable schema
for its replica specs, and no cluster is at hand, so :func:`check_tfjob` encodes the rules
the training operator enforces (replica types Chief/PS/Worker/Evaluator -- we allow the
three the study's kind of job uses --, integer replicas >= 1, a restart policy it knows,
and a container named ``tensorflow``: the operator finds the TF container by that name to
inject ``TF_CONFIG`` and read the exit code).  The embedded pod template is validated
against the Kubernetes 1.30 schema by wrapping it as a Pod (:func:`replica_pod`).

The job runs :mod:`models.pipeline.train_job` with the best parameters and exports onto
the PVC that the InferenceService's ``storageUri`` (``pvc://<claim>/savedmodel/<name>``)
reads, the study's "TFJob training -> KServe inference" hand-over.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["ALLOWED_REPLICA_TYPES", "RESTART_POLICIES", "TF_CONTAINER", "check_tfjob", "render_tfjob", "replica_pod"]

TF_CONTAINER = "tensorflow"
ALLOWED_REPLICA_TYPES = ("Chief", "PS", "Worker")
RESTART_POLICIES = ("Always", "OnFailure", "Never", "ExitCode")
MOUNT = "/mnt/models"
_DNS = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _num(value: float) -> str:
    return repr(float(value))


def render_tfjob(
    *,
    name: str,
    namespace: str,
    image: str,
    lr: float,
    batch_size: int,
    epochs: int,
    model_name: str = "mnist",
    pvc_claim: str = "servebench-models",
    cpu: str = "1",
    memory: str = "2Gi",
) -> dict[str, Any]:
    """One single-Worker TFJob that trains with (lr, batch_size, epochs) and exports to the PVC."""
    command = [
        "python",
        "-m",
        "models.pipeline.train_job",
        f"--lr={_num(lr)}",
        f"--batch-size={batch_size}",
        f"--epochs={epochs}",
        f"--model-name={model_name}",
        f"--output={MOUNT}",
        "--threads=1",
    ]
    resources = {"cpu": cpu, "memory": memory}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "servebench"}},
        "spec": {
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 2},
            "tfReplicaSpecs": {
                "Worker": {
                    "replicas": 1,
                    "restartPolicy": "OnFailure",
                    "template": {
                        "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": TF_CONTAINER,
                                    "image": image,
                                    "command": command,
                                    "resources": {"requests": dict(resources), "limits": dict(resources)},
                                    "volumeMounts": [{"name": "models", "mountPath": MOUNT}],
                                }
                            ],
                            "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": pvc_claim}}],
                        },
                    },
                },
            },
        },
    }


def check_tfjob(doc: Mapping[str, Any]) -> list[str]:
    """Problems with a TFJob's own fields (empty = fine), each naming the field path."""
    problems: list[str] = []
    if doc.get("apiVersion") != "kubeflow.org/v1":
        problems.append(f"apiVersion: must be kubeflow.org/v1, got {doc.get('apiVersion')!r}")
    if doc.get("kind") != "TFJob":
        problems.append(f"kind: must be TFJob, got {doc.get('kind')!r}")
    meta = doc.get("metadata") or {}
    for key in ("name", "namespace"):
        value = meta.get(key)
        if not isinstance(value, str) or not _DNS.fullmatch(value) or len(value) > 63:
            problems.append(f"metadata.{key}: must be a lowercase DNS label, got {value!r}")
    specs = (doc.get("spec") or {}).get("tfReplicaSpecs")
    if not isinstance(specs, Mapping) or not specs:
        return [*problems, "spec.tfReplicaSpecs: must be a non-empty mapping of replica types"]
    for rtype, spec in specs.items():
        where = f"spec.tfReplicaSpecs.{rtype}"
        if rtype not in ALLOWED_REPLICA_TYPES:
            problems.append(f"{where}: replica type must be one of {', '.join(ALLOWED_REPLICA_TYPES)}")
        if not isinstance(spec, Mapping):
            problems.append(f"{where}: must be a mapping")
            continue
        replicas = spec.get("replicas")
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            problems.append(f"{where}.replicas: must be an integer >= 1, got {replicas!r}")
        if rtype == "Chief" and replicas != 1:
            problems.append(f"{where}.replicas: a TFJob has exactly one Chief, got {replicas!r}")
        if spec.get("restartPolicy") not in RESTART_POLICIES:
            problems.append(
                f"{where}.restartPolicy: must be one of {', '.join(RESTART_POLICIES)}, "
                f"got {spec.get('restartPolicy')!r}"
            )
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        if TF_CONTAINER not in [c.get("name") for c in containers if isinstance(c, Mapping)]:
            problems.append(
                f"{where}.template.spec.containers: needs a container named {TF_CONTAINER!r} "
                "(the training operator looks it up by that name)"
            )
    return problems


def replica_pod(doc: Mapping[str, Any], replica_type: str = "Worker") -> dict[str, Any]:
    """The replica's pod template as a ``v1`` Pod, for Kubernetes schema validation.

    The operator sets the pod's ``restartPolicy`` from the replica's (``ExitCode`` -> Never).
    """
    spec = doc["spec"]["tfReplicaSpecs"][replica_type]
    template = copy.deepcopy(dict(spec["template"]))
    pod_spec = dict(template.get("spec") or {})
    policy = spec.get("restartPolicy", "Never")
    pod_spec.setdefault("restartPolicy", "Never" if policy == "ExitCode" else policy)
    meta = dict(template.get("metadata") or {})
    meta.setdefault("name", f"{doc['metadata']['name']}-{replica_type.lower()}-0")
    meta.setdefault("namespace", doc["metadata"]["namespace"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}
