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

import pytest  # noqa: E402 - after the cache variables above, which imports read

from tests.support.paths import REPO as REPO_ROOT  # noqa: E402 - likewise


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


@pytest.fixture(scope="session")
def isvc_schema() -> dict:
    """KServe's InferenceService schema (v1beta1 ``openAPIV3Schema``), from the vendored CRD.

    Loaded once per session: the CRD is ~2 MB (tests/data/schemas/README.md: source,
    version, licence). Missing file = a broken checkout, so it fails instead of skipping.
    """
    import yaml

    from tests.support.paths import KSERVE_CRD

    crd = yaml.load(KSERVE_CRD.read_text(), Loader=yaml.CSafeLoader)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return version["schema"]["openAPIV3Schema"]


def _uses_browser(module: object) -> bool:
    """True when a test module imported the browser helper (tests/support/browser.py)."""
    import sys

    helper = sys.modules.get("tests.support.browser")
    if helper is None or module is None:
        return False
    return any(
        value is helper or getattr(value, "__module__", None) == helper.__name__ for value in vars(module).values()
    )


def pytest_collection_modifyitems(config, items) -> None:
    """Mark every test of a module that uses tests/support/browser.py as ``browser``, so
    ``python -m pytest -m browser`` runs exactly the real-browser tests."""
    for item in items:
        if _uses_browser(getattr(item, "module", None)):
            item.add_marker(pytest.mark.browser)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Say loudly, at the very end, when browser tests were skipped (and why): a green run
    without a browser has not checked the HTML at all."""
    skipped = [
        r
        for r in terminalreporter.stats.get("skipped", [])
        if "BROWSER TESTS SKIPPED" in str(getattr(r, "longrepr", ""))
    ]
    if skipped:
        first = skipped[0].longrepr
        reason = str(first[-1] if isinstance(first, tuple) else first).removeprefix("Skipped: ")
        terminalreporter.section("BROWSER TESTS SKIPPED", sep="!", red=True, bold=True)
        terminalreporter.line(f"{len(skipped)} browser test(s) did not run: {reason}", red=True, bold=True)
