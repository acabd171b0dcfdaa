"""`python -m bench train`: trains once, skips while nothing changed, retrains on --force or a new config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main

TOML = """
[model]
name = "tiny"
seed = 0
train_size = 300
test_size = 100
epochs = {epochs}
batch_size = 50
learning_rate = 0.003
torch_threads = 1
artifacts_dir = "out/model"
"""


def write_config(folder: Path, epochs: int = 1) -> Path:
    path = folder / "bench.toml"
    path.write_text(TOML.format(epochs=epochs))
    return path


def run_train(config: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["--config", str(config), "-q", "train", *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
def test_train_skips_then_force_then_config_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    model_json = tmp_path / "out" / "model" / "model.json"

    code, out, err = run_train(config, capsys)
    assert code == 0, err
    info = json.loads(model_json.read_text())
    assert info["config"]["epochs"] == 1 and info["split"] == {"train": 300, "test": 100}
    assert (tmp_path / "out" / "model" / "savedmodel" / "tiny" / "1" / "saved_model.pb").is_file()
    assert "TorchScript" in out and "SavedModel" in out and "parity:" in out
    first = model_json.stat().st_mtime_ns

    # Same config, files intact: nothing is rebuilt.
    code, out, _ = run_train(config, capsys)
    assert code == 0
    assert model_json.stat().st_mtime_ns == first
    assert json.loads(model_json.read_text())["created"] == info["created"]

    # --force rebuilds even though everything is valid.
    code, _, _ = run_train(config, capsys, "--force")
    assert code == 0
    forced = model_json.stat().st_mtime_ns
    assert forced != first

    # A changed weight-affecting setting rebuilds without --force.
    write_config(tmp_path, epochs=2)
    code, _, _ = run_train(config, capsys)
    assert code == 0
    assert model_json.stat().st_mtime_ns != forced
    assert json.loads(model_json.read_text())["epochs"] == 2
    assert not (tmp_path / "out" / ".model.tmp").exists()


def test_train_reports_missing_idx_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bench.toml"
    config.write_text('[model]\ndataset = "idx"\nidx_dir = "no-such-folder"\nartifacts_dir = "out/model"\n')
    code, _, err = run_train(config, capsys)
    assert code == 1
    assert "idx" in err and "no-such-folder" in err
    assert not (tmp_path / "out" / "model").exists()


def test_train_reports_bad_model_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bench.toml"
    config.write_text("[model]\nepochz = 3\n")
    code, _, err = run_train(config, capsys)
    assert code == 2
    assert "model.epochz" in err and "epochs" in err
