"""The k8s adapter: its stand-in spreads connections over replicas; its manifests validate.

Manifests are checked offline against the Kubernetes OpenAPI schemas with
``kubernetes_validate`` (strict: unknown fields are errors), no cluster needed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from bench.config import load_config
from models.data import load_dataset
from targets.base import TargetContext
from targets.flask.target import WORKER_CLASS
from targets.process import group_pids
from targets.registry import build_target
from targets.spec import TargetSpec
from tests.support.targets import listening_addresses, send

K8S_VERSION = "1.30.0"


def _target(table: dict, tmp_path: Path, artifacts: Path | None = None, name: str = "k8s-ibm"):
    ctx = TargetContext(artifacts_dir=artifacts or tmp_path, log_dir=tmp_path / "logs", ready_timeout_s=180.0)
    return build_target(TargetSpec(name, "k8s", table), ctx)


def test_deployment_and_service_validate_against_kubernetes_schemas(tmp_path) -> None:
    target = _target({"replicas": 3, "model_loading": "startup", "namespace": "bench", "image": "reg/x:1"}, tmp_path)
    files = target.manifests()
    assert set(files) == {"Dockerfile", "deployment.yaml", "service.yaml"}
    deployment = yaml.safe_load(files["deployment.yaml"])
    service = yaml.safe_load(files["service.yaml"])
    for doc in (deployment, service):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    assert deployment["spec"]["replicas"] == 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "reg/x:1"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert {"name": "SERVEBENCH_MODEL_LOADING", "value": "startup"} in container["env"]
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert deployment["metadata"]["namespace"] == service["metadata"]["namespace"] == "bench"


def test_schema_validation_catches_a_broken_manifest(tmp_path) -> None:
    """The check above has teeth: a misspelt field fails strict validation."""
    deployment = yaml.safe_load(_target({}, tmp_path).manifests()["deployment.yaml"])
    deployment["spec"]["replicaz"] = deployment["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_dockerfile_copies_files_that_exist(tmp_path, repo_root) -> None:
    dockerfile = _target({}, tmp_path).manifests()["Dockerfile"]
    copied = []
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            copied += [p for p in line.split()[1:-1] if not p.startswith("artifacts")]
    assert copied, dockerfile
    for path in copied:
        assert (repo_root / path).is_file(), path
    assert "targets.flask.server.app:app" in dockerfile and "--no-control-socket" in dockerfile
    assert f"--worker-class {WORKER_CLASS}" in dockerfile
    assert "{{" not in dockerfile


def test_dockerfile_copies_everything_the_app_imports(tmp_path, repo_root) -> None:
    """Import the app and its gunicorn worker from a folder holding ONLY the files the Dockerfile copies."""
    import shutil
    import subprocess
    import sys

    dockerfile = _target({}, tmp_path).manifests()["Dockerfile"]
    image_root = tmp_path / "image"
    for line in dockerfile.splitlines():
        if line.startswith("COPY ") and "artifacts" not in line:
            *sources, dest = line.split()[1:]
            (image_root / dest).mkdir(parents=True, exist_ok=True)
            for source in sources:
                shutil.copy(repo_root / source, image_root / dest)
    code = (
        "import sys, targets.flask.server.app as app, models.data as data, targets.flask.server.worker as worker;"
        f"assert worker.{WORKER_CLASS.rsplit('.', 1)[1]};"
        "mods = sorted(m for m in sys.modules if m.split('.')[0] in ('targets', 'models', 'bench', 'loadgen'));"
        "print(app.__file__, data.__file__, mods)"
    )
    env = {"PYTHONPATH": str(image_root), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=image_root, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    app_file, data_file, mods = out.stdout.split(" ", 2)
    assert app_file.startswith(str(image_root)) and data_file.startswith(str(image_root))
    assert mods.strip() == (
        "['models', 'models.data', 'targets', 'targets.flask', 'targets.flask.server', 'targets.flask.server.app', "
        "'targets.flask.server.framing', 'targets.flask.server.photo', 'targets.flask.server.worker']"
    )


def test_target_name_becomes_a_valid_resource_name(tmp_path) -> None:
    files = _target({}, tmp_path, name="K8s_IBM.cloud").manifests()
    assert yaml.safe_load(files["service.yaml"])["metadata"]["name"] == "k8s-ibm-cloud"


@pytest.mark.slow
def test_standin_spreads_requests_over_replicas(trained_model, tmp_path, repo_root) -> None:
    target = _target({"replicas": 2, "model_loading": "startup"}, tmp_path, trained_model.dir)
    asyncio.run(target.start())
    try:
        processes = list(target.processes)
        assert len(processes) == 2 and len({p.pgid for p in processes}) == 2
        pids = {pid for p in processes for pid in group_pids(p.pgid)}
        addresses = listening_addresses(pids)
        port = target.base_url.rsplit(":", 1)[1]
        # Two independent listening sockets (one per replica) on the same loopback port.
        assert addresses == [f"127.0.0.1:{port}"] * 2, addresses

        image = load_dataset(load_config(repo_root / "bench.toml").model).test_x[0]
        request = target.encode(image)
        counts: Counter[str] = Counter()
        for _ in range(100):  # each `send` is a fresh connection
            response = send(target.base_url, request)
            assert response.status_code == 200
            counts[response.headers["X-Replica"]] += 1
        print(f"requests per replica over 100 fresh connections: {dict(counts)}")
        assert set(counts) == {"k8s-ibm-0", "k8s-ibm-1"}
        assert min(counts.values()) >= 15, counts  # P(<15 of 100 | fair coin) ~ 1e-12
    finally:
        asyncio.run(target.stop())
    assert not any(group_pids(p.pgid) for p in processes)
