"""The artifacts folder: train + export once, then reuse while config and files are unchanged.

Why decide from model.json and not from file existence: a half-copied folder, a file edited
by hand or a model trained with a different recipe all "exist".  The artifacts are reused
only when ``model.json`` records the same weight-affecting config and recipe version as
now AND every file's sha256 recorded there still matches.  Otherwise they are rebuilt.

Why a temp folder and a rename: an interrupted training (Ctrl-C, OOM, parity failure) must
never leave a folder that looks complete.  Everything is written into a sibling temp
folder and swapped into place at the end.  A lock file serialises concurrent callers (e.g.
two test sessions), and the second one finds the first one's fresh artifacts valid.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import platform
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.data import MEAN, STD

if TYPE_CHECKING:
    from models.config import ModelConfig
    from models.train import ProgressCallback

__all__ = [
    "MODEL_JSON",
    "RECIPE_VERSION",
    "SCHEMA_VERSION",
    "ArtifactsError",
    "ModelArtifacts",
    "ensure_model",
    "file_hashes",
    "recorded_config",
    "validate_artifacts",
]

MODEL_JSON = "model.json"
SCHEMA_VERSION = 1
#: Bump when models/net.py or models/train.py change what weights a config produces, so
#: existing artifacts are retrained instead of silently reused.
RECIPE_VERSION = 1

#: ``on_stage(message)``: coarse steps (loading data, training, exporting, parity).
StageCallback = Callable[[str], None]


class ArtifactsError(RuntimeError):
    """The artifacts folder is missing, stale or inconsistent with its model.json."""


def recorded_config(cfg: ModelConfig) -> dict[str, Any]:
    """The config fields that affect the weights (everything but where artifacts are stored)."""
    data = asdict(cfg)
    data.pop("artifacts_dir", None)
    return data


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` except model.json, keyed by POSIX relative path."""
    hashes: dict[str, str] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel == MODEL_JSON:
            continue
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        hashes[rel] = digest.hexdigest()
    return hashes


@dataclass(frozen=True)
class ModelArtifacts:
    """A validated artifacts folder.  ``trained`` is True when this call (re)built it."""

    dir: Path
    trained: bool = False

    @cached_property
    def info(self) -> dict[str, Any]:
        """Parsed model.json."""
        try:
            return json.loads(self.model_json_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ArtifactsError(f"{self.model_json_path}: cannot read: {exc}") from exc

    @property
    def name(self) -> str:
        return str(self.info["config"]["name"])

    @property
    def model_json_path(self) -> Path:
        return self.dir / MODEL_JSON

    @property
    def torchscript_path(self) -> Path:
        return self.dir / "torchscript" / "model.pt"

    @property
    def state_dict_path(self) -> Path:
        return self.dir / "weights" / "state_dict.pt"

    @property
    def savedmodel_base(self) -> Path:
        """The ``savedmodel/`` folder: TF Serving / KServe ``storage_uri`` / model base path."""
        return self.dir / "savedmodel"

    @property
    def savedmodel_dir(self) -> Path:
        """The versioned SavedModel itself: ``savedmodel/<name>/1``."""
        return self.savedmodel_base / self.name / "1"

    @property
    def sha256(self) -> dict[str, str]:
        """Recorded hash of every artifact file (relative path -> hex digest)."""
        return dict(self.info["sha256"])


def validate_artifacts(cfg: ModelConfig, folder: Path) -> str | None:
    """Return ``None`` if ``folder`` holds valid artifacts for ``cfg``, else the reason it does not."""
    path = folder / MODEL_JSON
    if not path.is_file():
        return f"no {MODEL_JSON} in {folder}"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"{path} is unreadable: {exc}"
    if not isinstance(info, dict) or info.get("schema_version") != SCHEMA_VERSION:
        return (
            f"{path} has schema {info.get('schema_version') if isinstance(info, dict) else '?'}, need {SCHEMA_VERSION}"
        )
    if info.get("recipe_version") != RECIPE_VERSION:
        return f"trained with recipe {info.get('recipe_version')}, current recipe is {RECIPE_VERSION}"
    want = recorded_config(cfg)
    have = info.get("config")
    if have != want:
        changed = sorted(k for k in set(want) | set(have or {}) if (have or {}).get(k) != want.get(k))
        return "config changed: " + ", ".join(f"{k} {(have or {}).get(k)!r} -> {want.get(k)!r}" for k in changed)
    recorded = info.get("sha256")
    if not isinstance(recorded, dict) or not recorded:
        return f"{path} records no file hashes"
    actual = file_hashes(folder)
    for rel, digest in recorded.items():
        if rel not in actual:
            return f"artifact {rel} is missing"
        if actual[rel] != digest:
            return f"artifact {rel} changed since training (sha256 mismatch)"
    extra = sorted(set(actual) - set(recorded))
    if extra:
        return f"unrecorded files in {folder}: {', '.join(extra[:3])}"
    for rel in ("torchscript/model.pt", "weights/state_dict.pt", f"savedmodel/{cfg.name}/1/saved_model.pb"):
        if rel not in recorded:
            return f"artifact {rel} is not recorded in {MODEL_JSON}"
    return None


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock_path = folder.parent / f".{folder.name}.lock"
    with lock_path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def ensure_model(
    cfg: ModelConfig,
    artifacts_dir: str | Path,
    force: bool = False,
    on_progress: ProgressCallback | None = None,
    *,
    on_stage: StageCallback | None = None,
    root: str | Path | None = None,
) -> ModelArtifacts:
    """Return valid artifacts for ``cfg`` in ``artifacts_dir``, training and exporting if needed.

    ``root`` resolves a relative ``cfg.idx_dir`` (bench.toml's folder).  Raises
    :class:`models.export.ParityError` or :class:`models.data.DataError` on failure, leaving
    any previous artifacts untouched.
    """
    folder = Path(artifacts_dir).resolve()
    stage = on_stage or (lambda _msg: None)
    with _locked(folder):
        if not force:
            reason = validate_artifacts(cfg, folder)
            if reason is None:
                return ModelArtifacts(folder)
            stage(f"building the model: {reason}")
        tmp = folder.parent / f".{folder.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            _build(cfg, tmp, on_progress, stage, root)
            old = folder.parent / f".{folder.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            if folder.exists():
                folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    reason = validate_artifacts(cfg, folder)
    if reason is not None:  # pragma: no cover - would mean a bug in _build
        raise ArtifactsError(f"freshly built artifacts in {folder} are invalid: {reason}")
    return ModelArtifacts(folder, trained=True)


def _build(
    cfg: ModelConfig, out: Path, on_progress: ProgressCallback | None, stage: StageCallback, root: str | Path | None
) -> None:
    """Load data, train, export, check parity and write model.json into ``out``."""
    from models.data import load_dataset
    from models.export import MAX_ABS_LOGIT_DIFF, MIN_AGREEMENT, export_all
    from models.net import count_parameters
    from models.train import train_model

    stage(f"loading data ({cfg.dataset})")
    split = load_dataset(cfg, root=root)
    stage(f"training {cfg.epochs} epochs on {len(split.train_y)} images")
    model, result = train_model(split, cfg, on_progress)
    stage("exporting TorchScript, state_dict and SavedModel; checking parity")
    start = time.perf_counter()
    report = export_all(model, out, cfg.name, split.test_x, split.test_y)
    export_seconds = time.perf_counter() - start
    info: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "recipe_version": RECIPE_VERSION,
        "name": cfg.name,
        "dataset": cfg.dataset,
        "split": {"train": int(len(split.train_y)), "test": int(len(split.test_y))},
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate,
        "parameters": count_parameters(model),
        "accuracy": {
            "torch": result.final.accuracy,
            "torchscript": report.torchscript_accuracy,
            "savedmodel": report.savedmodel_accuracy,
        },
        "final_test_loss": result.final.loss,
        "parity": {
            "n_images": report.n_images,
            "agreement": report.agreement,
            "max_abs_logit_diff": report.max_abs_logit_diff,
            "min_agreement": MIN_AGREEMENT,
            "max_abs_logit_diff_allowed": MAX_ABS_LOGIT_DIFF,
        },
        "history": [
            {"epoch": i + 1, "train_loss": loss, "test_accuracy": acc}
            for i, (loss, acc) in enumerate(zip(result.epoch_loss, result.epoch_accuracy, strict=True))
        ],
        "training_seconds": round(result.seconds, 3),
        "export_seconds": round(export_seconds, 3),
        "inputs": {
            "normalization": {"mean": MEAN, "std": STD, "formula": "(pixels / 255 - mean) / std"},
            "wire": "normalized pixels rounded to 4 decimals, float32 (models.data.wire_pixels)",
            "torchscript": "float32 (N, 28, 28) or (N, 1, 28, 28) -> logits (N, 10)",
            "savedmodel": {
                "signature": "serving_default",
                "input": report.savedmodel_input,
                "output": report.savedmodel_output,
                "shape": "float32 (N, 28, 28) -> logits (N, 10)",
            },
        },
        "sha256": file_hashes(out),
        "versions": {
            "python": platform.python_version(),
            "torch": _version("torch"),
            "tensorflow": _version("tensorflow-cpu", "tensorflow"),
            "keras": _version("keras"),
            "numpy": _version("numpy"),
        },
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": recorded_config(cfg),
    }
    (out / MODEL_JSON).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
