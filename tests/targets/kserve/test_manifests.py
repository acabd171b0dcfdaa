"""InferenceService manifests validate against KServe's own CRD schema (offline).

The CRD is vendored in tests/data/schemas/kserve/ (source and licence in its README) and
loaded once per session by the ``isvc_schema`` fixture (tests/conftest.py).  The schema check must also
*reject* a wrong type, or a passing
validation would prove nothing.  The Istio AuthorizationPolicy rendered beside the
InferenceService is checked in tests/targets/kserve/test_policy.py.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from ground.tables import ConfigError, parse_table
from targets.base import TargetContext
from targets.kserve.target import KServeSettings, KServeTarget


def validate(doc: dict[str, Any], schema: dict[str, Any]) -> None:
    import jsonschema

    jsonschema.validate(doc, schema, cls=jsonschema.Draft7Validator)


def render(name: str = "kubeflow-ibm", **table: object) -> dict[str, str]:
    settings = parse_table(KServeSettings, table, f"targets.{name}")
    return KServeTarget(name, settings, TargetContext(artifacts_dir=".", log_dir=".")).manifests()


def isvc(files: dict[str, str]) -> dict[str, Any]:
    return yaml.safe_load(files["inferenceservice.yaml"])


def test_tensorflow_predictor_validates(isvc_schema: dict[str, Any]) -> None:
    files = render(workers=2, storage_uri="gs://my-bucket/models/mnist")
    assert set(files) == {"inferenceservice.yaml", "authorizationpolicy.yaml"}
    doc = isvc(files)
    validate(doc, isvc_schema)
    assert (doc["apiVersion"], doc["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    assert doc["metadata"]["name"] == "mnist"
    assert doc["metadata"]["annotations"] == {}
    predictor = doc["spec"]["predictor"]
    assert predictor["minReplicas"] == predictor["maxReplicas"] == 2
    model = predictor["model"]
    assert model["modelFormat"] == {"name": "tensorflow"}
    assert model["storageUri"] == "gs://my-bucket/models/mnist"
    assert model["protocolVersion"] == "v1"
    assert model["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}


def test_raw_deployment_annotation(isvc_schema: dict[str, Any]) -> None:
    doc = isvc(render(raw_deployment=True))
    validate(doc, isvc_schema)
    assert doc["metadata"]["annotations"] == {"serving.kserve.io/deploymentMode": "RawDeployment"}


def test_custom_container_form_and_dockerfile(isvc_schema: dict[str, Any], repo_root: Path) -> None:
    files = render(protocol="v2", custom_container=True, image="registry.example.com/sb/predictor:1")
    assert set(files) == {"inferenceservice.yaml", "Dockerfile.kserve-predictor", "authorizationpolicy.yaml"}
    doc = isvc(files)
    validate(doc, isvc_schema)
    (container,) = doc["spec"]["predictor"]["containers"]
    assert container["image"] == "registry.example.com/sb/predictor:1"
    assert container["args"][:2] == ["--model-dir", "/mnt/models"]
    assert "0.0.0.0" in container["args"]  # inside a pod it must listen on the pod network
    assert {"name": "STORAGE_URI", "value": "pvc://servebench-models/savedmodel/mnist"} in container["env"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    dockerfile = files["Dockerfile.kserve-predictor"]
    assert 'ENTRYPOINT ["python", "-m", "targets.kserve.server.main"]' in dockerfile
    # Every file of the server process (targets/kserve/server/) and the packages above it.
    server = sorted(p.name for p in (repo_root / "targets" / "kserve" / "server").glob("*.py"))
    assert "main.py" in server and "savedmodel.py" in server
    for path in ("targets/__init__.py", "targets/kserve/__init__.py", *(f"targets/kserve/server/{n}" for n in server)):
        assert path in dockerfile, path
    assert "{{" not in dockerfile and "{{" not in files["inferenceservice.yaml"]


@pytest.mark.parametrize(
    ("path", "bad_value"),
    [
        (("spec", "predictor", "model", "storageUri"), 5),
        (("spec", "predictor", "minReplicas"), "two"),
        (("spec", "predictor", "model", "modelFormat"), "tensorflow"),
    ],
)
def test_schema_rejects_wrong_types(isvc_schema: dict[str, Any], path: tuple[str, ...], bad_value: object) -> None:
    import jsonschema

    doc = copy.deepcopy(isvc(render()))
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad_value
    with pytest.raises(jsonschema.ValidationError):
        validate(doc, isvc_schema)


def test_v2_without_custom_container_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        render(protocol="v2")
    assert err.value.where == "targets.kubeflow-ibm.protocol"
    assert "custom_container" in str(err.value)


def test_manifest_equals_one_built_with_kserve_sdk_classes() -> None:
    """The same InferenceService built with kserve's own model classes serializes equal.

    (kserve's ApiClient cannot *deserialize* one -- it looks Kubernetes types up in
    kserve.models and fails -- so the comparison goes the other way.)
    """
    from kserve import (
        ApiClient,
        V1beta1InferenceService,
        V1beta1InferenceServiceSpec,
        V1beta1ModelFormat,
        V1beta1ModelSpec,
        V1beta1PredictorSpec,
    )
    from kubernetes.client import V1ObjectMeta, V1ResourceRequirements

    doc = isvc(render(raw_deployment=True, workers=2, storage_uri="s3://bucket/mnist", cpu="2", memory="1Gi"))
    resources = {"cpu": "2", "memory": "1Gi"}
    built = V1beta1InferenceService(
        api_version="serving.kserve.io/v1beta1",
        kind="InferenceService",
        metadata=V1ObjectMeta(
            name="mnist",
            namespace="kubeflow-user-example-com",
            labels={"app.kubernetes.io/part-of": "servebench", "servebench/target": "kubeflow-ibm"},
            annotations={"serving.kserve.io/deploymentMode": "RawDeployment"},
        ),
        spec=V1beta1InferenceServiceSpec(
            predictor=V1beta1PredictorSpec(
                min_replicas=2,
                max_replicas=2,
                model=V1beta1ModelSpec(
                    model_format=V1beta1ModelFormat(name="tensorflow"),
                    protocol_version="v1",
                    storage_uri="s3://bucket/mnist",
                    resources=V1ResourceRequirements(requests=resources, limits=resources),
                ),
            )
        ),
    )
    expected = ApiClient().sanitize_for_serialization(built)
    # The SDK fills the container name of the model spec with "" (V1Container requires one);
    # KServe names it itself, so the manifest leaves it out.
    assert expected["spec"]["predictor"]["model"].pop("name") == ""
    assert expected == doc


@pytest.mark.parametrize("table", [{}, {"protocol": "v2", "custom_container": True}])
def test_inferenceservice_notes_say_how_the_cluster_protects_the_model(table: dict[str, object]) -> None:
    """The comments a user reads before ``kubectl apply`` name the risk and the policy."""
    text = render(**table)["inferenceservice.yaml"]
    notes = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    for needle in (
        "/v2/repository/models/<name>/load|unload",
        "authorizationpolicy.yaml",
        "Istio",
        "serving.kserve.io/inferenceservice: mnist",
        "docs/remote-targets.md",
    ):
        assert needle in notes, needle
