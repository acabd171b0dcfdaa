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

from bench.pipeline.local_run import STAGE_COLUMNS as CMD_COLUMNS
from ground.reference import load_reference
from ground.runmeta import RunMeta
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

E2E_OK = [
    ("tune", 31.5, "ok"),
    ("train", 12.25, "ok"),
    ("export", 4.5, "ok"),
    ("serve", 6.0, "ok"),
    ("smoke", 3.0, "ok"),
    ("total", 61.0, "ok"),
]
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
    assert got == {
        "katib_experiment": (31.5, "ok"),
        "tfjob": (16.75, "ok"),
        "model_serving": (6.0, "ok"),
        "total_time": (61.0, "ok"),
    }
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
    expected = {
        "Katib experiment": ("31.50", "katib_experiment"),
        "TFJob": ("16.75", "tfjob"),
        "Model serving": ("6.00", "model_serving"),
        "Total time": ("61.00", "total_time"),
    }
    for label, (ours, key) in expected.items():
        assert rows[label][0] == ours
        assert rows[label][1] == f"{study.loc[key, 'gcp_s']:g}" and rows[label][2] == f"{study.loc[key, 'ibm_s']:g}"
    assert "`train` + `export`" in rows["TFJob"][3]
    assert "smoke" in md  # named as having no study counterpart
    _assert_png(tmp_path / "reports" / "e2e" / "figure23_pipeline_servebench.png")
    report = (tmp_path / "reports" / "e2e" / "report.md").read_text()
    assert "table5.md" in report and "figure23_pipeline_servebench.png" in report and "| smoke |" in report
    assert "status: **complete**" in report  # meta.json's old word "ok", read through ground.runmeta


def test_table4_has_both_metrics_and_the_accuracy(tmp_path: Path) -> None:
    run = _write_run(tmp_path / "c", "custom", CUSTOM_OK, {"status": "ok"})
    write_summary(
        run / "pipeline_summary.csv",
        [
            {
                "pipeline": "custom",
                "metric": "accuracy",
                "value": "0.9625",
                "unit": "fraction",
                "from_stages": "evaluate",
                "status": "ok",
            }
        ],
    )
    render_pipeline_report(run, tmp_path / "out")
    md = (tmp_path / "out" / "table4.md").read_text()
    rows = _table_rows(md)
    study = load_reference(4).set_index("metric")
    assert rows["Total pipeline time"][:3] == [
        "21.00",
        f"{study.loc['total_pipeline_time', 'gcp_s']:g}",
        f"{study.loc['total_pipeline_time', 'ibm_s']:g}",
    ]
    assert rows["Model running time"][:3] == ["15.00", "429", "583"]
    assert "0.9625" in md
    _assert_png(tmp_path / "out" / "figure22_pipeline_custom.png")


def test_a_failed_run_keeps_its_rows_and_marks_the_failure(tmp_path: Path) -> None:
    rows = [("tune", 30.0, "ok"), ("train", 2.0, "failed"), ("total", 40.0, "failed")]
    run = _write_run(
        tmp_path / "bad",
        "servebench",
        rows,
        {"status": "failed", "failed_stage": "train", "error": "Task 'train' finished with status FAILURE"},
    )
    render_pipeline_report(run, tmp_path / "out")
    table = _table_rows((tmp_path / "out" / "table5.md").read_text())
    assert table["Katib experiment"][0] == "30.00"
    assert table["TFJob"][0].startswith("2.00 (**failed**: train")
    assert table["Model serving"][0] == "– (not run)"
    report = (tmp_path / "out" / "report.md").read_text()
    assert (
        "failed stage: train** (Task 'train' finished with status FAILURE)" in report and "status: **failed**" in report
    )
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
    config.write_text(
        (repo_root / "bench.toml").read_text()
        + f'\n[paths]\nresults_dir = "{tmp_path / "results"}"\nreports_dir = "{tmp_path / "reports"}"\n'
    )
    return config


def test_bench_report_renders_a_pipeline_run_and_compare_refuses_it(tmp_path: Path, repo_root: Path, capsys) -> None:
    from bench.cli import main

    config = _cli_config(tmp_path, repo_root)
    _write_run(
        tmp_path / "results" / "pl-1", "custom", CUSTOM_OK, {"status": "ok", "started_at": 1.0e9, "complete": True}
    )
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


# --- several runs side by side (models/pipeline/combined.py, `bench report A B`) ---------------------------

E2E_REMOTE = [
    ("tune", 310.0, "ok"),
    ("train", 140.0, "ok"),
    ("export", 12.0, "ok"),
    ("serve", 55.0, "ok"),
    ("smoke", 20.0, "ok"),
    ("total", 590.0, "ok"),
]
LOCAL_META = {"status": "ok", "runner": "kfp.local.SubprocessRunner(use_venv=False)"}
# what bench/pipeline/remote_run.py writes (trimmed to the keys the report reads)
REMOTE_META = {
    "status": "ok",
    "mode": "remote",
    "runner": "kfp.Client",
    "target": "kubeflow-gcp",
    "kfp": {"kfp_endpoint": "https://kf.gcp.example.com/pipeline", "kfp_host": "kf.gcp.example.com"},
}
PURPLE = (148, 103, 189)  # matplotlib tab:purple, the second run's bars


def _count_colour(path: Path, rgb: tuple[int, int, int]) -> int:
    import numpy as np

    with Image.open(path) as img:
        pixels = np.asarray(img.convert("RGB"))
    return int((pixels == np.array(rgb, dtype=pixels.dtype)).all(axis=-1).sum())


def test_where_label_tells_local_and_remote_runs_apart() -> None:
    from models.pipeline.report import where_label

    def where(data: dict) -> str:
        return where_label(RunMeta.from_json({"kind": "pipeline", **data}))

    assert where(LOCAL_META) == "local kfp.local"
    assert where(REMOTE_META) == "remote kf.gcp.example.com, target kubeflow-gcp"
    assert where({"mode": "remote", "target": "kubeflow-ibm"}) == "remote, target kubeflow-ibm"
    assert where_label(None) == "unknown (no meta.json)"


def test_ratio_cell_divides_only_complete_times() -> None:
    from models.pipeline.report import ratio_cell

    assert ratio_cell(10.0, "ok", 25.0, "ok") == "2.50"
    assert ratio_cell(10.0, "ok", 2.0, "failed", b_name="`b`") == "– (`b` failed)"
    assert ratio_cell(None, "not run", 2.0, "ok") == "– (A not run)"
    assert ratio_cell(10.0, "ok", 5.0, "incomplete") == "– (B incomplete)"
    assert ratio_cell(0.0, "ok", 5.0, "ok") == "– (A is 0 s)"


def test_two_servebench_runs_side_by_side(tmp_path: Path) -> None:
    from models.pipeline.combined import render_pipeline_comparison

    a = _write_run(tmp_path / "pl-local", "servebench", E2E_OK, LOCAL_META)
    b = _write_run(tmp_path / "pl-gcp", "servebench", E2E_REMOTE, REMOTE_META)
    out = tmp_path / "both"
    paths = render_pipeline_comparison([a, b], out)
    assert sorted(p.name for p in paths) == ["figure23_pipeline_servebench.png", "report.md", "table5.md"]
    md = (out / "table5.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| study row"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "study row",
        "`pl-local`: local kfp.local (s)",
        "`pl-gcp`: remote kf.gcp.example.com, target kubeflow-gcp (s)",
        "`pl-gcp` / `pl-local`",
        "study: Kubeflow on GCP (s)",
        "study: Kubeflow on IBM Cloud (s)",
        "study: IBM / GCP",
        "our stages (definition)",
    ]
    rows = _table_rows(md)
    study = load_reference(5).set_index("step")
    expected = {
        "Katib experiment": ("31.50", "310.00", 310.0 / 31.5, "katib_experiment"),
        "TFJob": ("16.75", "152.00", 152.0 / 16.75, "tfjob"),
        "Model serving": ("6.00", "55.00", 55.0 / 6.0, "model_serving"),
        "Total time": ("61.00", "590.00", 590.0 / 61.0, "total_time"),
    }
    for label, (ours_a, ours_b, ratio, key) in expected.items():
        gcp, ibm = study.loc[key, "gcp_s"], study.loc[key, "ibm_s"]
        assert rows[label][:6] == [ours_a, ours_b, f"{ratio:.2f}", f"{gcp:g}", f"{ibm:g}", f"{ibm / gcp:.2f}"]
    report = (out / "report.md").read_text()
    assert (
        "| `pl-gcp` | remote kf.gcp.example.com, target kubeflow-gcp | complete |" in report
    )  # its meta.json says "ok"
    assert "| smoke | 3.00 | 20.00 | 6.67 |" in report  # stages without a study row are compared too
    # the figure: valid, and the second run's bars are drawn (its colour is absent from a single-run figure)
    png = out / "figure23_pipeline_servebench.png"
    _assert_png(png)
    assert _count_colour(png, PURPLE) > 2000
    render_pipeline_report(a, tmp_path / "single")
    assert _count_colour(tmp_path / "single" / "figure23_pipeline_servebench.png", PURPLE) == 0


def test_a_failed_run_is_marked_and_gets_no_ratio(tmp_path: Path) -> None:
    from models.pipeline.combined import render_pipeline_comparison

    a = _write_run(tmp_path / "a", "servebench", E2E_OK, LOCAL_META)
    b = _write_run(
        tmp_path / "b",
        "servebench",
        [("tune", 30.0, "ok"), ("train", 2.0, "failed"), ("total", 40.0, "failed")],
        {"status": "failed", "failed_stage": "train", "error": "Task 'train' finished with status FAILURE"},
    )
    render_pipeline_comparison([a, b], tmp_path / "out")
    md = (tmp_path / "out" / "table5.md").read_text()
    rows = _table_rows(md)
    assert rows["Katib experiment"][:3] == ["31.50", "30.00", "0.95"]
    assert rows["TFJob"][1].startswith("2.00 (**failed**: train") and rows["TFJob"][2] == "– (`b` failed)"
    assert rows["Model serving"][1:3] == ["– (not run)", "– (`b` not run)"]
    assert "**Run `b` failed** (stage train)" in md
    assert "| serve | 6.00 | – (not run) | – (`b` not run) |" in (tmp_path / "out" / "report.md").read_text()
    _assert_png(tmp_path / "out" / "figure23_pipeline_servebench.png")


def test_two_custom_runs_compare_in_table4(tmp_path: Path) -> None:
    from models.pipeline.combined import render_pipeline_comparison

    a = _write_run(tmp_path / "c1", "custom", CUSTOM_OK, LOCAL_META)
    b = _write_run(
        tmp_path / "c2",
        "custom",
        [("load_data", 2.0, "ok"), ("train", 12.0, "ok"), ("evaluate", 6.0, "ok"), ("total", 31.5, "ok")],
        LOCAL_META,
    )
    write_summary(
        b / "pipeline_summary.csv",
        [
            {
                "pipeline": "custom",
                "metric": "accuracy",
                "value": "0.95",
                "unit": "fraction",
                "from_stages": "evaluate",
                "status": "ok",
            }
        ],
    )
    render_pipeline_comparison([a, b], tmp_path / "out")
    md = (tmp_path / "out" / "table4.md").read_text()
    rows = _table_rows(md)
    assert rows["Total pipeline time"][:6] == ["21.00", "31.50", "1.50", "745", "908", f"{908 / 745:.2f}"]
    assert rows["Model running time"][:3] == ["15.00", "18.00", "1.20"]
    assert "`c2` 0.9500" in md
    _assert_png(tmp_path / "out" / "figure22_pipeline_custom.png")


def test_mixed_pipelines_are_refused_by_name(tmp_path: Path) -> None:
    from models.pipeline.combined import MixedPipelinesError, render_pipeline_comparison

    a = _write_run(tmp_path / "e2e", "servebench", E2E_OK, LOCAL_META)
    b = _write_run(tmp_path / "cust", "custom", CUSTOM_OK, LOCAL_META)
    with pytest.raises(MixedPipelinesError, match=r"e2e \(servebench\), cust \(custom\)"):
        render_pipeline_comparison([a, b], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    odd = _write_run(tmp_path / "odd1", "mine", [("total", 1.0, "ok")])
    odd2 = _write_run(tmp_path / "odd2", "mine", [("total", 2.0, "ok")])
    with pytest.raises(ValueError, match="no study table"):
        render_pipeline_comparison([odd, odd2], tmp_path / "out")
    with pytest.raises(ValueError, match="2 to 6 runs"):
        render_pipeline_comparison([a], tmp_path / "out")


def test_combined_folder_name_is_validated() -> None:
    from models.pipeline.combined import combined_dir_name

    assert combined_dir_name(["pl-gcp", "pl-ibm"]) == "pl-gcp--vs--pl-ibm"
    for bad in (["pl-gcp", "../etc"], ["pl gcp", "b"], ["a", ".hidden"]):
        with pytest.raises(ValueError, match="cannot name a report folder"):
            combined_dir_name(bad)
    with pytest.raises(ValueError, match="given more than once"):
        combined_dir_name(["a", "b", "a"])
    with pytest.raises(ValueError, match="2 to 6 runs"):
        combined_dir_name(["a"])
    with pytest.raises(ValueError, match="2 to 6 runs"):
        combined_dir_name([f"r{i}" for i in range(7)])
    long_ids = ["a" * 100, "b" * 100]
    name = combined_dir_name(long_ids)
    assert len(name) <= 150 and name.startswith("a" * 80 + "--vs--1-more-")
    assert name != combined_dir_name(["a" * 100, "c" * 100])  # still one folder per list of runs


def test_bench_report_with_two_runs_writes_the_combined_report(tmp_path: Path, repo_root: Path, capsys) -> None:
    from bench.cli import main

    config = _cli_config(tmp_path, repo_root)
    _write_run(tmp_path / "results" / "pl-local", "servebench", E2E_OK, {**LOCAL_META, "started_at": 1.0e9})
    _write_run(tmp_path / "results" / "pl-gcp", "servebench", E2E_REMOTE, {**REMOTE_META, "started_at": 1.1e9})
    assert main(["--config", str(config), "report", "pl-local", "pl-gcp"]) == 0
    reports = tmp_path / "reports"
    for single in ("pl-local", "pl-gcp"):
        assert (reports / single / "table5.md").is_file()
    combined = reports / "pl-local--vs--pl-gcp"
    rows = _table_rows((combined / "table5.md").read_text())
    assert rows["Total time"][:3] == ["61.00", "590.00", f"{590 / 61:.2f}"]
    _assert_png(combined / "figure23_pipeline_servebench.png")
    assert str(combined / "report.md") in capsys.readouterr().out


def test_bench_report_refuses_mixed_pipelines_but_writes_each_report(tmp_path: Path, repo_root: Path, capsys) -> None:
    from bench.cli import main

    config = _cli_config(tmp_path, repo_root)
    _write_run(tmp_path / "results" / "pl-e2e", "servebench", E2E_OK, LOCAL_META)
    _write_run(tmp_path / "results" / "pl-cust", "custom", CUSTOM_OK, LOCAL_META)
    assert main(["--config", str(config), "report", "pl-e2e", "pl-cust"]) == 2
    err = capsys.readouterr().err
    assert "pl-e2e (servebench)" in err and "pl-cust (custom)" in err
    assert (tmp_path / "reports" / "pl-e2e" / "table5.md").is_file()
    assert (tmp_path / "reports" / "pl-cust" / "table4.md").is_file()
    assert not (tmp_path / "reports" / "pl-e2e--vs--pl-cust").exists()
    # the same run twice: its report, then a clear refusal to compare it with itself
    assert main(["--config", str(config), "report", "pl-e2e", "pl-e2e"]) == 2
    assert "given more than once" in capsys.readouterr().err
