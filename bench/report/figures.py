"""Report figures of the closed-loop modes (matplotlib, Agg): Figure-21-style total time,
latency percentiles, throughput, latency CDF, errors and accuracy.

Why these choices: request counts span 1..512 and times span milliseconds to minutes, so
time-vs-N plots are log-log (a straight line of slope 1 = constant cost per request), with
every N labelled. Each target keeps one colour in every figure; the study's numbers are
dashed and labelled "study". Flagged steps are drawn by :mod:`bench.report.plotting`'s
rules (hollow = some requests failed, an X on the bottom edge = all failed, ringed =
near the client's ceiling). A percentile is drawn as a point with its 95 % bounds as a bar
where both bounds exist, as a hollow upward triangle at its lower bound where only that
exists (never as a point that looks measured), and not at all where neither exists
(:mod:`bench.report.bounds`).
Open-loop (``rate``) steps are plotted against their offered rate in
:mod:`bench.report.figures_rate`, not against N.

Figures are built from DataFrames only (no I/O here); :func:`ground.figures.save_figure`
writes them as PNG and SVG (:data:`REPORT_FORMATS`) with fixed metadata so that
regeneration is reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from bench.report.bounds import percentile_points
from bench.report.ceiling_marks import ceiling_marks, draw_ceiling
from bench.report.flags import merge_error_classes
from bench.report.plotting import (
    GID_ALL_FAILED,
    axes_row,
    bound_handles,
    finish_legend,
    flag_handles,
    log_value_axis,
    plain_log_axes,
    plot_bounds,
    plot_steps,
    plt,
    room_for_failed,
    target_colors,
)
from bench.results.digest import PooledKey, StepLatencies

__all__ = [
    "REPORT_FORMATS",
    "fig_errors_accuracy",
    "fig_latency_cdf",
    "fig_latency_percentiles",
    "fig_throughput",
    "fig_total_time",
    "target_colors",
]

#: Every report figure is written in both: PNG for viewers, SVG for the HTML report.
REPORT_FORMATS: tuple[str, ...] = ("png", "svg")


def _part(means: pd.DataFrame, target: str, mode: str) -> pd.DataFrame:
    return means[(means["target"] == target) & (means["mode"] == mode)].sort_values("n_requests")


def fig_total_time(
    means: pd.DataFrame,
    targets: Sequence[str],
    modes: Sequence[str],
    study: pd.DataFrame | None = None,
    study_mode: str = "sequential",
    ceiling: Mapping[str, Any] | None = None,
    *,
    by_target: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> Figure:
    """Figure 21: total time to answer N requests vs N, one line per target, per mode.

    ``by_target``: the ceilings of targets another engine sent (a gRPC target's), ringing their
    near-ceiling points against their own engine (:func:`bench.report.tables.target_ceilings`).
    """
    colors = target_colors(targets)
    fig, axes = axes_row(len(modes), height=5.8)
    for ax, mode in zip(axes, modes, strict=False):
        drawn: set[str] = set()
        overlay = study is not None and mode == study_mode
        for t in targets:
            part = _part(means, t, mode)
            if part.empty:
                continue
            own = by_target[t] if by_target and t in by_target else ceiling
            drawn |= plot_steps(ax, part, "n_requests", "total_s", color=colors[t], label=t, ceiling=own)
            if overlay:
                ref = study[study["target"] == t].sort_values("n_requests")
                if not ref.empty:
                    ax.plot(
                        ref["n_requests"],
                        ref["total_s"],
                        linestyle="--",
                        marker="x",
                        alpha=0.8,
                        color=colors[t],
                        label=f"{t} (study)",
                    )
        ns = list(means.loc[means["mode"] == mode, "n_requests"])
        if overlay:
            ns += list(study["n_requests"])
        plain_log_axes(ax, ns)
        ax.set_xlabel("number of requests N")
        ax.set_ylabel("total time to answer all N requests (s)")
        ax.set_title(f"{mode}: total time vs N" + (" (dashed: study, Table 3)" if overlay else ""))
        finish_legend(ax, drawn, below=True)
    fig.tight_layout()
    return fig


_PERCENTILE_STYLES = (("p50", "-"), ("p90", "--"), ("p99", ":"))


def fig_latency_percentiles(
    means: pd.DataFrame, targets: Sequence[str], modes: Sequence[str], recorded: bool = True
) -> Figure:
    """Per-request latency p50/p90/p99 (ms) vs N: one panel per mode x target; y shared per mode.

    Each percentile is a point with a bar over its 95 % bounds where both exist; where only
    a lower bound exists (p99 of fewer than 368 answers) a hollow triangle marks it and the
    line skips the step; where no bound exists nothing is drawn. ``recorded`` False (a run
    from before the bounds): points where a two-sided bound would exist, without bars.
    """
    fig, grid = plt.subplots(
        len(modes),
        len(targets),
        figsize=(4.2 * len(targets), 3.6 * len(modes) + 0.8),
        squeeze=False,
        sharex="row",
        sharey="row",
    )
    colors = target_colors(targets)
    drawn: set[str] = set()
    for i, mode in enumerate(modes):
        for j, t in enumerate(targets):
            ax = grid[i][j]
            part = _part(means, t, mode)
            for suffix, ls in _PERCENTILE_STYLES:
                col = f"lat_{suffix}_s"
                if part.empty:
                    continue
                points = percentile_points(part, suffix, recorded)
                shown = part.assign(**{col: points["value_"].to_numpy()})
                if suffix != "p50":  # steps with no answers are marked once per panel, on p50
                    if not (shown[col].notna().any() or points["lower_only_"].notna().any()):
                        continue
                    shown = shown.assign(flag_all_failed=False)
                drawn |= plot_steps(
                    ax, shown, "n_requests", col, scale=1000, color=colors[t], label=suffix, linestyle=ls, markersize=4
                )
                drawn |= plot_bounds(ax, part["n_requests"], points, color=colors[t], name=suffix, scale=1000)
            ax.set_title(f"{t} / {mode}")
            ax.set_xlabel("number of requests N")
            if j == 0:
                ax.set_ylabel("latency (ms)")
            if part.empty:
                ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", va="center", color="grey")
    for i, mode in enumerate(modes):  # after all panels are drawn: the y axis is shared per row
        for ax in grid[i]:
            plain_log_axes(ax, means.loc[means["mode"] == mode, "n_requests"])
        if any(line.get_gid() == GID_ALL_FAILED for ax in grid[i] for line in ax.lines):
            room_for_failed(grid[i][0])  # shared y: once per row
    # One legend for every panel (colours are named in the titles): the line styles drawn
    # anywhere, the bound marks, then the flag marks drawn anywhere.
    styles = {
        line.get_label(): line.get_linestyle()
        for ax in grid.flat
        for line in ax.lines
        if line.get_label() in dict(_PERCENTILE_STYLES) and np.isfinite(line.get_ydata()).any()
    }
    lines = [
        Line2D([], [], color="black", linestyle=ls, marker="o", markersize=4, label=name)
        for name, ls in _PERCENTILE_STYLES
        if name in styles
    ] + bound_handles(drawn)
    marks = flag_handles(drawn)
    inch = 1.0 / fig.get_figheight()  # legend rows are placed in inches from the bottom edge
    if lines:
        fig.legend(
            handles=lines,
            loc="lower center",
            ncol=len(lines),
            frameon=False,
            bbox_to_anchor=(0.5, (0.5 if marks else 0.25) * inch),
        )
    if marks:
        fig.legend(handles=marks, loc="lower center", ncol=len(marks), frameon=False, bbox_to_anchor=(0.5, 0.22 * inch))
    note = (
        "bars: 95 % distribution-free bounds of the true percentile; a percentile with too few answers for "
        "any bound is not drawn"
        if recorded
        else "run written before percentile bounds were recorded: percentiles drawn where a step has enough "
        "answers for a two-sided 95 % bound, without it"
    )
    fig.text(0.5, 0.02 * inch, note, ha="center", va="bottom", fontsize=8, color="#444")
    fig.tight_layout(rect=(0, (0.8 if marks else 0.55) * inch, 1, 1))
    return fig


def fig_throughput(
    means: pd.DataFrame,
    targets: Sequence[str],
    modes: Sequence[str],
    ceiling: Mapping[str, Any] | None = None,
    *,
    by_target: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> Figure:
    """Throughput (successful requests per second of step wall time) vs N, one panel per mode.

    The client's calibrated ceiling is drawn only where it was measured, and off the axis
    when it is far above every target (:mod:`bench.report.ceiling_marks`): it never
    flattens the targets and no interpolation is drawn as a measurement.
    """
    colors = target_colors(targets)
    fig, axes = axes_row(len(modes), height=5.4)
    for ax, mode in zip(axes, modes, strict=False):
        drawn: set[str] = set()
        for t in targets:
            part = _part(means, t, mode)
            if part.empty:
                continue
            own = by_target[t] if by_target and t in by_target else ceiling  # a gRPC target: the grpc engine's
            drawn |= plot_steps(ax, part, "n_requests", "throughput_rps", color=colors[t], label=t, ceiling=own)
        steps = means[means["mode"] == mode]
        ns = sorted(set(steps["n_requests"]))
        usable = steps[~steps["flag_all_failed"].fillna(False).astype(bool)] if "flag_all_failed" in steps else steps
        fastest = float(pd.to_numeric(usable["throughput_rps"], errors="coerce").max()) if not usable.empty else np.nan
        conc = steps.groupby("n_requests")["concurrency"].max().to_dict() if ns else {}
        # the run engine's ceiling only where a target it sent is drawn (a gRPC-only panel has none)
        by_run = [t for t in targets if not (by_target and t in by_target)]
        shown = ceiling if set(steps["target"]) & set(by_run) else None
        extra = draw_ceiling(ax, ceiling_marks(conc, fastest, shown))
        plain_log_axes(ax, ns)
        ax.set_xlabel("number of requests N")
        ax.set_ylabel("throughput (successful requests/s)")
        ax.set_title(f"{mode}: throughput vs N", pad=12 if extra else 6)  # room for ceiling marks on the top edge
        turned = any(label.get_rotation() == 90 for label in ax.get_xticklabels())  # crowded N labels stand up
        finish_legend(ax, drawn, below=True, extra=extra, bbox_to_anchor=(0.5, -0.3 if turned else -0.2))
    fig.tight_layout()
    return fig


#: At most this many points of each CDF curve are drawn (a 10 M-point step curve would cost
#: gigabytes in matplotlib and a huge SVG); more successful requests than this are drawn
#: at evenly spaced ranks, so the curve is off by at most 1/(CDF_MAX_POINTS - 1) in height.
CDF_MAX_POINTS = 20_000


def cdf_points(latencies: np.ndarray, max_points: int = CDF_MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """The empirical CDF of ``latencies``: sorted values and the fraction at or below each.

    Up to ``max_points`` values, every one (exact); beyond, the values at ``max_points``
    evenly spaced ranks including the largest, each with its exact fraction.
    """
    lat = np.sort(np.asarray(latencies, dtype=np.float64))
    n = lat.size
    if n <= max_points:
        return lat, np.arange(1, n + 1) / n
    ranks = np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))
    return lat[ranks], (ranks + 1) / n


def fig_latency_cdf(
    latencies: Mapping[PooledKey, StepLatencies], targets: Sequence[str], modes: Sequence[str]
) -> Figure:
    """Empirical CDF of successful requests' latency (ms) at the largest N of each mode
    (for ``rate``: the largest N at the highest offered rate).

    ``latencies``: per step, trials pooled (:meth:`bench.results.RunData.latencies`)."""
    colors = target_colors(targets)
    fig, axes = axes_row(len(modes))
    for ax, mode in zip(axes, modes, strict=False):
        steps = {k: v for k, v in latencies.items() if k[1] == mode and v.sent}
        where = ""
        if mode == "rate" and steps:
            top = max(k[4] for k in steps)
            steps = {k: v for k, v in steps.items() if k[4] == top}
            where = f" at {top:g} req/s"
        n_max = max((k[2] for k in steps), default=0)
        at_n = {k: v for k, v in steps.items() if k[2] == n_max}
        for t in targets:
            mine = [v for k, v in at_n.items() if k[0] == t]
            sent = sum(v.sent for v in mine)
            ok = np.concatenate([v.ok for v in mine]) if mine else np.empty(0)
            if ok.size == 0:
                if sent:  # a target whose every request failed has no curve: say so in the legend
                    ax.plot([], [], color=colors[t], linestyle="none", marker="x", label=f"{t}: 0 of {sent} ok")
                continue
            x, y = cdf_points(ok)
            label = f"{t} ({ok.size} ok)" if ok.size == sent else f"{t} ({ok.size} of {sent} ok)"
            ax.step(x * 1000, y, where="post", color=colors[t], label=label)
        if ax.lines and any(len(line.get_xdata()) for line in ax.lines):
            log_value_axis(ax, "x")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("fraction of requests answered within")
        ax.set_title(f"{mode}: latency CDF at N = {n_max}{where}")
        finish_legend(ax, set(), loc="lower right")
    fig.tight_layout()
    return fig


def fig_errors_accuracy(
    summary: pd.DataFrame, targets: Sequence[str], modes: Sequence[str], model_accuracy: float | None = None
) -> Figure:
    """Left: failed requests per target and mode (or "0 errors" when there are none);
    right: accuracy of the answers (correct / answered) on an axis zoomed to the data, with
    the model's own test accuracy dotted."""
    fig, (ax_err, ax_acc) = axes_row(2, height=5.2)
    x = np.arange(len(targets))
    width = 0.8 / max(len(modes), 1)
    mode_colors = {m: plt.get_cmap("Set2")(i) for i, m in enumerate(modes)}
    total_sent = int(summary["n_requests"].sum())
    total_failed = int(summary["errors"].sum())
    accs: list[float] = []
    for k, mode in enumerate(modes):
        offs = x + (k - (len(modes) - 1) / 2) * width
        errs, labels, acc = [], [], []
        for t in targets:
            part = summary[(summary["target"] == t) & (summary["mode"] == mode)]
            failed = int(part["errors"].sum())
            answered = int(part["n_requests"].sum()) - failed
            errs.append(failed)
            labels.append(_classes_label(part, failed))
            correct = part["n_correct"].sum(min_count=1)  # NaN when no row recorded it
            acc.append(float(correct) / answered if answered else np.nan)
        if total_failed:
            bars = ax_err.bar(offs, errs, width, label=mode, color=mode_colors[mode])
            ax_err.bar_label(bars, labels=labels, fontsize=8)
        shown = ~np.isnan(np.asarray(acc, dtype=float))
        if shown.any():
            ax_acc.plot(
                offs[shown],
                np.asarray(acc)[shown],
                linestyle="none",
                marker="o",
                markersize=8,
                color=mode_colors[mode],
                label=mode,
            )
            for xo, a in zip(offs[shown], np.asarray(acc)[shown], strict=False):
                ax_acc.annotate(
                    f"{100 * a:.1f} %", (xo, a), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8
                )
            accs += list(np.asarray(acc)[shown])
    for ax in (ax_err, ax_acc):
        ax.set_xticks(x, list(targets), rotation=15)
        ax.set_xlim(-0.6, len(targets) - 0.4)
    ax_err.set_title("failed requests per target")
    if total_failed:
        top = max([b.get_height() for b in ax_err.patches] + [1])
        ax_err.set_ylim(0, top * 1.25)
        ax_err.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax_err.set_ylabel("failed requests (count, all steps)")
        ax_err.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=len(modes), title="mode")
    else:
        ax_err.set_yticks([])
        ax_err.grid(False)
        ax_err.text(
            0.5,
            0.5,
            f"0 errors\n(all {total_sent:,} requests answered)",
            transform=ax_err.transAxes,
            ha="center",
            va="center",
            fontsize=14,
            color="#2a7a2a",
        )
    _accuracy_axis(ax_acc, accs, model_accuracy)
    fig.tight_layout()
    return fig


def _classes_label(part: pd.DataFrame, failed: int) -> str:
    """Bar label: the count, with the error class when a single class explains it."""
    if not failed:
        return "0"
    classes = merge_error_classes(part["errors_by_class"])
    return f"{failed} {next(iter(classes))}" if len(classes) == 1 else str(failed)


def _accuracy_axis(ax: Any, accs: list[float], model_accuracy: float | None) -> None:
    """Zoom the accuracy axis to the values (and the model's own accuracy): differences of
    a fraction of a percent are what matters, and bars from 0 would hide them."""
    ax.set_title("answers correct (correct digits / answered)")
    ax.set_ylabel("share of answers correct")
    values = list(accs)
    if model_accuracy is not None:
        ax.axhline(
            model_accuracy,
            color="grey",
            linestyle=":",
            label=f"the model on the test split ({100 * model_accuracy:.1f} %)",
        )
        values.append(model_accuracy)
    if not values:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no answers", transform=ax.transAxes, ha="center", va="center", color="grey")
        return
    low, high = min(values), max(values)
    pad = max((high - low) * 0.25, 0.005)
    ax.set_ylim(max(low - pad, 0.0), min(high + pad, 1.0) + pad * 0.5)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{100 * v:.2f} %"))  # ticks every 0.25 %
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=len(ax.get_legend_handles_labels()[0]))
