"""Percentiles with their 95 % bounds: the table cells, the plotted points and the notes.

Why one module: a percentile of a small step is not a measurement of the true percentile
to its last digit -- p99 of 64 requests is essentially the slowest of them, and nothing in
64 requests bounds the true p99 from above. summary.csv carries distribution-free bounds
(``lat_pXX_lo_s`` / ``lat_pXX_hi_s``, :mod:`loadgen.stats`, binomial order statistics at
95 %); every report table, figure and console line shows a percentile through this module
so that they all say the same thing:

- both bounds exist: the value with its interval, ``12.34 (11.80–13.10)``;
- only a lower bound exists: ``≥ 11.80`` (the true percentile is at least the lower
  bound; it may be far above the slowest request, so no number is given for it);
- no bound exists (e.g. p50 of fewer than 6 answers): ``—``;
- no answer at all: ``-`` (as every other statistic of a failed step).

Several trials of one step are combined into the hull of their intervals (lowest lower
bound, highest upper bound; a side missing in any trial is missing): if one trial's
interval holds the true percentile with 95 %, so does the hull -- conservative, never
narrower than one trial's. Runs written before the bounds existed (schema < 3) have none:
their percentiles are shown, without interval, only where a two-sided bound would exist
at that number of answers (:func:`two_sided_from`), and ``—`` elsewhere.

Pure: DataFrames and numbers in, text and DataFrames out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from loadgen.quantile_bounds import quantile_ci_ranks
from loadgen.stats import BOUND_COLUMNS, LATENCY_PERCENTILES, PERCENTILE_CONFIDENCE

__all__ = [
    "LEVELS",
    "NO_BOUND",
    "NO_VALUE",
    "bounds_note",
    "bounds_recorded",
    "percentile_cell",
    "percentile_points",
    "trial_hull",
    "two_sided_from",
]

#: percentile suffix (``p99``) -> quantile (0.99)
LEVELS: dict[str, float] = {suffix: q / 100.0 for q, suffix in LATENCY_PERCENTILES}

NO_BOUND = "—"  # no order statistic bounds the percentile at this n
NO_VALUE = "-"  # no successful request: no percentile at all
AT_LEAST = "≥"


@cache
def two_sided_from(suffix: str, confidence: float = PERCENTILE_CONFIDENCE) -> int:
    """Fewest answers for which both bounds of ``suffix`` exist (95 %: p50 6, p90 36, p99 368)."""
    q, alpha = LEVELS[suffix], 1.0 - confidence
    n = 1
    while None in quantile_ci_ranks(n, q, alpha):
        n *= 2
    low, high = n // 2 + 1, n
    while low < high:  # both bounds exist from some n on (monotone in n)
        mid = (low + high) // 2
        if None in quantile_ci_ranks(mid, q, alpha):
            low = mid + 1
        else:
            high = mid
    return low


def bounds_recorded(summary: pd.DataFrame) -> bool:
    """Whether the run wrote bounds (schema 3): any bound present in any row.

    Every step with at least one answer has a lower bound of p99 (the smallest answer at
    n = 1), so a run with answers and no bound at all was written before they existed.
    """
    columns = [c for pair in BOUND_COLUMNS.values() for c in pair if c in summary]
    return bool(columns) and bool(summary[columns].notna().to_numpy().any())


def trial_hull(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per step (``keys``): the lowest lower and the highest upper bound over its trials.

    A side missing (NaN) in any trial is missing in the hull: that trial's interval is
    open on that side, and so is the union.
    """
    out = {}
    groups = frame.groupby(keys, sort=True, dropna=False)
    for lo, hi in BOUND_COLUMNS.values():
        if lo in frame:
            out[lo] = groups[lo].agg(lambda s: s.min() if s.notna().all() else np.nan)
            out[hi] = groups[hi].agg(lambda s: s.max() if s.notna().all() else np.nan)
    return pd.DataFrame(out)


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def _bounds(row: Mapping[str, Any], suffix: str, recorded: bool) -> tuple[float, float, float]:
    """(value, lo, hi) of one percentile of one step; old runs get NaN bounds."""
    value = _number(row.get(f"lat_{suffix}_s"))
    lo_col, hi_col = BOUND_COLUMNS[f"lat_{suffix}_s"]
    if recorded:
        return value, _number(row.get(lo_col)), _number(row.get(hi_col))
    return value, math.nan, math.nan


def _legacy_exact(row: Mapping[str, Any], suffix: str) -> bool:
    """An old run's percentile: shown plain where a two-sided bound would exist at its n_ok."""
    n_ok = _number(row.get("n_ok"))
    return not math.isnan(n_ok) and n_ok >= two_sided_from(suffix)


def percentile_cell(
    row: Mapping[str, Any], suffix: str, recorded: bool = True, *, scale: float = 1000.0, digits: int = 2
) -> str:
    """A step's percentile as text: ``v (lo–hi)``, ``≥ lo``, ``—`` or ``-`` (see the module).

    ``row`` holds ``lat_<suffix>_s`` and its bound columns (a summary row or a step mean);
    ``scale`` converts seconds to the unit shown (ms by default).
    """
    value, lo, hi = _bounds(row, suffix, recorded)
    if math.isnan(value):
        return NO_VALUE

    def fmt(x: float) -> str:
        return f"{x * scale:.{digits}f}"

    if not recorded:
        return fmt(value) if _legacy_exact(row, suffix) else NO_BOUND
    if not math.isnan(lo) and not math.isnan(hi):
        return f"{fmt(value)} ({fmt(lo)}–{fmt(hi)})"
    if not math.isnan(lo):
        return f"{AT_LEAST} {fmt(lo)}"
    if not math.isnan(hi):
        return f"≤ {fmt(hi)}"
    return NO_BOUND


def percentile_points(frame: pd.DataFrame, suffix: str, recorded: bool = True) -> pd.DataFrame:
    """What a figure draws of ``lat_<suffix>_s`` per row of ``frame`` (same index):

    ``value_`` (the percentile, only where both bounds exist -- or, for an old run, where
    they would), ``lo_`` / ``hi_`` (the interval of those points, NaN for old runs) and
    ``lower_only_`` (the lower bound where no upper bound exists: drawn as a bound, never
    as a measured point). Seconds, like the summary.
    """
    rows = frame.to_dict("records")
    values, los, his, lower_only = [], [], [], []
    for row in rows:
        value, lo, hi = _bounds(row, suffix, recorded)
        two_sided = not math.isnan(lo) and not math.isnan(hi)
        shown = two_sided or (not recorded and _legacy_exact(row, suffix))
        values.append(value if shown else math.nan)
        los.append(lo if two_sided else math.nan)
        his.append(hi if two_sided else math.nan)
        lower_only.append(lo if recorded and not math.isnan(value) and not two_sided else math.nan)
    return pd.DataFrame(
        {"value_": values, "lo_": los, "hi_": his, "lower_only_": lower_only}, index=frame.index, dtype=float
    )


def bounds_note(recorded: bool, suffixes: tuple[str, ...] = ("p50", "p90", "p99")) -> str:
    """The sentence that explains the cells, with the answers each percentile needs."""
    need = ", ".join(f"{s} from {two_sided_from(s)}" for s in suffixes)
    if not recorded:
        return (
            "This run was written before percentile bounds were recorded (summary.csv schema < 3): a "
            f"percentile is shown, without its interval, only where a step has enough answers for a two-sided "
            f"{PERCENTILE_CONFIDENCE * 100:g} % bound ({need}); '—' elsewhere."
        )
    return (
        f"Percentiles carry their {PERCENTILE_CONFIDENCE * 100:g} % distribution-free bounds (binomial order "
        "statistics of the step's successful latencies): 'v (lo–hi)'; '≥ lo' where the step has too few "
        f"answers to bound the percentile from above (a two-sided bound needs {need} answers); '—' where "
        "no bound exists at all; over several trials, the hull of the trials' intervals."
    )
