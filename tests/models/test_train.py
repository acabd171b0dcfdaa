"""Training, export and parity on real (small) models: slow because they train and import TF."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from models.config import ModelConfig
from models.data import Split, load_dataset, wire_pixels
from models.export import ParityError, check_parity, export_all, export_savedmodel, export_torchscript
from models.net import LeNet, build_keras, copy_torch_to_keras, count_parameters
from models.predict import load_savedmodel, load_torchscript, torch_logits
from models.train import evaluate, train_model

pytestmark = pytest.mark.slow

# torch_threads=1: on this shared 2-core box two torch threads under contention train ~10x slower.
SMALL = ModelConfig(train_size=600, test_size=200, epochs=2, batch_size=32, learning_rate=0.003, torch_threads=1)


@pytest.fixture(scope="module")
def small_split() -> Split:
    return load_dataset(SMALL)


@pytest.fixture(scope="module")
def small_model(small_split: Split) -> tuple[LeNet, object]:
    return train_model(small_split, SMALL)


def test_short_training_learns(small_split: Split, small_model) -> None:
    model, result = small_model
    assert len(result.epoch_loss) == SMALL.epochs
    assert result.epoch_loss[-1] < result.epoch_loss[0]
    assert result.final.accuracy > 0.7, f"accuracy {result.final.accuracy:.1%} is not clearly above chance (10%)"
    again = evaluate(model, small_split.test_x, small_split.test_y)
    assert again.accuracy == result.final.accuracy


def test_training_is_deterministic(small_split: Split, small_model) -> None:
    model, _ = small_model
    progress: list[tuple[int, int]] = []
    model2, _ = train_model(small_split, SMALL, on_progress=lambda e, n, loss, acc: progress.append((e, n)))
    for (k, a), b in zip(model.state_dict().items(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{k} differs between two trainings with the same seed"
    assert progress == [(0, 2), (1, 2), (2, 2)]
    model3, _ = train_model(small_split, replace(SMALL, seed=1, epochs=1))
    assert not torch.equal(model.conv1.weight, model3.conv1.weight)


def test_keras_twin_matches_torch_in_memory(small_split: Split, small_model) -> None:
    model, _ = small_model
    keras_model = build_keras("twin")
    assert keras_model.count_params() == count_parameters(model)
    copy_torch_to_keras(model, keras_model)
    x = wire_pixels(small_split.test_x[:64])
    np.testing.assert_allclose(keras_model.predict(x, verbose=0), torch_logits(model, x), atol=1e-4)


def test_export_round_trip_and_parity(tmp_path: Path, small_split: Split, small_model) -> None:
    model, result = small_model
    report = export_all(model, tmp_path, "mnist", small_split.test_x, small_split.test_y)
    assert report.n_images == len(small_split.test_y)
    assert report.agreement >= 0.999 and report.max_abs_logit_diff <= 1e-4
    # Each exported file reproduces the in-memory model's accuracy.
    assert report.torchscript_accuracy == pytest.approx(result.final.accuracy, abs=1e-9)
    assert abs(report.savedmodel_accuracy - result.final.accuracy) <= 1 / report.n_images
    # TorchScript takes (N, 28, 28) and (N, 1, 28, 28); the state_dict loads weights-only.
    ts = load_torchscript(tmp_path / "torchscript" / "model.pt")
    x = wire_pixels(small_split.test_x[:8])
    np.testing.assert_array_equal(torch_logits(ts, x), torch_logits(ts, x[:, None]))
    fresh = LeNet()
    fresh.load_state_dict(torch.load(tmp_path / "weights" / "state_dict.pt", weights_only=True))
    fresh.eval()
    np.testing.assert_array_equal(torch_logits(fresh, x), torch_logits(ts, x))
    sm = load_savedmodel(tmp_path / "savedmodel" / "mnist" / "1")
    assert sm(x).shape == (8, 10)
    assert (tmp_path / "savedmodel" / "mnist" / "1" / "saved_model.pb").is_file()


def test_parity_check_catches_different_weights(tmp_path: Path, small_split: Split, small_model) -> None:
    model, _ = small_model
    ts_path = export_torchscript(model, tmp_path / "model.pt")
    torch.manual_seed(123)
    other = LeNet().eval()  # untrained: a different model
    sm_dir = export_savedmodel(other, tmp_path / "savedmodel", "other")
    with pytest.raises(ParityError, match=r"agreement .* max \|logit diff\|"):
        check_parity(ts_path, sm_dir, small_split.test_x, small_split.test_y)


def test_default_model_meets_the_bar(trained_model) -> None:
    """The shared artifacts (default bench.toml): >= 97 % for both formats, parity recorded."""
    info = trained_model.info
    assert info["accuracy"]["torchscript"] >= 0.97
    assert info["accuracy"]["savedmodel"] >= 0.97
    assert info["parity"]["agreement"] >= 0.999 and info["parity"]["max_abs_logit_diff"] <= 1e-4
    assert info["split"] == {"train": 4000, "test": 1000}
    assert set(info["sha256"]) >= {"torchscript/model.pt", "weights/state_dict.pt"}
    assert trained_model.savedmodel_dir.joinpath("saved_model.pb").is_file()
    assert info["versions"]["torch"].startswith("2.13")
