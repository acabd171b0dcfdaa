"""Fast tests of the reuse decision (model.json + sha256) and of the all-or-nothing build.

The real train + export round trip is in test_models_train.py and test_train_cli.py (slow);
here the artifacts folder is written by hand so each staleness rule is checked in
milliseconds, and the failing build uses a tiny real training with the export replaced
by one that fails the way a parity failure does.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from models import artifacts as art
from models.config import ModelConfig
from models.export import ParityError

SMALL = ModelConfig(train_size=200, test_size=100, epochs=1, batch_size=50, torch_threads=1)


def make_folder(folder: Path, cfg: ModelConfig = SMALL) -> Path:
    """An artifacts folder with placeholder files and a model.json that records them."""
    for rel in ("torchscript/model.pt", "weights/state_dict.pt", f"savedmodel/{cfg.name}/1/saved_model.pb"):
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rel.encode())
    info = {
        "schema_version": art.SCHEMA_VERSION,
        "recipe_version": art.RECIPE_VERSION,
        "config": art.recorded_config(cfg),
        "sha256": art.file_hashes(folder),
    }
    (folder / art.MODEL_JSON).write_text(json.dumps(info))
    return folder


def test_valid_folder_is_reused(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "model")
    assert art.validate_artifacts(SMALL, folder) is None
    # ensure_model returns it without training (a training would need data and take seconds)
    result = art.ensure_model(SMALL, folder)
    assert not result.trained and result.dir == folder.resolve()
    assert result.savedmodel_dir == folder.resolve() / "savedmodel" / "mnist" / "1"


def test_artifacts_dir_is_not_part_of_the_recorded_config(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "model")
    assert art.validate_artifacts(replace(SMALL, artifacts_dir="elsewhere"), folder) is None


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda f: (f / art.MODEL_JSON).unlink(), "no model.json"),
        (lambda f: (f / art.MODEL_JSON).write_text("{not json"), "unreadable"),
        (lambda f: (f / "weights/state_dict.pt").write_bytes(b"tampered"), "weights/state_dict.pt changed"),
        (lambda f: (f / "torchscript/model.pt").unlink(), "torchscript/model.pt is missing"),
        (lambda f: (f / "weights/extra.bin").write_bytes(b"x"), "unrecorded files"),
    ],
)
def test_stale_folder_reasons(tmp_path: Path, mutate, reason: str) -> None:
    folder = make_folder(tmp_path / "model")
    mutate(folder)
    found = art.validate_artifacts(SMALL, folder)
    assert found is not None and reason in found


def test_changed_config_or_recipe_is_stale(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "model")
    reason = art.validate_artifacts(replace(SMALL, epochs=3), folder)
    assert reason is not None and "epochs 1 -> 3" in reason
    info = json.loads((folder / art.MODEL_JSON).read_text())
    info["recipe_version"] = art.RECIPE_VERSION - 1
    (folder / art.MODEL_JSON).write_text(json.dumps(info))
    reason = art.validate_artifacts(SMALL, folder)
    assert reason is not None and "recipe" in reason


def test_failed_build_leaves_previous_artifacts_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import models.export

    def failing_export(*args, **kwargs):
        raise ParityError("digit agreement 50% (test double for a broken export)")

    monkeypatch.setattr(models.export, "export_all", failing_export)
    folder = make_folder(tmp_path / "model")
    before = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    stages: list[str] = []
    with pytest.raises(ParityError, match="agreement 50%"):
        art.ensure_model(SMALL, folder, force=True, on_stage=stages.append)
    after = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.lock", "model"]  # no temp folder left
    assert any(s.startswith("training") for s in stages)  # it really got as far as training


def test_failed_first_build_leaves_no_folder(tmp_path: Path) -> None:
    from models.data import DataError

    cfg = replace(SMALL, dataset="idx", idx_dir=str(tmp_path / "no-such-dir"))
    with pytest.raises(DataError):
        art.ensure_model(cfg, tmp_path / "model")
    assert not (tmp_path / "model").exists()
    assert not (tmp_path / ".model.tmp").exists()
