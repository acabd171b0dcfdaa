"""`bench report` from synthetic CSVs: every file, deterministic tables, self-contained HTML."""

from __future__ import annotations

import re
import shutil

import pytest

from bench.config import parse_config
from bench.console import Console
from bench.report.tables import ceiling_for, flag_near_ceiling, step_means, table3
from bench.report.write import report
from bench.results import load_run
from ground.reference import STUDY_COLUMNS, load_reference, study_table3
from tests.support.synthetic_runs import write_synthetic_run

CEILING = {"engine": "fast", "rps_by_concurrency": {"1": 2000.0, "64": 40000.0}}


def _config(tmp_path):
    return parse_config('[paths]\nresults_dir = "results"\nreports_dir = "reports"\n', tmp_path)


def test_reference_tables_transcribed():
    t3 = load_reference(3)
    assert list(t3["n_requests"]) == [1, 4, 8, 16, 32, 64, 100, 128, 256, 512]
    assert set(t3.columns) - {"n_requests"} == set(STUDY_COLUMNS)
    assert t3.set_index("n_requests").loc[512, "greene-linserv"] == pytest.approx(178.9776)
    assert t3.set_index("n_requests").loc[1, "kubeflow-ibm"] == pytest.approx(0.0603)
    long = study_table3()
    assert len(long) == 40 and set(long.columns) == {"target", "n_requests", "total_s"}
    t2 = load_reference(2)
    row = t2[(t2["max_tries"] == 5) & (t2["algorithm"] == "random")].iloc[0]
    assert row["as_written"] == "6:25:00" and row["seconds"] == 385 and row["seconds_if_h_mm_ss"] == 23100
    for n in (1, 4, 5):
        assert not load_reference(n).empty


def test_table3_layout_and_means(tmp_path):
    run = load_run(write_synthetic_run(tmp_path, "r", ns=(1, 4, 8), trials=2))
    wide = table3(run.summary, "sequential", run.targets)
    assert list(wide.index) == [1, 4, 8] and list(wide.columns) == run.targets
    part = run.summary[
        (run.summary["mode"] == "sequential") & (run.summary["target"] == "k8s-ibm") & (run.summary["n_requests"] == 4)
    ]
    assert wide.loc[4, "k8s-ibm"] == pytest.approx(part["total_s"].mean())


def test_ceiling_flags():
    assert ceiling_for(1, CEILING) == 2000.0 and ceiling_for(100, CEILING) == 40000.0
    assert ceiling_for(8, CEILING) == pytest.approx(2000.0 * 20**0.5)  # halfway in log-log
    assert ceiling_for(0, CEILING) == 2000.0
    assert ceiling_for(1, None) is None
    means = step_means(load_run_frame())
    flags = flag_near_ceiling(means, {"engine": "x", "rps_by_concurrency": {"1": 1.0}})
    assert flags.all()  # every synthetic step exceeds 50 % of a 1 req/s "ceiling"
    assert not flag_near_ceiling(means, CEILING).any()


def load_run_frame():
    """A hand-made summary with few columns, read the way every summary is (bench.results.parse)."""
    from bench.results.parse import StepSummary, summary_frame

    rows = [
        {
            "target": "a",
            "mode": "sequential",
            "n_requests": n,
            "trial": 0,
            "total_s": t,
            "throughput_rps": 100.0,
            "concurrency": 1,
        }
        for n, t in ((1, 0.01), (4, 0.04))
    ]
    return summary_frame(map(StepSummary.from_row, rows))


def test_report_writes_every_file_and_regenerates_identically(tmp_path):
    config = _config(tmp_path)
    write_synthetic_run(config.results_dir, "r1", ns=(1, 4, 8), trials=2, ceiling=CEILING)
    assert report(config, runs=["r1"], study_overlay=True, console=Console(quiet=True)) == 0
    out = config.reports_dir / "r1"
    stems = ("fig21_total_time", "latency_percentiles", "throughput", "latency_cdf", "errors_accuracy")
    for stem in stems:
        for ext in ("png", "svg"):
            path = out / "figures" / f"{stem}.{ext}"
            assert path.is_file() and path.stat().st_size > 1000, path
    table3_text = (out / "table3.md").read_text()
    assert "| No of Req | greene-linserv | k8s-ibm | kubeflow-gcp | kubeflow-ibm |" in table3_text
    assert "## mode: sequential" in table3_text and "## mode: concurrent" in table3_text
    assert table3_text.index("mode: sequential") < table3_text.index("mode: concurrent")
    md = (out / "report.md").read_text()
    assert "beside the study's Table 3" in md and "figures/fig21_total_time.png" in md
    assert "fast engine: c=1: 2,000 req/s" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(stems)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "<link" not in html and "<script" not in html

    first = {p.name: p.read_bytes() for p in (out / "table3.md", out / "report.md", out / "report.html")}
    shutil.rmtree(out)
    assert report(config, runs=[], study_overlay=True, console=Console(quiet=True)) == 0  # latest run
    second = {p.name: p.read_bytes() for p in (out / "table3.md", out / "report.md", out / "report.html")}
    assert first["table3.md"] == second["table3.md"]
    assert first["report.md"] == second["report.md"]
    assert first["report.html"] == second["report.html"]


def test_report_without_overlay_and_incomplete_run(tmp_path):
    config = _config(tmp_path)
    write_synthetic_run(config.results_dir, "cut", ns=(1, 4), trials=1, complete=False, targets={"mine": 0.01})
    assert report(config, runs=["cut"], study_overlay=False, console=Console(quiet=True)) == 0
    md = (config.reports_dir / "cut" / "report.md").read_text()
    assert "INCOMPLETE RUN" in md and "study" not in md.split("## Figures")[0].lower().replace(
        "study's table 3 layout", ""
    )
    assert "not measured" in md  # no calibration recorded


def test_report_errors_are_clear(tmp_path):
    config = _config(tmp_path)
    assert report(config, runs=[], study_overlay=True, console=Console(quiet=True)) == 2
    assert report(config, runs=["missing"], study_overlay=True, console=Console(quiet=True)) == 2
