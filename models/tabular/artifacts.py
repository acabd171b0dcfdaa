"""``artifacts/<name>/`` of a tabular model: train once, reuse while recipe and files are unchanged.

Why the same rule as the MNIST model's (:mod:`models.artifacts`): the folder is reused only
when its ``model.json`` records this recipe and recipe version AND every file's sha256
still matches, so a hand-edited weights file or a half-written folder is retrained, not
served.  Everything is written into a sibling temp folder and renamed into place, so an
interrupted training never leaves a folder that looks complete.  The folder sits beside
the MNIST model's (``artifacts/model``) and never touches it.

Files: ``weights.npz`` (:mod:`models.tabular.weights`), ``input-data.json`` (the test
split as a perf_analyzer input-data file, :mod:`models.tabular.input_data`) and
``model.json`` (recipe, accuracy, parity, the V2 tensors it serves, sha256 of each file).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from models.artifacts import MODEL_JSON, file_hashes
from models.tabular.datasets import TABULAR_MODELS
from models.tabular.input_data import INPUT_NAME, input_data_document, tabular_samples, write_input_data
from models.tabular.train import TabularRecipe, fit
from models.tabular.weights import WEIGHT_ARRAYS, TabularWeights, load_weights, save_weights

__all__ = [
    "INPUT_DATA_FILE",
    "RECIPE_VERSION",
    "SCHEMA_VERSION",
    "WEIGHTS_FILE",
    "TabularArtifacts",
    "ensure_tabular_model",
    "tabular_artifacts_dir",
    "tensor_metadata",
    "validate_tabular_artifacts",
]

SCHEMA_VERSION = 1
#: Bump when models/tabular/train.py changes what weights a recipe produces.
RECIPE_VERSION = 1
WEIGHTS_FILE = "weights.npz"
INPUT_DATA_FILE = "input-data.json"


def tabular_artifacts_dir(mnist_artifacts_dir: str | os.PathLike[str], name: str) -> Path:
    """``<artifacts>/<name>``: the sibling of the MNIST model's folder (``artifacts/model``)."""
    if name not in TABULAR_MODELS:
        raise KeyError(f"unknown tabular model {name!r}; known: {', '.join(sorted(TABULAR_MODELS))}")
    return Path(mnist_artifacts_dir).parent / name


def tensor_metadata(weights: TabularWeights) -> dict[str, list[dict[str, Any]]]:
    """The V2 inputs and outputs the stand-in declares for these weights (``GET /v2/models/<name>``)."""
    return {
        "inputs": [{"name": INPUT_NAME, "datatype": "FP64", "shape": [-1, weights.n_features]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, weights.n_classes]},
            {"name": "label", "datatype": "INT64", "shape": [-1]},
        ],
    }


@dataclass(frozen=True)
class TabularArtifacts:
    """A validated ``artifacts/<name>/`` folder; ``trained`` is True when this call built it."""

    dir: Path
    trained: bool = False

    @cached_property
    def info(self) -> dict[str, Any]:
        return json.loads((self.dir / MODEL_JSON).read_text(encoding="utf-8"))

    @property
    def weights_path(self) -> Path:
        return self.dir / WEIGHTS_FILE

    @property
    def input_data_path(self) -> Path:
        return self.dir / INPUT_DATA_FILE


def validate_tabular_artifacts(recipe: TabularRecipe, folder: Path) -> str | None:
    """``None`` if ``folder`` holds this recipe's artifacts unchanged, else why not."""
    path = folder / MODEL_JSON
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {MODEL_JSON} in {folder}"
    except (OSError, ValueError) as exc:
        return f"{path} is unreadable: {exc}"
    if not isinstance(info, dict) or info.get("schema_version") != SCHEMA_VERSION:
        return f"{path} is not a schema {SCHEMA_VERSION} tabular model.json"
    if info.get("recipe_version") != RECIPE_VERSION:
        return f"trained with recipe {info.get('recipe_version')}, current recipe is {RECIPE_VERSION}"
    if info.get("recipe") != asdict(recipe):
        return f"recipe changed: {info.get('recipe')} -> {asdict(recipe)}"
    recorded = info.get("sha256")
    if not isinstance(recorded, dict) or set(recorded) != {WEIGHTS_FILE, INPUT_DATA_FILE}:
        return f"{path} does not record the sha256 of {WEIGHTS_FILE} and {INPUT_DATA_FILE}"
    actual = file_hashes(folder)
    for rel, digest in recorded.items():
        if actual.get(rel) != digest:
            return f"artifact {rel} is missing or changed since training (sha256 mismatch)"
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _build(recipe: TabularRecipe, folder: Path) -> None:
    """Fit, then write weights, input-data file and model.json into ``folder`` (which exists)."""
    trained = fit(recipe)
    save_weights(trained.weights, folder / WEIGHTS_FILE)
    reloaded = load_weights(folder / WEIGHTS_FILE)  # the safe loader must read back exactly what was fitted
    for key in WEIGHT_ARRAYS:
        if not np.array_equal(getattr(reloaded, key), getattr(trained.weights, key)):
            raise RuntimeError(f"{folder / WEIGHTS_FILE}: array {key!r} does not read back as written")
    inputs, outputs = tabular_samples(trained.weights, trained.split.test_x)
    write_input_data(folder / INPUT_DATA_FILE, input_data_document(inputs, outputs))
    info = {
        "schema_version": SCHEMA_VERSION,
        "recipe_version": RECIPE_VERSION,
        "name": recipe.name,
        "dataset": TABULAR_MODELS[recipe.name].description,
        "recipe": asdict(recipe),
        "model": "standardise + multinomial logistic regression (scikit-learn lbfgs), exported as arrays",
        **trained.facts(),
        "tensors": tensor_metadata(trained.weights),
        "input_data": {"file": INPUT_DATA_FILE, "samples": len(inputs), "validation_data": True},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {"scikit-learn": _version("scikit-learn"), "numpy": _version("numpy")},
        "sha256": file_hashes(folder),
    }
    (folder / MODEL_JSON).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def ensure_tabular_model(
    recipe: TabularRecipe, folder: str | os.PathLike[str], *, force: bool = False
) -> TabularArtifacts:
    """Valid artifacts for ``recipe`` in ``folder``, training first when missing, stale or ``force``."""
    folder = Path(folder)
    if not force and validate_tabular_artifacts(recipe, folder) is None:
        return TabularArtifacts(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _build(recipe, tmp)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    reason = validate_tabular_artifacts(recipe, folder)
    if reason is not None:
        raise RuntimeError(f"{folder}: freshly written artifacts do not validate: {reason}")
    return TabularArtifacts(folder, trained=True)
