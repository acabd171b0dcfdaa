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
