"""Compare two runs step by step with statistics, not eyeballing (cf. pyperf's compare_to).

Why these tests: per-request latencies are skewed and heavy-tailed, so where both runs kept
raw records the comparison uses the rank-based Mann-Whitney U test on the latencies of
successful requests, and the ratio is of the **median latency** (B / A). Where only summary
rows exist, each trial's ``total_s`` is one sample: Welch's t-test (unequal variances) needs
at least two trials on each side, and the ratio is of the **mean total_s**. Where neither
applies, the ratio is still shown and the verdict says "no test". An effect smaller than
``threshold_pct`` never counts, however significant. Everything here is pure: rows in,
rows out; rendering lives in :mod:`bench.cmd_compare`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from bench.results import RunData

__all__ = [
    "COMPARISON_COLUMNS",
    "CompareError",
    "Comparison",
    "check_comparable",
    "compare_runs",
    "compare_samples",
    "has_regression",
    "verdict_text",
]


class CompareError(ValueError):
    """The two runs cannot be compared (schema versions differ, nothing in common, ...)."""


@dataclass(frozen=True)
class Comparison:
    target: str
    mode: str
    n_requests: int
    metric: str  # "median latency" | "mean total_s"
    test: str  # "mann-whitney" | "welch" | "no test"
    a_value: float  # seconds
    b_value: float
    ratio: float  # b / a: > 1 means B is slower
    p_value: float  # NaN when no test
    n_a: int  # samples on each side (requests or trials)
    n_b: int
    significant: bool
    beyond_threshold: bool
    verdict: str  # "slower" | "faster" | "not significant" | "below threshold" | "no test"

    @property
    def is_regression(self) -> bool:
        return self.verdict == "slower"

    def as_row(self) -> dict[str, Any]:
        return {**asdict(self), "verdict_text": verdict_text(self)}


COMPARISON_COLUMNS = (
    "target", "mode", "n_requests", "metric", "test", "a_value", "b_value", "ratio", "p_value",
    "n_a", "n_b", "significant", "beyond_threshold", "verdict", "verdict_text",
)


def _decide(a_value: float, b_value: float, p_value: float, test: str, alpha: float,
            threshold_pct: float) -> tuple[float, bool, bool, str]:
    ratio = b_value / a_value if a_value > 0 else math.nan
    effect = abs(ratio - 1.0) * 100 if not math.isnan(ratio) else math.nan
    beyond = bool(not math.isnan(effect) and effect >= threshold_pct and effect > 0)
    if test == "no test":
        return ratio, False, beyond, "no test"
    significant = bool(not math.isnan(p_value) and p_value < alpha)
    if not significant:
        return ratio, False, beyond, "not significant"
    if not beyond:
        return ratio, True, False, "below threshold"
    return ratio, True, True, "slower" if ratio > 1 else "faster"


def compare_samples(a: np.ndarray, b: np.ndarray, *, kind: str, alpha: float,
                    threshold_pct: float) -> tuple[str, str, float, float, float, float, bool, bool, str]:
    """Test two samples. ``kind``: 'latency' (Mann-Whitney, medians) or 'trials'
    (Welch, means). Returns (metric, test, a_value, b_value, ratio, p, significant, beyond, verdict)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if kind == "latency":
        metric = "median latency"
        a_value = float(np.median(a)) if a.size else math.nan
        b_value = float(np.median(b)) if b.size else math.nan
        if a.size >= 1 and b.size >= 1 and a.size + b.size >= 3:
            test = "mann-whitney"
            p = _mannwhitney_p(a, b)
        else:
            test, p = "no test", math.nan
    else:
        metric = "mean total_s"
        a_value = float(np.mean(a)) if a.size else math.nan
        b_value = float(np.mean(b)) if b.size else math.nan
        if a.size >= 2 and b.size >= 2:
            test = "welch"
            p = _welch_p(a, b)
        else:
            test, p = "no test", math.nan
    ratio, significant, beyond, verdict = _decide(a_value, b_value, p, test, alpha, threshold_pct)
    return metric, test, a_value, b_value, ratio, p, significant, beyond, verdict


def _mannwhitney_p(a: np.ndarray, b: np.ndarray) -> float:
    if np.array_equal(np.sort(a), np.sort(b)):
        return 1.0  # identical samples: no evidence of any difference
    try:
        return float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    except ValueError:  # e.g. every value identical across both samples
        return 1.0


def _welch_p(a: np.ndarray, b: np.ndarray) -> float:
    if np.var(a) == 0 and np.var(b) == 0:
        # No spread on either side: the difference is exact, or there is none.
        return 1.0 if np.mean(a) == np.mean(b) else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def check_comparable(a: RunData, b: RunData) -> list[tuple[str, str, int]]:
    """The (target, mode, n_requests) steps both runs share; CompareError otherwise."""
    va, vb = a.schema_version, b.schema_version
    if va is not None and vb is not None and va != vb:
        raise CompareError(
            f"schema versions differ: {a.path} has schema {va}, {b.path} has schema {vb}; "
            "re-run one of them with the same servebench version"
        )
    targets = set(a.summary["target"]) & set(b.summary["target"])
    if not targets:
        raise CompareError(f"the runs share no target (A: {sorted(set(a.summary['target']))}, "
                           f"B: {sorted(set(b.summary['target']))})")
    modes = set(a.summary["mode"]) & set(b.summary["mode"])
    if not modes:
        raise CompareError(f"the runs share no mode (A: {sorted(set(a.summary['mode']))}, "
                           f"B: {sorted(set(b.summary['mode']))})")
    keys_a = set(zip(a.summary["target"], a.summary["mode"], a.summary["n_requests"].astype(int)))
    keys_b = set(zip(b.summary["target"], b.summary["mode"], b.summary["n_requests"].astype(int)))
    common = sorted(keys_a & keys_b, key=lambda k: (k[0], k[1], k[2]))
    if not common:
        raise CompareError("the runs share targets and modes but no request count N")
    return common


def _ok_latencies(requests: pd.DataFrame | None) -> dict[tuple[str, str, int], np.ndarray]:
    if requests is None or requests.empty:
        return {}
    ok = requests[requests["error"].isin(["", "nan"])]
    return {(t, m, int(n)): g["latency_s"].to_numpy(float)
            for (t, m, n), g in ok.groupby(["target", "mode", "n_requests"])}


def compare_runs(a: RunData, b: RunData, *, threshold_pct: float = 5.0, alpha: float = 0.05) -> list[Comparison]:
    """One :class:`Comparison` per step the two runs share, ordered by target, mode, N."""
    if not 0 < alpha < 1:
        raise CompareError(f"alpha must be between 0 and 1, got {alpha}")
    if threshold_pct < 0:
        raise CompareError(f"threshold must be >= 0 %, got {threshold_pct}")
    common = check_comparable(a, b)
    order_a = {t: i for i, t in enumerate(a.targets)}
    common.sort(key=lambda k: (order_a.get(k[0], 1 << 30), k[0], _mode_rank(k[1]), k[2]))
    lat_a, lat_b = _ok_latencies(a.requests), _ok_latencies(b.requests)
    results = []
    for key in common:
        target, mode, n = key
        if key in lat_a and key in lat_b:
            outcome = compare_samples(lat_a[key], lat_b[key], kind="latency", alpha=alpha,
                                      threshold_pct=threshold_pct)
            n_a, n_b = len(lat_a[key]), len(lat_b[key])
        else:
            ta = _totals(a.summary, key)
            tb = _totals(b.summary, key)
            outcome = compare_samples(ta, tb, kind="trials", alpha=alpha, threshold_pct=threshold_pct)
            n_a, n_b = len(ta), len(tb)
        metric, test, av, bv, ratio, p, sig, beyond, verdict = outcome
        results.append(Comparison(target, mode, n, metric, test, av, bv, ratio, p, n_a, n_b, sig, beyond, verdict))
    return results


def _mode_rank(mode: str) -> int:
    return {"sequential": 0, "concurrent": 1, "rate": 2}.get(mode, 3)


def _totals(summary: pd.DataFrame, key: tuple[str, str, int]) -> np.ndarray:
    t, m, n = key
    part = summary[(summary["target"] == t) & (summary["mode"] == m) & (summary["n_requests"].astype(int) == n)]
    return part["total_s"].to_numpy(float)


def verdict_text(c: Comparison) -> str:
    """pyperf-style: '1.50x slower', '1.10x faster', 'Not significant', ..."""
    if math.isnan(c.ratio):
        return "no data"
    factor = c.ratio if c.ratio >= 1 else 1 / c.ratio
    direction = "slower" if c.ratio > 1 else "faster"
    if c.verdict in ("slower", "faster"):
        return f"{factor:.2f}x {c.verdict}"
    if c.verdict == "below threshold":
        return f"Below threshold ({factor:.2f}x {direction})" if c.ratio != 1 else "Below threshold (same)"
    if c.verdict == "not significant":
        return "Not significant"
    return f"no test ({factor:.2f}x {direction})" if c.ratio != 1 else "no test (same)"


def has_regression(comparisons: list[Comparison]) -> bool:
    """True when any step is significantly slower beyond the threshold (for CI gating)."""
    return any(c.is_regression for c in comparisons)
