"""Rendered Katib Experiments: field by field against Katib's own examples, trial Job against k8s schemas."""

from __future__ import annotations

import re
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from bench.cli import main
from bench.config import load_config
from models.hpo.config import HpoConfig
from models.hpo.katib import diff_paths, experiment_filename, render_experiment, render_experiments, trial_job
from models.hpo.runner import parse_metrics
from tests.support.paths import KATIB_EXAMPLES

EXAMPLES = KATIB_EXAMPLES
EXAMPLE_FOR = {"grid": "grid.yaml", "random": "random.yaml", "bayesian": "bayesian-optimization.yaml"}
CONTAINER = "spec.trialTemplate.trialSpec.spec.template.spec.containers[0]"
# Where our search legitimately differs from Katib's example (prefixes of diff paths).
ALLOWED = (
    "metadata.name",  # our experiment names
    "spec.objective.additionalMetricNames",  # accuracy reported beside the loss
    "spec.algorithm.algorithmSettings",  # seeds (and skopt's n_initial_points, made explicit)
    "spec.maxTrialCount",  # 15, the study's largest trial budget (examples: 12)
    "spec.parameters[0].feasibleSpace.step",  # grid step of lr: 0.01 (example: 0.005)
    "spec.parameters[1]",  # batch_size int [80, 100] instead of momentum double [0.5, 0.9]
    "spec.trialTemplate.trialParameters[1]",  # batchSize instead of momentum
    f"{CONTAINER}.image",
    f"{CONTAINER}.command",
    f"{CONTAINER}.resources",  # one CPU (a trial trains with one thread), 1 GiB
)


@pytest.fixture(scope="module")
def hpo() -> HpoConfig:
    return HpoConfig()


def example(algorithm: str) -> dict:
    return yaml.safe_load((EXAMPLES / EXAMPLE_FOR[algorithm]).read_text())


@pytest.mark.parametrize("algorithm", ["grid", "random", "bayesian"])
def test_experiment_matches_katib_example_shape(algorithm: str, hpo: HpoConfig) -> None:
    ours, theirs = render_experiment(algorithm, hpo), example(algorithm)
    assert (
        (ours["apiVersion"], ours["kind"])
        == (theirs["apiVersion"], theirs["kind"])
        == ("kubeflow.org/v1beta1", "Experiment")
    )
    assert ours["metadata"]["namespace"] == theirs["metadata"]["namespace"] == "kubeflow"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", ours["metadata"]["name"])
    spec, ref = ours["spec"], theirs["spec"]
    for key in ("type", "goal", "objectiveMetricName"):
        assert spec["objective"][key] == ref["objective"][key]
    assert spec["objective"] == {
        "type": "minimize",
        "goal": 0.001,
        "objectiveMetricName": "loss",
        "additionalMetricNames": ["accuracy"],
    }
    assert spec["algorithm"]["algorithmName"] == ref["algorithm"]["algorithmName"]
    assert spec["parallelTrialCount"] == ref["parallelTrialCount"] == 3
    assert spec["maxFailedTrialCount"] == ref["maxFailedTrialCount"] == 3
    assert spec["maxTrialCount"] == 15
    lr, batch = spec["parameters"]
    assert lr["name"] == ref["parameters"][0]["name"] == "lr"
    assert lr["parameterType"] == "double"
    assert (lr["feasibleSpace"]["min"], lr["feasibleSpace"]["max"]) == ("0.01", "0.05")
    assert (lr["feasibleSpace"]["min"], lr["feasibleSpace"]["max"]) == (
        ref["parameters"][0]["feasibleSpace"]["min"],
        ref["parameters"][0]["feasibleSpace"]["max"],
    )
    assert batch == {
        "name": "batch_size",
        "parameterType": "int",
        "feasibleSpace": (
            {"min": "80", "step": "5", "max": "100"} if algorithm == "grid" else {"min": "80", "max": "100"}
        ),
    }
    for param, ref_param in zip(spec["parameters"], ref["parameters"], strict=True):
        assert list(param["feasibleSpace"]) == list(ref_param["feasibleSpace"])  # same keys, same order
        assert all(isinstance(v, str) for v in param["feasibleSpace"].values())  # Katib wants strings
    if algorithm == "grid":
        assert lr["feasibleSpace"]["step"] == "0.01"
    differing = diff_paths(ours, theirs)
    assert differing, "expected at least the parameters to differ"
    unexpected = [p for p in differing if not p.startswith(ALLOWED)]
    assert not unexpected, f"differs from Katib's {EXAMPLE_FOR[algorithm]} where our search does not: {unexpected}"


@pytest.mark.parametrize("algorithm", ["grid", "random", "bayesian"])
def test_trial_template_is_consistent(algorithm: str, hpo: HpoConfig) -> None:
    spec = render_experiment(algorithm, hpo)["spec"]
    template = spec["trialTemplate"]
    names = {tp["name"] for tp in template["trialParameters"]}
    assert {tp["reference"] for tp in template["trialParameters"]} == {p["name"] for p in spec["parameters"]}
    containers = template["trialSpec"]["spec"]["template"]["spec"]["containers"]
    assert template["primaryContainerName"] in {c["name"] for c in containers}
    command = containers[0]["command"]
    assert command[:3] == ["python", "-m", "models.trial"]
    used = set(re.findall(r"\$\{trialParameters\.(\w+)\}", " ".join(command)))
    assert used == names == {"learningRate", "batchSize"}
    assert template["trialSpec"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize("algorithm", ["grid", "random", "bayesian"])
def test_trial_job_validates_against_kubernetes_schema(algorithm: str, hpo: HpoConfig) -> None:
    experiment = render_experiment(algorithm, hpo)
    job = trial_job(experiment)
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    kubernetes_validate.validate(job, "1.30.0", strict=True)
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert "--lr=0.01" in command and "--batch-size=80" in command
    # The substituted command is a valid invocation of our entry point.
    from models.trial import _parser

    args = _parser().parse_args(command[3:])
    assert (args.lr, args.batch_size, args.epochs) == (0.01, 80, hpo.epochs)


def test_kubernetes_schema_rejects_a_broken_job(hpo: HpoConfig) -> None:
    job = trial_job(render_experiment("random", hpo))
    job["spec"]["template"]["spec"]["containers"][0]["command"] = "python -m models.trial"  # not a list
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, "1.30.0", strict=True)


def test_trial_output_is_what_katibs_collector_parses() -> None:
    from models.trial import TrialResult, format_metrics

    text = format_metrics(TrialResult(loss=0.1876, accuracy=0.95, train_loss=0.2, seconds=1.0))
    assert parse_metrics(text) == {"loss": 0.1876, "accuracy": 0.95}
    assert text.splitlines() == ["loss=0.187600", "accuracy=0.950000"]


def test_config_changes_reach_the_experiment() -> None:
    hpo = HpoConfig(algorithms=("random",), max_trials=(4, 8), parallel=2, lr_min=0.02, image="registry.example/sb:1")
    exp = render_experiment("random", hpo, model_name="My_Model")
    assert exp["metadata"]["name"] == "my-model-hpo-random"
    assert exp["spec"]["maxTrialCount"] == 8 and exp["spec"]["parallelTrialCount"] == 2
    assert exp["spec"]["parameters"][0]["feasibleSpace"]["min"] == "0.02"
    assert (
        exp["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]["image"]
        == "registry.example/sb:1"
    )
    with pytest.raises(ValueError, match="unknown algorithm"):
        render_experiment("hyperband", hpo)


def test_render_experiments_and_cli_write_one_file_per_algorithm(tmp_path: Path, repo_root: Path, capsys) -> None:
    docs = render_experiments(HpoConfig())
    assert sorted(docs) == sorted(experiment_filename(a) for a in ("grid", "random", "bayesian"))
    for text in docs.values():
        assert yaml.safe_load(text)["kind"] == "Experiment"
    out = tmp_path / "katib"
    assert main(["--config", str(repo_root / "bench.toml"), "manifests", "hpo", "-o", str(out)]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(docs)
    config = load_config(repo_root / "bench.toml")
    assert yaml.safe_load((out / "katib-experiment-grid.yaml").read_text()) == render_experiment(
        "grid", config.hpo, model_name=config.model.name
    )
    assert capsys.readouterr().out.split() == [str(out / name) for name in docs]  # the paths written
    assert main(["--config", str(repo_root / "bench.toml"), "manifests", "hpo"]) == 0
    printed = capsys.readouterr().out
    assert len(list(yaml.safe_load_all(printed))) == 3
