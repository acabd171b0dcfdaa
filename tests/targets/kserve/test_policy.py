"""The Istio AuthorizationPolicy rendered beside a kserve target's InferenceService.

No Istio CRD is in the shared schemas, so the structure is checked against a JSON schema
written here from Istio's AuthorizationPolicy reference (security.istio.io, fields of
``spec``, ``rules[].from[].source``, ``rules[].to[].operation``, ``rules[].when[]``; every
level closed to unknown keys) -- and the schema must reject a wrong policy, or passing it
would prove nothing.  The meaning is checked with Istio's documented path matching (exact,
``prefix*``, ``*suffix``, ``*``): every repository-extension spelling the stand-in's own
guard refuses is denied, and no inference endpoint is.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from ground.tables import parse_table
from targets.base import TargetContext
from targets.kserve.manifests import DENIED_PATHS
from targets.kserve.server.guards import is_repository_path
from targets.kserve.target import KServeSettings, KServeTarget

_STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1}}


def _closed(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties, **extra}


AUTHORIZATION_POLICY_SCHEMA: dict[str, Any] = _closed(
    {
        "apiVersion": {"enum": ["security.istio.io/v1beta1", "security.istio.io/v1"]},
        "kind": {"const": "AuthorizationPolicy"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"},
                "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": _closed(
            {
                "selector": _closed({"matchLabels": {"type": "object", "additionalProperties": {"type": "string"}}}),
                "action": {"enum": ["ALLOW", "DENY", "AUDIT", "CUSTOM"]},
                "provider": _closed({"name": {"type": "string"}}),
                "rules": {
                    "type": "array",
                    "items": _closed(
                        {
                            "from": {
                                "type": "array",
                                "items": _closed(
                                    {
                                        "source": _closed(
                                            {
                                                k: _STRINGS
                                                for k in (
                                                    "principals",
                                                    "notPrincipals",
                                                    "requestPrincipals",
                                                    "notRequestPrincipals",
                                                    "namespaces",
                                                    "notNamespaces",
                                                    "ipBlocks",
                                                    "notIpBlocks",
                                                    "remoteIpBlocks",
                                                    "notRemoteIpBlocks",
                                                )
                                            }
                                        )
                                    }
                                ),
                            },
                            "to": {
                                "type": "array",
                                "items": _closed(
                                    {
                                        "operation": _closed(
                                            {
                                                k: _STRINGS
                                                for k in (
                                                    "hosts",
                                                    "notHosts",
                                                    "ports",
                                                    "notPorts",
                                                    "methods",
                                                    "notMethods",
                                                    "paths",
                                                    "notPaths",
                                                )
                                            }
                                        )
                                    }
                                ),
                            },
                            "when": {
                                "type": "array",
                                "items": _closed(
                                    {"key": {"type": "string"}, "values": _STRINGS, "notValues": _STRINGS},
                                    required=["key"],
                                ),
                            },
                        }
                    ),
                },
            }
        ),
    },
    required=["apiVersion", "kind", "metadata", "spec"],
)


def _render(**table: object) -> dict[str, Any]:
    settings = parse_table(KServeSettings, table, "targets.kubeflow-gcp")
    files = KServeTarget("kubeflow-gcp", settings, TargetContext(artifacts_dir=".", log_dir=".")).manifests()
    return {name: yaml.safe_load(text) for name, text in files.items() if name.endswith(".yaml")}


def _validate(doc: dict[str, Any]) -> None:
    import jsonschema

    jsonschema.validate(doc, AUTHORIZATION_POLICY_SCHEMA, cls=jsonschema.Draft7Validator)


def istio_path_matches(pattern: str, path: str) -> bool:
    """Istio's string match for ``paths``: exact, ``prefix*``, ``*suffix`` or ``*`` (any)."""
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return path.endswith(pattern[1:])
    return path == pattern


def _denied(policy: dict[str, Any], path: str) -> bool:
    return any(
        istio_path_matches(pattern, path)
        for rule in policy["spec"]["rules"]
        for to in rule["to"]
        for pattern in to["operation"]["paths"]
    )


REPOSITORY_PATHS = [
    "/v2/repository/index",
    "/v2/repository/models/mnist/load",
    "/v2/repository/models/mnist/unload",
    "/v1/models/mnist:load",
    "/v1/models/mnist:unload",
    "/v1/models/mnist/load",
    "/v1/models/mnist/unload",
    "/v2/models/mnist/unload",
]
INFERENCE_PATHS = [
    "/",
    "/metrics",
    "/v1/models",
    "/v1/models/mnist",
    "/v1/models/mnist:predict",
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models",
    "/v2/models/mnist",
    "/v2/models/mnist/ready",
    "/v2/models/mnist/infer",
]


@pytest.mark.parametrize("table", [{}, {"protocol": "v2", "custom_container": True, "namespace": "team-a"}])
def test_policy_is_well_formed_and_selects_the_services_pods(table: dict[str, object]) -> None:
    docs = _render(model_name="digits", **table)
    policy, isvc = docs["authorizationpolicy.yaml"], docs["inferenceservice.yaml"]
    _validate(policy)
    assert policy["spec"]["action"] == "DENY"
    assert policy["metadata"]["namespace"] == isvc["metadata"]["namespace"]
    # KServe labels every pod of an InferenceService with its name.
    assert policy["spec"]["selector"]["matchLabels"] == {"serving.kserve.io/inferenceservice": "digits"}
    for pattern in DENIED_PATHS:  # only the match forms Istio implements
        assert pattern == "*" or "*" not in pattern.strip("*"), pattern
        assert not (pattern.startswith("*") and pattern.endswith("*") and pattern != "*"), pattern


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "action"), "REJECT"),
        (("spec", "rules", 0, "to", 0, "operation", "paths"), "/v2/repository/*"),
        (("spec", "rules", 0, "to", 0, "operation", "path"), ["/v2/repository/*"]),
        (("spec", "selector", "labels"), {"a": "b"}),
        (("kind",), "AuthorisationPolicy"),
    ],
)
def test_schema_rejects_a_wrong_policy(path: tuple[Any, ...], value: object) -> None:
    import jsonschema

    doc = copy.deepcopy(_render()["authorizationpolicy.yaml"])
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        _validate(doc)


def test_policy_denies_the_repository_extension_and_nothing_of_the_inference_protocol() -> None:
    policy = _render()["authorizationpolicy.yaml"]
    for path in REPOSITORY_PATHS:
        assert _denied(policy, path), f"the policy lets {path} through"
    for path in INFERENCE_PATHS:
        assert not _denied(policy, path), f"the policy blocks the inference endpoint {path}"
    assert _denied(policy, "/tensorflow.serving.ModelService/HandleReloadConfigRequest")
    assert not _denied(policy, "/tensorflow.serving.PredictionService/Predict")


def test_policy_and_the_stand_ins_guard_refuse_the_same_paths() -> None:
    """What the local stand-in refuses (403), the cluster policy denies, and vice versa."""
    policy = _render()["authorizationpolicy.yaml"]
    for path in REPOSITORY_PATHS + INFERENCE_PATHS:
        assert _denied(policy, path) == is_repository_path(path), path
