"""Build ``reports/<run-id>/`` from a run's CSVs and meta.json alone (no target running).

Why a separate step from measuring: raw rows first, statistics second, rendering last. A
report can be regenerated at any time, with other figures or the study overlay switched
off, and regenerating must give identical tables (nothing here reads the clock).

What the document says, top to bottom: warnings about the run (:func:`bench.report.runfacts.run_warnings`
is the one place to add one), the run's facts and sweep settings, Table 3 per mode, the
flagged steps in words, figures, per-target summaries, definitions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.capacity.results import split_capacity
from bench.report import figures
from bench.report.bounds import bounds_note, bounds_recorded, two_sided_from
from bench.report.capacity import add_capacity_section, capacity_only_report
from bench.report.document import Document, to_html, to_markdown
from bench.report.figures_rate import fig_rate
from bench.report.flags import annotate_flags, flag_legend, flag_sentences
from bench.report.runfacts import ceiling_text, meta_rows, run_warnings, sweep_rows, target_ceilings
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
from bench.report.timeline_section import TimelinePart, add_timeline_section, make_timeline, timeline_warnings
from bench.report.trialnoise import ORDER_NOTES_INTRO, noise_notes
from bench.results import RunData
from ground.figures import save_figure
from ground.runmeta import RunMeta
from loadgen.modes import Mode

__all__ = ["ReportFiles", "build_report", "ceiling_text", "closed_loop_modes", "table3_markdown"]

FIGURE_DIR = "figures"
OPEN_LOOP_MODES = tuple(m.value for m in Mode if m.open_loop)


@dataclass(frozen=True)
class ReportFiles:
    directory: Path
    tables: list[Path]
    figures: list[Path]
    report_md: Path
    report_html: Path


def closed_loop_modes(modes: Sequence[str]) -> list[str]:
    """Modes plotted against N (every mode but the open loop, which is plotted against rate)."""
    return [m for m in modes if m not in OPEN_LOOP_MODES]


def _mode_note(summary: pd.DataFrame, mode: str) -> str:
    if mode == "sequential":
        return " (the study's method: one request after another)"
    if mode == "rate":
        rates = sorted(set(summary.loc[summary["mode"] == "rate", "rate"]))
        return (
            " (open loop at " + ", ".join(f"{r:g}" for r in rates) + " req/s; the total is mostly the "
            "schedule, N / rate)"
        )
    return ""


def table3_markdown(run: RunData) -> str:
    """table3.md: the study's layout, one table per mode, sequential first, flags explained below."""
    ceiling = run.meta.details.get("client_ceiling")
    parts = [
        f"# Table 3 (servebench run `{run.run_id}`)\n",
        "Rows: number of requests N; columns: targets; cells: total seconds to answer all N "
        "requests (first send to last answer), mean over trials."
        + (f" `*` = throughput >= {FLAG_FRACTION:.0%} of the client's calibrated ceiling." if ceiling else "")
        + "\n",
    ]
    cells: list[str] = []
    for mode in modes_in(run.summary):
        columns, rows = table3_rows(run.summary, mode, run.targets, ceiling, target_ceilings(run.meta.details))
        cells += [c for row in rows for c in row[1:]]
        parts.append(f"## mode: {mode}{_mode_note(run.summary, mode)}\n")
        parts.append(markdown_table(columns, rows))
    legend = flag_legend(cells)
    if legend:
        parts.append("Marks:\n\n" + "\n".join(f"- {line}" for line in legend) + "\n")
        sentences = flag_sentences(run.summary, run.targets, modes_in(run.summary))
        parts.append("Flagged steps:\n\n" + "\n".join(f"- {s}" for s in sentences) + "\n")
    caution, notes = noise_notes(run)
    if caution:
        parts.insert(2, f"> {caution}\n")
    if notes:
        parts.append(ORDER_NOTES_INTRO + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    return "\n".join(parts)


def _model_accuracy(meta: RunMeta) -> float | None:
    accuracy = (meta.details.get("model") or {}).get("accuracy")
    try:
        return float(accuracy["torch"]) if isinstance(accuracy, Mapping) and "torch" in accuracy else None
    except (TypeError, ValueError):
        return None


def build_report(
    run: RunData, out_dir: Path, *, study: pd.DataFrame | None = None, study_mode: str = "sequential"
) -> ReportFiles:
    """Write table3.md, figures (PNG + SVG), report.md and a self-contained report.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fig_dir = out_dir / FIGURE_DIR
    run, capacity = split_capacity(run)  # capacity-search rows are not Table 3 steps (bench/report/capacity.py)
    if run.summary.empty:
        return ReportFiles(out_dir, *capacity_only_report(run, capacity, out_dir, meta_rows(run.meta)))
    summary, targets, modes = run.summary, run.targets, modes_in(run.summary)
    closed = closed_loop_modes(modes)
    ceiling = run.meta.details.get("client_ceiling")
    means = step_means(summary)
    study = study[study["target"].isin(targets)] if study is not None else None
    if study is not None and study.empty:
        study = None

    table3_path = out_dir / "table3.md"
    table3_path.write_text(table3_markdown(run), encoding="utf-8")

    made: list[Path] = []
    shown: list[tuple[str, str]] = []  # (stem, caption) in document order

    def save(fig: Any, stem: str, caption: str) -> None:
        made.extend(save_figure(fig, fig_dir / stem, figures.REPORT_FORMATS))
        shown.append((stem, caption))

    if closed:
        save(
            figures.fig_total_time(
                means, targets, closed, study, study_mode, ceiling, by_target=target_ceilings(run.meta.details)
            ),
            "fig21_total_time",
            "Figure 21 style: total time vs number of requests (log-log)"
            + ("; dashed = the study's Table 3" if study is not None and study_mode in closed else ""),
        )
        save(
            figures.fig_latency_percentiles(means, targets, closed, recorded=bounds_recorded(summary)),
            "latency_percentiles",
            "Per-request latency p50/p90/p99 vs N with their 95 % bounds (bars; a hollow triangle is a lower "
            "bound only: too few answers for an upper one)",
        )
        save(
            figures.fig_throughput(means, targets, closed, ceiling, by_target=target_ceilings(run.meta.details)),
            "throughput",
            "Throughput vs N (the client's calibrated ceiling only at the concurrencies it was measured: a "
            "grey diamond on the axis, or a ▲ on the top edge when it is far above every target)",
        )
    if "rate" in modes:
        save(
            fig_rate(means, targets, recorded=bounds_recorded(summary)),
            "rate_response",
            "Open loop: latency p50/p99 (bars: 95 % bounds; a hollow triangle is a lower bound only) and "
            "achieved throughput vs offered rate",
        )
    # the timeline first: its pass over requests.csv.gz also builds the latency digest
    timeline = make_timeline(run, fig_dir)  # None unless the run has long steps or an outage
    if timeline is not None:
        made += timeline.made
    latencies = run.latencies()  # read in bounded chunks: exact, one array per step
    has_cdf = bool(latencies)
    if has_cdf:
        save(
            figures.fig_latency_cdf(latencies, targets, modes),
            "latency_cdf",
            "Latency CDF at the largest N (successful requests)",
        )
    save(
        figures.fig_errors_accuracy(summary, targets, modes, _model_accuracy(run.meta)),
        "errors_accuracy",
        "Failed requests, and answers correct (of those answered) per target",
    )

    doc = _document(run, targets, modes, study, study_mode, ceiling, shown, has_cdf, timeline)
    made += add_capacity_section(doc, capacity, targets, fig_dir, run.run_id)  # also writes capacity.md
    md_path, html_path = out_dir / "report.md", out_dir / "report.html"
    md_path.write_text(to_markdown(doc, FIGURE_DIR), encoding="utf-8")
    html_path.write_text(to_html(doc, fig_dir), encoding="utf-8")
    return ReportFiles(out_dir, [table3_path], made, md_path, html_path)


def _document(
    run: RunData,
    targets: list[str],
    modes: list[str],
    study: pd.DataFrame | None,
    study_mode: str,
    ceiling: Mapping[str, Any] | None,
    shown: list[tuple[str, str]],
    has_cdf: bool,
    timeline: TimelinePart | None = None,
) -> Document:
    meta = run.meta
    doc = Document(f"servebench report: run {run.run_id}")
    flagged = annotate_flags(run.summary)
    n_flagged = int((flagged["flag_errors"] | flagged["flag_saturated"]).sum())
    caution, notes = noise_notes(run)
    warnings = run_warnings(meta, n_flagged, caution=caution, out_of_order=len(notes)) + timeline_warnings(timeline)
    if warnings:
        doc.add("warnings", "Warnings about this run:", items=warnings)

    doc.add("h2", "Run")
    doc.add("table", columns=["fact", "value"], rows=meta_rows(meta), align="ll")
    if meta.details.get("sweep"):
        doc.add(
            "table", "Sweep settings:", columns=["setting", "value"], rows=sweep_rows(meta.details["sweep"]), align="ll"
        )
    descs = meta.details.get("targets") or {}
    if descs:
        doc.add(
            "table",
            "Targets as described when they started:",
            columns=["target", "description"],
            rows=[
                [t, ", ".join(_description_item(k, v) for k, v in d.items() if k != "name")] for t, d in descs.items()
            ],
            align="ll",
        )

    _table3_section(doc, run, targets, modes, study, study_mode, ceiling)
    _flagged_section(doc, run, targets, modes)

    doc.add("h2", "Figures")
    for stem, caption in shown:
        doc.add("figure", caption, image=stem)
    if not has_cdf:
        doc.add("p", "No requests.csv.gz in this run: the latency CDF needs per-request records.")
    if timeline is not None:
        add_timeline_section(doc, timeline)

    doc.add("h2", "Per-target summary")
    for mode in modes:
        columns, rows = target_summary_table(run.summary, mode, targets, ceiling, target_ceilings(run.meta.details))
        what = (
            "offered and achieved rate; " if mode == "rate" else ""
        ) + "means over trials; latency over successful requests, with 95 % bounds"
        doc.add(
            "table",
            f"mode `{mode}` ({what}):",
            columns=columns,
            rows=rows,
            align="".join("l" if c in ("target", "notes") else "r" for c in columns),
        )
    doc.add("p", bounds_note(bounds_recorded(run.summary)))
    columns, rows = error_accuracy_table(run.summary, targets)
    doc.add(
        "table",
        "Failed requests and answers correct over all steps (the digit the model answered was the "
        "image's label; as a share of the requests sent, where a failed request is never correct, "
        "and of those answered; a wrong digit is not a failed request):",
        columns=columns,
        rows=rows,
    )
    _definitions(doc, meta, ceiling)
    return doc


def _description_item(key: str, value: Any) -> str:
    """One ``key=value`` of a target's description; its start-up time in words (a bare
    ``start_s=61.5`` was a time figure without a label)."""
    if key == "start_s":
        try:
            return f"start-up took {float(value):.1f} s (launch until ready)"
        except (TypeError, ValueError):
            pass
    return f"{key}={value}"


def _table3_section(
    doc: Document,
    run: RunData,
    targets: list[str],
    modes: list[str],
    study: pd.DataFrame | None,
    study_mode: str,
    ceiling: Mapping[str, Any] | None,
) -> None:
    doc.add("h2", "Table 3: total time to answer N requests")
    doc.add(
        "p",
        "Rows: number of requests N; columns: targets; cells: seconds from the first send to the last "
        "answer, mean over trials (the study's Table 3 layout)."
        + (
            f" `*` marks points whose throughput is >= {FLAG_FRACTION:.0%} of the client's calibrated "
            "ceiling: there the load generator, not the target, may be the limit."
            if ceiling
            else ""
        ),
    )
    caution, notes = noise_notes(run)
    if caution:  # above the tables: the reader meets it before the numbers
        doc.add("p", "Note: " + caution)
    cells: list[str] = []
    for mode in modes:
        columns, rows = table3_rows(run.summary, mode, targets, ceiling, target_ceilings(run.meta.details))
        cells += [c for row in rows for c in row[1:]]
        note = _mode_note(run.summary, mode) if mode in OPEN_LOOP_MODES else ""
        doc.add("table", f"mode `{mode}`{note}:", columns=columns, rows=rows, align="l" + "r" * (len(columns) - 1))
    legend = flag_legend(cells)
    if legend:
        doc.add("p", 'Marks in the cells (the steps are listed under "Flagged steps"):')
        doc.add("ul", items=legend)
    else:
        doc.add(
            "p",
            "No cell is flagged: every request of every step was answered"
            + (" and every open-loop step kept up with its offered rate." if "rate" in modes else "."),
        )
    if notes:
        doc.add("p", ORDER_NOTES_INTRO)
        doc.add("ul", items=notes)
    if study is not None and study_mode in modes:
        columns, rows = study_side_by_side(
            run.summary, study, [t for t in targets if t in set(study["target"])], study_mode
        )
        doc.add(
            "table",
            f"This run beside the study's Table 3 (mode `{study_mode}`; the study's numbers are "
            "transcribed from the paper, measured on its clouds, not here):",
            columns=columns,
            rows=rows,
            align="l" + "r" * (len(columns) - 1),
        )


def _flagged_section(doc: Document, run: RunData, targets: list[str], modes: list[str]) -> None:
    sentences = flag_sentences(run.summary, targets, modes)
    if not sentences:
        return
    doc.add("h2", "Flagged steps")
    doc.add(
        "p",
        "These steps must not be read as plain results. A step with some failed requests keeps its "
        "numbers, which describe only the requests that succeeded (marked ✗ in tables, hollow in "
        'figures); a step where every request failed has no result at all ("failed: ..." in tables, an '
        "X edged red on the bottom edge of figures); a saturated open-loop step measured a queue (⚠ in tables, "
        "crossed in figures). Averaged cells are flagged when any of their trials is.",
    )
    doc.add("ul", items=sentences)


def _definitions(doc: Document, meta: RunMeta, ceiling: Mapping[str, Any] | None) -> None:
    doc.add("h2", "Definitions")
    doc.add(
        "ul",
        items=[
            "total time: from the first request's intended send to the last completion of the step (seconds).",
            "latency: completion minus intended send time of one request; percentiles over successful requests, "
            "exact from raw records (linear interpolation between order statistics).",
            "percentile bounds: with 95 % confidence the true percentile lies between two order statistics of "
            "the step's answers, whose ranks follow from the binomial distribution, whatever the latency "
            "distribution (assuming independent requests). Where no order statistic bounds it from above -- p99 "
            f"of fewer than {two_sided_from('p99')} answers, p90 of fewer than {two_sided_from('p90')} -- the "
            "cell shows only the lower bound ('≥'), never a number that looks measured; this replaces the earlier "
            "fixed rule (p90 from 10, p99 from 100 answers). See docs/reading-the-report.md.",
            "throughput: successful requests in the step / total time (failures are not counted as served).",
            "sequential: one request at a time (the study's method); concurrent: N in flight at once (a burst); "
            "rate: open loop at a fixed offered rate (achieved = successful answers per second; saturated = "
            "the target did not keep up).",
            "answers correct: the digit a target answered is the image's label; as a share of the requests sent "
            "(a failed request is never correct; summary.csv's accuracy) or of those answered (accuracy_ok). Not a "
            'request success rate: failed requests are counted under "failed".',
            "time taken by bench run (Run table): from the start of its work to the last target's stop, with its "
            "parts: the model check (or training, on a first run), the client calibration, and the targets' "
            "start-up, sweep and stop -- the run's own span; the tables and this report were written after it.",
            f"client ceiling: {ceiling_text(ceiling)}; measured at those concurrencies only, so the throughput "
            "figure draws it only there (an estimate between them, used to ring near-ceiling points, is not drawn).",
            "CPU plan: the load generator runs on the client CPUs, every stand-in on the stand-in CPUs; workers or "
            "replicas beyond the number of stand-in CPUs share them and add no parallelism.",
            "targets ran one at a time (start, sweep, stop), so they never competed for CPU.",
        ],
    )
