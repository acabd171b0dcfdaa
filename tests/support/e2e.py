"""Helpers for end-to-end tests that run ``python -m bench`` as a user would.

Why one module: every such test needs the same bench.toml (the shipped one, with results
and reports in a temporary folder and the session's trained model) and the same way to
call the CLI; two copies had started to drift.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from tests.support.paths import REPO


__all__ = ["REPO", "e2e_config", "run_bench"]


def e2e_config(tmp_path: Path, trained_model, extra_toml: str = "") -> Path:
    """bench.toml as shipped, plus ``extra_toml``, with results/reports in tmp_path and the shared model folder."""
    text = (REPO / "bench.toml").read_text()
    text = text.replace('artifacts_dir = "artifacts/model"', f'artifacts_dir = "{trained_model.dir}"')
    assert str(trained_model.dir) in text, "bench.toml's artifacts_dir line changed; update this test"
    text += extra_toml + '\n[paths]\nresults_dir = "results"\nreports_dir = "reports"\n'
    path = tmp_path / "bench.toml"
    path.write_text(text)
    calibration = REPO / "results" / "calibration.json"
    if calibration.is_file():  # reused only if fresh and from this host; else measured again
        (tmp_path / "results").mkdir()
        shutil.copy(calibration, tmp_path / "results" / "calibration.json")
    return path


def run_bench(config: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``python -m bench --config CONFIG ARGS...`` from the repository root, output captured."""
    return subprocess.run([sys.executable, "-m", "bench", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)
