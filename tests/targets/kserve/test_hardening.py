"""The hardened KServe stand-ins against real requests (issue 15): real kserve ModelServer,
real SavedModel, real sockets.

Each test is one reported behaviour: the model repository extension cannot unload the
model (kubeflow-gcp with one worker, kubeflow-ibm with two -- every worker is shown to
have received an unload attempt and still to serve); numeric overflow, non-finite values
and malformed tensors are 400 JSON errors with clear messages; an oversized request head
is a 431 answered before the client has finished sending it; a wrong method on a predict
path is a 405 with ``Allow``; V2 metadata lists the real tensors and a client builds a
working request from it alone.  After each: the server is healthy, a valid prediction is
still right, and the same worker processes serve (none died or was respawned).

Which worker served a request is read from the stand-in's log, whose lines carry the PID
of the process that wrote them (kserve's log format).
"""

from __future__ import annotations

import asyncio
import json
import re
import select
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from ground.tables import parse_table
from models.data import wire_pixels
from targets.base import TargetContext
from targets.kserve.target import KServeSettings, KServeTarget
from targets.process import group_pids
from tests.support.targets import assert_clear

pytestmark = pytest.mark.slow

_WORKER_STARTED = re.compile(r"Started server process \[(\d+)\]")


def _log_pids(target: KServeTarget, needle: str) -> set[int]:
    """PIDs of the processes that logged a line containing ``needle`` (field 3 of each line)."""
    pids = set()
    for line in Path(target.log_path).read_text(errors="replace").splitlines():
        fields = line.split(" ", 3)
        if needle in line and len(fields) > 3 and fields[2].isdigit():
            pids.add(int(fields[2]))
    return pids


def worker_pids(target: KServeTarget) -> set[int]:
    """PIDs of the uvicorn serving processes (each logs "Started server process [PID]")."""
    return {int(p) for p in _WORKER_STARTED.findall(Path(target.log_path).read_text(errors="replace"))}


def make_target(name: str, context: TargetContext, **table: object) -> KServeTarget:
    return KServeTarget(name, parse_table(KServeSettings, table, f"targets.{name}"), context)


@pytest.fixture(scope="module")
def context(trained_model, tmp_path_factory) -> TargetContext:
    return TargetContext(
        artifacts_dir=trained_model.dir, log_dir=tmp_path_factory.mktemp("kserve-hardening"), ready_timeout_s=300.0
    )


def _running(target: KServeTarget) -> Iterator[KServeTarget]:
    asyncio.run(target.start())
    try:
        yield target
    finally:
        asyncio.run(target.stop())


@pytest.fixture(scope="module")
def ibm(context: TargetContext) -> Iterator[KServeTarget]:
    """kubeflow-ibm's stand-in: two workers sharing one loopback port."""
    yield from _running(make_target("kubeflow-ibm", context, protocol="v1", workers=2))


@pytest.fixture
def gcp(context: TargetContext) -> Iterator[KServeTarget]:
    """kubeflow-gcp's stand-in: one worker (started for the one test that needs it)."""
    yield from _running(make_target("kubeflow-gcp", context, protocol="v1", workers=1))


def _post(target: KServeTarget, path: str, body: bytes) -> httpx.Response:
    """One request on its own connection (so multi-worker requests spread over workers)."""
    headers = {"Content-Type": "application/json", "Connection": "close"}
    return httpx.post(target.base_url + path, content=body, headers=headers, timeout=60.0, trust_env=False)


def _digit(target: KServeTarget, image: np.ndarray) -> int:
    """The stand-in's digit for one image; a non-200 answer fails the test."""
    request = target.encode(image)
    response = _post(target, request.path, request.body)
    assert response.status_code == 200, response.text[:300]
    return target.decode(response.status_code, response.content)


class Snapshot:
    """What must not change across a test: the processes and the digits of 10 images."""

    def __init__(self, target: KServeTarget, images: np.ndarray, labels: np.ndarray) -> None:
        self.target, self.images = target, images[:10]
        self.pids = set(group_pids(target.processes[0].pgid))
        self.digits = [_digit(target, image) for image in self.images]
        assert sum(d == int(label) for d, label in zip(self.digits, labels[:10], strict=False)) >= 9, (
            self.digits,
            labels[:10],
        )

    def check(self) -> None:
        """Ready, the same digits as before, the same processes (no worker died or respawned)."""
        target = self.target
        ready = httpx.get(target.base_url + "/v2/health/ready", timeout=30.0, trust_env=False)
        assert ready.status_code == 200 and ready.json() == {"ready": True}
        assert [_digit(target, image) for image in self.images] == self.digits
        assert set(group_pids(target.processes[0].pgid)) == self.pids, "a stand-in process exited or was added"
        assert len(worker_pids(target)) == target.settings.workers, "a worker was respawned"


@pytest.fixture
def snapshot(mnist) -> Callable[[KServeTarget], Snapshot]:
    images, labels = mnist
    return lambda target: Snapshot(target, images, labels)


# -- 1. the model repository extension cannot change what is served ---------------------
_UNLOAD_ATTEMPTS = [
    ("POST", "/v2/repository/models/mnist/unload"),
    ("POST", "/v2/repository/models/mnist/load"),
    ("POST", "/v2/repository/index"),
    ("POST", "/v2%2Frepository/models/mnist%2Funload"),  # decoded by uvicorn: the guard sees the real path
    ("POST", "/v1/models/mnist:unload"),
    ("DELETE", "/v2/repository/models/mnist"),
]


@pytest.mark.parametrize("stand_in", ["gcp", "ibm"])
def test_unload_is_refused_and_every_worker_keeps_serving(
    stand_in: str, request: pytest.FixtureRequest, snapshot
) -> None:
    target: KServeTarget = request.getfixturevalue(stand_in)
    before = snapshot(target)
    workers = worker_pids(target)
    assert len(workers) == target.settings.workers

    for method, path in _UNLOAD_ATTEMPTS:
        response = httpx.request(method, target.base_url + path, headers={"Connection": "close"}, trust_env=False)
        assert response.status_code == 403, f"{method} {path}: {response.status_code} {response.text[:200]}"
        assert "repository extension" in response.json()["error"]
    # Unload attempts on fresh connections until every worker has logged refusing one.
    for _ in range(300):
        if _log_pids(target, "refused POST /v2/repository/models/mnist/unload") >= workers:
            break
        assert _post(target, "/v2/repository/models/mnist/unload", b"").status_code == 403
    refused_by = _log_pids(target, "refused POST /v2/repository/models/mnist/unload")
    assert refused_by >= workers, f"workers {workers}, refusals logged by {refused_by}"

    # Every predict afterwards succeeds; a malformed one between them shows which workers
    # still run the model's predict (they log the 400; one without the model would 404).
    bad = json.dumps({"instances": [[0.0] * 10]}).encode()
    for i in range(300):
        assert _digit(target, before.images[i % 10]) == before.digits[i % 10]
        assert _post(target, "/v1/models/mnist:predict", bad).status_code == 400
        if i >= 20 and _log_pids(target, "rejected request (400): 'instances'[0]") >= workers:
            break
    assert _log_pids(target, "rejected request (400): 'instances'[0]") >= workers
    assert not _log_pids(target, "does not exist"), "a worker lost the model"
    for path in ("/v2/health/ready", "/v2/models/mnist/ready", "/v1/models/mnist"):
        assert httpx.get(target.base_url + path, trust_env=False).status_code == 200, path
    before.check()


# -- 2. overflow, non-finite values, malformed tensors: 400 JSON with a clear message ----
def _v2_body(data: str, shape: str = "[1, 784]", datatype: str = "FP32", name: str = "pixels") -> bytes:
    """A V2 body with ``data`` spliced in as raw JSON text (so 10**400 and 1e400 stay literal)."""
    return (
        f'{{"inputs": [{{"name": "{name}", "shape": {shape}, "datatype": "{datatype}", "data": {data}}}]}}'
    ).encode()


_ZEROS = ", ".join(["0.0"] * 783)
_BIG_INT = "1" + "0" * 400
BAD_REQUESTS: dict[str, tuple[str, bytes, str]] = {
    "v1 integer 10**400": ("v1", f'{{"instances": [[{_BIG_INT}, {_ZEROS}]]}}'.encode(), "not valid JSON"),
    "v1 float 1e400": ("v1", f'{{"instances": [[1e400, {_ZEROS}]]}}'.encode(), "not valid JSON"),
    "v1 NaN": ("v1", f'{{"instances": [[NaN, {_ZEROS}]]}}'.encode(), "NaN"),
    "v1 -Infinity": ("v1", f'{{"instances": [[-Infinity, {_ZEROS}]]}}'.encode(), "Infinity"),
    "v1 beyond float32": ("v1", f'{{"instances": [[1e39, {_ZEROS}]]}}'.encode(), "too large for float32"),
    "v1 wrong shape": ("v1", b'{"instances": [[1, 2, 3]]}', "28x28 or 784"),
    "v1 not a list": ("v1", b'{"instances": "pixels"}', "must be a list"),
    "v1 deep nesting": ("v1", b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not valid JSON"),
    "v1 nesting 60 deep": ("v1", b'{"instances": [' + b"[" * 60 + b"0" + b"]" * 60 + b"]}", "nested more than 2"),
    "v2 integer 10**400": ("v2", _v2_body(f"[{_BIG_INT}, {_ZEROS}]"), "too large to convert"),
    "v2 float 1e400": ("v2", _v2_body(f"[1e400, {_ZEROS}]"), "infinite"),
    "v2 NaN": ("v2", _v2_body(f"[NaN, {_ZEROS}]"), "NaN"),
    "v2 INT8 out of range": ("v2", _v2_body(f"[1000, {_ZEROS}]", datatype="INT8"), "-128..127"),
    "v2 huge shape field": ("v2", _v2_body(f"[{_ZEROS}, 0.0]", shape=f"[1, {_BIG_INT}]"), "401-digit number"),
    "v2 wrong shape": ("v2", _v2_body(f"[{_ZEROS}, 0.0]", shape="[1, 28, 27]"), "expected [N, 28, 28]"),
    "v2 count mismatch": ("v2", _v2_body("[0.0, 0.0]"), "2 values"),
    "v2 wrong datatype": ("v2", _v2_body('["a", "b"]', datatype="BYTES"), "numeric type"),
    "v2 unknown datatype": ("v2", _v2_body("[0.0]", datatype="FP999"), "numeric type"),
    "v2 data not a list": ("v2", _v2_body('"pixels"'), "inputs.0.data"),
    "v2 strings in FP32": ("v2", _v2_body(", ".join(['"0.5"'] * 784).join("[]")), "not strings"),
    "v2 deep nesting": ("v2", _v2_body("[" * 100_000 + "]" * 100_000), "could not parse"),
    "v2 nesting 60 deep": ("v2", _v2_body("[" * 60 + "0" + "]" * 60), "nested more than 2"),
    "v2 wrong input name": ("v2", _v2_body(f"[{_ZEROS}, 0.0]", name="image"), "model's input is 'pixels'"),
    "v2 inputs not a list": ("v2", b'{"inputs": 5}', "invalid inference request"),
    "v2 bad json": ("v2", b'{"inputs": [', "invalid inference request"),
}


def test_bad_numbers_and_tensors_are_400_json_with_clear_messages(ibm: KServeTarget, snapshot) -> None:
    before = snapshot(ibm)
    paths = {"v1": "/v1/models/mnist:predict", "v2": "/v2/models/mnist/infer"}
    for what, (protocol, body, needle) in BAD_REQUESTS.items():
        response = _post(ibm, paths[protocol], body)
        assert response.status_code == 400, f"{what}: HTTP {response.status_code} {response.text[:300]}"
        assert response.headers["content-type"].startswith("application/json"), what
        message = response.json()["error"]
        assert needle in message, f"{what}: {message}"
        assert_clear(message)
    log = Path(ibm.log_path).read_text(errors="replace")
    assert "Traceback" not in log and "Exception in ASGI application" not in log
    before.check()


# -- 3. oversized request heads: 431, answered long before the head is sent -------------
def _open(target: KServeTarget) -> socket.socket:
    host, port = target.base_url.rsplit("/", 1)[1].rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=60.0)


def _read_answer(sock: socket.socket, timeout_s: float = 120.0) -> bytes:
    """Bytes the server sent until it closed or ``timeout_s`` passed."""
    data, deadline = b"", time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 1.0)
        if readable:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


@pytest.mark.parametrize(
    "head_start",
    [
        b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nX-Big: ",  # one 64 MiB header
        b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n"
        + b"".join(b"X-H%d: %s\r\n" % (i, b"h" * 900) for i in range(80)),
    ],
    ids=["single-64MiB-header", "80-headers-of-900-bytes"],
)
def test_oversized_head_is_431_before_it_is_even_sent(ibm: KServeTarget, head_start: bytes, snapshot) -> None:
    before = snapshot(ibm)
    total = 64 * 1024 * 1024
    first = head_start + b"a" * (1024 * 1024 - len(head_start))  # the first MiB of a 64 MiB head
    with _open(ibm) as sock:
        sock.sendall(first)
        # The answer is there before the other 63 MiB are sent: the head was never parsed whole.
        answer = _read_answer(sock)
    status_line, rest = answer.split(b"\r\n", 1)
    assert status_line == b"HTTP/1.1 431 Request Header Fields Too Large", answer[:200]
    head, body = rest.split(b"\r\n\r\n", 1)
    assert b"connection: close" in head.lower()
    assert "65536 bytes" in json.loads(body)["error"]
    print(f"431 after {len(first)} of {total} bytes sent; loadavg {Path('/proc/loadavg').read_text().split()[:3]}")
    # A head within the limit is still served.
    ok = httpx.get(ibm.base_url + "/v2/health/ready", headers={"X-Pad": "p" * 60_000}, trust_env=False)
    assert ok.status_code == 200
    before.check()


# -- 4. wrong method on a predict path: 405 JSON with Allow ----------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models/mnist:predict"),
        ("GET", "/v2/models/mnist/infer"),
        ("PUT", "/v2/models/mnist/infer"),
        ("DELETE", "/v1/models/mnist:predict"),
    ],
)
def test_wrong_method_on_a_predict_path_is_405_with_allow(ibm: KServeTarget, method: str, path: str, snapshot) -> None:
    before = snapshot(ibm)
    response = httpx.request(method, ibm.base_url + path, trust_env=False)
    assert (response.status_code, response.headers.get("allow")) == (405, "POST"), response.text[:200]
    assert "use POST" in response.json()["error"]
    assert "does not exist" not in response.text  # kserve's old misleading answer
    unknown = httpx.get(ibm.base_url + "/openapi.json", trust_env=False)
    assert unknown.status_code == 404 and "inference protocol" in unknown.json()["error"]
    before.check()


# -- 5. V2 metadata: enough to call the model ------------------------------------------
def test_v2_client_builds_a_valid_request_from_the_metadata_alone(ibm: KServeTarget, mnist, snapshot) -> None:
    before = snapshot(ibm)
    meta = httpx.get(ibm.base_url + "/v2/models/mnist", trust_env=False).json()
    assert meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 28, 28]}]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]

    images, labels = mnist
    batch = 4
    (spec,) = meta["inputs"]
    shape = [batch if d == -1 else d for d in spec["shape"]]
    data = wire_pixels(images[:batch]).reshape(shape).ravel().tolist()
    body = {"inputs": [{"name": spec["name"], "shape": shape, "datatype": spec["datatype"], "data": data}]}
    response = _post(ibm, f"/v2/models/{meta['name']}/infer", json.dumps(body).encode())
    assert response.status_code == 200, response.text[:300]
    (output,) = response.json()["outputs"]
    (out_spec,) = meta["outputs"]
    assert output["name"] == out_spec["name"] and output["datatype"] == out_spec["datatype"]
    assert output["shape"] == [batch if d == -1 else d for d in out_spec["shape"]]
    digits = np.asarray(output["data"], dtype=np.float64).reshape(output["shape"]).argmax(axis=1)
    assert digits.tolist() == before.digits[:batch]  # the same model answers both protocols
    before.check()
