"""Helpers for end-to-end tests that run ``python -m bench`` as a user would.

Why one module: every such test needs the same bench.toml (the shipped one, with results
and reports in a temporary folder and the session's trained model) and the same way to
call the CLI; two copies had started to drift.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.paths import REPO

__all__ = ["REPO", "calibration_file", "copy_calibration", "e2e_config", "run_bench"]

# `bench run` measures a quick client calibration (~5-15 s) unless results/calibration.json
# is under 24 h old and from this host; the same call, made once here, is reused by every run.
_CALIBRATE = """
import sys
from pathlib import Path

from bench.config import load_config
from loadgen.calibration import load_or_run_calibration
from targets.wire import mnist_payload

config = load_config(Path(sys.argv[1]))
load_or_run_calibration(Path(sys.argv[2]), max_age_s=3600.0, quick=True, cpus=config.loadgen.cpus,
                        payload=mnist_payload())
"""


@functools.cache
def calibration_file() -> Path:
    """A quick client calibration of this host, measured once per test session (on first use).

    It is what ``bench run`` itself measures when none is fresh (``load_or_run_calibration``,
    quick, the shipped bench.toml's ``[loadgen] cpus``, the MNIST payload), made once instead
    of once per end-to-end run; each run then reuses it exactly as it reuses a user's
    results/calibration.json.  Tests of the calibration itself do not use it.
    """
    folder = Path(tempfile.mkdtemp(prefix="servebench-test-calibration-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "calibration.json"
    subprocess.run(
        [sys.executable, "-c", _CALIBRATE, str(REPO / "bench.toml"), str(path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    return path


def copy_calibration(results_dir: Path) -> None:
    """Put the session's calibration into a run's results folder (``bench run`` reuses it)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(calibration_file(), results_dir / "calibration.json")


def e2e_config(tmp_path: Path, trained_model, extra_toml: str = "") -> Path:
    """bench.toml as shipped, plus ``extra_toml``, with results/reports in tmp_path and the shared model folder."""
    text = (REPO / "bench.toml").read_text()
    text = text.replace('artifacts_dir = "artifacts/model"', f'artifacts_dir = "{trained_model.dir}"')
    assert str(trained_model.dir) in text, "bench.toml's artifacts_dir line changed; update this test"
    text += extra_toml + '\n[paths]\nresults_dir = "results"\nreports_dir = "reports"\n'
    path = tmp_path / "bench.toml"
    path.write_text(text)
    copy_calibration(tmp_path / "results")
    return path


def run_bench(config: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``python -m bench --config CONFIG ARGS...`` from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "bench", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
