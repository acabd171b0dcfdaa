"""The kserve adapter's tabular model (issue 24): the ``model`` setting, request validation, the predictor.

No server is started here (test_tabular_server.py starts one); the predictor is loaded in
this process and driven with kserve's own ``InferRequest``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from ground.tables import ConfigError, parse_table
from models.tabular.artifacts import ensure_tabular_model
from models.tabular.train import TabularRecipe
from models.tabular.weights import load_weights
from targets.base import TargetContext, TargetError
from targets.kserve.server.main import _parse
from targets.kserve.server.tabular import TabularModel
from targets.kserve.server.tabular_inputs import features_from_v1, features_from_v2
from targets.kserve.target import KServeSettings, KServeTarget


@pytest.fixture(scope="module")
def artifacts_root(tmp_path_factory) -> Path:
    """A temp artifacts/ with the tabular model beside an (empty) MNIST folder."""
    root = tmp_path_factory.mktemp("artifacts")
    (root / "model").mkdir()
    ensure_tabular_model(TabularRecipe("breast-cancer"), root / "breast-cancer")
    return root


def make_target(artifacts_dir: Path, **table: object) -> KServeTarget:
    settings = parse_table(KServeSettings, table, "targets.t")
    return KServeTarget("t", settings, TargetContext(artifacts_dir=artifacts_dir, log_dir=artifacts_dir / "logs"))


def v2(name: str = "features", datatype: str = "FP64", shape: object = (1, 30), data: object = None) -> SimpleNamespace:
    data = [0.5] * 30 if data is None else data
    return SimpleNamespace(inputs=[SimpleNamespace(name=name, datatype=datatype, shape=list(shape), data=data)])


# -- the setting --------------------------------------------------------------------------
def test_model_defaults_to_mnist_and_refuses_unknown_names(tmp_path: Path) -> None:
    assert make_target(tmp_path).settings.serves_mnist
    with pytest.raises(ConfigError, match="model must be 'mnist' or one of \\['breast-cancer', 'wine'\\]"):
        make_target(tmp_path, model="iris")


def test_a_tabular_target_starts_the_tabular_server(artifacts_root: Path) -> None:
    target = make_target(artifacts_root / "model", model="breast-cancer", model_name="breast-cancer", protocol="v2")
    argv = target.command("127.0.0.1", 8123)
    i = argv.index("--model-dir")
    assert argv[argv.index("--model-kind") + 1] == "tabular" and argv[i + 1] == str(artifacts_root / "breast-cancer")
    assert target.describe()["model"] == "breast-cancer"


def test_a_missing_tabular_model_says_how_to_train_it(tmp_path: Path) -> None:
    target = make_target(tmp_path / "model", model="wine")
    with pytest.raises(TargetError, match="python -m bench train --model wine"):
        target.command("127.0.0.1", 8123)


def test_a_tabular_target_refuses_mnist_images(tmp_path: Path) -> None:
    target = make_target(tmp_path, model="breast-cancer", protocol="v2")
    with pytest.raises(TargetError, match="not MNIST images.*input-data.json"):
        target.encode(np.zeros((28, 28), dtype=np.uint8))
    with pytest.raises(TargetError, match="not MNIST images"):
        target.decode(200, b"{}")
    assert target.page_protocol is None  # `bench ui` refuses it by name
    assert make_target(tmp_path, protocol="v2").page_protocol == "kserve-v2"


def test_server_option_model_kind() -> None:
    assert _parse(["--model-dir", "x"]).model_kind == "mnist"
    assert _parse(["--model-dir", "x", "--model-kind", "tabular"]).model_kind == "tabular"


# -- request validation -------------------------------------------------------------------
def test_valid_v2_and_v1_requests() -> None:
    rows = features_from_v2(v2(shape=(2, 30), data=[[1.0] * 30, [2] * 30]), 30)
    assert rows.dtype == np.float64 and rows.shape == (2, 30) and rows[1, 0] == 2.0
    binary = features_from_v2(v2(data=np.arange(30, dtype=np.float64)), 30)
    assert binary[0, 29] == 29.0
    assert features_from_v1({"instances": [[0.0] * 30]}, 30).shape == (1, 30)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (v2(name="pixels"), "unknown input 'pixels'; this model's input is 'features'"),
        (v2(datatype="FP32"), "has datatype 'FP32'; this model takes FP64"),
        (v2(shape=(1, 29), data=[0.0] * 29), r"has shape \[1, 29\]; expected \[N, 30\]"),
        (v2(shape=(513, 30), data=[0.0] * 30 * 513), r"expected \[N, 30\] with N from 1 to 512"),
        (v2(shape=(1, "30")), "shape of non-integers"),
        (v2(shape=(2, 30)), "has 30 values but shape \\[2, 30\\] needs 60"),
        (v2(data=["1"] * 30), "numbers only, found strings"),
        (v2(data=[True] * 30), "numbers only, found booleans"),
        (v2(data=[None] * 30), "numbers only"),
        (v2(data=[float("nan")] * 30), "NaN or infinite"),
        (v2(data=[10**400] * 30), "too large"),
        (v2(data="abc"), "must be a list of numbers"),
        (v2(shape=(2, 30), data=[[1.0] * 30, [1.0] * 29]), "rectangular"),
        (SimpleNamespace(inputs=[]), "exactly one input tensor"),
    ],
)
def test_bad_v2_requests_are_named(request_: SimpleNamespace, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        features_from_v2(request_, 30)


def test_bad_v1_requests_are_named() -> None:
    with pytest.raises(InvalidInput, match="'instances' list"):
        features_from_v1({"inputs": []}, 30)
    with pytest.raises(InvalidInput, match="rows of 30 features, got shape \\[1, 3\\]"):
        features_from_v1({"instances": [[1, 2, 3]]}, 30)


# -- the predictor, in process ------------------------------------------------------------
def test_the_predictor_answers_like_the_trained_arrays(artifacts_root: Path) -> None:
    folder = artifacts_root / "breast-cancer"
    model = TabularModel("breast-cancer", folder / "weights.npz")
    assert model.load()
    assert model.get_input_types() == [{"name": "features", "datatype": "FP64", "shape": [-1, 30]}]
    assert model.get_output_types()[1] == {"name": "label", "datatype": "INT64", "shape": [-1]}
    features = np.random.default_rng(0).normal(10.0, 5.0, size=(4, 30))
    tensor = InferInput(name="features", shape=[4, 30], datatype="FP64")
    tensor.set_data_from_numpy(features, binary_data=False)
    response = model.predict(InferRequest(model_name="breast-cancer", infer_inputs=[tensor]))
    outputs = {o.name: o.as_numpy() for o in response.outputs}
    expected = load_weights(folder / "weights.npz").predict(features)
    assert np.array_equal(outputs["probabilities"], expected["probabilities"])
    assert np.array_equal(outputs["label"], expected["label"])
    v1 = model.predict({"instances": features.tolist()})
    assert [p["label"] for p in v1["predictions"]] == expected["label"].tolist()


def test_the_predictor_pickles_without_its_arrays(artifacts_root: Path) -> None:
    import pickle

    model = TabularModel("breast-cancer", artifacts_root / "breast-cancer" / "weights.npz")
    model.load()
    clone = pickle.loads(pickle.dumps(model))
    assert not clone.ready and clone._arrays == {}
    assert clone.load() and clone.n_features == 30


# -- manifests ----------------------------------------------------------------------------
def test_manifests_of_a_tabular_target_need_the_custom_container(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        make_target(tmp_path, model="breast-cancer", protocol="v2").manifests()
    assert err.value.where == "targets.t.model" and "custom_container = true" in str(err.value)
    files = make_target(
        tmp_path, model="breast-cancer", model_name="breast-cancer", protocol="v2", custom_container=True
    ).manifests()
    (container,) = yaml.safe_load(files["inferenceservice.yaml"])["spec"]["predictor"]["containers"]
    assert container["args"][:2] == ["--model-dir", "/mnt/models"]
    assert container["args"][-2:] == ["--model-kind", "tabular"]
    mnist = make_target(tmp_path, protocol="v2", custom_container=True).manifests()
    assert "--model-kind" not in mnist["inferenceservice.yaml"]


def test_grpc_raw_input_contents_are_read_and_checked() -> None:
    """A gRPC request carries its features as raw bytes (what servebench's and Triton's clients send)."""
    from kserve.errors import InvalidInput
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as kserve_pb
    from kserve.protocol.infer_type import InferRequest

    from loadgen.inference.grpc_messages import encode_infer_request
    from targets.kserve.server.tabular_inputs import features_from_v2

    rows = np.arange(60, dtype=np.float64).reshape(2, 30)
    body = encode_infer_request("breast-cancer", {"features": rows})
    request = InferRequest.from_grpc(kserve_pb.ModelInferRequest.FromString(body))
    np.testing.assert_array_equal(features_from_v2(request, 30), rows)
    short = kserve_pb.ModelInferRequest.FromString(body)
    short.raw_input_contents[0] = short.raw_input_contents[0][:-8]  # one FP64 missing
    with pytest.raises(InvalidInput, match="raw contents do not fit shape"):
        features_from_v2(InferRequest.from_grpc(short), 30)
