"""The tabular stand-in end to end: the real KServe ModelServer on 127.0.0.1 serving breast-cancer.

One stand-in (one worker, no TensorFlow: a few seconds to start) serves the module.  Its
V2 metadata differs from MNIST's in name, shape and dtype; every sample of the
input-data file the training step wrote is answered exactly as ``validation_data`` says
(the same arrays computed in-process); batches, V1 and bad requests behave.
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
from models.tabular.artifacts import TabularArtifacts, ensure_tabular_model
from models.tabular.train import TabularRecipe
from targets.base import TargetContext
from targets.kserve.target import KServeSettings, KServeTarget
from targets.process import group_pids
from tests.support.targets import listening_addresses

pytestmark = pytest.mark.slow

INFER = "/v2/models/breast-cancer/infer"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> TabularArtifacts:
    root = tmp_path_factory.mktemp("artifacts")
    return ensure_tabular_model(TabularRecipe("breast-cancer"), root / "breast-cancer")


@pytest.fixture(scope="module")
def server(artifacts: TabularArtifacts, tmp_path_factory) -> Iterator[KServeTarget]:
    context = TargetContext(
        artifacts_dir=artifacts.dir.parent / "model", log_dir=tmp_path_factory.mktemp("logs"), ready_timeout_s=120.0
    )
    table = {"model": "breast-cancer", "model_name": "breast-cancer", "protocol": "v2"}
    target = KServeTarget("breast-cancer", parse_table(KServeSettings, table, "targets.breast-cancer"), context)
    started = time.monotonic()
    asyncio.run(target.start())
    print(f"tabular stand-in ready in {time.monotonic() - started:.1f} s at {target.base_url}")
    try:
        yield target
    finally:
        asyncio.run(target.stop())


@pytest.fixture(scope="module")
def client(server: KServeTarget) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30.0, trust_env=False) as c:
        yield c


def test_metadata_names_the_tabular_tensors(client: httpx.Client) -> None:
    meta = client.get("/v2/models/breast-cancer").json()
    assert meta["inputs"] == [{"name": "features", "datatype": "FP64", "shape": [-1, 30]}]
    assert meta["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "label", "datatype": "INT64", "shape": [-1]},
    ]
    assert client.get("/v2/models/mnist").status_code == 404


def test_every_sample_of_the_input_data_file_gets_its_expected_answer(
    client: httpx.Client, artifacts: TabularArtifacts
) -> None:
    document = json.loads(artifacts.input_data_path.read_text())
    mismatches = []
    for i, (sample, expected) in enumerate(zip(document["data"], document["validation_data"], strict=True)):
        tensor = sample["features"]
        body = {
            "inputs": [{"name": "features", "datatype": "FP64", "shape": tensor["shape"], "data": tensor["content"]}]
        }
        response = client.post(INFER, json=body)
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        for name in ("probabilities", "label"):
            if outputs[name]["data"] != expected[name]["content"] or outputs[name]["shape"] != expected[name]["shape"]:
                mismatches.append((i, name))
    assert mismatches == [], f"{len(mismatches)} answers differ from validation_data: {mismatches[:5]}"


def test_a_batch_and_v1_answer_like_single_requests(client: httpx.Client, artifacts: TabularArtifacts) -> None:
    document = json.loads(artifacts.input_data_path.read_text())
    rows = [s["features"]["content"] for s in document["data"][:5]]
    body = {"inputs": [{"name": "features", "datatype": "FP64", "shape": [5, 30], "data": rows}]}
    outputs = {o["name"]: o for o in client.post(INFER, json=body).json()["outputs"]}
    assert outputs["label"]["shape"] == [5] and outputs["probabilities"]["shape"] == [5, 2]
    assert outputs["label"]["data"] == [v["label"]["content"][0] for v in document["validation_data"][:5]]
    v1 = client.post("/v1/models/breast-cancer:predict", json={"instances": rows}).json()
    assert [p["label"] for p in v1["predictions"]] == outputs["label"]["data"]


def test_binary_outputs_when_asked(client: httpx.Client, artifacts: TabularArtifacts) -> None:
    """The binary-tensor extension's output side, as Triton's client asks for it."""
    row = json.loads(artifacts.input_data_path.read_text())["data"][0]["features"]["content"]
    body = {
        "inputs": [{"name": "features", "datatype": "FP64", "shape": [1, 30], "data": row}],
        "outputs": [{"name": "label", "parameters": {"binary_data": True}}],
    }
    response = client.post(INFER, json=body)
    assert response.status_code == 200, response.text
    header_length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:header_length])
    (output,) = header["outputs"]
    assert output["name"] == "label" and output["parameters"]["binary_data_size"] == 8
    assert np.frombuffer(response.content[header_length:], dtype="<i8").shape == (1,)


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        ({"name": "features", "datatype": "FP32", "shape": [1, 30], "data": [0.0] * 30}, "takes FP64"),
        ({"name": "pixels", "datatype": "FP64", "shape": [1, 30], "data": [0.0] * 30}, "unknown input 'pixels'"),
        ({"name": "features", "datatype": "FP64", "shape": [1, 28, 28], "data": [0.0] * 784}, "expected [N, 30]"),
    ],
)
def test_bad_requests_get_a_400_naming_the_problem(client: httpx.Client, tensor: dict, message: str) -> None:
    response = client.post(INFER, json={"inputs": [tensor]})
    assert response.status_code == 400 and message in response.json()["error"]


def test_the_stand_in_listens_on_loopback_only(server: KServeTarget) -> None:
    (process,) = server.processes
    port = server.base_url.rsplit(":", 1)[1]
    assert set(listening_addresses(set(group_pids(process.pgid)))) == {f"127.0.0.1:{port}"}
    assert "tensorflow" not in Path(process.log_path).read_text(errors="replace").lower()
