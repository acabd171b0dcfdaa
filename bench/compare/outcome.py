"""What a comparison decides with and what it returns: CompareSettings and the result types.

The settings (metric, threshold, alpha, correction, ...) are printed with every comparison so
a verdict can be re-derived; the result types (one per step, one per target, the whole
comparison) are what :mod:`bench.compare.render` and :mod:`bench.compare.gate` read. The
statistics that fill them are :mod:`bench.compare.verdict`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.compare.data import CompareError, StepKey, step_label
from bench.report.trialnoise import DEFAULT_NOISE_FLOOR_PCT

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "CORRECTIONS",
    "DEFAULT_NOISE_FLOOR_PCT",
    "GATES",
    "METRICS",
    "CompareResult",
    "CompareSettings",
    "StepComparison",
    "TargetSummary",
]

# --metric name -> summary.csv column holding one value per trial (present in schema 1 and 2).
METRICS: dict[str, str] = {
    "median": "lat_p50_s",
    "mean": "lat_mean_s",
    "p90": "lat_p90_s",
    "p99": "lat_p99_s",
    "total": "total_s",
}
CORRECTIONS = ("holm", "bh")
GATES = ("target", "step")

# DEFAULT_NOISE_FLOOR_PCT (a side with a single trial): measured between identical runs, defined
# in bench/report/trialnoise.py beside its source so the report need not import the comparison.

BOOTSTRAP_RESAMPLES = 4000  # kept for the settings' API and the coverage study's comparison; no verdict uses it


@dataclass(frozen=True)
class CompareSettings:
    """Everything that decides a verdict; printed with the output so a verdict can be re-derived."""

    metric: str = "median"
    threshold_pct: float = 5.0
    alpha: float = 0.05
    correction: str = "holm"
    seed: int = 0
    resamples: int = BOOTSTRAP_RESAMPLES
    default_noise_floor_pct: float = DEFAULT_NOISE_FLOOR_PCT
    detect_pct: float | None = None  # a slow-down (%) to state the trials needed for

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise CompareError(f"unknown metric {self.metric!r}; metrics: {', '.join(METRICS)}")
        if not 0 < self.alpha < 1:
            raise CompareError(f"alpha must be between 0 and 1, got {self.alpha}")
        if not self.threshold_pct >= 0:
            raise CompareError(f"threshold must be >= 0 %, got {self.threshold_pct}")
        if self.correction not in CORRECTIONS:
            raise CompareError(f"unknown correction {self.correction!r}; corrections: {', '.join(CORRECTIONS)}")
        if self.resamples < 100:
            raise CompareError(f"bootstrap resamples must be >= 100, got {self.resamples}")
        if self.detect_pct is not None and not (self.detect_pct > 0 and math.isfinite(self.detect_pct)):
            raise CompareError(f"--detect must be a slow-down > 0 %, got {self.detect_pct}")

    @property
    def column(self) -> str:
        return METRICS[self.metric]


@dataclass(frozen=True)
class StepComparison:
    """One step (target, mode, N, concurrency, rate) of A against B."""

    target: str
    mode: str
    n_requests: int
    concurrency: int
    rate: float
    n_a: int  # clean trials on each side
    n_b: int
    a_value: float  # geometric mean over trials of the per-trial statistic, seconds (NaN if none)
    b_value: float
    ratio: float  # b / a: > 1 means B is slower
    p_value: float  # Welch on log per-trial values; NaN when not tested
    p_adjusted: float  # after the correction across all tested steps
    p_requests: float  # Mann-Whitney over pooled per-request latencies: a detail, never the verdict
    trial_sd: float  # pooled within-side sd of log per-trial values (NaN when not tested)
    noise_floor_pct: float
    floor_source: str  # "trials" (measured) | "default" (the between-run default) | "" (no floor: fresh starts)
    threshold_pct: float  # effective: max(--threshold, noise floor)
    verdict: str  # slower|faster|within noise|not significant|too few trials|failed|saturated|only in A|only in B
    detail: str = ""  # counts for failed/saturated steps, trials for only-in steps
    ci_low: float = math.nan  # Welch interval of B/A at the Bonferroni level over tested steps (NaN: not tested)
    ci_high: float = math.nan
    independent: bool = False  # trials were fresh starts of the stand-in in both runs (no floor applied)

    @property
    def key(self) -> StepKey:
        return (self.target, self.mode, self.n_requests, self.concurrency, self.rate)

    @property
    def label(self) -> str:
        return step_label(self.key)

    @property
    def in_geomean(self) -> bool:
        return self.verdict not in ("failed", "saturated", "only in A", "only in B")


@dataclass(frozen=True)
class TargetSummary:
    """One target: the geometric mean of B/A over its clean steps, with a Welch t interval."""

    target: str
    steps: int  # steps in the geometric mean
    excluded: int  # steps of this target left out (failed, saturated, in one run only)
    n_a: int  # trials per side over those steps
    n_b: int
    ratio: float  # geometric mean of B/A; NaN without steps
    ci_low: float  # NaN when not tested
    ci_high: float
    ci_level: float
    noise_floor_pct: float
    floor_source: str
    threshold_pct: float
    verdict: str  # slower|faster|within threshold|not slower|inconclusive|too few trials|no clean steps|only in A|B
    detail: str = ""
    independent: bool = False  # trials were fresh starts of the stand-in in both runs: no noise floor
    trial_sd: float = math.nan  # pooled sd of the per-trial log scores (the runs' own trial-to-trial spread)
    dof: float = math.nan  # Welch-Satterthwaite degrees of freedom of the interval
    detectable_pct: float = math.nan  # smallest slow-down flagged with 80 % power at this spread and trial count
    trials_needed: int | None = None  # per side, for settings.detect_pct (None: not asked, or out of reach)
    between_trial_sd: float = math.nan  # sd of what moves a whole trial (between restarts for fresh starts)
    within_trial_sd: float = math.nan  # sd of the step-by-step noise inside one trial (within-run)


@dataclass(frozen=True)
class CompareResult:
    settings: CompareSettings
    steps: list[StepComparison]
    targets: list[TargetSummary]
    only_in_a: list[str]  # "target X (N steps)" or step labels
    only_in_b: list[str]
    notes: list[str] = field(default_factory=list)  # e.g. schema differences
