"""Figure 22 / Figure 23 style grouped bar charts: our pipeline beside the study's two clouds.

Why log scale by default: our local runs take seconds to a minute, the study's Kubeflow
runs took hundreds of seconds (pod scheduling, image pulls, cloud storage), so on a
linear axis our bars would be invisible.  When the plotted values span 10x or more the
y axis is logarithmic and every bar carries its value, so the numbers -- not bar heights --
are what a reader compares.  A failed stage is drawn hatched and labelled, a stage that
never ran gets a "not run" label instead of a bar.

Colours: runs of ours take greens and other cool colours, the study keeps blue (GCP) and orange
(IBM Cloud) in every figure, so a run's report and a side-by-side report of several runs read
the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ground.figures import save_figure

__all__ = ["RUN_COLORS", "STUDY_COLORS", "Series", "grouped_bars", "needs_log_scale"]

#: our runs, in order (the first is the green every single-run figure uses)
RUN_COLORS = ("tab:green", "tab:purple", "tab:cyan", "tab:olive", "tab:brown", "tab:pink")
#: the study's GCP and IBM Cloud bars
STUDY_COLORS = ("tab:blue", "tab:orange")
_DEFAULT_COLORS = ("tab:green", "tab:blue", "tab:orange", "tab:purple")


@dataclass(frozen=True)
class Series:
    """One group member: a label, one value per category (``None`` = no bar), and per-bar notes."""

    label: str
    values: Sequence[float | None]
    notes: Sequence[str] = ()
    hatched: Sequence[bool] = ()
    color: str | None = None  # None: by position in the figure


def needs_log_scale(values: Sequence[float | None], ratio: float = 10.0) -> bool:
    """True when the positive values span ``ratio`` or more (max / min)."""
    positive = [v for v in values if v is not None and v > 0]
    return bool(positive) and max(positive) / min(positive) >= ratio


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def _legend_layout(labels: Sequence[str], width_in: float) -> tuple[int, int]:
    """(columns, rows) for the legend: as many columns as fit the figure's width.

    Why: run labels carry the run id and the remote host, so four or more side by side would run
    off the figure.  Widths are estimated at ~17 characters per inch (8-pt legend text) plus the
    marker, against the axes' width (the figure's minus ~1.3 inches of y labels and margins);
    columns are split as matplotlib splits them (``np.array_split``).
    """
    budget = (width_in - 1.3) * 17
    for ncol in range(len(labels), 1, -1):
        parts = [p for p in np.array_split(np.array(labels, dtype=object), ncol) if len(p)]
        if sum(max(len(str(label)) for label in p) + 8 for p in parts) <= budget:
            return ncol, max(len(p) for p in parts)
    return 1, max(len(labels), 1)


def grouped_bars(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    caption: str,
    path: Path,
    ylabel: str = "seconds",
) -> Path:
    """Draw one group of bars per category, one bar per series; save a PNG at ``path``."""
    all_values = [v for s in series for v in s.values]
    log = needs_log_scale(all_values)
    x = np.arange(len(categories))
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(6.5, 1.9 * len(categories) + 2.5), 4.8))
    positive = [v for v in all_values if v is not None and v > 0]
    floor = min(positive) / 3 if log and positive else 0.0  # where "not run" labels sit on a log axis
    for i, s in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * width
        labelled = False  # the legend entry goes on the series' first drawn bar
        for j, value in enumerate(s.values):
            note = s.notes[j] if j < len(s.notes) else ""
            hatched = s.hatched[j] if j < len(s.hatched) else False
            xpos = x[j] + offset
            if value is None:
                ax.text(
                    xpos,
                    floor if log else 0,
                    note or "not run",
                    ha="center",
                    va="bottom",
                    rotation=90,
                    fontsize=8,
                    color="dimgray",
                )
                continue
            color = s.color or _DEFAULT_COLORS[i % len(_DEFAULT_COLORS)]
            ax.bar(
                xpos,
                value,
                width,
                color=color,
                edgecolor="black",
                linewidth=0.5,
                hatch="//" if hatched else None,
                label=None if labelled else s.label,
            )
            labelled = True
            text = _fmt(value) + (f"\n{note}" if note else "")
            ax.annotate(
                text, (xpos, value), xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=8
            )
    ncol, rows = _legend_layout([s.label for s in series], fig.get_figwidth())
    extra_rows = rows - 1  # legend rows beyond the first need head room too
    if log:
        ax.set_yscale("log")
        ax.set_ylim(floor / 1.5, max(positive) * 12 * 1.6**extra_rows)  # head room for labels and legend
        ylabel += " (log scale)"
    elif positive:
        ax.set_ylim(0, max(positive) * (1.35 + 0.15 * extra_rows))
    ax.set_xticks(x, categories)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper center", ncol=ncol, fontsize=8)
    fig.text(0.01, 0.01, caption, fontsize=7.5, ha="left", va="bottom", wrap=True, color="dimgray")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    path = Path(path)
    (saved,) = save_figure(fig, path.with_suffix(""), (path.suffix.lstrip(".") or "png",), dpi=120)
    return saved
