"""The trial entry point: real (small) training, in process and as Katib would run it."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from models.config import ModelConfig
from models.hpo.runner import ProcessTrialRunner, parse_metrics
from models.hpo.space import TrialParams

SMALL = ModelConfig(train_size=600, test_size=200, seed=0)


@pytest.mark.slow
def test_run_trial_is_deterministic_and_depends_on_the_parameters() -> None:
    from models.data import load_dataset
    from models.trial import run_trial

    split = load_dataset(SMALL)
    a = run_trial(split, SMALL, lr=0.05, batch_size=80, epochs=1)
    b = run_trial(split, SMALL, lr=0.05, batch_size=80, epochs=1)
    c = run_trial(split, SMALL, lr=0.01, batch_size=100, epochs=1)
    assert math.isfinite(a.loss) and 0.0 <= a.accuracy <= 1.0 and a.seconds > 0
    assert (a.loss, a.accuracy) == (b.loss, b.accuracy)
    assert a.loss != c.loss
    with pytest.raises(ValueError, match="lr must be a positive number"):
        run_trial(split, SMALL, lr=0.0, batch_size=80, epochs=1)


def _small_toml(tmp_path: Path) -> Path:
    path = tmp_path / "bench.toml"
    path.write_text("[model]\ntrain_size = 600\ntest_size = 200\n")
    return path


@pytest.mark.slow
def test_command_line_prints_katib_metrics(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "models.trial",
        "--lr=0.05",
        "--batch-size=90",
        "--epochs=1",
        f"--config={_small_toml(tmp_path)}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split("=")[0] for line in lines] == ["loss", "accuracy"]
    metrics = parse_metrics(proc.stdout + proc.stderr)  # Katib reads the container's whole log
    assert set(metrics) == {"loss", "accuracy"}
    assert math.isfinite(metrics["loss"]) and 0 <= metrics["accuracy"] <= 1
    assert "600 training images, 200 held out" in proc.stderr


@pytest.mark.slow
def test_process_runner_runs_a_real_trial(tmp_path: Path) -> None:
    runner = ProcessTrialRunner(epochs=1, config_path=_small_toml(tmp_path), cwd=tmp_path, timeout_s=300)
    outcome = runner(TrialParams(0, 0.03, 85))
    assert math.isfinite(outcome.loss) and 0 <= outcome.accuracy <= 1
    assert not runner._live


def test_command_line_rejects_bad_arguments_and_data(tmp_path: Path) -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "models.trial", "--lr=abc", "--batch-size=80"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--lr: expected a number" in bad.stderr
    missing = tmp_path / "nope"
    bad = subprocess.run(
        [sys.executable, "-m", "models.trial", "--lr=0.01", "--batch-size=80", "--dataset=idx", f"--idx-dir={missing}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "is not a folder" in bad.stderr and "loss=" not in bad.stdout
