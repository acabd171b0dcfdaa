"""``bench manifests pipeline``: TFJob checked field by field + its pod against Kubernetes 1.30,
the InferenceService against KServe's CRD (vendored in tests/data/schemas/), the IR.

None of these manifests was applied to a cluster (none is reachable here).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bench.cli import main
from bench.config import parse_config
from bench.pipeline.manifests import best_parameters, render_pipeline_manifests
from models.pipeline.tfjob import check_tfjob, render_tfjob, replica_pod
from tests.support.paths import REPO

STAGES = ["tune", "train", "export", "serve", "smoke"]


def _job(**kw: Any) -> dict[str, Any]:
    args = {
        "name": "mnist-train",
        "namespace": "kubeflow-user-example-com",
        "image": "registry.example/sb:1",
        "lr": 0.03,
        "batch_size": 90,
        "epochs": 3,
    }
    return render_tfjob(**{**args, **kw})


def _config(tmp_path: Path, extra: str = ""):
    text = (
        '[paths]\nresults_dir = "results"\nreports_dir = "reports"\n'
        '[targets.kubeflow-gcp]\nadapter = "kserve"\nstorage_uri = "pvc://models-claim/savedmodel/mnist"\n' + extra
    )
    (tmp_path / "bench.toml").write_text(text)
    return parse_config(text, tmp_path)


def test_tfjob_fields_and_pod_template_validate() -> None:
    job = _job()
    assert check_tfjob(job) == []
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "TFJob")
    assert set(job["spec"]["tfReplicaSpecs"]) == {"Worker"}
    pod = replica_pod(job)
    kubernetes_validate.validate(pod, "1.30.0", strict=True)
    assert pod["spec"]["restartPolicy"] == "OnFailure"
    (container,) = pod["spec"]["containers"]
    assert container["name"] == "tensorflow"
    # the command is a valid invocation of our training entrypoint, with the given parameters
    from models.pipeline.train_job import parser

    assert container["command"][:3] == ["python", "-m", "models.pipeline.train_job"]
    args = parser().parse_args(container["command"][3:])
    assert (args.lr, args.batch_size, args.epochs, args.output) == (0.03, 90, 3, "/mnt/models")
    assert container["volumeMounts"][0]["mountPath"] == "/mnt/models"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda j: j.update(apiVersion="kubeflow.org/v1beta2"), "apiVersion"),
        (lambda j: j.update(kind="PyTorchJob"), "kind"),
        (lambda j: j["spec"]["tfReplicaSpecs"].update(Master=j["spec"]["tfReplicaSpecs"]["Worker"]), "replica type"),
        (lambda j: j["spec"]["tfReplicaSpecs"]["Worker"].update(replicas=0), "Worker.replicas"),
        (lambda j: j["spec"]["tfReplicaSpecs"]["Worker"].update(replicas="1"), "Worker.replicas"),
        (lambda j: j["spec"]["tfReplicaSpecs"]["Worker"].update(restartPolicy="Sometimes"), "restartPolicy"),
        (
            lambda j: j["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0].update(name="trainer"),
            "named 'tensorflow'",
        ),
        (lambda j: j["metadata"].update(name="MNIST_train"), "metadata.name"),
        (lambda j: j["spec"].update(tfReplicaSpecs={}), "tfReplicaSpecs"),
    ],
)
def test_tfjob_checks_reject_each_broken_field(mutate, expected: str) -> None:
    job = copy.deepcopy(_job())
    mutate(job)
    problems = check_tfjob(job)
    assert any(expected in p for p in problems), problems


def test_kubernetes_schema_rejects_a_broken_pod_template() -> None:
    job = _job()
    job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["command"] = "python -m x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(replica_pod(job), "1.30.0", strict=True)
    job = _job()
    job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):  # strict: unknown fields are errors
        kubernetes_validate.validate(replica_pod(job), "1.30.0", strict=True)


def test_best_parameters_come_from_the_newest_hpo_run(tmp_path: Path) -> None:
    config = _config(tmp_path)
    lr, batch, source = best_parameters(config)
    assert (lr, batch) == (0.03, 90) and "middle of the [hpo] search space" in source
    run = config.results_dir / "h1"
    run.mkdir(parents=True)
    (run / "hpo_trials.csv").write_text(
        "lr,batch_size,loss,state\n0.02,85,0.31,COMPLETE\n0.04,95,0.12,COMPLETE\n0.05,99,0.01,FAILED\n0.01,80,nan,COMPLETE\n"
    )
    lr, batch, source = best_parameters(config)
    assert (lr, batch) == (0.04, 95) and "h1/hpo_trials.csv" in source and "0.1200" in source


def test_rendered_set_is_consistent(tmp_path: Path, isvc_schema: dict[str, Any]) -> None:
    import jsonschema

    config = _config(tmp_path, 'kfp_image = "registry.example/sb:2"\n')
    files = render_pipeline_manifests(config)
    assert set(files) == {"tfjob.yaml", "inferenceservice.yaml", "servebench-pipeline.yaml"}
    job = yaml.safe_load(files["tfjob.yaml"])
    isvc = yaml.safe_load(files["inferenceservice.yaml"])
    jsonschema.validate(isvc, isvc_schema, cls=jsonschema.Draft7Validator)
    # the TFJob writes onto the claim the InferenceService reads, in the same namespace
    (volume,) = job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == "models-claim"
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == "pvc://models-claim/savedmodel/mnist"
    assert job["metadata"]["namespace"] == isvc["metadata"]["namespace"]
    ir = yaml.safe_load(files["servebench-pipeline.yaml"])
    assert set(ir["root"]["dag"]["tasks"]) == set(STAGES)
    assert {e["container"]["image"] for e in ir["deploymentSpec"]["executors"].values()} == {"registry.example/sb:2"}


def test_isvc_schema_rejects_a_wrong_type(tmp_path: Path, isvc_schema: dict[str, Any]) -> None:
    import jsonschema

    isvc = yaml.safe_load(render_pipeline_manifests(_config(tmp_path))["inferenceservice.yaml"])
    isvc["spec"]["predictor"]["minReplicas"] = "one"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(isvc, isvc_schema, cls=jsonschema.Draft7Validator)


def test_cli_writes_and_prints(tmp_path: Path, capsys) -> None:
    _config(tmp_path)
    out = tmp_path / "out"
    assert main(["--config", str(tmp_path / "bench.toml"), "manifests", "pipeline", "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["inferenceservice.yaml", "servebench-pipeline.yaml", "tfjob.yaml"]
    assert capsys.readouterr().out.split() == [
        str(out / n) for n in ("tfjob.yaml", "inferenceservice.yaml", "servebench-pipeline.yaml")
    ]
    assert main(["--config", str(tmp_path / "bench.toml"), "manifests", "pipeline"]) == 0
    kinds = [d.get("kind") for d in yaml.safe_load_all(capsys.readouterr().out)]
    assert kinds[:2] == ["TFJob", "InferenceService"] and len(kinds) == 3


def test_cli_refuses_a_v2_target_without_custom_container(tmp_path: Path, capsys) -> None:
    _config(tmp_path, 'protocol = "v2"\n')
    assert main(["--config", str(tmp_path / "bench.toml"), "manifests", "pipeline"]) == 2
    assert "targets.kubeflow-gcp.protocol" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_train_job_entrypoint_exports_a_servable_model(tmp_path: Path) -> None:
    """The TFJob's command, run here on a small split: it trains and writes the SavedModel layout KServe reads."""
    import json
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "-m",
        "models.pipeline.train_job",
        "--lr=0.03",
        "--batch-size=90",
        "--epochs=1",
        f"--output={tmp_path / 'models'}",
        "--train-size=1000",
        "--test-size=200",
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=170, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "models" / "savedmodel" / "mnist" / "1" / "saved_model.pb").is_file()
    meta = json.loads((tmp_path / "models" / "model.json").read_text())
    # one epoch on 1,000 images: well above chance (0.1), far from trained -- it learned, that is all
    assert meta["lr"] == 0.03 and meta["batch_size"] == 90 and 0.2 < meta["accuracy"] <= 1.0
    assert meta["parity"]
    from targets.kserve.target import find_savedmodel

    assert find_savedmodel(tmp_path / "models").name == "1"
