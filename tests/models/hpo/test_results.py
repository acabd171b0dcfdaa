"""HPO CSVs: rows written, read back, summarised, and rendered by the report (round trip)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pandas as pd
import pytest

from bench.config import ConfigError, parse_config
from models.hpo.report import render_hpo_report
from models.hpo.results import (
    STUDIES_FILE,
    STUDY_COLUMNS,
    SUMMARY_COLUMNS,
    TRIAL_COLUMNS,
    TRIALS_FILE,
    CsvAppender,
    best_so_far,
    read_hpo,
    study_row,
    summarize_hpo,
    trial_row,
)
from models.hpo.search import StudyResult, TrialRecord
from tests.support.paths import REPO


def rec(number: int, lr: float, batch: int, loss: float, state: str = "COMPLETE") -> TrialRecord:
    return TrialRecord(
        number=number,
        lr=lr,
        batch_size=batch,
        state=state,
        loss=loss,
        accuracy=0.0 if math.isnan(loss) else 0.9,
        error="" if state == "COMPLETE" else "TrialFailed: boom",
        start_s=number * 1.0,
        end_s=number * 1.0 + 0.5,
        started_at=1_800_000_000.0 + number,
    )


# algorithm, max_trials, repeat, wall_s, losses (NaN = failed)
STUDIES = [
    ("grid", 3, 0, 30.0, [0.50, 0.40, 0.30]),
    ("grid", 3, 1, 34.0, [0.50, 0.40, 0.30]),
    ("random", 3, 0, 20.0, [0.35, float("nan"), 0.201]),
    ("random", 3, 1, 26.0, [0.20, 0.90, 0.25]),
]


def write_run(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    with (
        CsvAppender(run_dir / TRIALS_FILE, TRIAL_COLUMNS) as trials,
        CsvAppender(run_dir / STUDIES_FILE, STUDY_COLUMNS) as studies,
    ):
        for alg, mt, rep, wall, losses in STUDIES:
            records = tuple(
                rec(i, 0.01 + 0.01 * i, 80 + 5 * i, loss, "FAILED" if math.isnan(loss) else "COMPLETE")
                for i, loss in enumerate(losses)
            )
            for r in records:
                trials.write(trial_row(r, run_id="t", algorithm=alg, max_trials=mt, repeat=rep, seed=rep, epochs=1))
            study = StudyResult(alg, mt, rep, 3, 1_800_000_000.0, wall, "max_trials", records)
            studies.write(study_row(study, run_id="t", repeat=rep, epochs=1))


def test_best_so_far_skips_failed_trials() -> None:
    out = best_so_far([float("nan"), 0.5, float("nan"), 0.7, 0.2])
    assert math.isnan(out[0]) and out[1:] == [0.5, 0.5, 0.5, 0.2]


def test_summary_from_round_tripped_csvs(tmp_path: Path) -> None:
    write_run(tmp_path)
    trials, studies = read_hpo(tmp_path)
    assert list(trials.columns) == list(TRIAL_COLUMNS) and len(trials) == 12
    assert (trials["state"] == "FAILED").sum() == 1
    summary = summarize_hpo(trials, studies)
    assert list(summary.columns) == list(SUMMARY_COLUMNS)
    assert list(summary["algorithm"]) == ["grid", "random"]
    grid = summary[summary["algorithm"] == "grid"].iloc[0]
    rand = summary[summary["algorithm"] == "random"].iloc[0]
    assert grid["wall_s_mean"] == pytest.approx(32.0)
    assert grid["wall_s_std"] == pytest.approx(statistics.stdev([30.0, 34.0]))
    assert rand["wall_s_mean"] == pytest.approx(23.0) and (rand["wall_s_min"], rand["wall_s_max"]) == (20.0, 26.0)
    assert rand["failed"] == 1 and rand["trials"] == 6
    # Best: the random study repeat 1, trial 0 (loss 0.20, lr 0.01, batch 80).
    assert (rand["best_loss"], rand["best_lr"], int(rand["best_batch_size"]), int(rand["best_repeat"])) == (
        0.20,
        0.01,
        80,
        1,
    )
    assert grid["best_loss"] == pytest.approx(0.30)
    # Within 1 % of the run's best (0.20 * 1.01 = 0.202): random rep 0 at trial 3 (0.201), rep 1 at trial 1;
    # grid never gets there.
    assert rand["trials_to_1pct_mean"] == pytest.approx(2.0) and rand["reached_1pct"] == "2/2"
    assert math.isnan(grid["trials_to_1pct_mean"]) and grid["reached_1pct"] == "0/2"
    assert rand["best_loss_mean"] == pytest.approx((0.201 + 0.20) / 2)


def test_report_renders_tables_and_figures_from_the_csvs(tmp_path: Path) -> None:
    run_dir, out = tmp_path / "run", tmp_path / "report"
    write_run(run_dir)
    paths = render_hpo_report(run_dir, out)
    assert [p.name for p in paths] == ["table1.md", "table2.md", "figure20_hpo_time.png", "hpo_convergence.png"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    assert (run_dir / "hpo_summary.csv").is_file()  # written when missing
    table1 = (out / "table1.md").read_text()
    assert "| this machine, random (max 3, repeat 1, trial 0) | 0.2000 | 0.0100 | 80 |" in table1
    assert "| **this machine, best overall** (random) | **0.2000** | **0.0100** | **80** |" in table1
    assert "1 failed" in table1
    table2 = (out / "table2.md").read_text()
    assert "| 3 | 23.0 ± 4.2 (n=2) |" in table2  # random first, as in the study's Table 2
    assert "32.0 ± 2.8 (n=2)" in table2
    study_present = (REPO / "results" / "reference" / "table2_katib_time.csv").is_file()
    if study_present:
        assert "IBM (study, Katib on Kubeflow) | 0.1876" in table1
        assert "Random Search: study (s)" in table2
    # Rendering twice from the same CSVs gives the same tables.
    render_hpo_report(run_dir, out)
    assert (out / "table2.md").read_text() == table2


def test_report_refuses_a_folder_without_hpo_results(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="hpo_trials.csv"):
        render_hpo_report(tmp_path, tmp_path / "out")
    (tmp_path / TRIALS_FILE).write_text("run_id,algorithm\n")
    (tmp_path / STUDIES_FILE).write_text(",".join(STUDY_COLUMNS) + "\n")
    with pytest.raises(ValueError, match="missing columns"):
        read_hpo(tmp_path)


def test_csv_appender_appends_without_repeating_the_header(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    with CsvAppender(path, ("a", "b")) as w:
        w.write({"a": 1, "b": 2})
    with CsvAppender(path, ("a", "b")) as w:
        w.write({"a": 3, "b": 4})
    assert pd.read_csv(path).to_dict("list") == {"a": [1, 3], "b": [2, 4]}


def test_hpo_config_table_is_validated(tmp_path: Path) -> None:
    config = parse_config("[hpo]\nalgorithms = ['random']\nmax_trials = [2, 4]\nepochs = 1\n", tmp_path)
    assert config.hpo.algorithms == ("random",) and config.hpo.max_trials == (2, 4) and config.hpo.parallel == 3
    assert parse_config("", tmp_path).hpo.max_trials == (5, 10, 15)
    for text, where in (
        ("[hpo]\nalgorithms = ['tpe']\n", "hpo.algorithms[0]"),
        ("[hpo]\nmax_trials = [0]\n", "hpo"),
        ("[hpo]\nparalel = 2\n", "hpo.paralel"),
        ("[hpo]\nlr_min = 0.1\nlr_max = 0.05\n", "hpo"),
    ):
        with pytest.raises(ConfigError) as info:
            parse_config(text, tmp_path)
        assert info.value.where == where, text
