"""The client ceiling on the throughput figure (bench/report/ceiling_marks.py): drawn only
where the calibration measured it, never as an interpolation, never flattening the targets."""

from __future__ import annotations

import numpy as np
import pytest

from bench.report.ceiling_marks import (
    GID_CEILING_MEASURED,
    GID_CEILING_OFF_SCALE,
    ceiling_marks,
)
from bench.report.figures import fig_throughput
from bench.report.tables import step_means
from bench.results import load_run
from tests.support.synthetic_runs import write_synthetic_run

MODES = ["sequential", "concurrent"]
NS = (1, 4, 64, 128)


def _means(tmp_path):
    run = load_run(write_synthetic_run(tmp_path, "c", ns=NS, modes=tuple(MODES), trials=1), with_requests=False)
    return step_means(run.summary), run.targets


def _lines(ax, gid):
    return [line for line in ax.lines if line.get_gid() == gid]


def _legend(ax) -> str:
    return "\n".join(t.get_text() for t in ax.get_legend().get_texts())


def test_marks_only_at_calibrated_concurrencies():
    ceiling = {"engine": "fast", "rps_by_concurrency": {"1": 17246.2, "64": 56707.5}}
    marks = ceiling_marks({1: 1, 4: 4, 64: 64, 128: 128}, fastest_target_rps=900.0, ceiling=ceiling)
    assert marks.on_axis == []  # 17,246 > 5 x 900: off scale
    assert marks.off_scale == [(1.0, 17246.2, 1), (64.0, 56707.5, 64)]
    assert marks.unmeasured == [4, 128]  # no estimate between or beyond the calibrated points
    near = ceiling_marks({1: 1, 4: 1}, fastest_target_rps=5000.0, ceiling=ceiling)
    assert near.on_axis == [(1.0, 17246.2, 1), (4.0, 17246.2, 1)] and near.off_scale == []
    assert ceiling_marks({1: 1}, 10.0, None) is None
    assert ceiling_marks({1: 1}, 10.0, {"engine": "x", "rps_by_concurrency": {}}) is None


def test_far_ceiling_goes_to_the_top_edge_and_keeps_the_targets_axis(tmp_path):
    means, targets = _means(tmp_path)
    ceiling = {"engine": "fast", "rps_by_concurrency": {"1": 5.0e6, "64": 9.0e6}}
    fig = fig_throughput(means, targets, MODES, ceiling)
    for ax, mode in zip(fig.axes, MODES, strict=False):
        fastest = means.loc[means["mode"] == mode, "throughput_rps"].max()
        assert ax.get_ylim()[1] < 5.0e6 and ax.get_ylim()[1] < 3 * fastest  # the targets fill the axis
        assert _lines(ax, GID_CEILING_MEASURED) == []
        (edge,) = _lines(ax, GID_CEILING_OFF_SCALE)
        assert edge.get_linestyle() == "None"  # markers, never a line between them
        xs = list(edge.get_xdata())
        assert xs == ([1.0, 4.0, 64.0, 128.0] if mode == "sequential" else [1.0, 64.0])
        assert "far above this axis" in _legend(ax) and "5,000,000 req/s at concurrency 1" in _legend(ax)
    concurrent = fig.axes[1]
    assert "no client ceiling at N = 4, 128" in _legend(concurrent).replace("\n", " ")
    assert not any(line.get_linestyle() == ":" for ax in fig.axes for line in ax.lines)  # the old dotted line


def test_near_ceiling_is_drawn_as_measured_values_only(tmp_path):
    means, targets = _means(tmp_path)
    seq_fastest = means.loc[means["mode"] == "sequential", "throughput_rps"].max()
    conc_fastest = means.loc[means["mode"] == "concurrent", "throughput_rps"].max()
    ceiling = {"engine": "fast", "rps_by_concurrency": {"1": 2.0 * seq_fastest, "64": 2.0 * conc_fastest}}
    fig = fig_throughput(means, targets, MODES, ceiling)
    seq, conc = fig.axes
    (seq_marks,) = _lines(seq, GID_CEILING_MEASURED)
    assert list(seq_marks.get_xdata()) == [1.0, 4.0, 64.0, 128.0]
    assert np.allclose(seq_marks.get_ydata(), 2.0 * seq_fastest)  # c=1 measured, the same for every step
    (conc_marks,) = _lines(conc, GID_CEILING_MEASURED)
    assert list(conc_marks.get_xdata()) == [1.0, 64.0]
    assert list(conc_marks.get_ydata()) == pytest.approx([2.0 * seq_fastest, 2.0 * conc_fastest])
    assert conc_marks.get_linestyle() == "None"
    for ax in fig.axes:
        ys = np.concatenate(
            [
                np.asarray(line.get_ydata(), float)
                for line in ax.lines
                if line.get_gid() is None and line.get_color() == "grey"
            ]
            or [np.array([])]
        )
        assert ys.size == 0  # no interpolated grey line survives


def test_no_calibration_draws_no_ceiling(tmp_path):
    means, targets = _means(tmp_path)
    fig = fig_throughput(means, targets, MODES, None)
    for ax in fig.axes:
        assert not _lines(ax, GID_CEILING_MEASURED) and not _lines(ax, GID_CEILING_OFF_SCALE)
        assert "ceiling" not in _legend(ax)


def test_the_run_engines_ceiling_is_not_drawn_on_a_panel_whose_targets_another_engine_sent(tmp_path):
    """A run of gRPC targets only: fast's ceiling says nothing about them, so it is not drawn."""
    means, targets = _means(tmp_path)
    fast = {"engine": "fast", "rps_by_concurrency": {"1": 17246.2, "64": 56707.5}}
    grpc = {"engine": "grpc", "rps_by_concurrency": {"1": 1700.0, "64": 2500.0}}
    drawn = fig_throughput(means, targets, MODES, fast)
    assert any(_lines(ax, GID_CEILING_OFF_SCALE) for ax in drawn.axes)  # the HTTP run: drawn
    fig = fig_throughput(means, targets, MODES, fast, by_target={t: grpc for t in targets})
    for ax in fig.axes:
        assert not _lines(ax, GID_CEILING_MEASURED) and not _lines(ax, GID_CEILING_OFF_SCALE)
    kept = fig_throughput(means, targets, MODES, fast, by_target={targets[0]: grpc})
    assert any(_lines(ax, GID_CEILING_OFF_SCALE) for ax in kept.axes)  # the other targets: fast's, drawn
