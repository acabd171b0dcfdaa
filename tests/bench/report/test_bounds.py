"""Percentile bounds in the report: table cells, figures, old runs and the console line.

Expected cells and plotted values are recomputed from the run's per-request records with
loadgen.quantile_bounds.quantile_ci, not copied from the summary the code under test reads.
"""

from __future__ import annotations

import html
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from bench.report.bounds import bounds_note, bounds_recorded, percentile_cell, trial_hull, two_sided_from
from bench.report.build import build_report
from bench.report.figures import fig_latency_percentiles
from bench.report.figures_rate import fig_rate, rate_points
from bench.report.plotting import GID_BOUNDS, GID_LOWER_ONLY
from bench.report.tables import step_means, target_summary_table
from bench.results import load_run
from bench.run.display import _step_line
from loadgen.quantile_bounds import quantile_ci, quantile_ci_ranks
from loadgen.stats import BOUND_COLUMNS, summarize
from tests.support.synthetic_runs import make_step, write_flagged_run, write_synthetic_run

NS = (4, 64, 400)
Q = {"p50": 0.5, "p90": 0.9, "p99": 0.99}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = write_synthetic_run(
        tmp_path_factory.mktemp("bounds"), "b", ns=NS, trials=1, modes=("sequential",), targets={"t": 0.01}
    )
    return load_run(path)


def _latencies(run, n: int) -> np.ndarray:
    req = run.requests
    return req.loc[(req["n_requests"] == n) & (req["error"] == ""), "latency_s"].to_numpy(float)


def _expected_cell(latencies: np.ndarray, suffix: str) -> str:
    """The cell by its definition, from the raw latencies."""
    lo, hi = quantile_ci(latencies, Q[suffix])
    value = float(np.percentile(latencies, Q[suffix] * 100))
    if not math.isnan(hi):
        return f"{value * 1000:.2f} ({lo * 1000:.2f}–{hi * 1000:.2f})"
    return f"≥ {lo * 1000:.2f}" if not math.isnan(lo) else "—"


def test_two_sided_from_is_the_first_n_with_both_bounds() -> None:
    for suffix, q in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)):
        n = two_sided_from(suffix)
        assert None in quantile_ci_ranks(n - 1, q) and None not in quantile_ci_ranks(n, q)
    assert (two_sided_from("p50"), two_sided_from("p90"), two_sided_from("p99")) == (6, 36, 368)


def test_table_cells_show_the_bound_or_the_lower_bound_or_a_dash(run) -> None:
    columns, rows = target_summary_table(run.summary, "sequential", ["t"])
    assert [r[1] for r in rows] == [str(n) for n in NS]
    for row, n in zip(rows, NS, strict=True):
        latencies = _latencies(run, n)
        for suffix in ("p50", "p90", "p99"):
            assert row[columns.index(f"{suffix} (ms)")] == _expected_cell(latencies, suffix), (n, suffix)
    by_n = {int(r[1]): r for r in rows}
    p50, p90, p99 = (columns.index(f"{s} (ms)") for s in ("p50", "p90", "p99"))
    assert by_n[4][p50] == "—" and by_n[4][p90].startswith("≥ ") and by_n[4][p99].startswith("≥ ")
    assert "(" in by_n[64][p50] and "(" in by_n[64][p90] and by_n[64][p99].startswith("≥ ")
    assert "(" in by_n[400][p99]  # 400 >= 368 answers: p99 is bounded on both sides
    # never a plain number: every cell is bounded, a lower bound, or a dash
    assert all("(" in row[i] or row[i][0] in "≥—" for row in rows for i in (p50, p90, p99))


def test_trials_combine_as_the_hull_of_their_intervals(tmp_path) -> None:
    run = load_run(write_synthetic_run(tmp_path, "h", ns=(64,), trials=3, modes=("sequential",), targets={"t": 0.01}))
    means = step_means(run.summary).iloc[0]
    trials = run.summary
    for lo, hi in BOUND_COLUMNS.values():
        if trials[hi].notna().all():
            assert means[hi] == trials[hi].max() and means[lo] == trials[lo].min()
        else:
            assert math.isnan(means[hi])
    assert math.isnan(means["lat_p99_hi_s"]) and means["lat_p99_lo_s"] == trials["lat_p99_lo_s"].min()
    # one trial without a side leaves the hull without it
    frame = pd.DataFrame({"k": [1, 1], **{c: [0.1, 0.2] for pair in BOUND_COLUMNS.values() for c in pair}})
    frame.loc[1, "lat_p50_hi_s"] = np.nan
    hull = trial_hull(frame, ["k"]).iloc[0]
    assert math.isnan(hull["lat_p50_hi_s"]) and hull["lat_p50_lo_s"] == 0.1 and hull["lat_p90_hi_s"] == 0.2


def test_runs_before_the_bounds_show_values_only_where_a_bound_would_exist(tmp_path, run) -> None:
    old_dir = tmp_path / "old"
    old_dir.mkdir()
    summary = pd.read_csv(run.path / "summary.csv")
    summary.drop(columns=[c for pair in BOUND_COLUMNS.values() for c in pair]).to_csv(
        old_dir / "summary.csv", index=False
    )
    old = load_run(old_dir / "summary.csv")
    assert not bounds_recorded(old.summary) and bounds_recorded(run.summary)
    columns, rows = target_summary_table(old.summary, "sequential", ["t"])
    by_n = {int(r[1]): r for r in rows}
    p50, p90, p99 = (columns.index(f"{s} (ms)") for s in ("p50", "p90", "p99"))
    value = {n: {s: float(np.percentile(_latencies(run, n), Q[s] * 100)) * 1000 for s in Q} for n in NS}
    assert [by_n[4][i] for i in (p50, p90, p99)] == ["—", "—", "—"]
    assert [by_n[64][i] for i in (p50, p90, p99)] == [f"{value[64]['p50']:.2f}", f"{value[64]['p90']:.2f}", "—"]
    assert by_n[400][p99] == f"{value[400]['p99']:.2f}"
    assert "before percentile bounds were recorded" in bounds_note(False)


def _lines(ax, gid: str) -> list:
    return [line for line in ax.lines if line.get_gid() == gid]


def test_latency_figure_draws_bars_and_lower_bounds_never_a_point(run) -> None:
    fig = fig_latency_percentiles(step_means(run.summary), ["t"], ["sequential"])
    ax = fig.axes[0]
    by_label = {line.get_label(): line for line in ax.lines if line.get_label() in Q}
    finite = {
        s: [x for x, y in zip(line.get_xdata(), line.get_ydata(), strict=False) if not pd.isna(y)]
        for s, line in by_label.items()
    }
    assert finite == {"p50": [64.0, 400.0], "p90": [64.0, 400.0], "p99": [400.0]}
    bars = [c for c in ax.collections if c.get_gid() == GID_BOUNDS]
    segments = [tuple(map(tuple, seg)) for c in bars for seg in c.get_segments()]
    for n in (64, 400):
        for suffix in ("p50", "p90") + (("p99",) if n == 400 else ()):
            lo, hi = quantile_ci(_latencies(run, n), Q[suffix])
            assert ((n, pytest.approx(lo * 1000)), (n, pytest.approx(hi * 1000))) in segments, (n, suffix)
    assert len(segments) == 5
    lower = _lines(ax, GID_LOWER_ONLY)
    marks = sorted((x, y) for line in lower for x, y in zip(line.get_xdata(), line.get_ydata(), strict=False))
    expected = sorted(
        (n, quantile_ci(_latencies(run, n), Q[s])[0] * 1000) for n, s in ((4, "p90"), (4, "p99"), (64, "p99"))
    )
    assert marks == [(x, pytest.approx(y)) for x, y in expected]
    labels = sorted(t.get_text() for t in ax.texts if t.get_gid() == GID_LOWER_ONLY + "-label")
    assert labels == ["p90", "p99", "p99"]
    legend = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert "95 % bounds" in legend and any(t.startswith("lower bound only") for t in legend)
    plt.close(fig)


def test_rate_figure_bounds_p50_and_marks_p99_of_128_answers_as_a_lower_bound(tmp_path) -> None:
    run = load_run(write_flagged_run(tmp_path, ns=(4,), trials=1))
    means = step_means(run.summary)
    fig = fig_rate(means, run.targets)
    ax_lat = fig.axes[0]
    points = rate_points(means)
    n_points = len(points)
    bars = [seg for c in ax_lat.collections if c.get_gid() == GID_BOUNDS for seg in c.get_segments()]
    assert len(bars) == n_points  # every step's p50 of 128 answers has both bounds; p99 has not
    lower = [y for line in _lines(ax_lat, GID_LOWER_ONLY) for y in line.get_ydata()]
    assert sorted(lower) == pytest.approx(sorted(points["lat_p99_lo_s"] * 1000))
    p99 = [line for line in ax_lat.lines if line.get_label().endswith(" p99")]
    assert p99 and all(pd.isna(line.get_ydata()).all() for line in p99)  # never drawn as measured
    legend = [t.get_text() for t in ax_lat.get_legend().get_texts()]
    assert not any(text.endswith(" p99") for text in legend)  # no legend entry for a line never drawn
    assert "95 % bounds" in [t.get_text() for t in ax_lat.get_legend().get_texts()]
    plt.close(fig)


def test_report_markdown_and_html_show_the_same_bounded_cells(tmp_path, run) -> None:
    files = build_report(run, tmp_path / "report")
    md = files.report_md.read_text(encoding="utf-8")
    page = files.report_html.read_text(encoding="utf-8")
    _, rows = target_summary_table(run.summary, "sequential", ["t"])
    cells = [c for r in rows for c in r[4:7]]
    assert any("–" in c for c in cells) and any(c.startswith("≥") for c in cells) and "—" in cells
    for row in rows:
        assert "| " + " | ".join(row) + " |" in md
        first = '<td class="l">'
        assert "".join(f"{first if i == 0 else '<td>'}{html.escape(c)}</td>" for i, c in enumerate(row)) in page
    note = bounds_note(True)
    assert note in md and html.escape(note) in page and "p99 from 368" in note
    assert "p99 at least 100" not in md  # the old fixed rule is gone


def test_console_step_line_never_shows_a_bare_small_step_percentile() -> None:
    rng = np.random.default_rng(4)
    small = summarize(make_step("t", "sequential", 4, 0, 0.01, rng))
    line = _step_line(small)
    assert "p50 n/a (4 answers: too few for a bound)" in line and line.isascii()
    big = summarize(make_step("t", "sequential", 64, 0, 0.01, rng))
    lo, hi = big["lat_p50_lo_s"], big["lat_p50_hi_s"]
    assert f"p50 {big['lat_p50_s'] * 1000:.2f} ({lo * 1000:.2f}-{hi * 1000:.2f}) ms" in _step_line(big)
    assert percentile_cell({"lat_p50_s": math.nan}, "p50") == "-"
