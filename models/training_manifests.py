"""Renders the files that train the model outside Kubeflow: a Slurm batch script and a Kubernetes Job.

How the study's two baselines got their model.  The study trained its bare-metal baseline
(``greene-linserv``) as a batch job on an HPC
cluster (NYU Greene, Slurm) and its plain-Kubernetes baseline (``k8s-ibm``) in a container
on the cluster.  ``bench manifests TARGET`` renders, beside the serving files (the adapters call the
renderers below from their ``training_manifests`` method; see
:func:`targets.manifests.training_manifests`):

* ``flask`` targets: ``slurm-train.sbatch``, a Slurm batch script running
  ``python -m bench train`` in the project's folder on the cluster, and the steps that
  bring the artifacts to the host the systemd unit serves them from;
* ``k8s`` targets: ``train-configmap.yaml`` (a bench.toml holding the user's ``[model]``
  table, so the cluster trains the same recipe), ``model-pvc.yaml`` and ``train-job.yaml``
  (a batch/v1 Job that trains into the claim).  The Deployment (``k8s-deployment.yaml``)
  copies the model from that claim into each pod when it starts.

Both scripts run ``bench train``, which trains only when the folder does not already hold
valid artifacts for the configuration (``models.artifacts.ensure_model``), so running
them again is harmless.  :func:`check_slurm_settings` checks the script's values when a
``flask`` target's table is read.  The template is ``models/templates/slurm-train.sbatch``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ground.manifests import dns_label, render_template, yaml_document
from ground.toml_write import dumps as toml_dumps

__all__ = [
    "TRAIN_MODEL_DIR",
    "check_slurm_settings",
    "k8s_training_manifests",
    "slurm_training_script",
]

#: Where the training Job mounts the claim, and the model folder inside it.
TRAIN_MOUNT = "/models"
TRAIN_MODEL_DIR = f"{TRAIN_MOUNT}/model"
CONFIG_MOUNT = "/etc/servebench"


def slurm_training_script(target: str, s: Any, *, artifacts_rel: str, train_threads: int) -> str:
    """``slurm-train.sbatch`` for flask target ``target`` with settings ``s`` (FlaskSettings)."""
    optional = [
        f"#SBATCH --{key}={value}"
        for key, value in (("partition", s.slurm_partition), ("account", s.slurm_account))
        if value
    ]
    modules = (
        ["module purge", *(f"module load {m}" for m in s.slurm_modules)]
        if s.slurm_modules
        else ['# none configured (e.g. slurm_modules = ["python/intel/3.11"] in bench.toml)']
    )
    return render_template(
        "models",
        "slurm-train.sbatch",
        {
            "target": target,
            "job_name": f"servebench-train-{dns_label(target)}"[:64],
            "time": s.slurm_time,
            "cpus": train_threads,
            "mem": s.slurm_mem,
            "optional_directives": "\n".join(optional),
            "module_lines": "\n".join(modules),
            "hpc_dir": s.hpc_dir,
            "artifacts_rel": artifacts_rel,
            "unit_name": f"servebench-{target}.service",
        },
    )


def _labels(target: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": f"{dns_label(target)}-train",
        "app.kubernetes.io/part-of": "servebench",
        "servebench/target": dns_label(target),
    }


def k8s_training_manifests(
    target: str,
    s: Any,
    *,
    model_table: Mapping[str, Any],
    train_threads: int,
) -> dict[str, str]:
    """``train-configmap.yaml``, ``model-pvc.yaml`` and ``train-job.yaml`` for k8s target ``target``."""
    name = f"{dns_label(target)}-train"[:63].strip("-")
    labels = _labels(target)
    model = {**model_table, "artifacts_dir": TRAIN_MODEL_DIR}
    bench_toml = toml_dumps(
        {"model": model},
        header=(
            f"bench.toml of the training Job for target {target!r}: your [model] table, so the cluster trains\n"
            f"the recipe your local stand-ins serve; artifacts_dir is the claim {s.model_claim!r} ({TRAIN_MODEL_DIR})."
        ),
    )
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": s.namespace, "labels": labels},
        "data": {"bench.toml": bench_toml},
    }
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": s.model_claim, "namespace": s.namespace, "labels": labels},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": s.namespace, "labels": labels},
        "spec": {
            "backoffLimit": 1,
            "activeDeadlineSeconds": 7200,
            "template": {
                "metadata": {"labels": {**labels, "sidecar.istio.io/inject": "false"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "train",
                            "image": s.train_image,
                            "command": ["python", "-m", "bench", "--config", f"{CONFIG_MOUNT}/bench.toml", "train"],
                            "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}],
                            "resources": {
                                "requests": {"cpu": str(train_threads), "memory": "4Gi"},
                                "limits": {"memory": "6Gi"},
                            },
                            "volumeMounts": [
                                {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
                                {"name": "model", "mountPath": TRAIN_MOUNT},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "config", "configMap": {"name": name}},
                        {"name": "model", "persistentVolumeClaim": {"claimName": s.model_claim}},
                    ],
                },
            },
        },
    }
    steps = (
        f"Steps: kubectl apply -f model-pvc.yaml -f train-configmap.yaml -f train-job.yaml\n"
        f"       kubectl wait -n {s.namespace} --for=condition=complete job/{name} --timeout=2h\n"
        f"       kubectl apply -f deployment.yaml -f service.yaml   (its pods copy the model from the claim)\n"
        f"Run again after changing [model]: kubectl delete job -n {s.namespace} {name}, then apply both files."
    )
    what = (
        f"Training of the shared model for target `{target}` on the cluster (the study's plain-Kubernetes\n"
        f"baseline trained in a container), rendered by `python -m bench manifests {target}`.\n"
    )
    return {
        "model-pvc.yaml": yaml_document(
            what + f"The claim the training Job writes the model to ({TRAIN_MODEL_DIR} in the Job, model/ in the\n"
            "claim) and the Deployment's pods copy it from. ReadWriteMany: pods on several nodes mount it at once\n"
            "(IBM Cloud: a File storage class such as ibmc-file-gold; set storageClassName if it is not the default).\n"
            + steps,
            pvc,
        ),
        "train-configmap.yaml": yaml_document(what + "The training Job's bench.toml.\n" + steps, configmap),
        "train-job.yaml": yaml_document(
            what + f"`python -m bench train` in {s.train_image} (an image with servebench installed, as [hpo] image);\n"
            "it trains only if the claim does not already hold valid artifacts for this [model].\n" + steps,
            job,
        ),
    }


# sbatch --time: minutes, minutes:seconds, hours:minutes:seconds, days-hours,
# days-hours:minutes, days-hours:minutes:seconds.
_SLURM_TIME = re.compile(r"^(\d+(:\d{1,2}){0,2}|\d+-\d{1,2}(:\d{1,2}){0,2})$")
_SLURM_MEM = re.compile(r"^[1-9]\d*[KMGT]?$")
_SLURM_NAME = re.compile(r"^[A-Za-z0-9_.,-]*$")
_MODULE = re.compile(r"^[A-Za-z0-9_.+/-]+$")
# A folder that the script may put in double quotes: shell variables ($SCRATCH,
# ${HOME}) expand there; no spaces, quotes, backticks, ~ (not expanded in quotes) or ;|&.
_HPC_DIR = re.compile(r"^[A-Za-z0-9_./${}+-]+$")


def check_slurm_settings(s: Any) -> None:
    """ValueError naming the key when a ``hpc_dir``/``slurm_*`` value would break the script."""
    if not _HPC_DIR.match(s.hpc_dir) or "$(" in s.hpc_dir:
        raise ValueError(
            f"hpc_dir must be a path (letters, digits, _ . / - + and $VARIABLES; no spaces, "
            f"quotes or ~), got {s.hpc_dir!r}"
        )
    if not _SLURM_TIME.match(s.slurm_time):
        raise ValueError(
            f"slurm_time must be a Slurm time limit (MM, HH:MM:SS or D-HH[:MM[:SS]]), got {s.slurm_time!r}"
        )
    if not _SLURM_MEM.match(s.slurm_mem):
        raise ValueError(f"slurm_mem must be a size like 8G or 8000M, got {s.slurm_mem!r}")
    for key in ("slurm_partition", "slurm_account"):
        if not _SLURM_NAME.match(getattr(s, key)):
            raise ValueError(f"{key} must be a Slurm name (letters, digits, _ . , -), got {getattr(s, key)!r}")
    for module in s.slurm_modules:
        if not _MODULE.match(module):
            raise ValueError(f"slurm_modules entries must be module names like python/3.11, got {module!r}")
