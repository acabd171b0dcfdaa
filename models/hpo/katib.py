"""Katib ``Experiment`` manifests for the same search, so it can run on a real Kubeflow cluster.

Why rendered from the config rather than templated text: the local run
(:mod:`models.hpo.search`) and the cluster Experiment must search the same space with the
same objective, goal, parallelism and trial budget; both are built from one
:class:`bench.config.HpoConfig`.  The shape follows Katib's own hp-tuning examples
(``examples/v1beta1/hp-tuning/{grid,random,bayesian-optimization}.yaml``) and differs from
them only where our search differs: parameters (lr and batch size instead of lr and
momentum), grid steps, trial budget, the trial container (our image and entry point,
``python -m models.trial``, which prints ``loss=...`` for Katib's default StdOut collector),
``accuracy`` as an additional metric, and seeds.  :func:`diff_paths` lists those differences.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from models.hpo.search import KATIB_ALGORITHMS
from models.hpo.space import SearchSpace

if TYPE_CHECKING:
    from models.hpo.config import HpoConfig

__all__ = [
    "TRIAL_CONTAINER",
    "diff_paths",
    "experiment_filename",
    "render_experiment",
    "render_experiments",
    "trial_job",
]

TRIAL_CONTAINER = "training-container"


def _dns_name(text: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:63].rstrip("-") or "servebench"


def _num(value: float) -> str:
    """Katib's feasibleSpace values are strings; keep them short and exact (0.01, not 0.010000)."""
    return repr(float(value)) if isinstance(value, float) else str(value)


def experiment_filename(algorithm: str) -> str:
    return f"katib-experiment-{algorithm}.yaml"


def render_experiment(
    algorithm: str,
    hpo: HpoConfig,
    *,
    model_name: str = "mnist",
    max_trials: int | None = None,
) -> dict[str, Any]:
    """One Experiment (as a dict) for ``algorithm`` in grid/random/bayesian.

    ``max_trials`` defaults to the largest of ``hpo.max_trials`` (the study's 15).
    """
    if algorithm not in KATIB_ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r} (known: {', '.join(KATIB_ALGORITHMS)})")
    space = SearchSpace.from_config(hpo)
    grid = algorithm == "grid"
    lr_space: dict[str, str] = {"min": _num(space.lr_min), "max": _num(space.lr_max)}
    batch_space: dict[str, str] = {"min": str(space.batch_min), "max": str(space.batch_max)}
    if grid:
        lr_space = {"min": lr_space["min"], "step": _num(space.lr_step), "max": lr_space["max"]}
        batch_space = {"min": batch_space["min"], "step": str(space.batch_step), "max": batch_space["max"]}
    algo: dict[str, Any] = {"algorithmName": KATIB_ALGORITHMS[algorithm]}
    if algorithm == "random":
        algo["algorithmSettings"] = [{"name": "random_state", "value": str(hpo.seed)}]
    elif algorithm == "bayesian":
        algo["algorithmSettings"] = [
            {"name": "random_state", "value": str(hpo.seed)},
            {"name": "n_initial_points", "value": str(hpo.bayesian_initial_points)},
        ]
    command = [
        "python",
        "-m",
        "models.trial",
        "--lr=${trialParameters.learningRate}",
        "--batch-size=${trialParameters.batchSize}",
        f"--epochs={hpo.epochs}",
        f"--momentum={_num(hpo.momentum)}",
        "--threads=1",
    ]
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"namespace": hpo.namespace, "name": _dns_name(f"{model_name}-hpo-{algorithm}")},
        "spec": {
            "objective": {
                "type": "minimize",
                "goal": hpo.goal,
                "objectiveMetricName": "loss",
                "additionalMetricNames": ["accuracy"],
            },
            "algorithm": algo,
            "parallelTrialCount": hpo.parallel,
            "maxTrialCount": max_trials if max_trials is not None else max(hpo.max_trials),
            "maxFailedTrialCount": hpo.max_failed_trials,
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": lr_space},
                {"name": "batch_size", "parameterType": "int", "feasibleSpace": batch_space},
            ],
            "trialTemplate": {
                "primaryContainerName": TRIAL_CONTAINER,
                "trialParameters": [
                    {"name": "learningRate", "description": "Learning rate for the training model", "reference": "lr"},
                    {
                        "name": "batchSize",
                        "description": "Batch size for the training model",
                        "reference": "batch_size",
                    },
                ],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {
                        "template": {
                            "spec": {
                                "containers": [
                                    {
                                        "name": TRIAL_CONTAINER,
                                        "image": hpo.image,
                                        "command": command,
                                        "resources": {"limits": {"memory": "1Gi", "cpu": "1"}},
                                    }
                                ],
                                "restartPolicy": "Never",
                            }
                        }
                    },
                },
            },
        },
    }


def render_experiments(hpo: HpoConfig, *, model_name: str = "mnist") -> dict[str, str]:
    """File name -> YAML text, one Experiment per configured algorithm."""
    import yaml

    out = {}
    for algorithm in hpo.algorithms:
        doc = render_experiment(algorithm, hpo, model_name=model_name)
        header = (
            f"# Katib Experiment: servebench's MNIST search, algorithm {KATIB_ALGORITHMS[algorithm]}.\n"
            "# Rendered by `python -m bench manifests hpo` from bench.toml [hpo].\n"
            f"# The trial image ({hpo.image}) must contain servebench:\n"
            "# its `python -m models.trial` prints loss=... for Katib's StdOut collector.\n"
        )
        out[experiment_filename(algorithm)] = header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    return out


def trial_job(experiment: Mapping[str, Any], substitutions: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The trial Job of an Experiment, with ``${trialParameters.X}`` replaced as Katib would.

    ``substitutions`` maps trialParameter names to values; the default uses each
    parameter's feasibleSpace minimum.  The result is a plain ``batch/v1`` Job with a name.
    """
    import copy

    template = experiment["spec"]["trialTemplate"]
    if substitutions is None:
        by_ref = {p["name"]: p["feasibleSpace"]["min"] for p in experiment["spec"]["parameters"]}
        substitutions = {tp["name"]: by_ref[tp["reference"]] for tp in template["trialParameters"]}
    job = copy.deepcopy(dict(template["trialSpec"]))

    def sub(value: Any) -> Any:
        if isinstance(value, str):
            return re.sub(r"\$\{trialParameters\.(\w+)\}", lambda m: str(substitutions[m.group(1)]), value)
        if isinstance(value, list):
            return [sub(v) for v in value]
        if isinstance(value, dict):
            return {k: sub(v) for k, v in value.items()}
        return value

    job = sub(job)
    meta = experiment["metadata"]
    job.setdefault("metadata", {"name": f"{meta['name']}-trial", "namespace": meta["namespace"]})
    return job


def diff_paths(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Dotted paths where two manifests differ (list items by index), for 'differs only where...' checks."""
    if isinstance(ours, Mapping) and isinstance(theirs, Mapping):
        out: list[str] = []
        for key in list(ours) + [k for k in theirs if k not in ours]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in ours or key not in theirs:
                out.append(sub)
            else:
                out.extend(diff_paths(ours[key], theirs[key], sub))
        return out
    if isinstance(ours, list) and isinstance(theirs, list):
        out = []
        for i in range(max(len(ours), len(theirs))):
            sub = f"{path}[{i}]"
            if i >= len(ours) or i >= len(theirs):
                out.append(sub)
            else:
                out.extend(diff_paths(ours[i], theirs[i], sub))
        return out
    return [] if ours == theirs else [path]
