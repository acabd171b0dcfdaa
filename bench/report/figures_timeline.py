"""The timeline figures of one target: rates, p50/p99 and errors over the run's clock; the latency scatter.

Why these panels on one shared time axis: a slow start, a drift, a stall or a burst of
errors is a pattern in time that the per-step aggregates hide, and reading it needs the
three together -- did latency rise *because* the achieved rate fell behind the offered one,
did errors come with it? (Locust's and k6's charts; vegeta's ``plot`` for the scatter.)

Drawing rules: the x axis is time since the target's first step started (its UTC time
in the axis label), in s, min or h by the span; step starts are dotted vertical lines;
an outage (:class:`bench.report.timeline_stats.Outage`) is a red band across every panel,
labelled with its length. A percentile is drawn only in windows whose count gives its
bounds (:func:`bench.report.timeline_hist.min_count_for`), and the panel says so when that
leaves it without a line. Rendering only: every number comes from the timeline.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from bench.report.drift import BATCHES_PER_QUARTER, N_BATCHES
from bench.report.plotting import log_value_axis, target_colors
from bench.report.timeline_hist import hist_quantiles, min_count_for
from bench.report.timeline_stats import Outage, TargetTimeline

__all__ = ["GID_OUTAGE", "fig_scatter", "fig_timeline", "time_unit"]

GID_OUTAGE = "outage"
_ERROR_COLORS = {
    "refused": "tab:red",
    "reset": "tab:orange",
    "timeout": "tab:purple",
    "http_5xx": "tab:brown",
    "http_4xx": "tab:pink",
}
_MAX_STEP_LABELS = 8


def time_unit(span_s: float) -> tuple[float, str]:
    """(seconds per unit, unit name) for an axis spanning ``span_s``: s up to 5 min, min up to 5 h, then h."""
    if span_s <= 300:
        return 1.0, "s"
    if span_s <= 5 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _shade_outages(axes: list[Any], tl: TargetTimeline, unit: float, *, label_on: Any) -> None:
    for outage in tl.outages:
        x0, x1 = (outage.start - tl.t0) / unit, (outage.end - tl.t0) / unit
        for ax in axes:
            ax.axvspan(x0, x1, color="red", alpha=0.15, linewidth=0, gid=GID_OUTAGE, zorder=0)
        label_on.annotate(
            f"outage {outage.length_s:.1f} s",
            xy=((x0 + x1) / 2, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, -10),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize=8,
            color="darkred",
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "darkred", "alpha": 0.85},
            zorder=7,
        )


def _mark_steps(axes: list[Any], tl: TargetTimeline, unit: float) -> None:
    label = len(tl.steps) <= _MAX_STEP_LABELS
    for i, step in enumerate(tl.steps):
        x = (step.started_at - tl.t0) / unit
        if i:
            for ax in axes:
                ax.axvline(x, color="0.45", linestyle=":", linewidth=1, zorder=1)
        if label and len(tl.steps) > 1:
            axes[0].annotate(
                step.label,
                xy=(x, 0.97),
                xycoords=("data", "axes fraction"),
                xytext=(3, 0),
                textcoords="offset points",
                fontsize=7,
                color="0.3",
                rotation=90,
                va="top",
            )


def _mark_quarters(ax: Any, tl: TargetTimeline, unit: float) -> None:
    """The first and last quarters the drift test compares, as brackets under the latency panel."""
    for step in tl.steps:
        batches = tl.drift.get(step.key)
        if batches is None:
            continue
        quarter = batches.batch_s * BATCHES_PER_QUARTER
        if quarter < 0.04 * tl.span_s:  # too narrow to read among the other steps' brackets
            continue
        begin = step.started_at - tl.t0 + batches.warmup_s
        end = begin + batches.batch_s * N_BATCHES
        for x0, name in ((begin, "Q1"), (end - quarter, "Q4")):
            ax.annotate(
                "",
                xy=(x0 / unit, 0.02),
                xytext=((x0 + quarter) / unit, 0.02),
                xycoords=("data", "axes fraction"),
                arrowprops={"arrowstyle": "|-|", "color": "0.35", "linewidth": 1, "shrinkA": 0, "shrinkB": 0},
            )
            ax.annotate(
                name,
                xy=((x0 + quarter / 2) / unit, 0.04),
                xycoords=("data", "axes fraction"),
                ha="center",
                va="bottom",
                fontsize=7,
                color="0.3",
            )


def fig_timeline(tl: TargetTimeline, color: Any = None, slo: tuple[float, float] | None = None) -> Figure:
    """Three panels over the target's clock: req/s offered and achieved; p50/p99 (ms, log);
    errors/s by class. ``slo``: (quantile in (0, 1), bound in s) drawn as a dashed line."""
    color = color if color is not None else target_colors([tl.target])[tl.target]
    unit, unit_name = time_unit(tl.span_s)
    x = (tl.starts + tl.window_s / 2) / unit
    fig = Figure(figsize=(10, 8.2 if tl.errors else 6.2))
    rows = 3 if tl.errors else 2  # no failed request: no empty errors panel (the title says so)
    axes = list(fig.subplots(rows, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1.2, 0.8][:rows]}))
    rate_ax, lat_ax = axes[0], axes[1]

    rate_ax.step(x, tl.per_second(tl.offered), where="mid", color="0.7", linewidth=3, label="offered (sends/s)")
    rate_ax.step(x, tl.per_second(tl.achieved), where="mid", color=color, linewidth=1.4, label="achieved (answers/s)")
    rate_ax.set_ylabel("req/s")
    rate_ax.set_ylim(bottom=0)
    rate_ax.legend(loc="lower right", fontsize=8)

    for q, style in ((0.5, "-"), (0.99, "--")):
        values = hist_quantiles(tl.hist, q, min_count_for(q)) * 1000
        if np.isfinite(values).any():
            lat_ax.plot(x, values, linestyle=style, marker=".", markersize=3, color=color, label=f"p{q * 100:g}")
    if slo is not None:
        lat_ax.axhline(slo[1] * 1000, color="red", linestyle="-.", linewidth=1, label=f"SLO p{slo[0] * 100:g}")
    if lat_ax.lines:
        log_value_axis(lat_ax, "y")
        low, high = lat_ax.get_ylim()
        lat_ax.set_ylim(low / 1.6, high * 2.2)  # room: the notes and legend on top, the drift brackets below
        lat_ax.legend(loc="upper right", fontsize=8, ncol=3)
    notes = [
        f"p{q * 100:g} only in windows with >= {min_count_for(q)} successes"
        + ("" if np.isfinite(hist_quantiles(tl.hist, q, min_count_for(q))).any() else " (none here)")
        for q in (0.5, 0.99)
        if not np.isfinite(hist_quantiles(tl.hist, q, min_count_for(q))).all()
    ]
    if any(b.batch_s * BATCHES_PER_QUARTER >= 0.04 * tl.span_s for b in tl.drift.values()):
        notes.append("Q1/Q4: the quarters the drift test compares")
    if notes:
        lat_ax.text(
            0.01,
            0.97,
            "\n".join(notes),  # one per line: one long line ran under the legend
            transform=lat_ax.transAxes,
            fontsize=7,
            va="top",
            color="0.3",
            bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8},
        )
    lat_ax.set_ylabel("latency (ms)")

    if tl.errors:
        err_ax = axes[2]
        for cls, counts in sorted(tl.errors.items(), key=lambda kv: -kv[1].sum()):
            err_ax.step(x, tl.per_second(counts), where="mid", color=_ERROR_COLORS.get(cls, "0.3"), label=cls)
        err_ax.legend(loc="upper right", fontsize=8, ncol=3)
        err_ax.set_ylim(bottom=0)
        err_ax.set_ylabel("errors/s")
    axes[-1].set_xlabel(f"time since {_utc(tl.t0)} ({unit_name}); windows of {tl.window_s:g} s")
    axes[-1].set_xlim(0, tl.span_s / unit)

    _mark_steps(axes, tl, unit)
    _mark_quarters(lat_ax, tl, unit)
    _shade_outages(axes, tl, unit, label_on=rate_ax)
    failed = sum(int(c.sum()) for c in tl.errors.values())
    what = f"{failed:,} failed" if failed else "none failed"
    fig.suptitle(f"{tl.target}: the run over time ({tl.records:,} requests, {what})")
    fig.tight_layout()
    return fig


def fig_scatter(tl: TargetTimeline, color: Any = None) -> Figure:
    """Every request's latency against its send time (vegeta's plot); failures as red crosses."""
    if tl.scatter is None:
        raise ValueError(f"{tl.target}: no per-request points kept (more than the scatter's limit)")
    color = color if color is not None else target_colors([tl.target])[tl.target]
    send, latency, ok = tl.scatter
    unit, unit_name = time_unit(tl.span_s)
    fig = Figure(figsize=(10, 4.2))
    ax = fig.subplots()
    size = 1.5 if send.size > 20_000 else 2.5
    ax.plot(
        send[ok] / unit,
        latency[ok] * 1000,
        "o",
        color=color,
        markersize=size,
        markeredgewidth=0,
        alpha=0.5,
        rasterized=True,
    )
    ax.plot([], [], "o", color=color, markersize=3, label=f"answered ({int(ok.sum()):,})")
    bad = ~ok & np.isfinite(latency) & (latency > 0)
    if bad.any():
        ax.plot(send[bad] / unit, latency[bad] * 1000, "x", color="red", markersize=3, rasterized=True)
    if (~ok).any():
        ax.plot([], [], "x", color="red", label=f"failed ({int((~ok).sum()):,})")
    if ok.any() or bad.any():
        log_value_axis(ax, "y")
    _mark_steps([ax], tl, unit)
    _shade_outages([ax], tl, unit, label_on=ax)
    ax.set_xlim(0, tl.span_s / unit)
    ax.set_ylabel("latency (ms)")
    ax.set_xlabel(f"send time since {_utc(tl.t0)} ({unit_name})")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"{tl.target}: latency of every request against its send time")
    fig.tight_layout()
    return fig


def outage_sentence(outage: Outage, t0: float) -> str:
    """One line of the report for one outage."""
    classes = ", ".join(outage.classes)
    tail = " (the step ended inside it)" if outage.until_step_end else ""
    return (
        f"{outage.target}: no answer from {_utc(outage.start)} (+{outage.start - t0:.1f} s) for "
        f"{outage.length_s:.1f} s: {outage.requests:,} requests failed ({classes}){tail}."
    )
