"""The capacity tables as text cells: one row per target, and the closed-loop sweep.

The same cells are printed by ``bench run`` (console), written to capacity.md and put in
report.md/html (:mod:`bench.report.capacity`), so they are computed once here, purely from
the frames of :mod:`bench.capacity.results`. A newcomer must be able to read a row without
the docs: the *offered* rate (what the capacity is: the Poisson rate the load generator
aimed at) is shown next to the *achieved* rate (successful completions per second measured
at it: it differs by Poisson noise and, near the knee, because completions lag arrivals),
the verdict carries its confidence, and the bracket says between which rates the capacity
lies and how the upper rate failed. Files written before the evidence columns existed (no
``confidence``) are shown with ``-`` where a figure is missing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from bench.capacity.results import CapacityData
from loadgen.capacity import short_reason
from loadgen.cells import cell_true

__all__ = ["capacity_heading", "capacity_legend", "capacity_table", "concurrency_table", "num", "rps"]


def num(value: Any) -> float:
    """A cell as a float (NaN when empty or not a number)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def rps(value: Any) -> str:
    v = num(value)
    return "-" if math.isnan(v) else f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _ms(value: Any) -> str:
    v = num(value)
    return "-" if math.isnan(v) else f"{v * 1000:.2f}"


def capacity_heading(cap: CapacityData) -> str:
    """ "Capacity under p99 <= 100 ms" (every objective of the run, normally one)."""
    objectives = list(dict.fromkeys(cap.capacity.get("objective", pd.Series(dtype=str)).astype(str)))
    return "Capacity under " + (" / ".join(objectives) if objectives else "a latency objective")


def _spread(values: np.ndarray) -> str:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return "-"
    if values.size == 1:
        return rps(values[0])
    return f"{rps(np.median(values))} ({rps(values.min())}-{rps(values.max())}, n={values.size})"


def _confidence(value: Any) -> str:
    c = num(value)
    return "" if math.isnan(c) else f" at {c * 100:.4g}%"


def _verdicts(part: pd.DataFrame) -> str:
    """``VALID at 95%`` or ``2x VALID, 1x UNCONFIRMED at 95%``."""
    verdicts = [str(v) for v in part["verdict"]]
    conf = _confidence(part["confidence"].iloc[0]) if "confidence" in part else ""
    counts = pd.Series(verdicts).value_counts()
    text = verdicts[0] if len(verdicts) == 1 else ", ".join(f"{n}x {v}" for v, n in counts.items())
    return text + conf


def _bracket(row: Any) -> str:
    """``176-192 (192: violated)``: the capacity lies between the met rate and the lowest rate
    violated above it (files from before 2026-12-07: the lowest rate not met)."""
    low, high = num(row.capacity_rps), num(row.upper_rps)
    how = str(getattr(row, "upper_decision", "") or "")
    how = "" if how in ("", "nan") else f" ({rps(high)}: {how})"
    if math.isnan(low) and math.isnan(high):
        return "-"
    if math.isnan(high):
        return f">= {rps(low)} (none violated)"
    if math.isnan(low):
        return f"< {rps(high)}{how}"
    return f"{rps(low)}-{rps(high)}{how}"


def _evidence(row: Any) -> str:
    """``p99 45.1 ms in [30.2, 98] ms; 0 of 1,632 over``: the confirmation's evidence."""
    n, h = num(getattr(row, "at_n", math.nan)), num(getattr(row, "at_exceed", math.nan))
    value = _ms(row.at_lat_objective_s)
    lo, hi = num(getattr(row, "at_lat_objective_lo_s", math.nan)), num(getattr(row, "at_lat_objective_hi_s", math.nan))
    if value == "-":
        return "-"
    if math.isnan(n):
        return value
    bounds = f" [{_ms(lo) if not math.isnan(lo) else '-'}, {_ms(hi) if not math.isnan(hi) else '>= max'}]"
    eff = num(getattr(row, "at_n_effective", math.nan))
    eff_text = "" if math.isnan(eff) or eff >= n - 0.5 else f", {eff:,.0f} effective"
    return f"{value}{bounds}; {int(h)} of {int(n):,} over{eff_text}"


def capacity_table(cap: CapacityData, targets: Sequence[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """One row per target: offered capacity (median, range over searches), achieved rate at
    it, bracket, verdict with confidence, the percentile with its bounds and the counts
    behind it, p50, the closed-loop best, probes and seconds, and notes."""
    frame = cap.capacity
    label = "objective"
    if not frame.empty and "percentile" in frame:
        label = f"p{num(frame['percentile'].iloc[0]):g}"
    columns = [
        "target",
        "capacity: offered (req/s)",
        "achieved at it (req/s)",
        "bracket (req/s)",
        "verdict",
        f"{label} at capacity (ms) [bounds]; evidence",
        "p50 at capacity (ms)",
        "closed loop best (req/s @ C)",
        "probes",
        "seconds",
        "note",
    ]
    rows = []
    order = list(targets or []) + [t for t in dict.fromkeys(frame["target"]) if t not in (targets or [])]
    for target in order:
        part = frame[frame["target"] == target]
        if part.empty:
            continue
        caps = part["capacity_rps"].to_numpy(float)
        best_c, best = part["closed_best_concurrency"].iloc[0], part["closed_best_rps"].iloc[0]
        closed = "-" if math.isnan(num(best)) else f"{rps(best)} @ {int(num(best_c))}"
        notes = []
        if any(cell_true(v) for v in part["client_bound"]):
            ceiling = num(part["client_ceiling_rps"].iloc[0])
            notes.append(f"possibly client-bound (>= 50 % of the client's {rps(ceiling)} req/s)")
        if not all(cell_true(v) for v in part["precision_reached"]):
            notes.append("; ".join(dict.fromkeys(short_reason(str(s)) for s in part["stop_reason"] if str(s))))
        one = len(part) == 1
        first = next(part.itertuples())
        achieved = part["at_achieved_rps"].to_numpy(float)
        rows.append(
            [
                target,
                _spread(caps),
                _spread(achieved) if np.isfinite(achieved).any() else "-",
                _bracket(first) if one else "; ".join(_bracket(r) for r in part.itertuples()),
                _verdicts(part),
                _evidence(first)
                if one
                else _ms(np.nanmedian(part["at_lat_objective_s"].to_numpy(float)))
                if part["at_lat_objective_s"].notna().any()
                else "-",
                _ms(np.nanmedian(part["at_lat_p50_s"].to_numpy(float))) if part["at_lat_p50_s"].notna().any() else "-",
                closed,
                str(int(part["probes"].sum())),
                f"{part['seconds'].sum():.1f}",
                "; ".join(notes),
            ]
        )
    return columns, rows


def capacity_legend(cap: CapacityData) -> list[str]:
    """The sentences a capacity table needs beside it (console, capacity.md, report)."""
    conf = cap.capacity["confidence"].dropna() if "confidence" in cap.capacity else pd.Series(dtype=float)
    level = f"{num(conf.iloc[0]) * 100:.4g} %" if not conf.empty else "the confidence recorded"
    lines = [
        "capacity: offered = the highest Poisson arrival rate the load generator offered at which the objective "
        "was met; achieved = successful completions per second measured at that rate (the confirmation probe): "
        "it differs from the offered rate by Poisson noise and, near the knee, because completions lag arrivals. "
        "The offered rate is the capacity.",
        f"verdict: VALID = a fresh confirmation probe at the capacity met the objective at {level} confidence "
        "(too few requests over the bound for a server that violates it to produce with probability "
        f"{'<= 1 - confidence' if conf.empty else f'<= {(1 - num(conf.iloc[0])) * 100:.4g} %'}); INVALID = it violated "
        "it; UNCONFIRMED = it stayed undecided or did not fit the caps; NOT_FOUND = no rate was met.",
        "bracket: the met rate and the lowest rate violated above it -- the capacity lies between them unless "
        "a verdict erred (runs before 2026-12-07: the lowest rate not met, undecided included). "
        "Bounds: distribution-free bounds of the percentile at the capacity; "
        "evidence: successful requests over the bound out of those judged (fewer 'effective' when latencies "
        "were autocorrelated).",
    ]
    if conf.empty and not cap.capacity.empty:
        lines.append(
            "this run was written before verdicts carried a confidence: its VALID meant only that one "
            "probe's percentile point estimate was under the bound."
        )
    return lines


def concurrency_table(cap: CapacityData, targets: Sequence[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """The closed-loop sweep: per target and concurrency, throughput and latency."""
    frame = cap.concurrency
    label = "objective"
    if not cap.capacity.empty and "percentile" in cap.capacity:
        label = f"p{num(cap.capacity['percentile'].iloc[0]):g}"
    columns = [
        "target",
        "concurrency",
        "throughput (req/s)",
        "p50 (ms)",
        f"{label} (ms)",
        "errors",
        "met",
        "near client ceiling",
        "stopped because",
    ]
    rows = []
    order = list(targets or []) + [t for t in dict.fromkeys(frame["target"]) if t not in (targets or [])]
    for target in order:
        for r in frame[frame["target"] == target].itertuples():
            rows.append(
                [
                    target,
                    str(int(r.concurrency)),
                    rps(r.throughput_rps),
                    _ms(r.lat_p50_s),
                    _ms(r.lat_objective_s),
                    str(int(num(r.errors))),
                    "yes" if cell_true(r.met) else "no",
                    "yes" if cell_true(r.near_client_ceiling) else "",
                    short_reason(str(r.stop or "")),
                ]
            )
    return columns, rows
