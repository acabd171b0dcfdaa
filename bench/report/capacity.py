"""The capacity section of a report: the table beside Table 3 and the "hockey stick" figures.

Capacity rows (modes ``capacity`` and ``capacity_closed``) are not Table 3 steps -- their
request counts follow the offered rate, not the study's N -- so they are split off before
Table 3 is drawn (:func:`bench.capacity.results.split_capacity`) and rendered here from
capacity.csv, capacity_probes.csv and capacity_concurrency.csv alone (``bench report``
regenerates them). Tables are pure text cells; figures are built from frames; only
:func:`ground.figures.save_figure` (shared with every other figure) writes files.

Per target one figure with up to three panels: latency versus offered rate (p50 and the
objective's percentile per probe, the bound as a line, the capacity marked -- the curve
bends up like a hockey stick where the queue starts to grow), achieved versus offered
throughput (on the diagonal while the target keeps up), and the closed-loop concurrency
sweep (throughput and latency per concurrency).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.capacity.results import CapacityData, load_capacity
from bench.capacity.table import capacity_heading, capacity_legend, capacity_table, concurrency_table
from bench.capacity.table import num as _num
from bench.capacity.table import rps as _rps
from bench.report.document import Document, to_html, to_markdown
from bench.report.figures import REPORT_FORMATS, target_colors
from bench.report.tables import markdown_table
from bench.results import RunData
from loadgen.cells import cell_true

__all__ = [
    "add_capacity_section",
    "capacity_heading",
    "capacity_legend",
    "capacity_markdown",
    "capacity_only_report",
    "capacity_table",
    "concurrency_table",
    "fig_capacity",
]

FIGURE_DIR = "figures"


def capacity_markdown(cap: CapacityData, run_id: str, targets: Sequence[str] | None = None) -> str:
    """capacity.md: the capacity table and the closed-loop table, as Markdown."""
    parts = [f"# {capacity_heading(cap)} (servebench run `{run_id}`)\n"]
    parts.append(markdown_table(*capacity_table(cap, targets)))
    parts.append(
        "\n" + "\n".join(f"- {line}" for line in capacity_legend(cap)) + "\n\nHow a verdict is reached "
        "and how sure it is: docs/capacity.md."
    )
    if not cap.concurrency.empty:
        parts.append("\n## Closed loop: throughput per concurrency (perf_analyzer style)\n")
        parts.append(markdown_table(*concurrency_table(cap, targets)))
    return "\n".join(parts)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _latency_axis(ax: Any, values_ms: np.ndarray, bound_ms: float) -> None:
    """Log scale with plain labels when latencies span a decade or more (the hockey stick's
    knee), linear from 0 otherwise (log ticks on a narrow range read as 9x10^1)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    finite = values_ms[np.isfinite(values_ms) & (values_ms > 0)]
    if not math.isnan(bound_ms):
        finite = np.append(finite, bound_ms)
    if finite.size and finite.max() / finite.min() >= 10:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylim(bottom=0, top=float(finite.max()) * 1.25 if finite.size else None)


def fig_capacity(cap: CapacityData, target: str) -> Any:
    """Latency vs offered rate (the hockey stick), achieved vs offered, and the closed loop."""
    import matplotlib.pyplot as plt

    probes = cap.probes[cap.probes["target"] == target].sort_values("offered_rps")
    if "final" in probes and probes["final"].notna().any():  # one point per judged rate: its last look
        probes = probes[probes["final"].map(cell_true)]
    closed = cap.concurrency[cap.concurrency["target"] == target].sort_values("concurrency")
    summary = cap.capacity[cap.capacity["target"] == target]
    panels = 2 + (0 if closed.empty else 1)
    fig, axes = plt.subplots(1, panels, figsize=(5.6 * panels, 5.2), squeeze=False)
    axes = list(axes[0])
    color = target_colors([target])[target]
    label = f"p{_num(summary['percentile'].iloc[0]):g}" if not summary.empty else "objective"
    bound = _num(summary["bound_s"].iloc[0]) if not summary.empty else math.nan
    capacity = (
        float(np.nanmedian(summary["capacity_rps"].to_numpy(float)))
        if not summary.empty and summary["capacity_rps"].notna().any()
        else math.nan
    )
    met = probes["met"].map(cell_true) if not probes.empty else pd.Series(dtype=bool)

    ax = axes[0]
    if not probes.empty:
        per_rate = probes.groupby("offered_rps")[["lat_p50_s", "lat_objective_s"]].median()  # several searches
        for col, marker, style, name in (("lat_p50_s", "o", "-", "p50"), ("lat_objective_s", "^", "--", label)):
            ax.scatter(probes["offered_rps"], probes[col] * 1000, marker=marker, color=color, alpha=0.5)
            ax.plot(
                per_rate.index,
                per_rate[col] * 1000,
                marker=marker,
                color=color,
                linestyle=style,
                label=f"{name} (line: median per rate)",
            )
        undecided = (
            (probes["decision"].astype(str) == "undecided")
            if "decision" in probes
            else pd.Series(False, index=probes.index)
        )
        for mask, colour, name in (
            (~met & ~undecided, "red", "violated (latency, errors or saturated)"),
            (undecided, "orange", "undecided after its looks (not met)"),
        ):
            bad = probes[mask]
            if not bad.empty:
                ax.scatter(
                    bad["offered_rps"],
                    bad["lat_objective_s"].fillna(bound * 2) * 1000,
                    marker="x",
                    s=70,
                    color=colour,
                    zorder=5,
                    label=name,
                )
        _latency_axis(ax, probes[["lat_p50_s", "lat_objective_s"]].to_numpy(float) * 1000, bound * 1000)
        ax.set_xlim(left=0, right=float(probes["offered_rps"].max()) * 1.1)
    if not math.isnan(bound):
        ax.axhline(bound * 1000, color="grey", linestyle=":", label=f"bound {bound * 1000:g} ms")
    if not math.isnan(capacity):
        ax.axvline(capacity, color="black", linestyle="-.", alpha=0.7, label=f"capacity {_rps(capacity)} req/s")
    ax.set_xlabel("offered rate (req/s, Poisson)")
    ax.set_ylabel("latency from intended send (ms)")
    found = "" if not math.isnan(capacity) or probes.empty else " (no rate met the objective)"
    ax.set_title(f"{target}: latency vs offered rate{found}")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)

    ax = axes[1]
    if not probes.empty:
        ax.scatter(
            probes["offered_rps"],
            probes["achieved_rps"],
            color=[color if m else "red" for m in met],
            zorder=4,
            label="probes (red: not met)",
        )
        top = float(np.nanmax(probes[["offered_rps", "achieved_rps"]].to_numpy(float)))
        ax.plot([0, top], [0, top], color="grey", linestyle=":", label="achieved = offered")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
    if not math.isnan(capacity):
        ax.axvline(capacity, color="black", linestyle="-.", alpha=0.7, label="capacity")
    ax.set_xlabel("offered rate (req/s)")
    ax.set_ylabel("achieved rate (successful req/s)")
    ax.set_title(f"{target}: achieved vs offered")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)

    if not closed.empty:
        ax = axes[2]
        ax.plot(closed["concurrency"], closed["throughput_rps"], marker="o", color=color, label="throughput")
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(closed["concurrency"]), [str(int(c)) for c in closed["concurrency"]])
        ax.set_ylim(bottom=0)
        ax.set_xlabel("requests in flight (closed loop)")
        ax.set_ylabel("throughput (successful req/s)")
        ax.set_title(f"{target}: closed-loop concurrency sweep")
        twin = ax.twinx()
        twin.plot(
            closed["concurrency"],
            closed["lat_objective_s"] * 1000,
            marker="^",
            color="grey",
            linestyle="--",
            label=f"{label} (ms, right)",
        )
        if not math.isnan(bound):
            twin.axhline(bound * 1000, color="grey", linestyle=":", label=f"bound {bound * 1000:g} ms (right)")
        twin.set_ylim(bottom=0)
        twin.set_ylabel(f"{label} latency (ms)")
        twin.grid(False)
        lines = ax.get_legend_handles_labels()
        more = twin.get_legend_handles_labels()
        ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.tight_layout()
    return fig


def _figures(cap: CapacityData, targets: Sequence[str], fig_dir: Path) -> list[tuple[str, str, list[Path]]]:
    from ground.figures import save_figure

    out = []
    for target in targets:
        if (cap.probes["target"] == target).any() or (cap.concurrency["target"] == target).any():
            stem = f"capacity_{_safe(target)}"
            out.append((target, stem, save_figure(fig_capacity(cap, target), fig_dir / stem, REPORT_FORMATS)))
    return out


def _order(cap: CapacityData, targets: Sequence[str]) -> list[str]:
    return list(targets) + [t for t in cap.targets if t not in targets]


def _section(cap: CapacityData, targets: Sequence[str], fig_dir: Path) -> tuple[Document, list[Path]]:
    doc = Document("capacity")
    doc.add("h2", capacity_heading(cap))
    doc.add(
        "p",
        "The highest offered Poisson rate at which the objective was **met at a stated confidence** "
        "(few enough requests over the bound, no failed request, no saturation): ramp, bisect, then a "
        "fresh confirmation probe at the found rate decides **VALID** (met again), **INVALID** "
        "(violated) or **UNCONFIRMED** (undecided). Latencies are counted from each request's intended "
        "send time. Read a `possibly client-bound` row as a lower bound on the target. docs/capacity.md "
        "explains what a verdict means and how sure it is.",
    )
    columns, rows = capacity_table(cap, targets)
    doc.add(
        "table",
        "Open loop (one row per target; several searches: median, range and count):",
        columns=columns,
        rows=rows,
    )
    doc.add("ul", items=capacity_legend(cap))
    if not cap.concurrency.empty:
        columns, rows = concurrency_table(cap, targets)
        doc.add(
            "table",
            "Closed loop (perf_analyzer style: concurrency 1, 2, 4, ... until the objective is "
            "crossed or throughput grows < 5 %):",
            columns=columns,
            rows=rows,
        )
    made: list[Path] = []
    for target, stem, paths in _figures(cap, targets, fig_dir):
        made += paths
        doc.add(
            "figure", f"{target}: latency vs offered rate (hockey stick), achieved vs offered, closed loop", image=stem
        )
    return doc, made


def add_capacity_section(
    doc: Document, cap: CapacityData | None, targets: Sequence[str], fig_dir: Path, run_id: str
) -> list[Path]:
    """Insert the capacity section right after Table 3 (before the next h2) and write
    capacity.md beside the figure folder; returns the figure files."""
    if cap is None or cap.empty:
        return []
    order = _order(cap, targets)
    fig_dir.parent.mkdir(parents=True, exist_ok=True)
    (fig_dir.parent / "capacity.md").write_text(capacity_markdown(cap, run_id, order), encoding="utf-8")
    section, made = _section(cap, order, fig_dir)
    heads = [i for i, b in enumerate(doc.blocks) if b.kind == "h2"]
    table3 = next((i for i in heads if doc.blocks[i].text.startswith("Table 3")), None)
    after = next((i for i in heads if table3 is not None and i > table3), len(doc.blocks))
    doc.blocks[after:after] = section.blocks
    return made


def capacity_only_report(
    run: RunData, cap: CapacityData | None, out_dir: Path, facts: Sequence[Sequence[str]]
) -> tuple[list[Path], list[Path], Path, Path]:
    """The whole report of a run that measured only the capacity search (``--modes capacity``).

    Returns (tables, figures, report.md, report.html), the fields of build's ReportFiles.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    fig_dir = out_dir / FIGURE_DIR
    cap = cap or load_capacity(run.path)
    targets = _order(cap, [t for t in run.meta.details.get("targets_order") or [] if t in cap.targets])
    doc = Document(f"servebench report: run {run.run_id}")
    meta = run.meta
    if meta.incomplete:
        doc.add(
            "p",
            f"**INCOMPLETE RUN** (status: {meta.status.value}): only the searches that "
            "finished before it stopped are shown.",
        )
    errors: Mapping[str, str] = meta.details.get("target_errors") or {}
    if errors:
        doc.add("p", "**Targets with problems:**")
        doc.add(
            "ul",
            items=[f"`{t}`: {str(m).strip().splitlines()[0] if str(m).strip() else ''}" for t, m in errors.items()],
        )
    doc.add("h2", "Run")
    doc.add("table", columns=["fact", "value"], rows=[list(r) for r in facts], align="ll")
    doc.add("p", "This run measured only the capacity search (`--modes capacity`): no Table 3.")
    section, figures = _section(cap, targets, fig_dir)
    doc.blocks += section.blocks
    table3 = out_dir / "table3.md"
    table3.write_text(
        f"# Table 3 (servebench run `{run.run_id}`)\n\nThis run measured only the capacity search "
        "(`--modes capacity`): no Table 3. See capacity.md.\n",
        encoding="utf-8",
    )
    capacity_md = out_dir / "capacity.md"
    capacity_md.write_text(capacity_markdown(cap, run.run_id, targets), encoding="utf-8")
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    md_path.write_text(to_markdown(doc, FIGURE_DIR), encoding="utf-8")
    html_path.write_text(to_html(doc, fig_dir), encoding="utf-8")
    return [table3, capacity_md], figures, md_path, html_path
