"""The open-loop (``rate`` mode) figure: latency and achieved throughput against offered rate.

Why not "total time vs N" as for the closed-loop modes: in an open loop the total time is
set by the schedule (N / rate), so it says nothing about the target. What an open loop
measures is how latency grows as the offered rate rises, and whether the target keeps up
(achieved = offered) or falls behind (achieved < offered, a queue builds: ``saturated``).

At each offered rate a target is represented by its step with the most requests (the
longest, steadiest measurement at that rate); the other steps are in the report's tables.
Offered and achieved rates come from the summary's ``offered_rps`` / ``achieved_rps``;
runs written before those columns existed fall back to ``rate`` and ``throughput_rps``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench.report.bounds import percentile_points
from bench.report.plotting import (
    axes_row,
    bound_handles,
    finish_legend,
    log_value_axis,
    plain_log_axes,
    plot_bounds,
    plot_steps,
    target_colors,
)

__all__ = ["fig_rate", "rate_points"]


def rate_points(means: pd.DataFrame) -> pd.DataFrame:
    """Rate-mode step means with ``offered_`` and ``achieved_`` columns, one row per
    (target, offered rate): the step with the largest N at that rate."""
    part = means[means["mode"] == "rate"].copy()
    if part.empty:
        return part.assign(offered_=[], achieved_=[])
    # Runs from before the open-loop columns (schema 1) have no measured offered or achieved
    # rate: the nominal rate and the throughput stand in for them.
    part["offered_"] = part["offered_rps"].fillna(part["rate"])
    part["achieved_"] = part["achieved_rps"].fillna(part["throughput_rps"])
    part = part[part["offered_"].notna() & (part["offered_"] > 0)]
    largest = part.sort_values("n_requests").groupby(["target", "offered_"], sort=True).tail(1)
    return largest.sort_values(["target", "offered_"]).reset_index(drop=True)


def fig_rate(means: pd.DataFrame, targets: Sequence[str], recorded: bool = True) -> Figure:
    """Left: latency p50 (solid) and p99 (dashed) vs offered rate, each with its 95 % bounds
    as bars (a hollow triangle where only a lower bound exists, see
    :mod:`bench.report.bounds`); right: achieved vs offered throughput with the line
    achieved = offered."""
    points = rate_points(means)
    colors = target_colors(targets)
    fig, (ax_lat, ax_tp) = axes_row(2, height=5.2)
    lat_drawn: set[str] = set()
    tp_drawn: set[str] = set()
    for t in targets:
        part = points[points["target"] == t]
        if part.empty:
            continue
        for suffix, style in (("p50", {}), ("p99", {"linestyle": "--", "marker": "s", "markersize": 5})):
            col = f"lat_{suffix}_s"
            bounded = percentile_points(part, suffix, recorded)
            shown = part.assign(**{col: bounded["value_"].to_numpy()})
            if suffix != "p50":  # steps with no answers are marked once, on p50
                if not (shown[col].notna().any() or bounded["lower_only_"].notna().any()):
                    continue
                shown = shown.assign(flag_all_failed=False)
            # a line with no two-sided point stays out of the legend ("_" label): only its
            # lower-bound triangles are drawn, and they have their own entry
            label = f"{t} {suffix}" if shown[col].notna().any() else f"_{t} {suffix}"
            lat_drawn |= plot_steps(ax_lat, shown, "offered_", col, scale=1000, color=colors[t], label=label, **style)
            lat_drawn |= plot_bounds(ax_lat, part["offered_"], bounded, color=colors[t], name=suffix, scale=1000)
        tp_drawn |= plot_steps(ax_tp, part, "offered_", "achieved_", color=colors[t], label=t)
    rates = sorted(set(points["offered_"]))
    for ax in (ax_lat, ax_tp):
        plain_log_axes(ax, rates, y_log=False)
        if len(rates) == 1:
            ax.set_xlim(rates[0] / 2, rates[0] * 2)
        ax.set_xlabel("offered rate (requests/s)")
    if ax_lat.lines and (
        np.isfinite(points["lat_p50_s"].to_numpy(float)).any() or np.isfinite(points["lat_p99_s"].to_numpy(float)).any()
    ):
        log_value_axis(ax_lat, "y")
    ax_lat.set_ylabel("latency (ms, from the scheduled send)")
    ax_lat.set_title("open loop: latency vs offered rate")
    if rates:
        top = max(
            max(rates),
            float(np.nanmax(points["achieved_"].to_numpy(float))) if points["achieved_"].notna().any() else 0,
        )
        low = min(
            min(rates),
            float(np.nanmin(points["achieved_"].to_numpy(float))) if points["achieved_"].notna().any() else top,
        )
        span = np.array([max(low / 2, 1e-3), top * 2])
        ax_tp.plot(span, span, color="grey", linestyle=":", label="achieved = offered")
        ax_tp.set_xlim(*span)
        ax_tp.set_ylim(*span)
        log_value_axis(ax_tp, "y")
        ax_tp.set_xscale("log")
        plain_log_axes(ax_tp, rates, y_log=False)
    ax_tp.set_ylabel("achieved (successful requests/s)")
    ax_tp.set_title("open loop: achieved vs offered throughput")
    largest = points.groupby("target")["n_requests"].max()
    n_text = (
        (
            f"N = {int(largest.iloc[0])}"
            if largest.nunique() == 1
            else ", ".join(f"{t}: N = {int(n)}" for t, n in largest.items())
        )
        if len(largest)
        else ""
    )
    note = "at each offered rate, the step with the most requests" + (f" ({n_text})" if n_text else "")
    if len(rates) == 1:
        note += "; only one offered rate in this run, so no curve"
    fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=8, color="#444")
    finish_legend(ax_lat, lat_drawn, loc="upper left", extra=bound_handles(lat_drawn))
    finish_legend(ax_tp, tp_drawn, loc="upper left")
    fig.tight_layout(rect=(0, 0.035, 1, 1))
    return fig
