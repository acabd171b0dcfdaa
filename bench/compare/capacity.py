"""Compare the capacity searches of two runs: ratio of capacities, and how sure we are.

Why not a significance test: a run holds few searches per target (``[capacity] repeats``,
typically 1-5), and a search's answer is a rate on a grid, not a sample of a smooth
distribution. What repeated searches do show is their *spread*, so the uncertainty of the
ratio B/A is stated as the range it can take over the searches, ``[min B / max A,
max B / min A]``, and a change counts only when the two runs' ranges do not overlap and
the median ratio moves by at least ``threshold_pct``. With one search on either side there
is no spread to judge by: the ratio is shown and the verdict says "single search".
A capacity below the reference is the regression (`--fail-on-regression`).

Pure: frames in, :class:`CapacityComparison` rows out; rendering is in
:mod:`bench.compare.capacity_show`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.capacity.results import CAPACITY_MODES, CapacityData, load_capacity
from bench.results import RunData
from loadgen.cells import cell_true

__all__ = [
    "CAPACITY_COMPARISON_COLUMNS",
    "CANNOT_JUDGE",
    "CapacityComparison",
    "compare_capacities",
    "compare_capacity_frames",
    "without_capacity",
]


@dataclass(frozen=True)
class CapacityComparison:
    target: str
    objective: str  # the common objective, or "A: ... / B: ..." when they differ
    a_rps: float  # median capacity over A's searches
    b_rps: float
    ratio: float  # b / a: < 1 means B sustains less load
    ratio_low: float  # min B / max A
    ratio_high: float  # max B / min A
    n_a: int  # searches that found a capacity
    n_b: int
    a_verdicts: str  # e.g. "3x VALID"
    b_verdicts: str
    notes: str  # client-bound, INVALID, ...
    verdict: str  # higher | lower | within spread | below threshold | single search | no capacity | objectives differ

    @property
    def is_regression(self) -> bool:
        return self.verdict == "lower"

    def as_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Verdicts a regression gate cannot judge (bench.compare.gate's rule: never pass blind).
CANNOT_JUDGE = frozenset({"single search", "no capacity", "objectives differ"})

CAPACITY_COMPARISON_COLUMNS = tuple(f.name for f in dataclasses.fields(CapacityComparison))


def without_capacity(run: RunData) -> RunData:
    """The run without its capacity rows: what the step-by-step comparison compares."""
    return run.without_modes(CAPACITY_MODES)


def _verdict_counts(part: pd.DataFrame) -> str:
    counts = part["verdict"].astype(str).value_counts()
    return ", ".join(f"{n}x {v}" for v, n in counts.items()) or "-"


def _notes(side: str, part: pd.DataFrame) -> list[str]:
    notes = []
    if part["client_bound"].map(cell_true).any():
        notes.append(f"{side} possibly client-bound")
    bad = part[part["verdict"].astype(str) != "VALID"]
    if not bad.empty:
        notes.append(f"{side}: {_verdict_counts(bad)}")
    return notes


def compare_capacity_frames(
    a: pd.DataFrame, b: pd.DataFrame, *, threshold_pct: float = 5.0, order: list[str] | None = None
) -> list[CapacityComparison]:
    """One comparison per target that both capacity.csv frames have."""
    if threshold_pct < 0:
        raise ValueError(f"threshold must be >= 0 %, got {threshold_pct}")
    common = [
        t
        for t in dict.fromkeys(list(order or []) + list(a["target"]))
        if (b["target"] == t).any() and (a["target"] == t).any()
    ]
    out = []
    for target in common:
        pa, pb = a[a["target"] == target], b[b["target"] == target]
        obj_a, obj_b = set(pa["objective"].astype(str)), set(pb["objective"].astype(str))
        objective = (
            " / ".join(sorted(obj_a))
            if obj_a == obj_b
            else f"A: {', '.join(sorted(obj_a))} / B: {', '.join(sorted(obj_b))}"
        )
        ca = pa["capacity_rps"].to_numpy(float)
        cb = pb["capacity_rps"].to_numpy(float)
        ca, cb = ca[~np.isnan(ca)], cb[~np.isnan(cb)]
        notes = _notes("A", pa) + _notes("B", pb)
        nan = math.nan
        if ca.size == 0 or cb.size == 0:
            out.append(
                CapacityComparison(
                    target,
                    objective,
                    float(np.median(ca)) if ca.size else nan,
                    float(np.median(cb)) if cb.size else nan,
                    nan,
                    nan,
                    nan,
                    int(ca.size),
                    int(cb.size),
                    _verdict_counts(pa),
                    _verdict_counts(pb),
                    "; ".join(notes),
                    "no capacity",
                )
            )
            continue
        a_med, b_med = float(np.median(ca)), float(np.median(cb))
        ratio = b_med / a_med if a_med > 0 else nan
        low = float(cb.min() / ca.max()) if ca.max() > 0 else nan
        high = float(cb.max() / ca.min()) if ca.min() > 0 else nan
        if obj_a != obj_b:
            verdict = "objectives differ"
        elif ca.size < 2 or cb.size < 2:
            verdict = "single search"
        elif low <= 1.0 <= high:
            verdict = "within spread"
        elif abs(ratio - 1.0) * 100 < threshold_pct:
            verdict = "below threshold"
        else:
            verdict = "higher" if ratio > 1 else "lower"
        out.append(
            CapacityComparison(
                target,
                objective,
                a_med,
                b_med,
                ratio,
                low,
                high,
                int(ca.size),
                int(cb.size),
                _verdict_counts(pa),
                _verdict_counts(pb),
                "; ".join(notes),
                verdict,
            )
        )
    return out


def compare_capacities(
    run_a: RunData, run_b: RunData, *, threshold_pct: float = 5.0
) -> list[CapacityComparison] | None:
    """Compare the two runs' capacity searches; None when neither run has one.

    Raises ValueError when only one of them has a capacity search (nothing to set it against).
    """
    cap_a: CapacityData = load_capacity(run_a.path)
    cap_b: CapacityData = load_capacity(run_b.path)
    if cap_a.capacity.empty and cap_b.capacity.empty:
        return None
    if cap_a.capacity.empty or cap_b.capacity.empty:
        missing = run_a if cap_a.capacity.empty else run_b
        raise ValueError(
            f"only one run has a capacity search: {missing.path} has no capacity.csv (run it with `--modes capacity`)"
        )
    comparisons = compare_capacity_frames(
        cap_a.capacity, cap_b.capacity, threshold_pct=threshold_pct, order=list(cap_a.capacity["target"])
    )
    if not comparisons:
        raise ValueError(f"the capacity searches share no target (A: {cap_a.targets}, B: {cap_b.targets})")
    return comparisons
