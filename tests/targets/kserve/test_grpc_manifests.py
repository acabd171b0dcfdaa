"""Rendered InferenceServices expose gRPC (an ``h2c`` port) for protocol grpc-v2, and still validate."""

from __future__ import annotations

from typing import Any

import pytest

from ground.tables import ConfigError
from tests.targets.kserve.test_manifests import isvc, render, validate


def container(files: dict[str, str]) -> dict[str, Any]:
    (only,) = isvc(files)["spec"]["predictor"]["containers"]
    return only


@pytest.mark.parametrize("raw", [False, True])
def test_grpc_port_exposed_and_served(isvc_schema: dict[str, Any], raw: bool) -> None:
    files = render(protocol="grpc-v2", custom_container=True, raw_deployment=raw)
    validate(isvc(files), isvc_schema)
    spec = container(files)
    args = spec["args"]
    assert args[args.index("--grpc-port") + 1] == "8081"
    names = {p.get("name"): p["containerPort"] for p in spec["ports"]}
    if raw:  # a plain Deployment: both ports, named; readiness on REST
        assert names == {"http1": 8080, "h2c": 8081}
        assert spec["readinessProbe"]["httpGet"]["port"] == 8080
    else:  # Knative routes one port per container: gRPC alone, TCP readiness
        assert names == {"h2c": 8081}
        assert spec["readinessProbe"]["tcpSocket"] == {"port": 8081}
    assert "targets/kserve/server/grpc_server.py" in files["Dockerfile.kserve-predictor"]


@pytest.mark.parametrize("protocol", ["v2", "v2-binary"])
def test_http_protocols_expose_rest_only(isvc_schema: dict[str, Any], protocol: str) -> None:
    files = render(protocol=protocol, custom_container=True)
    validate(isvc(files), isvc_schema)
    spec = container(files)
    assert spec["ports"] == [{"containerPort": 8080, "protocol": "TCP"}] and "--grpc-port" not in spec["args"]


def test_grpc_needs_the_custom_container() -> None:
    with pytest.raises(ConfigError, match="protocol"):
        render(protocol="grpc-v2")
