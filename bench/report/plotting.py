"""Shared drawing rules for the report figures: colours, log axes, and how flagged steps look.

Why shared: every figure must draw a flagged step the same way, so that a reader who has
learnt the marks once can read them everywhere --

- a clean step: a filled marker on its target's line;
- some requests failed: a hollow marker (the value describes only the survivors);
- open loop saturated: a black cross over the marker;
- every request failed: no point at all (there is no value), but an ``X`` in the target's
  colour, edged red, on the bottom edge of the axes at that step's x position, so the gap
  is explained;
- near the client's calibrated ceiling: a red ring.

Markers for flags carry a ``gid`` (``flag-errors``, ``flag-saturated``,
``flag-all-failed``, ``flag-ceiling``) so tests can find them among the artists; legends
list a mark only on the axes where it is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, NullLocator
from matplotlib.transforms import blended_transform_factory

from bench.report.tables import FLAG_FRACTION, flag_near_ceiling

__all__ = [
    "GID_ALL_FAILED",
    "GID_CEILING",
    "GID_ERRORS",
    "GID_SATURATED",
    "GID_BOUNDS",
    "GID_LOWER_ONLY",
    "axes_row",
    "bound_handles",
    "plot_bounds",
    "finish_legend",
    "flag_handles",
    "log_value_axis",
    "plain_log_axes",
    "plot_steps",
    "room_for_failed",
    "target_colors",
]

plt.rcParams.update(
    {
        "svg.hashsalt": "servebench",  # stable SVG ids across regenerations
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "legend.fontsize": 8,
    }
)

GID_ERRORS = "flag-errors"
GID_SATURATED = "flag-saturated"
GID_ALL_FAILED = "flag-all-failed"
GID_CEILING = "flag-ceiling"
_CEILING_STYLE = dict(
    marker="o",
    markersize=12,
    markerfacecolor="none",
    markeredgecolor="red",
    markeredgewidth=1.5,
    linestyle="none",
    zorder=5,
)
_LEGEND_PROXIES = {
    GID_ERRORS: Line2D(
        [],
        [],
        marker="o",
        linestyle="none",
        markerfacecolor="none",
        markeredgecolor="black",
        markeredgewidth=1.5,
        label="hollow: some requests failed (value = survivors only)",
    ),
    GID_SATURATED: Line2D(
        [],
        [],
        marker="x",
        linestyle="none",
        color="black",
        markersize=9,
        markeredgewidth=2,
        label="crossed: open loop saturated (rate not sustained)",
    ),
    GID_ALL_FAILED: Line2D(
        [],
        [],
        marker="X",
        linestyle="none",
        markerfacecolor="white",
        markeredgecolor="red",
        markersize=9,
        markeredgewidth=1.5,
        label="X on the bottom edge: every request failed (no value)",
    ),
    GID_CEILING: Line2D([], [], label=f"ringed: near client ceiling (>= {FLAG_FRACTION:.0%})", **_CEILING_STYLE),
}


def target_colors(targets: Sequence[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10")
    return {t: cmap(i % 10) for i, t in enumerate(targets)}


def axes_row(n: int, width: float = 6.0, height: float = 4.6) -> tuple[Figure, list[Any]]:
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, list(axes[0])


def _flag(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame:
        return np.zeros(len(frame), dtype=bool)
    return frame[column].fillna(False).to_numpy(dtype=bool)


def plot_steps(
    ax: Any,
    frame: pd.DataFrame,
    x: str,
    y: str,
    *,
    color: Any,
    label: str,
    scale: float = 1.0,
    linestyle: str = "-",
    marker: str = "o",
    markersize: float = 6.0,
    ceiling: Mapping[str, Any] | None = None,
) -> set[str]:
    """One target's line of ``y`` (times ``scale``) against ``x`` with flagged steps marked.

    ``frame`` holds step rows with the flag columns of :func:`bench.report.tables.step_means`
    and is sorted along ``x``; ``y`` may be NaN where a step has no value (the line breaks
    there). Returns the flag gids drawn, for :func:`finish_legend`.
    """
    xs = frame[x].to_numpy(dtype=float)
    ys = frame[y].to_numpy(dtype=float) * scale
    all_failed = _flag(frame, "flag_all_failed")
    errors = _flag(frame, "flag_errors") & ~all_failed
    saturated = _flag(frame, "flag_saturated") & ~all_failed
    ys = np.where(all_failed, np.nan, ys)
    has_value = ~np.isnan(ys)
    clean = [int(i) for i in np.flatnonzero(has_value & ~errors)]
    ax.plot(
        xs, ys, linestyle=linestyle, marker=marker, markersize=markersize, markevery=clean, color=color, label=label
    )
    drawn: set[str] = set()
    if (errors & has_value).any():
        sel = errors & has_value
        ax.plot(
            xs[sel],
            ys[sel],
            linestyle="none",
            marker=marker,
            markersize=markersize + 1,
            markerfacecolor="none",
            markeredgecolor=color,
            markeredgewidth=1.6,
            gid=GID_ERRORS,
            zorder=4,
        )
        drawn.add(GID_ERRORS)
    if (saturated & has_value).any():
        sel = saturated & has_value
        ax.plot(
            xs[sel],
            ys[sel],
            linestyle="none",
            marker="x",
            markersize=markersize + 3,
            color="black",
            markeredgewidth=2,
            gid=GID_SATURATED,
            zorder=6,
        )
        drawn.add(GID_SATURATED)
    if all_failed.any():
        bottom = blended_transform_factory(ax.transData, ax.transAxes)
        ax.plot(
            xs[all_failed],
            np.full(int(all_failed.sum()), 0.04),
            linestyle="none",
            marker="X",
            markersize=10,
            markeredgewidth=1.5,
            markerfacecolor=color,
            markeredgecolor="red",
            transform=bottom,
            clip_on=False,
            gid=GID_ALL_FAILED,
            zorder=6,
        )
        drawn.add(GID_ALL_FAILED)
    if ceiling:
        near = flag_near_ceiling(frame, ceiling).to_numpy(dtype=bool) & has_value
        if near.any():
            ax.plot(xs[near], ys[near], gid=GID_CEILING, **_CEILING_STYLE)
            drawn.add(GID_CEILING)
    return drawn


def flag_handles(drawn: set[str]) -> list[Line2D]:
    """Legend entries for the kinds of flag in ``drawn``, in a fixed order."""
    return [_LEGEND_PROXIES[gid] for gid in (GID_ERRORS, GID_SATURATED, GID_ALL_FAILED, GID_CEILING) if gid in drawn]


def finish_legend(
    ax: Any, drawn: set[str], *, below: bool = False, extra: Sequence[Line2D] = (), **kwargs: Any
) -> None:
    """The axes' legend: its labelled artists, ``extra`` entries (e.g. the percentile bound
    marks, the client ceiling's marks, whose artists carry no label), then one entry per
    kind of flag drawn on it.

    ``below``: under the axes (two columns; one when an ``extra`` entry is a long sentence),
    where it cannot hide a data point."""
    handles, labels = ax.get_legend_handles_labels()
    for proxy in [*extra, *flag_handles(drawn)]:
        handles.append(proxy)
        labels.append(proxy.get_label())
    if GID_ALL_FAILED in drawn:
        room_for_failed(ax)
    if below:
        ncol = 1 if any("\n" in h.get_label() or len(h.get_label()) > 60 for h in extra) else 2
        kwargs = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.2), "ncol": ncol, **kwargs}
    if handles:
        ax.legend(handles, labels, **kwargs)


def room_for_failed(ax: Any) -> None:
    """Lower the y axis so the all-failed marks on the bottom edge sit below every data point.

    Call after the axis limits are final (log axes: one extra ~12 % of the span below)."""
    low, high = ax.get_ylim()
    if ax.get_yscale() == "log" and low > 0:
        ax.set_ylim(low / (high / low) ** 0.12, high)
    else:
        ax.set_ylim(low - (high - low) * 0.12, high)


def tick_label(value: float) -> str:
    """A request count as itself (128), a measured rate to a readable precision (99.4, 1017)."""
    if value == int(value):
        return str(int(value))
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def plain_log_axes(ax: Any, xs: Sequence[float], y_log: bool = True) -> None:
    """Log axes labelled with plain numbers: every value in ``xs`` on x, '0.1 / 1 / 10' on y.

    Every request count gets its label; when two are too close to sit side by side (100
    and 128), all labels turn vertical instead of one being dropped.
    """
    ax.set_xscale("log")
    ticks = sorted({float(v) for v in xs if v and v > 0})
    if ticks:
        ax.set_xticks(ticks, [tick_label(t) for t in ticks])
        ax.xaxis.set_minor_locator(NullLocator())
        crowded = any(b / a < 1.45 for a, b in zip(ticks, ticks[1:], strict=False))
        if crowded:
            ax.tick_params(axis="x", labelrotation=90)
        elif len(ticks) > 8:
            ax.tick_params(axis="x", labelrotation=45)
    if y_log:
        log_value_axis(ax, "y")


def log_value_axis(ax: Any, which: str) -> None:
    """A log value axis with plain-number labels at 1-2-5 steps, at least ~a decade tall."""
    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    low, high = ax.get_ylim() if which == "y" else ax.get_xlim()
    if low > 0 and high / low < 5:  # under a decade: widen so that labelled ticks exist
        mid = (low * high) ** 0.5
        (ax.set_ylim if which == "y" else ax.set_xlim)(mid / 2.5, mid * 2.5)
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


# Percentile bounds (bench/report/bounds.py): a bar from lower to upper bound through the
# point; where only a lower bound exists, a hollow upward triangle at it and no point.
GID_BOUNDS = "pctl-bounds"
GID_LOWER_ONLY = "pctl-lower-only"
_LOWER_ONLY_MARKER = "^"


def plot_bounds(
    ax: Any, xs: Sequence[float], points: pd.DataFrame, *, color: Any, name: str, scale: float = 1.0
) -> set[str]:
    """Error bars of the two-sided points and lower-bound marks of ``points``
    (:func:`bench.report.bounds.percentile_points`) at ``xs``; returns the gids drawn.

    A lower-bound mark is labelled with ``name`` (``p99``): it is on no line, so nothing
    else would say which percentile it bounds."""
    x = np.asarray(xs, dtype=float)
    lo, hi = points["lo_"].to_numpy(float) * scale, points["hi_"].to_numpy(float) * scale
    lower = points["lower_only_"].to_numpy(float) * scale
    drawn: set[str] = set()
    bars = ~np.isnan(lo) & ~np.isnan(hi)
    if bars.any():
        ax.vlines(x[bars], lo[bars], hi[bars], colors=[color], linewidth=1.2, alpha=0.75, gid=GID_BOUNDS, zorder=3)
        ax.plot(
            np.concatenate([x[bars], x[bars]]),
            np.concatenate([lo[bars], hi[bars]]),
            linestyle="none",
            marker="_",
            markersize=6,
            color=color,
            alpha=0.75,
            gid=GID_BOUNDS + "-caps",
            zorder=3,
        )
        drawn.add(GID_BOUNDS)
    only = ~np.isnan(lower)
    if only.any():
        ax.plot(
            x[only],
            lower[only],
            linestyle="none",
            marker=_LOWER_ONLY_MARKER,
            markersize=7,
            markerfacecolor="none",
            markeredgecolor=color,
            markeredgewidth=1.3,
            gid=GID_LOWER_ONLY,
            zorder=4,
        )
        for xi, yi in zip(x[only], lower[only], strict=False):
            ax.annotate(
                name,
                (xi, yi),
                textcoords="offset points",
                xytext=(5, -2),
                fontsize=6,
                color=color,
                gid=GID_LOWER_ONLY + "-label",
            )
        drawn.add(GID_LOWER_ONLY)
    return drawn


def bound_handles(drawn: set[str]) -> list[Line2D]:
    """Legend entries for the bound marks in ``drawn``."""
    handles = []
    if GID_BOUNDS in drawn:
        handles.append(
            Line2D(
                [],
                [],
                color="black",
                marker="|",
                markersize=10,
                markeredgewidth=1.2,
                linestyle="none",
                label="95 % bounds",
            )
        )
    if GID_LOWER_ONLY in drawn:
        handles.append(
            Line2D(
                [],
                [],
                color="black",
                marker=_LOWER_ONLY_MARKER,
                markerfacecolor="none",
                linestyle="none",
                label="lower bound only (too few answers for an upper one)",
            )
        )
    return handles
