"""The KServe adapter's tensor codec: any model's named tensors as V2 JSON, metadata by GET."""

from __future__ import annotations

import json

import numpy as np
import pytest

from loadgen.inference.metadata import parse_metadata
from targets.base import TargetContext, TargetError
from targets.kserve.target import KServeSettings, KServeTarget
from targets.wire import describes_mnist


def _target(tmp_path, protocol: str) -> KServeTarget:
    settings = KServeSettings(endpoint="http://127.0.0.1:9", model_name="toy", protocol=protocol)
    return KServeTarget("toy", settings, TargetContext(artifacts_dir=tmp_path, log_dir=tmp_path))


def test_v2_sends_named_tensors_and_reads_them_back(tmp_path) -> None:
    target = _target(tmp_path, "v2")
    meta = target.metadata_request()
    assert meta is not None and meta.method == "GET" and meta.path == "/v2/models/toy" and meta.body == b""
    request = target.tensor_request({"tokens": np.array([[1, 2, 3, 4]], np.int64)})
    assert request.path == "/v2/models/toy/infer"
    (tensor,) = json.loads(request.body)["inputs"]
    assert tensor == {"name": "tokens", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3, 4]}
    body = b'{"outputs":[{"name":"scores","shape":[1,3],"datatype":"FP32","data":[0,1,0]}]}'
    assert target.decode_outputs(200, body)["scores"].tolist() == [[0.0, 1.0, 0.0]]
    with pytest.raises(ValueError, match="HTTP 500"):
        target.decode_outputs(500, body)


def test_v1_has_no_metadata_and_no_tensors(tmp_path) -> None:
    target = _target(tmp_path, "v1")
    assert target.metadata_request() is None
    with pytest.raises(TargetError, match="has no named tensors"):
        target.tensor_request({"x": np.zeros((1, 1), np.float32)})


def test_the_stand_ins_metadata_describes_mnist_and_other_models_do_not() -> None:
    def meta(inputs, outputs):
        return parse_metadata(json.dumps({"name": "m", "inputs": inputs, "outputs": outputs}).encode())

    pixels = {"name": "pixels", "datatype": "FP32", "shape": [-1, 28, 28]}
    logits = {"name": "logits", "datatype": "FP32", "shape": [-1, 10]}
    assert describes_mnist(meta([pixels], [logits]))
    assert not describes_mnist(meta([{**pixels, "name": "image"}], [logits]))
    assert not describes_mnist(meta([{**pixels, "datatype": "UINT8"}], [logits]))
    assert not describes_mnist(meta([pixels], [{**logits, "shape": [-1, 3]}]))
