"""End to end: `python -m bench run hpo` in its quick mode, through the CLI, real trials."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from models.hpo.report import render_hpo_report
from models.hpo.results import read_hpo, summarize_hpo
from models.hpo.runner import ProcessTrialRunner
from models.hpo.space import TrialParams

QUICK = ["run", "hpo", "--epochs", "1", "--max-trials", "5", "--algorithms", "random", "--repeats", "1"]


def _config(tmp_path: Path, repo_root: Path) -> Path:
    """The project's bench.toml with results and reports redirected into tmp_path."""
    text = (repo_root / "bench.toml").read_text()
    text += f'\n[paths]\nresults_dir = "{tmp_path / "results"}"\nreports_dir = "{tmp_path / "reports"}"\n'
    path = tmp_path / "bench.toml"
    path.write_text(text)
    return path


@pytest.mark.slow
def test_quick_mode_end_to_end(tmp_path: Path, repo_root: Path, capsys) -> None:
    config = _config(tmp_path, repo_root)
    assert main(["--config", str(config), "-q", *QUICK, "--run-id", "quick"]) == 0
    run_dir = tmp_path / "results" / "quick"
    trials, studies = read_hpo(run_dir)
    assert len(trials) == 5 and set(trials["state"]) == {"COMPLETE"}, trials[["trial", "state", "error"]]
    assert trials["lr"].between(0.01, 0.05).all() and trials["batch_size"].between(80, 100).all()
    assert sorted(trials["trial"]) == [0, 1, 2, 3, 4]
    assert all(math.isfinite(v) for v in trials["loss"]) and trials["accuracy"].between(0, 1).all()
    assert (trials["end_s"] >= trials["start_s"]).all()
    assert len(studies) == 1 and studies.iloc[0]["stop_reason"] == "max_trials" and studies.iloc[0]["parallel"] == 3
    # Three trials ran at once: the first three started before any ended.
    first = trials.sort_values("trial").head(3)
    assert first["start_s"].max() < first["end_s"].min()
    summary = pd.read_csv(run_dir / "hpo_summary.csv")
    assert len(summary) == 1
    assert summary.iloc[0]["best_loss"] == pytest.approx(trials["loss"].min())
    assert summary.iloc[0]["wall_s_mean"] == pytest.approx(studies.iloc[0]["wall_s"])
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["kind"] == "hpo" and meta["run_id"] == "quick"
    assert meta["schema_version"] >= 1 and meta["config"]["sha256"] and meta["versions"]["optuna"]
    assert meta["hpo"]["max_trials"] == [5] and meta["hpo"]["epochs"] == 1
    report = tmp_path / "reports" / "quick"
    for name in ("table1.md", "table2.md", "figure20_hpo_time.png", "hpo_convergence.png"):
        assert (report / name).is_file(), name
    wall = summary.iloc[0]["wall_s_mean"]
    assert f"| 5 | {wall:.1f} (n=1) |" in (report / "table2.md").read_text()
    out = capsys.readouterr().out
    assert "hpo run quick" in out
    # The CSVs alone regenerate the same report.
    again = render_hpo_report(run_dir, tmp_path / "again")
    assert (tmp_path / "again" / "table2.md").read_text() == (report / "table2.md").read_text()
    assert len(again) == 4
    # `bench report` recognises a tuning run (by name, and as the latest run) and rebuilds it.
    (report / "table1.md").unlink()
    assert main(["--config", str(config), "-q", "report", "quick"]) == 0
    assert (report / "table1.md").is_file()
    (report / "table2.md").unlink()
    assert main(["--config", str(config), "-q", "report"]) == 0
    assert (report / "table2.md").read_text() == (tmp_path / "again" / "table2.md").read_text()
    pd.testing.assert_frame_equal(summarize_hpo(trials, studies), summarize_hpo(*read_hpo(run_dir)))
    # Trials are seeded and single-threaded: re-running the best trial gives the same loss, bit for bit.
    best = trials.sort_values("loss").iloc[0]
    runner = ProcessTrialRunner(epochs=1, config_path=run_dir / "trial_model.toml", timeout_s=300)
    again_outcome = runner(TrialParams(0, float(best["lr"]), int(best["batch_size"])))
    assert again_outcome.loss == pytest.approx(float(best["loss"]), abs=1e-6)
    # A second run with the same id is refused, not overwritten.
    assert main(["--config", str(config), "-q", *QUICK, "--run-id", "quick"]) == 2


def test_bad_options_are_errors_naming_the_option(tmp_path: Path, repo_root: Path, capsys) -> None:
    config = _config(tmp_path, repo_root)
    assert main(["--config", str(config), "run", "hpo", "--algorithms", "random,tpe"]) == 2
    assert "--algorithms: unknown algorithm(s) tpe" in capsys.readouterr().err
    assert main(["--config", str(config), "run", "hpo", "--parallel", "0"]) == 2
    assert "--parallel: must be >= 1" in capsys.readouterr().err
    assert main(["--config", str(config), "run", "hpo", "--run-id", "../x"]) == 2
    assert not (tmp_path / "results").exists()
