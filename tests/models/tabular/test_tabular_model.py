"""The tabular model (issue 24's second model): training, the safe weights file, the artifacts folder.

Fast: each fit is a logistic regression on a few hundred rows (well under a second after
scikit-learn's import); the artifacts folder is built in a temp dir, never in artifacts/.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.tabular.artifacts import (
    INPUT_DATA_FILE,
    WEIGHTS_FILE,
    ensure_tabular_model,
    tabular_artifacts_dir,
    validate_tabular_artifacts,
)
from models.tabular.datasets import TABULAR_MODELS, load_split
from models.tabular.train import TabularRecipe, fit
from models.tabular.weights import WEIGHT_ARRAYS, TabularWeights, load_weights, save_weights

RECIPE = TabularRecipe("breast-cancer")


@pytest.fixture(scope="module")
def trained():
    return fit(RECIPE)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return ensure_tabular_model(RECIPE, tmp_path_factory.mktemp("artifacts") / "breast-cancer")


def test_split_is_seeded_stratified_and_float64() -> None:
    a = load_split("breast-cancer", seed=0, test_fraction=0.25)
    b = load_split("breast-cancer", seed=0, test_fraction=0.25)
    c = load_split("breast-cancer", seed=1, test_fraction=0.25)
    assert np.array_equal(a.test_x, b.test_x) and not np.array_equal(a.test_x, c.test_x)
    assert a.train_x.dtype == np.float64 and a.train_y.dtype == np.int64
    assert a.train_x.shape[1] == a.test_x.shape[1] == 30
    # stratified: the class shares of train and test differ by at most one row's worth
    assert abs(a.train_y.mean() - a.test_y.mean()) < 1 / a.test_y.size + 1e-9


def test_unknown_model_and_bad_fraction_are_named() -> None:
    with pytest.raises(KeyError, match="unknown tabular model 'iris'.*breast-cancer"):
        load_split("iris", seed=0, test_fraction=0.25)
    with pytest.raises(ValueError, match="test_fraction"):
        load_split("wine", seed=0, test_fraction=1.0)


def test_fit_is_deterministic_and_accuracy_is_measured(trained) -> None:
    again = fit(RECIPE)
    for key in WEIGHT_ARRAYS:
        assert np.array_equal(getattr(trained.weights, key), getattr(again.weights, key)), key
    labels = trained.weights.predict(trained.split.test_x)["label"]
    assert trained.test_accuracy == pytest.approx(float((labels == trained.split.test_y).mean()))
    assert trained.test_accuracy > 0.9  # a real classifier, far above the 63 % majority class
    assert trained.parity_max_abs_diff <= 1e-9


def test_wine_has_three_classes() -> None:
    result = fit(TabularRecipe("wine"))
    assert (result.weights.n_features, result.weights.n_classes) == (13, 3)
    out = result.weights.predict(result.split.test_x[:5])
    assert out["probabilities"].shape == (5, 3) and out["label"].shape == (5,)


def test_outputs_have_the_declared_dtypes_and_sum_to_one(trained) -> None:
    out = trained.weights.predict(trained.split.test_x[:4])
    assert out["probabilities"].dtype == np.float32 and out["label"].dtype == np.int64
    assert np.allclose(out["probabilities"].sum(axis=1), 1.0, atol=1e-6)
    assert np.array_equal(out["label"], out["probabilities"].argmax(axis=1))


def test_weights_round_trip_without_pickle(trained, tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    save_weights(trained.weights, path)
    loaded = load_weights(path)
    for key in WEIGHT_ARRAYS:
        assert np.array_equal(getattr(loaded, key), getattr(trained.weights, key))


def test_load_refuses_pickled_objects_missing_arrays_and_bad_shapes(trained, tmp_path: Path) -> None:
    w = trained.weights
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, mean=np.array([object()], dtype=object), scale=w.scale, coef=w.coef, intercept=w.intercept)
    with pytest.raises(ValueError, match=r"pickled\.npz.*allow_pickle"):
        load_weights(pickled)
    missing = tmp_path / "missing.npz"
    np.savez(missing, mean=w.mean, scale=w.scale, coef=w.coef)
    with pytest.raises(ValueError, match=r"missing\.npz: missing arrays \['intercept'\]"):
        load_weights(missing)
    bad = tmp_path / "bad.npz"
    np.savez(bad, mean=w.mean, scale=w.scale, coef=w.coef[:, :5], intercept=w.intercept)
    with pytest.raises(ValueError, match=r"bad\.npz: weight 'coef': expected float64 \[2, 30\]"):
        load_weights(bad)
    not_npz = tmp_path / "x.npz"
    not_npz.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"x\.npz"):
        load_weights(not_npz)


def test_weights_refuse_a_non_positive_scale(trained) -> None:
    w = trained.weights
    with pytest.raises(ValueError, match="scale > 0"):
        TabularWeights(mean=w.mean, scale=np.zeros_like(w.scale), coef=w.coef, intercept=w.intercept)


def test_artifacts_folder_is_built_once_and_records_the_model(artifacts) -> None:
    assert artifacts.trained
    info = artifacts.info
    assert info["name"] == "breast-cancer" and info["recipe"]["seed"] == 0
    assert info["accuracy"]["test"] > 0.9 and info["split"] == {"train": 426, "test": 143}
    assert info["tensors"]["inputs"] == [{"name": "features", "datatype": "FP64", "shape": [-1, 30]}]
    assert [t["name"] for t in info["tensors"]["outputs"]] == ["probabilities", "label"]
    assert set(info["sha256"]) == {WEIGHTS_FILE, INPUT_DATA_FILE}
    assert not ensure_tabular_model(RECIPE, artifacts.dir).trained  # reused


def test_artifacts_are_rebuilt_when_a_file_changes_or_the_recipe_does(tmp_path: Path) -> None:
    folder = tmp_path / "breast-cancer"
    ensure_tabular_model(RECIPE, folder)
    (folder / INPUT_DATA_FILE).write_text("{}")
    assert "sha256 mismatch" in (validate_tabular_artifacts(RECIPE, folder) or "")
    assert ensure_tabular_model(RECIPE, folder).trained
    assert "recipe changed" in (validate_tabular_artifacts(TabularRecipe("breast-cancer", seed=1), folder) or "")
    assert not list(tmp_path.glob(".*tmp*"))  # no temp folder left behind


def test_artifacts_sit_beside_the_mnist_model() -> None:
    assert tabular_artifacts_dir("/x/artifacts/model", "wine") == Path("/x/artifacts/wine")
    with pytest.raises(KeyError, match="unknown tabular model"):
        tabular_artifacts_dir("/x/artifacts/model", "mnist")
    assert set(TABULAR_MODELS) == {"breast-cancer", "wine"}


# -- the input-data file: Triton perf_analyzer's --input-data JSON --------------------------


def perf_analyzer_problems(document: object, metadata: dict) -> list[str]:
    """Every way ``document`` departs from perf_analyzer's input-data JSON for ``metadata``'s tensors.

    The shape checked here is the one this project writes: ``{"data": [...],
    "validation_data": [...]}``, each entry tensor name -> ``{"content": flat list, "shape":
    full shape}`` whose shape fits the metadata's (-1 = any) and holds len(content) values.
    """
    problems: list[str] = []
    if not isinstance(document, dict) or not set(document) <= {"data", "validation_data"} or "data" not in document:
        return [f"top level must be an object with 'data' (and 'validation_data'), got {type(document).__name__}"]
    sections = [("data", "inputs")] + ([("validation_data", "outputs")] if "validation_data" in document else [])
    for section, kind in sections:
        declared = {t["name"]: t["shape"] for t in metadata[kind]}
        entries = document[section]
        if not isinstance(entries, list) or not entries:
            problems.append(f"{section} must be a non-empty list")
            continue
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or set(entry) != set(declared):
                problems.append(f"{section}[{i}] names {sorted(entry) if isinstance(entry, dict) else entry!r}")
                continue
            for name, tensor in entry.items():
                where = f"{section}[{i}].{name}"
                if not isinstance(tensor, dict) or set(tensor) != {"content", "shape"}:
                    problems.append(f"{where} must be {{content, shape}}")
                    continue
                shape, content = tensor["shape"], tensor["content"]
                want = declared[name]
                if len(shape) != len(want) or any(w not in (-1, s) for w, s in zip(want, shape, strict=True)):
                    problems.append(f"{where} shape {shape} does not fit {want}")
                if not isinstance(content, list) or len(content) != int(np.prod(shape)):
                    problems.append(f"{where} holds {len(content)} values for shape {shape}")
                elif not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in content):
                    problems.append(f"{where} holds a non-number")
    if "validation_data" in document and len(document["validation_data"]) != len(document["data"]):
        problems.append("validation_data and data differ in length")
    return problems


def test_the_written_file_is_perf_analyzer_input_data(artifacts, trained) -> None:
    document = json.loads(artifacts.input_data_path.read_text())
    assert perf_analyzer_problems(document, artifacts.info["tensors"]) == []
    assert len(document["data"]) == trained.split.test_y.size == artifacts.info["input_data"]["samples"]
    # values read back bit for bit: FP64 inputs, FP32 probabilities, INT64 labels
    features = np.array([d["features"]["content"] for d in document["data"]], dtype=np.float64)
    assert np.array_equal(features, trained.split.test_x)
    expected = trained.weights.predict(features)
    probs = np.array([v["probabilities"]["content"] for v in document["validation_data"]], dtype=np.float32)
    labels = np.array([v["label"]["content"][0] for v in document["validation_data"]], dtype=np.int64)
    assert np.array_equal(probs, expected["probabilities"]) and np.array_equal(labels, expected["label"])


def test_the_schema_check_can_fail(artifacts) -> None:
    document = json.loads(artifacts.input_data_path.read_text())
    meta = artifacts.info["tensors"]
    document["data"][3]["features"]["shape"] = [1, 29]
    document["validation_data"][5]["label"]["content"] = ["0"]
    del document["validation_data"][7]["probabilities"]
    problems = perf_analyzer_problems(document, meta)
    assert any("data[3].features shape [1, 29]" in p for p in problems)
    assert any("validation_data[5].label holds a non-number" in p for p in problems)
    assert any("validation_data[7] names ['label']" in p for p in problems)
    assert perf_analyzer_problems({"samples": []}, meta)
