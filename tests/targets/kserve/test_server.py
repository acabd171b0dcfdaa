"""The KServe stand-in end to end: real ModelServer, real SavedModel, real MNIST images.

One stand-in with two worker processes serves the module (start-up costs ~15-30 s on two
cores: every worker imports TensorFlow).  Checked here beyond the shared contract suite
(tests/targets/test_contract.py, which runs the kserve V1 and V2 cases too): both
protocols give *exactly* the SavedModel's in-process digits; two workers really serve;
remote mode sends the Host header and bearer token and never reveals the token; a
stand-in that dies during start-up leaves no process behind.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from ground.tables import parse_table
from models.data import wire_pixels
from targets.base import TargetContext, TargetError
from targets.kserve.target import KServeSettings, KServeTarget
from targets.process import group_pids
from tests.support.targets import listening_addresses, send

pytestmark = pytest.mark.slow

N_IMAGES = 100  # the `mnist` fixture (tests/conftest.py): the first 100 test images


def make_target(name: str, context: TargetContext, **table: object) -> KServeTarget:
    return KServeTarget(name, parse_table(KServeSettings, table, f"targets.{name}"), context)


@pytest.fixture(scope="module")
def savedmodel_digits(trained_model, mnist) -> np.ndarray:
    """The SavedModel's own digits, in this process, on the exact wire input."""
    from models.predict import load_savedmodel

    predict = load_savedmodel(trained_model.savedmodel_dir)
    return np.asarray(predict(wire_pixels(mnist[0]))).argmax(axis=1)


@pytest.fixture(scope="module")
def context(trained_model, tmp_path_factory) -> TargetContext:
    return TargetContext(
        artifacts_dir=trained_model.dir, log_dir=tmp_path_factory.mktemp("kserve-logs"), ready_timeout_s=240.0
    )


@pytest.fixture(scope="module")
def server(context: TargetContext) -> Iterator[KServeTarget]:
    target = make_target("kubeflow-ibm", context, protocol="v1", workers=2)
    started = time.monotonic()
    asyncio.run(target.start())
    print(f"kserve stand-in with 2 workers ready in {time.monotonic() - started:.1f} s at {target.base_url}")
    try:
        yield target
    finally:
        asyncio.run(target.stop())


def _digits(target: KServeTarget, images: np.ndarray, base_url: str) -> tuple[np.ndarray, list[float]]:
    digits, latencies = [], []
    with httpx.Client(base_url=base_url, timeout=30.0, trust_env=False) as client:
        for image in images:
            request = target.encode(image)
            started = time.perf_counter()
            response = client.request(request.method, request.path, content=request.body, headers=dict(request.headers))
            latencies.append(time.perf_counter() - started)
            digits.append(target.decode(response.status_code, response.content))
    return np.asarray(digits), latencies


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_both_protocols_match_the_savedmodel_in_process(
    server: KServeTarget, context: TargetContext, mnist, savedmodel_digits, protocol: str
) -> None:
    # The server speaks both protocols; an unstarted local target of the other protocol
    # only builds the requests and reads the answers.
    client_side = server if protocol == "v1" else make_target("kubeflow-ibm-v2", context, protocol="v2")
    images, labels = mnist
    digits, latencies = _digits(client_side, images, server.base_url)
    np.testing.assert_array_equal(digits, savedmodel_digits)
    accuracy = float(np.mean(digits == labels))
    assert accuracy >= 0.9
    print(
        f"{protocol}: accuracy {accuracy:.2%} on {N_IMAGES} test images (same digits as the SavedModel in-process); "
        f"sequential latency p50 {1000 * np.median(latencies):.2f} ms, max {1000 * max(latencies):.2f} ms"
    )


def test_two_workers_serve_from_one_loopback_port(server: KServeTarget, mnist) -> None:
    (process,) = server.processes
    pids = set(group_pids(process.pgid))
    assert len(pids) >= 3, f"expected the kserve parent and 2 workers, got {sorted(pids)}"
    addresses = set(listening_addresses(pids))
    port = server.base_url.rsplit(":", 1)[1]
    assert addresses == {f"127.0.0.1:{port}"}, addresses  # no gRPC, no 0.0.0.0
    log = Path(process.log_path).read_text(errors="replace")
    assert log.count("Application startup complete") >= 2
    assert "POST /v1/models" not in log, "per-request access logging should be off"

    # 32 concurrent requests on separate connections all answer correctly.
    images, labels = mnist

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30.0, trust_env=False) as client:

            async def one(image: np.ndarray) -> int:
                request = server.encode(image)
                r = await client.post(request.path, content=request.body, headers=dict(request.headers))
                return server.decode(r.status_code, r.content)

            return await asyncio.gather(*(one(image) for image in images[:32]))

    digits = asyncio.run(burst())
    assert np.mean(np.asarray(digits) == labels[:32]) >= 0.9


def test_rejects_bad_requests_with_json_errors(server: KServeTarget, mnist) -> None:
    valid = server.encode(mnist[0][0])
    cases = {
        "unknown model": ("/v1/models/nope:predict", valid.body, "application/json", 404),
        "form body": (valid.path, valid.body, "application/x-www-form-urlencoded", 415),
        "too many images": (
            valid.path,
            json.dumps({"instances": [[0.0] * 784] * 513}).encode(),
            "application/json",
            400,
        ),
        "v2 not a tensor": ("/v2/models/mnist/infer", b'{"inputs": 5}', "application/json", 400),
        "v2 bad json": ("/v2/models/mnist/infer", b'{"inputs": [', "application/json", 400),
    }
    for what, (path, body, ctype, status) in cases.items():
        response = (
            send(server.base_url, valid, body=body, headers={"Content-Type": ctype})
            if path == valid.path
            else (httpx.post(server.base_url + path, content=body, headers={"Content-Type": ctype}, trust_env=False))
        )
        assert response.status_code == status, f"{what}: HTTP {response.status_code} {response.text[:200]}"
        assert json.loads(response.content)["error"], what
    assert server.decode(*_answer(server, valid)) in range(10)


def _answer(target: KServeTarget, request) -> tuple[int, bytes]:
    response = send(target.base_url, request)
    return response.status_code, response.content


def test_remote_mode_sends_host_header_and_token(
    server: KServeTarget, context: TargetContext, mnist, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SB_KSERVE_TEST_TOKEN", "tok-3f9a-secret")
    remote = make_target(
        "kubeflow-remote",
        context,
        endpoint=server.base_url,
        host_header="mnist.kubeflow-user.example.com",
        bearer_token_env="SB_KSERVE_TEST_TOKEN",
        protocol="v1",
    )
    assert remote.is_remote
    asyncio.run(remote.start())
    try:
        assert remote.processes == [] and remote.base_url == server.base_url
        request = remote.encode(mnist[0][0])
        assert request.headers["Host"] == "mnist.kubeflow-user.example.com"
        assert request.headers["Authorization"] == "Bearer tok-3f9a-secret"
        digits, _ = _digits(remote, mnist[0][:20], remote.base_url)
        assert np.mean(digits == mnist[1][:20]) >= 0.9
        assert "tok-3f9a-secret" not in json.dumps(remote.describe())
    finally:
        asyncio.run(remote.stop())
    assert group_pids(server.processes[0].pgid), "stopping a remote target must not touch the server"


def test_remote_not_ready_names_url_and_answer(context: TargetContext) -> None:
    from targets.process import free_port

    url = f"http://127.0.0.1:{free_port()}"
    remote = make_target("kubeflow-gone", context, endpoint=url, ready_timeout_s=1.0)
    with pytest.raises(TargetError) as err:
        asyncio.run(remote.start())
    assert url in str(err.value) and "ConnectError" in str(err.value)


def test_failed_start_leaves_no_process(tmp_path: Path) -> None:
    """A SavedModel that TensorFlow cannot load: the error shows the log, nothing is left."""
    version = tmp_path / "savedmodel" / "mnist" / "1"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"this is not a protobuf")
    context = TargetContext(artifacts_dir=tmp_path, log_dir=tmp_path / "logs", ready_timeout_s=120.0)
    target = make_target("kubeflow-broken", context)
    with pytest.raises(TargetError) as err:
        asyncio.run(target.start())
    message = str(err.value)
    assert "exited with code" in message and "last lines of" in message, message
    assert target.processes == []
    assert not _processes_mentioning(str(tmp_path)), "a stand-in process outlived the failed start"


def _processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (the test's unique temp folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(int(entry.name))
    return found
