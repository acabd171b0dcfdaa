"""The report's "Timeline" section: when it is shown, reading the records for it, its figures and lines.

When (:func:`wants_timeline`): only where a timeline says something a per-step aggregate
cannot -- the run has an open-loop step of at least :data:`MIN_RATE_STEP_S` (20 s), or any
step of at least :data:`MIN_STEP_S` (2 min), or a target that answered nothing for a while
(a step with at least 3 refused/reset/timed-out requests in the summary, then
confirmed from the records). The study's sweep
(closed-loop steps of seconds) gets no timeline, so its report does not grow noise.

How the records are read: :meth:`bench.results.load.RunData.scan_requests`, one bounded
chunk at a time into :class:`bench.report.timeline_stats.TimelineAccumulator` (fixed memory
per target: windows x histogram buckets, plus at most 100,000 scatter points); the same pass
builds the report's latency digest, so a long run's requests.csv.gz is read once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.report.document import Document
from bench.report.drift import DRIFT_MIN_S, DRIFT_THRESHOLD, N_BATCHES, WARMUP_FRACTION, DriftResult
from bench.report.figures_timeline import fig_scatter, fig_timeline, outage_sentence
from bench.report.plotting import target_colors
from bench.report.timeline_hist import RELATIVE_ERROR, min_count_for
from bench.report.timeline_stats import (
    OUTAGE_CLASSES,
    OUTAGE_MIN_REQUESTS,
    OUTAGE_MIN_S,
    SCATTER_MAX,
    TIMELINE_COLUMNS,
    StepSpan,
    TargetTimeline,
    TimelineAccumulator,
)
from bench.results import RunData
from bench.results.chunks import ReadError
from ground.figures import save_figure
from loadgen.stats import parse_error_counts

__all__ = [
    "MIN_RATE_STEP_S",
    "MIN_STEP_S",
    "TimelinePart",
    "add_timeline_section",
    "make_timeline",
    "timeline_warnings",
    "wants_timeline",
]

MIN_RATE_STEP_S = 20.0
MIN_STEP_S = 120.0
FORMATS = ("png", "svg")


@dataclass
class TimelinePart:
    """What the section shows: per target its timeline, the figure stems made, drift results."""

    timelines: list[TargetTimeline]
    figures: list[tuple[str, str]] = field(default_factory=list)  # (stem, caption)
    drift: list[tuple[StepSpan, list[DriftResult]]] = field(default_factory=list)
    made: list[Path] = field(default_factory=list)
    unplaced: int = 0


def _has_outage_errors(summary: pd.DataFrame) -> bool:
    """A step with at least OUTAGE_MIN_REQUESTS refused/reset/timed-out requests (an outage is possible)."""
    column = summary.get("errors_by_class")
    if column is None:
        return False
    for text in column.dropna():
        try:
            counts = parse_error_counts(str(text))
        except ValueError:
            continue
        if sum(counts.get(cls, 0) for cls in OUTAGE_CLASSES) >= OUTAGE_MIN_REQUESTS:
            return True
    return False


def wants_timeline(summary: pd.DataFrame) -> bool:
    """The rule above, from the summary rows alone."""
    if summary.empty:
        return False
    total = pd.to_numeric(summary["total_s"], errors="coerce").fillna(0.0)
    rate_long = ((summary["mode"] == "rate") & (total >= MIN_RATE_STEP_S)).any()
    return bool(rate_long or (total >= MIN_STEP_S).any() or _has_outage_errors(summary))


def _spans(summary: pd.DataFrame) -> list[StepSpan]:
    spans = []
    for row in summary.itertuples(index=False):
        key = (row.target, row.mode, row.n_requests, row.concurrency, row.rate, row.trial)
        started = float(row.started_at) if pd.notna(row.started_at) else math.nan
        spans.append(StepSpan(key, started, float(row.total_s) if pd.notna(row.total_s) else math.nan))
    return spans


def run_slo(details: Mapping[str, Any]) -> tuple[float, float] | None:
    """(quantile in (0, 1), bound in s) of the run's objective from meta.json's ``slo``
    (``bench run --slo``, or the capacity search's); None without one or when unreadable."""
    slo = details.get("slo") if isinstance(details, Mapping) else None
    if not isinstance(slo, Mapping):
        return None
    try:
        percentile, bound = float(slo["percentile"]), float(slo["bound_s"])
    except (KeyError, TypeError, ValueError):
        return None
    if not (0 < percentile < 100 and math.isfinite(bound) and bound > 0):
        return None
    return percentile / 100.0, bound


def make_timeline(run: RunData, fig_dir: Path) -> TimelinePart | None:
    """Read the records for the timeline and draw its figures; None when the rule says no
    timeline (or the run has no records, or a long step never had an outage to show)."""
    if not wants_timeline(run.summary) or (run.requests_file is None and run.request_frame is None):
        return None
    long_steps = wants_timeline(run.summary.assign(errors_by_class=""))
    acc = TimelineAccumulator(_spans(run.summary), drift_min_s=DRIFT_MIN_S)
    try:  # one pass: the report's latency digest is built from the same chunks
        run.scan_requests(acc.add, TIMELINE_COLUMNS)
    except ReadError:
        return None  # the rest of the report names an unreadable requests file
    timelines = acc.finish()
    if not long_steps and not any(t.outages for t in timelines):
        return None
    part = TimelinePart(timelines, unplaced=len(acc.unplaced))
    colors = target_colors(run.targets)
    slo = run_slo(run.meta.details)
    for tl in timelines:
        stem = f"timeline_{_safe(tl.target)}"
        part.made += save_figure(fig_timeline(tl, colors.get(tl.target), slo), fig_dir / stem, FORMATS)
        part.figures.append((stem, f"{tl.target}: offered and achieved rate, p50/p99 and errors over the run"))
        if tl.scatter is not None:
            stem = f"scatter_{_safe(tl.target)}"
            part.made += save_figure(fig_scatter(tl, colors.get(tl.target)), fig_dir / stem, FORMATS)
            part.figures.append((stem, f"{tl.target}: latency of every request against its send time"))
        for key, batches in tl.drift.items():
            step = next(s for s in tl.steps if s.key == key)
            part.drift.append((step, batches.results()))
    return part


def timeline_warnings(part: TimelinePart | None) -> list[str]:
    """Lines for the report's warnings: each outage, and each step whose latency drifted."""
    if part is None:
        return []
    lines = [outage_sentence(o, t.t0) for t in part.timelines for o in t.outages]
    for step, results in part.drift:
        drifted = [r.describe() for r in results if r.flagged]
        if drifted:
            lines.append(f"{step.key[0]}, {step.label}: latency drifted ({'; '.join(drifted)}); see Timeline.")
    return lines


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def add_timeline_section(doc: Document, part: TimelinePart) -> None:
    """The section's blocks: how to read it, outages, drift, the figures."""
    doc.add("h2", "Timeline")
    widths = ", ".join(f"{t.target} {t.window_s:g} s" for t in part.timelines)
    doc.add(
        "p",
        "The run over the wall clock, per target (windows: "
        + widths
        + "). Offered = intended sends per second (from each request's schedule), achieved = answers per "
        "second; p50/p99 of the successful requests sent in a window, from a log histogram within "
        f"{RELATIVE_ERROR:.0%} of the exact value, drawn only where the window has enough of them for the "
        f"percentile's bounds (p50: {min_count_for(0.5)}, p99: {min_count_for(0.99)}). Red bands: outages. "
        f"The scatter (targets with at most {SCATTER_MAX:,} requests) is every request.",
    )
    outages = [(o, t.t0) for t in part.timelines for o in t.outages]
    if outages:
        doc.add(
            "p",
            f"Outages (at least {OUTAGE_MIN_REQUESTS} consecutive requests refused, reset or timed out and "
            f"at least {OUTAGE_MIN_S:g} s without an answer):",
        )
        doc.add("ul", items=[outage_sentence(o, t0) for o, t0 in outages])
    if part.drift:
        flagged = [(s, r) for s, rs in part.drift for r in rs if r.flagged]
        doc.add(
            "p",
            f"Drift (steps of at least {DRIFT_MIN_S:g} s): the last quarter against the first, after a warm-up "
            f"of {WARMUP_FRACTION:.0%} of the step; each quarter is {N_BATCHES // 4} batches and the interval is "
            f"Welch's t over the batches' log percentiles (97.5 % each). Flagged only when the whole interval lies "
            f"beyond ±{DRIFT_THRESHOLD:.0%} (steady: the whole interval within it)."
            + (" **Drift flagged** in " + str(len(flagged)) + " percentile(s)." if flagged else " Nothing flagged."),
        )
        doc.add(
            "table",
            columns=["target", "step", "p50", "p99"],
            rows=[[s.key[0], s.label, *(r.describe().split(": ", 1)[1] for r in rs)] for s, rs in part.drift],
            align="llll",
        )
    if part.unplaced:
        doc.add("p", f"{part.unplaced} step(s) have no start time in summary.csv and are not on the timeline.")
    for stem, caption in part.figures:
        doc.add("figure", caption, image=stem)
