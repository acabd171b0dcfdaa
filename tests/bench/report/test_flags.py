"""Flagged steps in every rendering: console Table 3, table3.md, report.md/html and figures.

Why: a step whose every request was refused finishes in milliseconds; unmarked, it was the
fastest number in Table 3. These tests build a synthetic run with a partly failed step, an
all-failed step (both trials), a step failed in one of two trials and a saturated open-loop
step (tests/synthetic_runs.write_flagged_run) and check that each rendering marks them.
"""

from __future__ import annotations

import io
import re

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from bench.config import parse_config
from bench.console import Console
from bench.report.figures import fig_errors_accuracy, fig_throughput, fig_total_time
from bench.report.figures_rate import fig_rate, rate_points
from bench.report.flags import flag_cell, flag_legend, flag_sentences
from bench.report.plotting import GID_ALL_FAILED, GID_ERRORS, GID_SATURATED
from bench.report.tables import step_means, table3_rows
from bench.report.write import report
from bench.results import load_run
from bench.results.parse import StepSummary, summary_frame
from bench.run.display import print_table3
from tests.support.synthetic_runs import write_flagged_run, write_synthetic_run

TARGETS = ["greene-linserv", "kubeflow-gcp"]


@pytest.fixture(scope="module")
def flagged(tmp_path_factory):
    return load_run(write_flagged_run(tmp_path_factory.mktemp("flagged") / "results"))


def _cell(rows: list[list[str]], columns: list[str], label: str, target: str) -> str:
    row = next(r for r in rows if r[0] == label)
    return row[columns.index(target)]


def _raw_totals(run, target: str, mode: str, n: int) -> list[float]:
    s = run.summary
    return list(s[(s["target"] == target) & (s["mode"] == mode) & (s["n_requests"] == n)]["total_s"])


def test_flag_cell_texts():
    clean = {"flag_errors": False, "flag_all_failed": False, "flag_saturated": False, "failed": 0, "sent": 8}
    assert flag_cell("0.1234", clean) == "0.1234"
    partial = {**clean, "flag_errors": True, "failed": 3, "sent": 512}
    assert flag_cell("4.2100", partial) == "4.2100 ✗3/512"
    dead = {**partial, "flag_all_failed": True, "failed": 100, "sent": 100, "error_classes": {"refused": 100}}
    assert flag_cell("0.0107", dead) == "failed: 100/100 refused"
    mixed = {**dead, "error_classes": {"refused": 60, "reset": 40}}
    assert flag_cell("0.0107", mixed) == "failed: 100/100 refused 60, reset 40"
    assert flag_cell("2.5000", {**clean, "flag_saturated": True}) == "2.5000 ⚠ saturated"
    assert flag_legend(["0.1", "0.2"]) == []  # a legend lists only marks that appear
    assert len(flag_legend(["0.1 ✗1/2", "failed: 2/2 refused", "1.0 ⚠ saturated", "-"])) == 4


def test_step_means_flag_a_cell_when_any_trial_is(flagged):
    means = step_means(flagged.summary).set_index(["target", "mode", "n_requests", "rate"])
    dead = means.loc[("greene-linserv", "concurrent", 8, 0.0)]
    assert dead["flag_all_failed"] and dead["failed"] == dead["sent"] == 16 and pd.isna(dead["total_s"])
    half = means.loc[("kubeflow-gcp", "concurrent", 4, 0.0)]
    assert half["flag_errors"] and not half["flag_all_failed"] and (half["failed"], half["sent"]) == (4, 8)
    clean_trial = flagged.summary[
        (flagged.summary["target"] == "kubeflow-gcp")
        & (flagged.summary["mode"] == "concurrent")
        & (flagged.summary["n_requests"] == 4)
        & (flagged.summary["n_ok"] > 0)
    ]
    assert half["total_s"] == pytest.approx(float(clean_trial["total_s"].iloc[0]))  # the dead trial is not averaged in
    assert means.loc[("greene-linserv", "sequential", 8, 0.0)]["flag_errors"]
    assert means.loc[("greene-linserv", "rate", 128, 40.0)]["flag_saturated"]
    assert not means.loc[("greene-linserv", "rate", 128, 20.0)]["flag_saturated"]
    assert not means.loc[("kubeflow-gcp", "sequential", 8, 0.0)][["flag_errors", "flag_saturated"]].any()


def test_table3_cells_mark_failed_partial_and_saturated(flagged):
    columns, rows = table3_rows(flagged.summary, "concurrent", TARGETS)
    dead = _cell(rows, columns, "8", "greene-linserv")
    assert dead == "failed: 16/16 refused"
    assert not re.search(r"\d\.\d", dead)  # no total at all
    assert _cell(rows, columns, "4", "kubeflow-gcp").endswith(" ✗4/8")
    assert "✗" not in _cell(rows, columns, "8", "kubeflow-gcp")
    columns, rows = table3_rows(flagged.summary, "sequential", TARGETS)
    assert re.fullmatch(r"\d+\.\d{4} ✗2/16", _cell(rows, columns, "8", "greene-linserv"))
    columns, rows = table3_rows(flagged.summary, "rate", TARGETS)
    assert [r[0] for r in rows] == ["128 @ 10 req/s", "128 @ 20 req/s", "128 @ 40 req/s"]
    assert _cell(rows, columns, "128 @ 40 req/s", "greene-linserv").endswith(" ⚠ saturated")
    assert "⚠" not in _cell(rows, columns, "128 @ 40 req/s", "kubeflow-gcp")


def test_console_table3_marks_and_explains(flagged):
    out = io.StringIO()
    console = Console(file=out)
    print_table3(flagged.path, console)
    text = out.getvalue()
    assert "failed: 16/16 refused" in text and "✗2/16" in text and "✗4/8" in text and "⚠ saturated" in text
    for raw in _raw_totals(flagged, "greene-linserv", "concurrent", 8):  # the refused step's own totals
        assert f"{raw:.4f}" not in text
    assert "every request of the step failed" in text  # the legend
    assert "greene-linserv concurrent N=8 (trial 0): all 8 requests failed (refused: 8)" in text
    assert "greene-linserv rate N=128 at 40 req/s (trial 1): saturated" in text


def test_console_falls_back_to_ascii_marks(flagged):
    raw = io.BytesIO()
    wrapper = io.TextIOWrapper(raw, encoding="ascii", errors="strict")
    console = Console(file=wrapper)
    print_table3(flagged.path, console)
    wrapper.flush()
    text = raw.getvalue().decode("ascii")
    assert "failed: 16/16 refused" in text and "x2/16" in text and "! saturated" in text


def test_flag_sentences_name_each_flagged_trial(flagged):
    sentences = flag_sentences(flagged.summary, TARGETS, ["sequential", "concurrent", "rate"])
    assert len(sentences) == 6  # 1 partial + 2 all-failed + 2 saturated (greene) + 1 all-failed (kubeflow)
    assert sentences[0].startswith("`greene-linserv` sequential N=8 (trial 1): 2 of 8 requests failed (refused: 2)")
    assert any("`kubeflow-gcp` concurrent N=4 (trial 0): all 4 requests failed" in s for s in sentences)
    assert any("rate N=128 at 40 req/s" in s and "req/s answered of 40 req/s offered" in s for s in sentences)


def test_table3_md_and_report_md_mark_the_same_steps(tmp_path):
    config = parse_config('[paths]\nresults_dir = "results"\nreports_dir = "reports"\n', tmp_path)
    write_flagged_run(config.results_dir)
    assert report(config, runs=["flagged"], study_overlay=True, console=Console(quiet=True)) == 0
    out = config.reports_dir / "flagged"
    run = load_run(config.results_dir / "flagged")
    table3_md = (out / "table3.md").read_text()
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    for text in (table3_md, md, html):
        assert "failed: 16/16 refused" in text and "✗2/16" in text and "✗4/8" in text and "⚠ saturated" in text
    for raw in _raw_totals(run, "greene-linserv", "concurrent", 8):
        assert f"{raw:.4f}" not in table3_md and f"{raw:.4f}" not in md
    assert "| 8 | failed: 16/16 refused |" in table3_md
    assert "Flagged steps:" in table3_md and "## Flagged steps" in md
    assert md.index("Warnings about this run") < md.index("## Run")
    assert "6 step(s) are flagged" in md
    # the study comparison keeps the mark, and a failed cell has no ratio
    assert re.search(r"\| 8 \| \d+\.\d{4} ✗2/16 / 5\.9860 = \d\.\d{3} \|", md)
    # per-target summary: the failed step has no total, the rate table shows offered and achieved rates
    assert re.search(r"\| greene-linserv \| 8 \| failed: 16/16 refused \| - \|", md)
    assert "| target | offered (req/s) | N | achieved (req/s) |" in md
    assert (out / "figures" / "rate_response.png").is_file()


def test_clean_run_says_so(tmp_path):
    config = parse_config('[paths]\nresults_dir = "results"\nreports_dir = "reports"\n', tmp_path)
    write_synthetic_run(config.results_dir, "clean", ns=(1, 4), trials=1)
    assert report(config, runs=["clean"], study_overlay=False, console=Console(quiet=True)) == 0
    md = (config.reports_dir / "clean" / "report.md").read_text()
    table3_md = (config.reports_dir / "clean" / "table3.md").read_text()
    assert "No cell is flagged" in md and "Flagged steps" not in md
    assert "✗" not in md and "⚠" not in md and "Marks:" not in table3_md
    # a clean run of one trial is still one measurement per cell: its only warning says so
    box = md[md.index("Warnings about this run") : md.index("## Run")]
    assert [line for line in box.splitlines() if line.startswith("> - ")] == [
        next(line for line in box.splitlines() if "**One trial per step**" in line)
    ]


def _lines(ax, gid: str):
    return [line for line in ax.lines if line.get_gid() == gid]


def _legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_figures_mark_flagged_steps(flagged):
    means = step_means(flagged.summary)
    fig = fig_total_time(means, TARGETS, ["sequential", "concurrent"])
    seq, conc = fig.axes[:2]
    hollow = _lines(seq, GID_ERRORS)
    assert len(hollow) == 1 and list(hollow[0].get_xdata()) == [8.0] and hollow[0].get_markerfacecolor() == "none"
    dead = _lines(conc, GID_ALL_FAILED)
    assert len(dead) == 1 and list(dead[0].get_xdata()) == [8.0]
    greene = next(line for line in conc.lines if line.get_label() == "greene-linserv")
    ys = dict(zip(greene.get_xdata(), greene.get_ydata(), strict=False))
    assert pd.isna(ys[8])  # no total drawn for the step where every request failed
    assert any("every request failed" in t for t in _legend_texts(conc))
    assert not any("every request failed" in t for t in _legend_texts(seq))  # only where drawn
    assert [line.get_xdata()[0] for line in _lines(conc, GID_ERRORS)] == [4.0]  # kubeflow, one dead trial of two
    plt.close(fig)

    fig = fig_throughput(means, TARGETS, ["sequential", "concurrent"])
    assert _lines(fig.axes[1], GID_ALL_FAILED) and _lines(fig.axes[0], GID_ERRORS)
    plt.close(fig)

    fig = fig_rate(means, TARGETS)
    lat, tp = fig.axes[:2]
    crossed = _lines(tp, GID_SATURATED)
    assert len(crossed) == 1 and list(crossed[0].get_xdata()) == pytest.approx(
        [40.0], rel=0.05
    )  # realised offered rate
    assert any("saturated" in t for t in _legend_texts(tp))
    plt.close(fig)


def test_clean_figures_have_no_flag_legend(tmp_path):
    run = load_run(write_synthetic_run(tmp_path, "clean", ns=(1, 4, 8), trials=1))
    fig = fig_total_time(step_means(run.summary), run.targets, ["sequential", "concurrent"])
    for ax in fig.axes:
        assert not any(line.get_gid() for line in ax.lines)
        assert not any("failed" in t or "saturated" in t for t in _legend_texts(ax))
    plt.close(fig)


def test_every_n_is_labelled_on_the_x_axis(tmp_path):
    from ground.reference import study_table3

    run = load_run(write_synthetic_run(tmp_path, "ns", ns=(1, 4, 8, 16, 64, 128), trials=1))
    fig = fig_total_time(step_means(run.summary), run.targets, ["sequential"], study=study_table3())
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["1", "4", "8", "16", "32", "64", "100", "128", "256", "512"]
    plt.close(fig)


def test_errors_panel_says_zero_and_accuracy_is_zoomed(tmp_path):
    run = load_run(write_synthetic_run(tmp_path, "acc", ns=(1, 4), trials=1))
    fig = fig_errors_accuracy(run.summary, run.targets, ["sequential", "concurrent"], model_accuracy=0.983)
    ax_err, ax_acc = fig.axes[:2]
    assert any(t.get_text().startswith("0 errors") for t in ax_err.texts) and not ax_err.patches
    low, high = ax_acc.get_ylim()
    assert low > 0.5 and high <= 1.01  # zoomed to the values, not 0..1 bars
    assert not ax_acc.patches
    plt.close(fig)


def test_rate_points_fall_back_to_rate_in_old_runs(flagged):
    old = flagged.summary.drop(columns=["offered_rps", "achieved_rps"])  # as a schema-1 file has them
    old = summary_frame(StepSummary.from_row(row) for row in old.to_dict("records"))
    points = rate_points(step_means(old))
    assert sorted(set(points["offered_"])) == [10.0, 20.0, 40.0]
    assert points["achieved_"].notna().all()


def test_a_step_read_from_its_histogram_says_so_and_stays_a_result(flagged):
    """A step past EXACT_RECORDS is not a fault: no cell mark, but a sentence saying how its percentiles were read."""
    summary = flagged.summary.copy()
    clean = summary.index[summary["flags"].fillna("") == ""][0]
    summary.loc[clean, "flags"] = "histogram"
    sentences = flag_sentences(summary, TARGETS, ["sequential", "concurrent", "rate"])
    assert len(sentences) == 7
    histogram = [s for s in sentences if "histogram:" in s]
    assert len(histogram) == 1 and "each within 0.1%" in histogram[0] and "counts exact" in histogram[0]
    step = summary.loc[clean]
    assert f"N={int(step['n_requests'])}" in histogram[0]
