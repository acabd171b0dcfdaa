"""The KServe stand-in over gRPC and the binary-tensor extension, end to end.

One stand-in (protocol grpc-v2: REST and gRPC in one process) serves the module; a v2-binary
target of the same settings only builds requests and reads answers, sent to the stand-in's
REST port.  Checked: both protocols give exactly the SavedModel's in-process digits through
the load generator's own engines; the stand-in listens on loopback only (REST and gRPC);
a bad gRPC request is an INVALID_ARGUMENT the engine reports as http_4xx.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import numpy as np
import pytest

from ground.tables import parse_table
from loadgen.engine import EngineOptions
from loadgen.engines import engine_class, engine_for_url
from loadgen.inference.grpc_messages import MODEL_INFER_METHOD, encode_infer_request
from loadgen.request import Request
from models.data import wire_pixels
from targets.base import TargetContext
from targets.kserve.target import KServeSettings, KServeTarget
from targets.process import group_pids
from tests.support.targets import listening_addresses

pytestmark = pytest.mark.slow


def make_target(name: str, context: TargetContext, **table: object) -> KServeTarget:
    return KServeTarget(name, parse_table(KServeSettings, table, f"targets.{name}"), context)


@pytest.fixture(scope="module")
def context(trained_model, tmp_path_factory) -> TargetContext:
    return TargetContext(
        artifacts_dir=trained_model.dir, log_dir=tmp_path_factory.mktemp("kserve-grpc-logs"), ready_timeout_s=240.0
    )


@pytest.fixture(scope="module")
def grpc_server(context: TargetContext) -> Iterator[KServeTarget]:
    target = make_target("kubeflow-gcp-grpc", context, protocol="grpc-v2")
    asyncio.run(target.start())
    try:
        yield target
    finally:
        asyncio.run(target.stop())


@pytest.fixture(scope="module")
def savedmodel_digits(trained_model, mnist) -> np.ndarray:
    from models.predict import load_savedmodel

    predict = load_savedmodel(trained_model.savedmodel_dir)
    return np.asarray(predict(wire_pixels(mnist[0][:32]))).argmax(axis=1)


def _send_all(target: KServeTarget, base_url: str, images: np.ndarray) -> list[int]:
    """Each image through the engine a run would use (grpc for grpc://, aiohttp otherwise), decoded."""

    async def run() -> list[int]:
        factory = engine_for_url(engine_class("aiohttp"))
        async with factory(EngineOptions(base_url, 4, timeout_s=30.0)) as engine:
            requests = [target.encode(image) for image in images]
            engine.prepare(requests)
            responses = await asyncio.gather(*(engine.send(r) for r in requests))
        return [target.decode(r.status, r.body) for r in responses]

    return asyncio.run(run())


def test_grpc_answers_the_savedmodel_digits(grpc_server: KServeTarget, mnist, savedmodel_digits) -> None:
    assert grpc_server.base_url.startswith("grpc://127.0.0.1:")
    started = time.perf_counter()
    digits = _send_all(grpc_server, grpc_server.base_url, mnist[0][:32])
    np.testing.assert_array_equal(digits, savedmodel_digits)
    print(f"grpc-v2: 32 images in {time.perf_counter() - started:.2f} s, same digits as the SavedModel")


def test_binary_tensors_answer_the_savedmodel_digits(
    grpc_server: KServeTarget, context: TargetContext, mnist, savedmodel_digits
) -> None:
    binary = make_target("kubeflow-gcp-binary", context, protocol="v2-binary")  # builds requests only
    (process,) = grpc_server.processes
    rest_port = next(a.rsplit(":", 1)[1] for a in listening_addresses(set(group_pids(process.pgid))) if "ffff" not in a)
    request = binary.encode(mnist[0][0])
    assert request.headers["Content-Type"] == "application/octet-stream"
    digits = _send_all(binary, f"http://127.0.0.1:{rest_port}", mnist[0][:32])
    np.testing.assert_array_equal(digits, savedmodel_digits)


def test_listens_on_loopback_only(grpc_server: KServeTarget) -> None:
    (process,) = grpc_server.processes
    addresses = set(listening_addresses(set(group_pids(process.pgid))))
    grpc_port = grpc_server.base_url.rsplit(":", 1)[1]
    hosts = {a.rsplit(":", 1)[0] for a in addresses}
    assert len(addresses) == 2 and any(a.endswith(f":{grpc_port}") for a in addresses), addresses
    # gRPC binds 127.0.0.1 through a dual-stack socket, which ss shows as the IPv4-mapped address.
    assert hosts <= {"127.0.0.1", "[::ffff:127.0.0.1]"}, addresses


def test_bad_grpc_request_is_a_client_error(grpc_server: KServeTarget) -> None:
    body = encode_infer_request("mnist", {"nope": np.zeros((1, 28, 28), np.float32)})

    async def send() -> tuple[int, bytes]:
        factory = engine_for_url(engine_class("aiohttp"))
        async with factory(EngineOptions(grpc_server.base_url, 1)) as engine:
            response = await engine.send(Request("POST", MODEL_INFER_METHOD, body, {}))
        return response.status, response.body

    status, text = asyncio.run(send())
    assert status == 400 and b"INVALID_ARGUMENT" in text and b"pixels" in text
