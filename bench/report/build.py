"""Build ``reports/<run-id>/`` from a run's CSVs and meta.json alone (no target running).

Why a separate step from measuring: raw rows first, statistics second, rendering last. A
report can be regenerated at any time, with other figures or the study overlay switched
off, and regenerating must give identical tables (nothing here reads the clock).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.report import figures
from bench.report.capacity import add_capacity_section, capacity_only_report, split_capacity
from bench.report.document import Document, kv_rows, to_html, to_markdown
from bench.report.tables import (
    FLAG_FRACTION,
    error_accuracy_table,
    markdown_table,
    modes_in,
    step_means,
    study_side_by_side,
    table3_rows,
    target_summary_table,
)
from bench.results import RunData

__all__ = ["ReportFiles", "build_report", "ceiling_text", "table3_markdown"]

FIGURE_DIR = "figures"


@dataclass(frozen=True)
class ReportFiles:
    directory: Path
    tables: list[Path]
    figures: list[Path]
    report_md: Path
    report_html: Path


def table3_markdown(run: RunData) -> str:
    """table3.md: the study's layout, one table per mode, sequential first."""
    ceiling = run.meta.get("client_ceiling")
    parts = [f"# Table 3 (servebench run `{run.run_id}`)\n",
             "Rows: number of requests N; columns: targets; cells: total seconds to answer all N "
             "requests (first send to last answer), mean over trials."
             + (f" `*` = throughput >= {FLAG_FRACTION:.0%} of the client's calibrated ceiling." if ceiling else "")
             + "\n"]
    for mode in modes_in(run.summary):
        columns, rows = table3_rows(run.summary, mode, run.targets, ceiling)
        note = " (the study's method: one request after another)" if mode == "sequential" else ""
        if mode == "rate" and "rate" in run.summary:
            rates = sorted(set(run.summary.loc[run.summary["mode"] == "rate", "rate"]))
            note = " (open loop at " + ", ".join(f"{r:g}" for r in rates) + " req/s)"
        parts.append(f"## mode: {mode}{note}\n")
        parts.append(markdown_table(columns, rows))
    return "\n".join(parts)


def ceiling_text(ceiling: Mapping[str, Any] | None) -> str:
    if not ceiling:
        return "not measured (no calibration recorded): near-ceiling points cannot be flagged"
    points = ", ".join(f"c={k}: {float(v):,.0f} req/s" for k, v in sorted(
        (ceiling.get("rps_by_concurrency") or {}).items(), key=lambda kv: float(kv[0])))
    return f"{ceiling.get('engine', '?')} engine: {points}"


def _first_line(text: str, limit: int = 300) -> str:
    line = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _meta_rows(meta: Mapping[str, Any]) -> list[list[str]]:
    host = meta.get("host") or {}
    engine = meta.get("engine") or {}
    model = meta.get("model") or {}
    git = meta.get("git") or {}
    sweep = meta.get("sweep") or {}
    facts = {
        "run id": meta.get("run_id", "?"),
        "status": f"{meta.get('status', '?')} (complete: {meta.get('complete')})",
        "started (UTC)": meta.get("started_utc", "?"),
        "finished (UTC)": meta.get("finished_utc") or "-",
        "host CPU": f"{host.get('cpu_model', '?')} ({host.get('cpu_count', '?')} CPUs, {host.get('cpus_usable', '?')} usable)",
        "OS / Python": f"{host.get('os', '?')} / Python {host.get('python', '?')}",
        "engine": f"{engine.get('name', '?')} {engine.get('version', '')} (chosen: {engine.get('chosen_by', '?')})",
        "client ceiling": ceiling_text(meta.get("client_ceiling")),
        "CPU plan": str(meta.get("cpu_plan") or "-"),
        "execution": meta.get("execution", "-"),
        "sweep": ", ".join(f"{k}={v}" for k, v in sweep.items()) or "-",
        "config sha256": (meta.get("config") or {}).get("sha256", "?"),
        "model": f"{model.get('dir', '?')} (TorchScript sha256 {str(model.get('torchscript_sha256', '?'))[:16]}...)",
        "git": f"{git.get('commit', '?')}{' (dirty tree)' if git.get('dirty') else ''}",
    }
    return kv_rows(facts)


def build_report(run: RunData, out_dir: Path, *, study: pd.DataFrame | None = None,
                 study_mode: str = "sequential") -> ReportFiles:
    """Write table3.md, figures (PNG + SVG), report.md and a self-contained report.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fig_dir = out_dir / FIGURE_DIR
    run, capacity = split_capacity(run)  # capacity-search rows are not Table 3 steps (bench/report/capacity.py)
    if run.summary.empty:
        return ReportFiles(out_dir, *capacity_only_report(run, capacity, out_dir, _meta_rows(run.meta)))
    summary, targets, modes = run.summary, run.targets, modes_in(run.summary)
    ceiling = run.meta.get("client_ceiling")
    means = step_means(summary)
    study = study[study["target"].isin(targets)] if study is not None else None
    if study is not None and study.empty:
        study = None

    table3_path = out_dir / "table3.md"
    table3_path.write_text(table3_markdown(run), encoding="utf-8")

    made: list[Path] = []
    made += figures.save_figure(
        figures.fig_total_time(means, targets, modes, study, study_mode, ceiling), fig_dir, "fig21_total_time")
    made += figures.save_figure(figures.fig_latency_percentiles(means, targets, modes), fig_dir, "latency_percentiles")
    made += figures.save_figure(figures.fig_throughput(means, targets, modes, ceiling), fig_dir, "throughput")
    has_cdf = run.requests is not None and not run.requests.empty
    if has_cdf:
        made += figures.save_figure(figures.fig_latency_cdf(run.requests, targets, modes), fig_dir, "latency_cdf")
    made += figures.save_figure(figures.fig_errors_accuracy(summary, targets, modes), fig_dir, "errors_accuracy")

    doc = _document(run, targets, modes, study, study_mode, ceiling, has_cdf)
    made += add_capacity_section(doc, capacity, targets, fig_dir, run.run_id)  # also writes capacity.md
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    md_path.write_text(to_markdown(doc, FIGURE_DIR), encoding="utf-8")
    html_path.write_text(to_html(doc, fig_dir), encoding="utf-8")
    return ReportFiles(out_dir, [table3_path], made, md_path, html_path)


def _document(run: RunData, targets: list[str], modes: list[str], study: pd.DataFrame | None,
              study_mode: str, ceiling: Mapping[str, Any] | None, has_cdf: bool) -> Document:
    meta = run.meta
    doc = Document(f"servebench report: run {run.run_id}")
    if not meta.get("complete", True):
        doc.add("p", f"**INCOMPLETE RUN** (status: {meta.get('status', 'unknown')}): the tables hold only the "
                     "steps measured before it stopped.")
    errors = meta.get("target_errors") or {}
    if errors:
        doc.add("p", "**Targets with problems:**")
        doc.add("ul", items=[f"`{t}`: {_first_line(msg)}" for t, msg in errors.items()])
        doc.add("p", "Full messages (with the stand-ins' log tails) are in the run's meta.json and logs/ folder.")
    doc.add("h2", "Run")
    doc.add("table", columns=["fact", "value"], rows=_meta_rows(meta), align="ll")
    descs = meta.get("targets") or {}
    if descs:
        doc.add("table", "Targets as described when they started:", columns=["target", "description"],
                rows=[[t, ", ".join(f"{k}={v}" for k, v in d.items() if k != "name")] for t, d in descs.items()],
                align="ll")

    doc.add("h2", "Table 3: total time to answer N requests")
    doc.add("p", "Rows: number of requests N; columns: targets; cells: seconds from the first send to the last "
                 "answer, mean over trials (the study's Table 3 layout)."
                 + (f" `*` marks points whose throughput is >= {FLAG_FRACTION:.0%} of the client's calibrated "
                    "ceiling: there the load generator, not the target, may be the limit." if ceiling else ""))
    for mode in modes:
        columns, rows = table3_rows(run.summary, mode, targets, ceiling)
        doc.add("table", f"mode `{mode}`:", columns=columns, rows=rows)
    if study is not None and study_mode in modes:
        columns, rows = study_side_by_side(run.summary, study, [t for t in targets if t in set(study["target"])], study_mode)
        doc.add("table", f"This run beside the study's Table 3 (mode `{study_mode}`; the study's numbers are "
                         "transcribed from the paper, measured on its clouds, not here):", columns=columns, rows=rows)

    doc.add("h2", "Figures")
    doc.add("figure", "Figure 21 style: total time vs number of requests (log-log)"
                      + ("; dashed = the study's Table 3" if study is not None else ""), image="fig21_total_time")
    doc.add("figure", "Per-request latency p50/p90/p99 vs N", image="latency_percentiles")
    doc.add("figure", "Throughput vs N (dotted: the client's calibrated ceiling)", image="throughput")
    if has_cdf:
        doc.add("figure", "Latency CDF at the largest N (successful requests)", image="latency_cdf")
    else:
        doc.add("p", "No requests.csv.gz in this run: the latency CDF needs per-request records.")
    doc.add("figure", "Errors and accuracy per target", image="errors_accuracy")

    doc.add("h2", "Per-target summary")
    for mode in modes:
        columns, rows = target_summary_table(run.summary, mode, targets, ceiling)
        doc.add("table", f"mode `{mode}` (means over trials; latency over successful requests):",
                columns=columns, rows=rows)
    columns, rows = error_accuracy_table(run.summary, targets)
    doc.add("table", "Errors and accuracy over all steps (accuracy = correct answers / requests sent; "
                     "a wrong digit is not an error but lowers accuracy):", columns=columns, rows=rows)

    doc.add("h2", "Definitions")
    doc.add("ul", items=[
        "total time: from the first request's intended send to the last completion of the step (seconds).",
        "latency: completion minus intended send time of one request; percentiles over successful requests, "
        "exact from raw records.",
        "throughput: successful requests in the step / total time (failures are not counted as served).",
        "sequential: one request at a time (the study's method); concurrent: N in flight at once (a burst); "
        "rate: open loop at a fixed request rate.",
        f"client ceiling: {ceiling_text(ceiling)}.",
        "CPU plan: the load generator runs on the client CPUs, every stand-in on the stand-in CPUs "
        f"({(meta.get('cpu_plan') or {}).get('standins') or 'unpinned'}); workers or replicas beyond the number "
        "of stand-in CPUs share them and add no parallelism.",
        "targets ran one at a time (start, sweep, stop), so they never competed for CPU.",
    ])
    return doc
