"""Shared test set-up: keep every cache out of $HOME, and share one trained model.

Why: libraries (matplotlib, keras, torch) write caches under $HOME; tests must not. The
trained model takes about a minute on two cores, so it is trained once into the
project's git-ignored artifacts folder and reused by every test that needs it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_CACHE = Path(tempfile.gettempdir()) / "servebench-test-cache"
for _var, _sub in (
    ("MPLCONFIGDIR", "matplotlib"),
    ("KERAS_HOME", "keras"),
    ("TORCH_HOME", "torch"),
    ("XDG_CACHE_HOME", "xdg"),
):
    os.environ.setdefault(_var, str(_CACHE / _sub))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def trained_model():
    """The default bench.toml model's artifacts (models.artifacts.ModelArtifacts).

    Trains and exports once into the git-ignored artifacts folder named in bench.toml (about
    20-60 s on two cores), then every later session reuses it: ``ensure_model`` checks the
    recorded config and every file's sha256 in model.json, and a file lock makes
    concurrent sessions wait for one training instead of racing.
    """
    from bench.config import load_config
    from models.artifacts import ensure_model

    config = load_config(REPO_ROOT / "bench.toml")
    return ensure_model(config.model, config.artifacts_dir, root=config.root)


@pytest.fixture(scope="session")
def mnist(repo_root: Path):
    """The first 100 images and labels of the default config's held-out split (uint8, int)."""
    from bench.config import load_config
    from models.data import load_dataset

    split = load_dataset(load_config(repo_root / "bench.toml").model)
    return split.test_x[:100], split.test_y[:100]
