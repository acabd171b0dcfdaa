"""Render the load generator as a Kubernetes Indexed Job: N shard pods next to the target.

Why a Job: where the client runs is part of the measurement (the study's fastest
deployment had its client in the same VPC), and Kubernetes already schedules, tracks and
cleans up batch pods.  ``completionMode: Indexed`` gives each pod its shard number in
``JOB_COMPLETION_INDEX``; every pod runs the same ``bench run TARGET --shard I/N`` against
the target's cluster-local address, all starting at one wall-clock barrier
(``--start-at``), and copies its shard run onto a PersistentVolumeClaim the user names.
``bench merge`` then turns the shard runs into one ordinary run.

What is rendered (:func:`render_loadgen_manifests`):

* ``loadgen-configmap.yaml``: the shard's bench.toml -- the user's ``[model]``,
  ``[loadgen]`` and ``[sweep]`` tables, and only the one target, switched to remote mode
  at its cluster-local URL (:mod:`targets.cluster_endpoint`); credentials stay variable NAMES,
  which the pod fills from a Secret.  No request bodies: a shard builds them from the
  test split like every run does.
* ``loadgen-job.yaml``: the Indexed Job.
* ``loadgen-helper.yaml``: a pod that mounts the claim, to ``kubectl cp`` the model in and
  the shard runs out.

Pod layout (why): the working directory ``/servebench`` is an ``emptyDir``; bench.toml is
mounted into it from the ConfigMap, and the claim at ``/servebench/data``.  Every path in
the shard's bench.toml is therefore *relative* (``data/model``, ``results``), so the very
same file and command run anywhere the same layout exists -- the tests run them locally.
Results are written to the pod's own ``results/`` first (each pod calibrates its own
client and writes ``results/calibration.json`` without racing the others) and copied to
``data/runs/RUN/`` when the shard ends.

YAML comes from dicts (:func:`targets.manifests.yaml_document`); every name is checked
first, so no setting can break a document's structure.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from ground.clock import utc_stamp
from ground.toml_write import dumps as toml_dumps
from loadgen.shard import SHARDABLE_MODES
from models.pipeline.kfp_settings import KfpSettings
from targets.base import Target
from targets.cluster_endpoint import ClusterEndpoint
from targets.manifests import dns_label, yaml_document
from targets.secrets import secret_env_fields

__all__ = [
    "CREDENTIALS_SECRET",
    "LoadgenJob",
    "WORKDIR",
    "render_loadgen_manifests",
    "shard_bench_toml",
    "shard_script",
]

#: The Secret the shard pods read credential variables from (keys = variable names).
CREDENTIALS_SECRET = "servebench-credentials"
#: The pod's working directory: an emptyDir holding bench.toml (from the ConfigMap) and the claim.
WORKDIR = "/servebench"
#: Where the claim is mounted, relative to :data:`WORKDIR`.
DATA_DIR = "data"
MAX_CLIENTS = 256

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Target keys a shard never needs: the Kubeflow Pipelines API (``bench run pipeline``).
_PIPELINE_KEYS = frozenset(f.name for f in fields(KfpSettings))


@dataclass(frozen=True)
class LoadgenJob:
    """What to render: the target, its cluster address, the shard plan and the Kubernetes names.

    ``tables``: bench.toml as written (``tomllib.loads`` of the file), so the shard's
    configuration carries the user's own values, not defaults re-spelt.  ``modes``: the
    modes the shards run (already checked to be shardable).  ``start_at``: the wall-clock
    barrier, in whole seconds since the epoch.  ``notes``: what the renderer chose or left out
    for the user (steps too small to split, a default step interval), one line each, shown in
    every file's header and in the shards' bench.toml.
    """

    target: Target
    tables: Mapping[str, Any]
    endpoint: ClusterEndpoint
    modes: Sequence[str]
    clients: int
    pvc: str
    namespace: str
    image: str
    start_at: int
    step_interval_s: float | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.clients <= MAX_CLIENTS:
            raise ValueError(f"--clients must be in 1..{MAX_CLIENTS}, got {self.clients}")
        if not _DNS_SUBDOMAIN.match(self.pvc):
            raise ValueError(f"--pvc must be a PersistentVolumeClaim name (lowercase DNS name), got {self.pvc!r}")
        if not _DNS_LABEL.match(self.namespace):
            raise ValueError(f"--namespace must be a lowercase DNS label, got {self.namespace!r}")
        if not _IMAGE.match(self.image):
            raise ValueError(f"--image must be a container image reference, got {self.image!r}")
        bad = [m for m in self.modes if m not in SHARDABLE_MODES]
        if not self.modes or bad:
            raise ValueError(f"shards run {' or '.join(SHARDABLE_MODES)} modes only, got {list(self.modes)}")
        if self.start_at <= 0:
            raise ValueError(f"start_at must be seconds since the epoch, got {self.start_at}")
        if self.step_interval_s is not None and not 0 < self.step_interval_s < 1e6:
            raise ValueError(f"--step-interval must be a number of seconds > 0, got {self.step_interval_s}")

    @property
    def stamp(self) -> str:
        return utc_stamp(self.start_at)

    @property
    def run_id(self) -> str:
        """The shards' ``--run-id``: shard I of N writes ``<run_id>-shard<I>of<N>``; merge them into it."""
        return f"{self.stamp}-{dns_label(self.target.name)[:40].strip('-')}"

    @property
    def job_name(self) -> str:
        """≤ 56 characters: an Indexed Job's pod host name is ``<job>-<index>`` (≤ 63)."""
        return f"loadgen-{dns_label(self.target.name)[:32].strip('-')}-{self.stamp}"

    @property
    def secret_vars(self) -> tuple[str, ...]:
        """Variable NAMES the shard's target table names (credentials), in table order."""
        secret = set(secret_env_fields(type(self.target.settings)))
        names = [str(v) for k, v in self.shard_target_table().items() if k in secret and isinstance(v, str) and v]
        for name in names:
            if not _ENV_NAME.match(name):
                raise ValueError(f"targets.{self.target.name}: {name!r} is not an environment variable name")
        return tuple(dict.fromkeys(names))

    def shard_target_table(self) -> dict[str, Any]:
        """The target's table for the shards: as written, minus the ``kfp_*`` keys, at the cluster address."""
        written = self.tables.get("targets", {}).get(self.target.name, {})
        kept = {k: v for k, v in written.items() if k not in _PIPELINE_KEYS and k not in ("endpoint", "host_header")}
        kept["endpoint"] = self.endpoint.url
        if self.endpoint.host_header:
            kept["host_header"] = self.endpoint.host_header
        return {"adapter": kept.pop("adapter", self.target.adapter), **kept}


def shard_bench_toml(job: LoadgenJob) -> str:
    """The shard's bench.toml: the user's tables, paths relative to the pod's working directory."""
    model = {**job.tables.get("model", {}), "artifacts_dir": f"{DATA_DIR}/model"}
    loadgen = {**job.tables.get("loadgen", {}), "cpus": "none"}
    if float(loadgen.get("max_rps", 0) or 0) > 0:
        loadgen["max_rps"] = float(loadgen["max_rps"]) / job.clients
    sweep = {**job.tables.get("sweep", {}), "modes": list(job.modes)}
    header = "\n".join(
        (
            f"servebench bench.toml for the {job.clients} load-generator shards of run {job.run_id}.",
            f"Rendered by `python -m bench manifests loadgen {job.target.name} --clients {job.clients}`.",
            f"Target {job.target.name!r} in remote mode at {job.endpoint.url}"
            + (f" (Host: {job.endpoint.host_header})" if job.endpoint.host_header else "")
            + ":",
            f"  {job.endpoint.how}",
            "Paths are relative to the pod's working directory " + WORKDIR + f"; {DATA_DIR}/ is the claim.",
            f"{DATA_DIR}/model must hold the trained model (copy artifacts/model there; docs/loadgen-in-cluster.md):",
            "  the shards only record its checksums, but `bench run` would train one if it were missing.",
            '[loadgen] cpus = "none": pods on one node must not all pin themselves to its last CPU.',
            "[loadgen] max_rps (if set) is divided by the number of shards: the cap is for the whole run.",
            f"[sweep] modes: {', '.join(job.modes)} (sequential mode is one request at a time: not shardable).",
            *(f"Note: {note}" for note in job.notes),
        )
    )
    return toml_dumps(
        {
            "model": model,
            "loadgen": loadgen,
            "sweep": sweep,
            "paths": {"results_dir": "results", "reports_dir": "reports"},
            "targets": {job.target.name: job.shard_target_table()},
        },
        header=header,
    )


def shard_script(job: LoadgenJob) -> str:
    """The POSIX shell the shard container runs (``sh -c``), in the pod's working directory.

    ``--shard auto/N`` takes the shard's index from ``JOB_COMPLETION_INDEX``, which the Job
    controller sets in each pod.  Why a script, not a bare ``bench run``: ``bench run``
    exits 1 when some requests failed, which is a finding, not a crash, and a failed pod
    would make the Job controller stop the other shards mid-measurement.  Exit 0 or 1 ->
    the pod succeeds and the code is kept in ``shard-I.exit`` beside the shard's run;
    anything else (2 bad input, 130 interrupted, a crash) fails the pod.  The run (its
    folder is the only one in the pod's ``results/``) is copied to the claim whatever happened.
    """
    interval = f" --step-interval {job.step_interval_s:g}" if job.step_interval_s is not None else ""
    return "\n".join(
        (
            "set -u",
            f'out="{DATA_DIR}/runs/{job.run_id}"',
            f"python -m bench --config bench.toml run {shlex.quote(job.target.name)} --shard auto/{job.clients} "
            f"--start-at {job.start_at}{interval} --run-id {job.run_id} --no-report",
            "rc=$?",
            f'echo "servebench shard $JOB_COMPLETION_INDEX of {job.clients}: bench run exited $rc"',
            'mkdir -p "$out" || exit 1',
            f"for run in results/{job.run_id}-shard*; do",
            '    [ -d "$run" ] || continue',
            '    rm -rf "$out/${run#results/}" && cp -R "$run" "$out/" || exit 1',
            "done",
            'echo "$rc" > "$out/shard-$JOB_COMPLETION_INDEX.exit"',
            'case "$rc" in 0|1) exit 0 ;; *) exit "$rc" ;; esac',
            "",
        )
    )


def _labels(job: LoadgenJob) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "servebench-loadgen",
        "app.kubernetes.io/part-of": "servebench",
        "servebench/run": job.run_id[:63].rstrip("-."),
        "servebench/target": dns_label(job.target.name),
    }


def _container(job: LoadgenJob) -> dict[str, Any]:
    env: list[dict[str, Any]] = [{"name": "PYTHONUNBUFFERED", "value": "1"}]
    env += [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": CREDENTIALS_SECRET, "key": var}}}
        for var in job.secret_vars
    ]
    return {
        "name": "shard",
        "image": job.image,
        "workingDir": WORKDIR,
        "command": ["sh", "-c", shard_script(job)],
        "env": env,
        # No CPU limit: CFS throttling would stall the client mid-step and show up as latency.
        "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
        "volumeMounts": [
            {"name": "work", "mountPath": WORKDIR},
            {"name": "config", "mountPath": f"{WORKDIR}/bench.toml", "subPath": "bench.toml", "readOnly": True},
            {"name": "data", "mountPath": f"{WORKDIR}/{DATA_DIR}"},
        ],
    }


def _job(job: LoadgenJob) -> dict[str, Any]:
    labels = _labels(job)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job.job_name, "namespace": job.namespace, "labels": labels},
        "spec": {
            "completionMode": "Indexed",
            "completions": job.clients,
            "parallelism": job.clients,
            # A retried shard would start after the barrier, alone: no retries; rerun the Job.
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {**labels, "sidecar.istio.io/inject": "false"}},
                "spec": {
                    "restartPolicy": "Never",
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "weight": 100,
                                    "podAffinityTerm": {
                                        "labelSelector": {"matchLabels": {"servebench/run": labels["servebench/run"]}},
                                        "topologyKey": "kubernetes.io/hostname",
                                    },
                                }
                            ]
                        }
                    },
                    "containers": [_container(job)],
                    "volumes": [
                        {"name": "work", "emptyDir": {}},
                        {
                            "name": "config",
                            "configMap": {"name": job.job_name, "items": [{"key": "bench.toml", "path": "bench.toml"}]},
                        },
                        {"name": "data", "persistentVolumeClaim": {"claimName": job.pvc}},
                    ],
                },
            },
        },
    }


def _configmap(job: LoadgenJob) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": job.job_name, "namespace": job.namespace, "labels": _labels(job)},
        "data": {"bench.toml": shard_bench_toml(job)},
    }


def _helper_pod(job: LoadgenJob) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{job.job_name}-helper",
            "namespace": job.namespace,
            "labels": {**_labels(job), "app.kubernetes.io/name": "servebench-helper"},
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "helper",
                    "image": job.image,
                    "command": ["sleep", "86400"],  # a day to copy in and out; delete it when done
                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": job.pvc}}],
        },
    }


def _steps(job: LoadgenJob) -> str:
    ns, pod = job.namespace, f"{job.job_name}-helper"
    secret = (
        (
            f"  kubectl create secret generic {CREDENTIALS_SECRET} -n {ns} "
            + " ".join(f'--from-literal={v}="${v}"' for v in job.secret_vars)
            + "\n"
        )
        if job.secret_vars
        else ""
    )
    return (
        f"Steps (docs/loadgen-in-cluster.md); the claim {job.pvc!r} must exist (ReadWriteMany if the pods\n"
        "may land on several nodes):\n"
        f"  kubectl apply -f loadgen-helper.yaml && kubectl wait -n {ns} --for=condition=Ready pod/{pod}\n"
        f"  kubectl cp artifacts/model {ns}/{pod}:/data/model     # unless the claim holds it already\n"
        + secret
        + f"  kubectl apply -f loadgen-configmap.yaml -f loadgen-job.yaml   # before {_utc(job.start_at)}\n"
        f"  kubectl wait -n {ns} --for=condition=complete job/{job.job_name} --timeout=24h\n"
        f"  kubectl cp {ns}/{pod}:/data/runs/{job.run_id} results/{job.run_id}-shards\n"
        f"  python -m bench merge results/{job.run_id}-shards/{job.run_id}-shard* -o {job.run_id}\n"
        f"  kubectl delete -n {ns} pod/{pod} job/{job.job_name} configmap/{job.job_name}\n"
    )


def _utc(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def render_loadgen_manifests(job: LoadgenJob) -> dict[str, str]:
    """File name -> YAML text: ``loadgen-configmap.yaml``, ``loadgen-job.yaml``, ``loadgen-helper.yaml``."""
    what = (
        f"servebench load generator: {job.clients} shard(s) of `bench run {job.target.name}` "
        f"from inside the cluster, run {job.run_id}.\n"
        f"Rendered by `python -m bench manifests loadgen {job.target.name} --clients {job.clients}`.\n"
        f"Target URL: {job.endpoint.url}"
        + (f" with Host: {job.endpoint.host_header}" if job.endpoint.host_header else "")
        + "\n"
        f"All shards start measuring at {_utc(job.start_at)} (--start-at {job.start_at}): apply before "
        "then,\nor render again.\n"
        + (f"Steps start {job.step_interval_s:g} s apart (--step-interval).\n" if job.step_interval_s else "")
        + "".join(f"Note: {note}\n" for note in job.notes)
    )
    return {
        "loadgen-configmap.yaml": yaml_document(
            what + "The shards' bench.toml. Steps: loadgen-job.yaml's header, docs/loadgen-in-cluster.md.\n",
            _configmap(job),
        ),
        "loadgen-job.yaml": yaml_document(
            what + "Indexed Job: pod I runs shard I (JOB_COMPLETION_INDEX) and copies its run to the claim\n"
            f"{job.pvc!r} under runs/{job.run_id}/. Istio sidecar off: a classic sidecar would keep the pods\n"
            "running after the shard ends (docs/loadgen-in-cluster.md, 'Service mesh').\n" + _steps(job),
            _job(job),
        ),
        "loadgen-helper.yaml": yaml_document(
            what + f"A pod mounting the claim {job.pvc!r}, to copy the model in (kubectl cp) before the Job runs and\n"
            "the shard runs out after it. Steps: loadgen-job.yaml's header, docs/loadgen-in-cluster.md.\n",
            _helper_pod(job),
        ),
    }
