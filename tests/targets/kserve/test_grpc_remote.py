"""Remote gRPC endpoints: settings rules, and readiness + requests with credentials as gRPC metadata
(an in-process gRPC server stands in for the remote InferenceService)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import numpy as np
import pytest
from grpc import aio

from ground.tables import ConfigError, parse_table
from loadgen.engine import EngineOptions
from loadgen.engines.grpc_engine import GrpcEngine
from loadgen.inference import grpc_predict_v2_pb2 as pb
from loadgen.inference.grpc_messages import encode_infer_response
from targets.base import TargetContext, TargetError
from targets.kserve.target import KServeSettings, KServeTarget


def settings(**table: Any) -> KServeSettings:
    return parse_table(KServeSettings, table, "targets.remote-grpc")


@pytest.mark.parametrize(
    "table",
    [
        {"protocol": "grpc-v2", "endpoint": "https://example.com"},
        {"protocol": "v2", "endpoint": "grpc://example.com:8081"},
        {"protocol": "grpc-v2", "endpoint": "ftp://example.com"},
    ],
)
def test_endpoint_scheme_must_fit_the_protocol(table: dict[str, Any]) -> None:
    with pytest.raises((ConfigError, ValueError), match="endpoint"):
        settings(**table)


def test_grpcs_endpoint_is_accepted() -> None:
    assert settings(protocol="grpc-v2", endpoint="grpcs://isvc.example.com:443").is_remote


def test_remote_grpc_target_checks_model_ready_and_sends_credentials(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GRPC_TEST_TOKEN", "s3cret-token")
    seen: list[dict[str, str]] = []
    answer = encode_infer_response("mnist", {"logits": np.eye(1, 10, 3, dtype=np.float32)})

    class Service(grpc.GenericRpcHandler):
        def service(self, details: Any) -> Any:
            async def call(request: bytes, context: Any) -> bytes:
                seen.append({m.key: m.value for m in context.invocation_metadata()})
                if details.method == pb.MODEL_READY_METHOD:
                    return pb.ModelReadyResponse(
                        ready=pb.ModelReadyRequest.FromString(request).name == "mnist"
                    ).SerializeToString()
                return answer

            return grpc.unary_unary_rpc_method_handler(call)

    async def scenario() -> tuple[int, str]:
        server = aio.server(handlers=[Service()])
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            table = {
                "protocol": "grpc-v2",
                "endpoint": f"grpc://127.0.0.1:{port}",
                "bearer_token_env": "GRPC_TEST_TOKEN",
                "host_header": "mnist.kubeflow.example.com",
                "ready_timeout_s": 10.0,
            }
            target = KServeTarget(
                "remote-grpc", settings(**table), TargetContext(artifacts_dir=tmp_path, log_dir=tmp_path)
            )
            await target.start()
            request = target.encode(np.zeros((28, 28), np.uint8))
            async with GrpcEngine(EngineOptions(target.base_url, 2)) as engine:
                engine.prepare([request])
                # A Python gRPC server cannot see :authority, so the engine's own choice is checked.
                assert engine._authority == "mnist.kubeflow.example.com"
                response = await engine.send(request)
            await target.stop()
            return target.decode(response.status, response.body), target.base_url
        finally:
            await server.stop(grace=None)

    digit, base_url = asyncio.run(scenario())
    assert digit == 3 and base_url.startswith("grpc://127.0.0.1:")
    assert len(seen) == 2  # ModelReady, then ModelInfer
    for metadata in seen:
        assert metadata["authorization"] == "Bearer s3cret-token" and "host" not in metadata


def test_remote_grpc_not_ready_names_the_url(tmp_path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        table = {"protocol": "grpc-v2", "endpoint": f"grpc://127.0.0.1:{port}", "ready_timeout_s": 1.0}
        target = KServeTarget("remote-grpc", settings(**table), TargetContext(artifacts_dir=tmp_path, log_dir=tmp_path))
        with pytest.raises(TargetError, match=f"grpc://127.0.0.1:{port}.*UNAVAILABLE"):
            asyncio.run(target.start())
