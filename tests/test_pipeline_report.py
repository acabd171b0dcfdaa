"""The pipeline report (Tables 4-5, Figures 22-23) built from hand-written pipeline_stages.csv files.

Pure and fast: no pipeline runs here.  The study's numbers must come from
results/reference/ and ours from the CSV; a failed stage must be marked, not hidden.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from bench.cmd_pipeline import STAGE_COLUMNS as CMD_COLUMNS
from bench.reference import load_reference
from models.pipeline.figures import needs_log_scale
from models.pipeline.report import render_pipeline_report
from models.pipeline.stages import (
    STAGE_COLUMNS,
    StageRow,
    read_stages,
    read_summary_values,
    study_metrics,
    summary_rows,
    write_summary,
)

E2E_OK = [("tune", 31.5, "ok"), ("train", 12.25, "ok"), ("export", 4.5, "ok"), ("serve", 6.0, "ok"),
          ("smoke", 3.0, "ok"), ("total", 61.0, "ok")]
CUSTOM_OK = [("load_data", 1.5, "ok"), ("train", 9.75, "ok"), ("evaluate", 5.25, "ok"), ("total", 21.0, "ok")]


def _write_run(run_dir: Path, pipeline: str, rows: list[tuple[str, float, str]], meta: dict | None = None) -> Path:
    run_dir.mkdir(parents=True)
    with open(run_dir / "pipeline_stages.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(STAGE_COLUMNS)
        for stage, seconds, status in rows:
            writer.writerow([pipeline, stage, "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", seconds, status])
    if meta is not None:
        meta = {"kind": "pipeline", "run_id": run_dir.name, "pipeline": pipeline, **meta}
        (run_dir / "meta.json").write_text(json.dumps(meta))
    return run_dir


def _table_rows(md: str) -> dict[str, list[str]]:
    """First cell -> the other cells, for every body row of the first Markdown table."""
    out = {}
    for line in md.splitlines():
        if line.startswith("| ") and not line.startswith("| study row") and not line.startswith("| stage"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            out[cells[0]] = cells[1:]
    return out


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.size[0] > 400 and img.size[1] > 300


def test_column_sets_agree_with_the_writer() -> None:
    assert STAGE_COLUMNS == CMD_COLUMNS  # the writer (local or remote) and the reader share one format


def test_study_metrics_follow_the_documented_mapping() -> None:
    e2e = [StageRow("servebench", s, "", "", sec, st) for s, sec, st in E2E_OK]
    got = {m.key: (m.seconds, m.status) for m in study_metrics("servebench", e2e)}
    assert got == {"katib_experiment": (31.5, "ok"), "tfjob": (16.75, "ok"), "model_serving": (6.0, "ok"),
                   "total_time": (61.0, "ok")}
    custom = [StageRow("custom", s, "", "", sec, st) for s, sec, st in CUSTOM_OK]
    got = {m.key: m.seconds for m in study_metrics("custom", custom)}
    assert got == {"total_pipeline_time": 21.0, "model_running_time": 15.0}
    assert study_metrics("something-else", custom) == []


def test_summary_file_round_trips(tmp_path: Path) -> None:
    rows = [StageRow("custom", s, "", "", sec, st) for s, sec, st in CUSTOM_OK]
    path = write_summary(tmp_path / "pipeline_summary.csv", summary_rows("custom", rows, {"accuracy": 0.9625}))
    assert read_summary_values(path) == {"total_pipeline_time": 21.0, "model_running_time": 15.0, "accuracy": 0.9625}


def test_read_stages_reads_what_was_written(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "r", "custom", CUSTOM_OK)
    rows = read_stages(run / "pipeline_stages.csv")
    assert [(r.stage, r.seconds, r.status) for r in rows] == CUSTOM_OK


def test_kfp_task_keys_read_as_stage_names(tmp_path: Path) -> None:
    # a cluster run names load_data's task "load-data" (KFP's IR key); it is the same stage
    run = _write_run(tmp_path / "r", "custom", [("load-data", 2.0, "ok"), ("train", 1.0, "ok")])
    assert [r.stage for r in read_stages(run / "pipeline_stages.csv")] == ["load_data", "train"]


def test_table5_puts_ours_beside_the_study(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "results" / "e2e", "servebench", E2E_OK, {"status": "ok", "runner": "kfp.local"})
    paths = render_pipeline_report(run, tmp_path / "reports" / "e2e")
    names = sorted(p.name for p in paths)
    assert names == ["figure23_pipeline_servebench.png", "report.md", "table5.md"]
    md = (tmp_path / "reports" / "e2e" / "table5.md").read_text()
    rows = _table_rows(md)
    study = load_reference(5).set_index("step")
    expected = {"Katib experiment": ("31.50", "katib_experiment"), "TFJob": ("16.75", "tfjob"),
                "Model serving": ("6.00", "model_serving"), "Total time": ("61.00", "total_time")}
    for label, (ours, key) in expected.items():
        assert rows[label][0] == ours
        assert rows[label][1] == f"{study.loc[key, 'gcp_s']:g}" and rows[label][2] == f"{study.loc[key, 'ibm_s']:g}"
    assert "`train` + `export`" in rows["TFJob"][3]
    assert "smoke" in md  # named as having no study counterpart
    _assert_png(tmp_path / "reports" / "e2e" / "figure23_pipeline_servebench.png")
    report = (tmp_path / "reports" / "e2e" / "report.md").read_text()
    assert "table5.md" in report and "figure23_pipeline_servebench.png" in report and "| smoke |" in report


def test_table4_has_both_metrics_and_the_accuracy(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "c", "custom", CUSTOM_OK, {"status": "ok"})
    write_summary(run / "pipeline_summary.csv", [{"pipeline": "custom", "metric": "accuracy", "value": "0.9625",
                                                  "unit": "fraction", "from_stages": "evaluate", "status": "ok"}])
    render_pipeline_report(run, tmp_path / "out")
    md = (tmp_path / "out" / "table4.md").read_text()
    rows = _table_rows(md)
    study = load_reference(4).set_index("metric")
    assert rows["Total pipeline time"][:3] == ["21.00", f"{study.loc['total_pipeline_time', 'gcp_s']:g}",
                                               f"{study.loc['total_pipeline_time', 'ibm_s']:g}"]
    assert rows["Model running time"][:3] == ["15.00", "429", "583"]
    assert "0.9625" in md
    _assert_png(tmp_path / "out" / "figure22_pipeline_custom.png")


def test_a_failed_run_keeps_its_rows_and_marks_the_failure(tmp_path: Path) -> None:
    rows = [("tune", 30.0, "ok"), ("train", 2.0, "failed"), ("total", 40.0, "failed")]
    run = _write_run(tmp_path / "bad", "servebench", rows,
                     {"status": "failed", "failed_stage": "train", "error": "Task 'train' finished with status FAILURE"})
    render_pipeline_report(run, tmp_path / "out")
    table = _table_rows((tmp_path / "out" / "table5.md").read_text())
    assert table["Katib experiment"][0] == "30.00"
    assert table["TFJob"][0].startswith("2.00 (**failed**: train")
    assert table["Model serving"][0] == "– (not run)"
    report = (tmp_path / "out" / "report.md").read_text()
    assert "failed stage: train" in report and "status: **failed**" in report
    for stage in ("export", "serve", "smoke"):
        assert f"| {stage} | – | – | – | not run |" in report
    _assert_png(tmp_path / "out" / "figure23_pipeline_servebench.png")


def test_a_run_without_meta_or_with_an_unknown_pipeline_still_renders(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "odd", "mine", [("a", 1.0, "ok"), ("total", 2.0, "ok")])
    paths = render_pipeline_report(run, tmp_path / "out")
    assert [p.name for p in paths] == ["report.md"]
    assert "no table for a pipeline named `mine`" in paths[0].read_text()


def test_malformed_stage_files_are_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "pipeline_stages.csv").write_text("stage,seconds\ntune,1\n")
    with pytest.raises(ValueError, match="lacks columns"):
        render_pipeline_report(tmp_path / "a", tmp_path / "out")
    run = _write_run(tmp_path / "b", "custom", [("train", 1.0, "ok")])
    (run / "pipeline_stages.csv").write_text((run / "pipeline_stages.csv").read_text().replace(",1.0,", ",soon,"))
    with pytest.raises(ValueError, match="line 2: seconds 'soon'"):
        render_pipeline_report(run, tmp_path / "out")
    (tmp_path / "c").mkdir()
    with pytest.raises(ValueError, match="not found"):
        render_pipeline_report(tmp_path / "c", tmp_path / "out")


def test_log_scale_only_when_values_span_ten_times() -> None:
    assert needs_log_scale([21.0, 745.0, 908.0])
    assert not needs_log_scale([5.0, 9.0, None])
    assert not needs_log_scale([None, None])


def _cli_config(tmp_path: Path, repo_root: Path) -> Path:
    config = tmp_path / "bench.toml"
    config.write_text((repo_root / "bench.toml").read_text()
                      + f'\n[paths]\nresults_dir = "{tmp_path / "results"}"\nreports_dir = "{tmp_path / "reports"}"\n')
    return config


def test_bench_report_renders_a_pipeline_run_and_compare_refuses_it(tmp_path: Path, repo_root: Path, capsys) -> None:
    from bench.cli import main

    config = _cli_config(tmp_path, repo_root)
    _write_run(tmp_path / "results" / "pl-1", "custom", CUSTOM_OK,
               {"status": "ok", "started_at": 1.0e9, "complete": True})
    assert main(["--config", str(config), "report", "pl-1"]) == 0
    assert (tmp_path / "reports" / "pl-1" / "table4.md").is_file()
    assert (tmp_path / "reports" / "pl-1" / "figure22_pipeline_custom.png").is_file()
    # no argument: the latest run of any kind, and a pipeline run counts
    (tmp_path / "reports" / "pl-1" / "table4.md").unlink()
    assert main(["--config", str(config), "report"]) == 0
    assert (tmp_path / "reports" / "pl-1" / "table4.md").is_file()
    capsys.readouterr()
    assert main(["--config", str(config), "compare", "pl-1", "pl-1"]) == 2
    err = capsys.readouterr().err
    assert "pipeline" in err and "summary.csv" in err


def test_bench_report_names_a_broken_pipeline_run(tmp_path: Path, repo_root: Path, capsys) -> None:
    from bench.cli import main

    config = _cli_config(tmp_path, repo_root)
    run = tmp_path / "results" / "pl-2"
    run.mkdir(parents=True)
    (run / "pipeline_stages.csv").write_text("nothing,useful\n")
    assert main(["--config", str(config), "report", "pl-2"]) == 2
    assert "pipeline report" in capsys.readouterr().err
