"""Report figures (matplotlib, Agg): Figure-21-style total time, latency, throughput, CDF, errors.

Why these choices: request counts span 1..512 and times span milliseconds to minutes, so
time-vs-N plots are log-log (a straight line of slope 1 = constant cost per request). Each
target keeps one colour in every figure; the study's numbers are dashed and labelled
"study"; points near the client's calibrated ceiling get a red ring so nobody mistakes the
load generator's limit for the target's. Figures are built from DataFrames only (no I/O
except :func:`save_figure`), and saved as PNG and SVG with fixed metadata so that
regeneration is reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator  # noqa: E402

from bench.report.tables import FLAG_FRACTION, ceiling_for, flag_near_ceiling  # noqa: E402

__all__ = [
    "fig_errors_accuracy",
    "fig_latency_cdf",
    "fig_latency_percentiles",
    "fig_throughput",
    "fig_total_time",
    "save_figure",
    "target_colors",
]

plt.rcParams.update({
    "svg.hashsalt": "servebench",  # stable SVG ids across regenerations
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
})
_FLAG_STYLE = dict(marker="o", s=140, facecolors="none", edgecolors="red", linewidths=1.5, zorder=5)


def _plain_log_axes(ax: Any, ns: Sequence[float], y_log: bool = True) -> None:
    """Log axes labelled with plain numbers: the request counts on x, '0.1 / 1 / 10' on y."""
    ax.set_xscale("log")
    ticks = sorted({int(n) for n in ns})
    if ticks:
        labels, last = [], None
        for t in ticks:  # drop a label that would collide with its neighbour (100 next to 128)
            close = last is not None and t / last < 1.4
            labels.append("" if close else str(t))
            last = last if close else t
        ax.set_xticks(ticks, labels)
        ax.xaxis.set_minor_locator(NullLocator())
        if len(ticks) > 8:
            ax.tick_params(axis="x", labelrotation=45)
    if y_log:
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        if low > 0 and high / low < 5:  # under a decade: widen so that labelled ticks exist
            mid = (low * high) ** 0.5
            ax.set_ylim(mid / 2.5, mid * 2.5)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())


def target_colors(targets: Sequence[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10")
    return {t: cmap(i % 10) for i, t in enumerate(targets)}


def _axes_row(n: int, width: float = 6.0, height: float = 4.6) -> tuple[Figure, list[Any]]:
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return fig, list(axes[0])


def _mark_flags(ax: Any, frame: pd.DataFrame, ycol: str, ceiling: Mapping[str, Any] | None) -> bool:
    flags = flag_near_ceiling(frame, ceiling)
    if flags.any():
        ax.scatter(frame.loc[flags, "n_requests"], frame.loc[flags, ycol], **_FLAG_STYLE)
        return True
    return False


def _flag_legend(ax: Any) -> None:
    ax.scatter([], [], label=f"near client ceiling (>= {FLAG_FRACTION:.0%})", **_FLAG_STYLE)


def fig_total_time(means: pd.DataFrame, targets: Sequence[str], modes: Sequence[str],
                   study: pd.DataFrame | None = None, study_mode: str = "sequential",
                   ceiling: Mapping[str, Any] | None = None) -> Figure:
    """Figure 21: total time to answer N requests vs N, one line per target, per mode."""
    colors = target_colors(targets)
    fig, axes = _axes_row(len(modes))
    for ax, mode in zip(axes, modes):
        flagged = False
        for t in targets:
            part = means[(means["target"] == t) & (means["mode"] == mode)].sort_values("n_requests")
            if part.empty:
                continue
            ax.plot(part["n_requests"], part["total_s"], marker="o", color=colors[t], label=t)
            flagged |= _mark_flags(ax, part, "total_s", ceiling)
            if study is not None and mode == study_mode:
                ref = study[study["target"] == t].sort_values("n_requests")
                if not ref.empty:
                    ax.plot(ref["n_requests"], ref["total_s"], linestyle="--", marker="x", alpha=0.8,
                            color=colors[t], label=f"{t} (study)")
        if flagged:
            _flag_legend(ax)
        ns = list(means.loc[means["mode"] == mode, "n_requests"])
        if study is not None and mode == study_mode:
            ns += list(study["n_requests"])
        _plain_log_axes(ax, ns)
        ax.set_xlabel("number of requests N")
        ax.set_ylabel("total time to answer all N requests (s)")
        ax.set_title(f"{mode}: total time vs N" + (" (dashed: study, Table 3)" if study is not None and mode == study_mode else ""))
        ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def fig_latency_percentiles(means: pd.DataFrame, targets: Sequence[str], modes: Sequence[str]) -> Figure:
    """Per-request latency p50/p90/p99 (ms) vs N: one panel per mode x target; y shared per mode."""
    fig, grid = plt.subplots(len(modes), len(targets), figsize=(4.2 * len(targets), 3.6 * len(modes)),
                             squeeze=False, sharey="row")
    styles = (("lat_p50_s", "p50", "-"), ("lat_p90_s", "p90", "--"), ("lat_p99_s", "p99", ":"))
    colors = target_colors(targets)
    for i, mode in enumerate(modes):
        for j, t in enumerate(targets):
            ax = grid[i][j]
            part = means[(means["target"] == t) & (means["mode"] == mode)].sort_values("n_requests")
            for col, label, ls in styles:
                if col in part and part[col].notna().any():
                    ax.plot(part["n_requests"], part[col] * 1000, linestyle=ls, marker="o", markersize=3,
                            color=colors[t], label=label)
            ax.set_yscale("log")
            ax.set_title(f"{t} / {mode}")
            ax.set_xlabel("number of requests N")
            if j == 0:
                ax.set_ylabel("latency (ms)")
            if part.notna().any().any():
                ax.legend(loc="upper left")
    for i, mode in enumerate(modes):  # after all panels are drawn: the y axis is shared per row
        for ax in grid[i]:
            _plain_log_axes(ax, means.loc[means["mode"] == mode, "n_requests"])
    fig.tight_layout()
    return fig


def fig_throughput(means: pd.DataFrame, targets: Sequence[str], modes: Sequence[str],
                   ceiling: Mapping[str, Any] | None = None) -> Figure:
    """Throughput (requests per second of step wall time) vs N, with the client ceiling dotted."""
    colors = target_colors(targets)
    fig, axes = _axes_row(len(modes), height=5.4)
    for ax, mode in zip(axes, modes):
        flagged = False
        ns: list[float] = []
        conc = None
        for t in targets:
            part = means[(means["target"] == t) & (means["mode"] == mode)].sort_values("n_requests")
            if part.empty or "throughput_rps" not in part:
                continue
            ax.plot(part["n_requests"], part["throughput_rps"], marker="o", color=colors[t], label=t)
            flagged |= _mark_flags(ax, part, "throughput_rps", ceiling)
            ns = sorted(set(ns) | set(part["n_requests"]))
            conc = part.set_index("n_requests")["concurrency"] if "concurrency" in part else None
        if ceiling and ns and conc is not None:
            limit = [ceiling_for(conc.get(n, 1), ceiling) for n in ns]
            if any(v is not None for v in limit):
                ax.plot(ns, [np.nan if v is None else v for v in limit], color="grey", linestyle=":",
                        label=f"client ceiling ({ceiling.get('engine', '?')} engine)")
        if flagged:
            _flag_legend(ax)
        _plain_log_axes(ax, means.loc[means["mode"] == mode, "n_requests"])
        ax.set_xlabel("number of requests N")
        ax.set_ylabel("throughput (successful requests/s)")
        ax.set_title(f"{mode}: throughput vs N")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    fig.tight_layout()
    return fig


def fig_latency_cdf(requests: pd.DataFrame, targets: Sequence[str], modes: Sequence[str]) -> Figure:
    """Empirical CDF of successful requests' latency (ms) at the largest N of each mode."""
    colors = target_colors(targets)
    fig, axes = _axes_row(len(modes))
    for ax, mode in zip(axes, modes):
        sub = requests[(requests["mode"] == mode) & (requests["error"].isin(["", "nan"]))]
        n_max = int(sub["n_requests"].max()) if not sub.empty else 0
        for t in targets:
            lat = np.sort(sub.loc[(sub["target"] == t) & (sub["n_requests"] == n_max), "latency_s"].to_numpy(float))
            if lat.size == 0:
                continue
            y = np.arange(1, lat.size + 1) / lat.size
            ax.step(lat * 1000, y, where="post", color=colors[t], label=f"{t} ({lat.size} ok)")
        ax.set_xscale("log")
        low, high = ax.get_xlim()
        if low > 0 and high / low < 5:
            mid = (low * high) ** 0.5
            ax.set_xlim(mid / 2.5, mid * 2.5)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("fraction of requests answered within")
        ax.set_title(f"{mode}: latency CDF at N = {n_max}")
        ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def fig_errors_accuracy(summary: pd.DataFrame, targets: Sequence[str], modes: Sequence[str]) -> Figure:
    """Errors (count over all steps) and accuracy (correct / sent) per target, bars per mode."""
    fig, (ax_err, ax_acc) = _axes_row(2)
    x = np.arange(len(targets))
    width = 0.8 / max(len(modes), 1)
    for k, mode in enumerate(modes):
        errs, accs = [], []
        for t in targets:
            part = summary[(summary["target"] == t) & (summary["mode"] == mode)]
            sent = part["n_requests"].sum()
            errs.append(part["errors"].sum() if "errors" in part else 0)
            accs.append((part["accuracy"] * part["n_requests"]).sum() / sent if sent else np.nan)
        offs = x + (k - (len(modes) - 1) / 2) * width
        bars = ax_err.bar(offs, errs, width, label=mode)
        ax_err.bar_label(bars, fmt="%d", fontsize=8)
        bars = ax_acc.bar(offs, accs, width, label=mode)
        ax_acc.bar_label(bars, fmt="%.3f", fontsize=8)
    for ax in (ax_err, ax_acc):
        ax.set_xticks(x, list(targets), rotation=15)
        ax.legend(loc="upper center", ncol=max(len(modes), 1))
    top = max([b.get_height() for b in ax_err.patches] + [0])
    ax_err.set_ylim(0, max(1.0, top) * 1.25)
    ax_err.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_err.set_ylabel("failed requests (count, all steps)")
    ax_err.set_title("errors per target")
    ax_acc.set_ylabel("accuracy (correct / requests sent)")
    ax_acc.set_ylim(0, 1.25)
    ax_acc.set_title("accuracy per target")
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` (no timestamps inside) and close the figure."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{stem}.png", out_dir / f"{stem}.svg"
    fig.savefig(png, dpi=110, metadata={"Software": None})
    fig.savefig(svg, metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return [png, svg]
