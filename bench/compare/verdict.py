"""Compare two runs: per-step and per-target verdicts over *trials*, not requests.

Why this design (issues 13 and 21; the full reasoning is in docs/compare.md): requests of
one run are not independent samples -- the run's process placement, caches and neighbours
shift all of them together -- and neither are trials inside one start of a stand-in. So:

- **One sample per trial.** A step's statistic (default: the trial's median latency,
  ``lat_p50_s``) from each trial is one sample; a target's is the trial's mean log value
  over its clean steps (:func:`bench.compare.power.trial_scores`). Tests need >= 2 trials
  per side; with fewer the verdict is "too few trials" and only the ratio is shown.
- **Targets**: the geometric mean of B/A over the target's clean steps with a Welch t
  interval over the per-trial scores (level 1 - alpha / targets tested), nominal already
  at 3 trials per side when the trials are replicates (benchmarks/compare_coverage.py).
  slower = the interval above 1 *and* the estimate beyond the threshold; faster alike;
  "within threshold" = the interval inside +-threshold; "not slower" = its upper end
  inside +threshold; "inconclusive" otherwise. With each: the smallest slow-down the two
  runs could have detected (80 % power at their own spread and trial counts) and, with
  ``detect_pct``, the trials per side a slow-down of that size needs.
- **Noise floor, only where needed**: when a target's trials were inside one start of the
  stand-in in either run (remote targets, ``--trial-design within-run``, runs recorded
  before issue 21), the spread between trials understates the spread between runs, so
  the effective threshold is raised to the change that two *single* such trials reach by
  chance. Trials that were fresh starts in both runs are replicates; no floor applies.
- **Steps**: Welch's t-test on log values, p-values adjusted across all tested steps
  (Holm by default), a Welch interval at the Bonferroni level; slower/faster only when
  significant *and* beyond the threshold.
- **Nothing silently dropped**: steps or targets in one run only are listed; failed or
  saturated steps are reported as such, never as faster or slower, and left out of the
  geometric mean. What a gate cannot judge is named by :mod:`bench.compare.gate`.

Pure: RunData in, :class:`CompareResult` out. Rendering is in :mod:`bench.compare.render`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from bench.compare.data import (
    CompareError,
    Side,
    StepKey,
    check_schemas,
    order_keys,
    read_sides,
    request_latencies,
    step_label,
    trial_designs,
)
from bench.compare.outcome import (
    BOOTSTRAP_RESAMPLES,
    CORRECTIONS,
    DEFAULT_NOISE_FLOOR_PCT,
    GATES,
    METRICS,
    CompareResult,
    CompareSettings,
    StepComparison,
    TargetSummary,
)
from bench.compare.power import (
    detectable_log_effect,
    spread_components,
    trial_scores,
    trials_for_effect,
    welch_interval,
)
from bench.compare.stats import (
    MIN_TRIALS,
    bh_adjust,
    holm_adjust,
    mannwhitney_p,
    noise_floor_pct,
    pooled_log_sd,
    welch_log_p,
)
from bench.results import RunData
from loadgen.stats import FLAG_ALL_FAILED, FLAG_ERRORS, FLAG_SATURATED

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "CORRECTIONS",
    "DEFAULT_NOISE_FLOOR_PCT",
    "GATES",
    "METRICS",
    "CompareError",
    "CompareResult",
    "CompareSettings",
    "StepComparison",
    "TargetSummary",
    "compare_runs",
    "regressions",
    "step_label",
    "target_verdict",
]

# --- steps ---------------------------------------------------------------------------------


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _flag_verdict(sa: Side, sb: Side) -> tuple[str, str] | None:
    """('failed' | 'saturated', 'failed in B (3/64 requests failed in 1 of 3 trials)') or None."""
    parts, verdict = [], None
    for what, flagset in (("failed", {FLAG_ERRORS, FLAG_ALL_FAILED}), ("saturated", {FLAG_SATURATED})):
        for name, side in (("A", sa), ("B", sb)):
            if side.flags & flagset:
                verdict = verdict or what
                counts = f"{side.flagged_trials} of {_plural(side.trials, 'trial')}"
                if what == "failed":
                    counts = f"{side.failed_requests}/{side.requests} requests failed in {counts}"
                parts.append(f"{what} in {name} ({counts})")
    return (verdict, "; ".join(parts)) if verdict else None


def _geomean(values: Iterable[float]) -> float:
    data = np.asarray(list(values), dtype=np.float64)
    return float(np.exp(np.mean(np.log(data)))) if data.size else math.nan


def _step(
    key: StepKey, sa: Side, sb: Side, settings: CompareSettings, lat_a: np.ndarray | None, lat_b: np.ndarray | None
) -> StepComparison:
    """A step's numbers and its provisional verdict (floors and adjusted p come later)."""
    a_vals, b_vals = list(sa.values.values()), list(sb.values.values())
    av, bv = _geomean(a_vals), _geomean(b_vals)
    nan = math.nan
    step = StepComparison(
        *key,
        n_a=len(a_vals),
        n_b=len(b_vals),
        a_value=av,
        b_value=bv,
        ratio=bv / av if av > 0 and bv > 0 else nan,
        p_value=nan,
        p_adjusted=nan,
        p_requests=mannwhitney_p(lat_a, lat_b) if lat_a is not None and lat_b is not None else nan,
        trial_sd=nan,
        noise_floor_pct=nan,
        floor_source="",
        threshold_pct=settings.threshold_pct,
        verdict="not significant",
    )
    flagged = _flag_verdict(sa, sb)
    if flagged:
        return replace(step, verdict=flagged[0], detail=flagged[1])
    if min(len(a_vals), len(b_vals)) < MIN_TRIALS:
        floor = settings.default_noise_floor_pct
        return replace(
            step,
            noise_floor_pct=floor,
            floor_source="default",
            threshold_pct=max(settings.threshold_pct, floor),
            verdict="too few trials",
        )
    return replace(
        step, p_value=welch_log_p(a_vals, b_vals), trial_sd=pooled_log_sd(a_vals, b_vals), floor_source="trials"
    )


def _only_in(key: StepKey, sa: Side | None, sb: Side | None, settings: CompareSettings) -> StepComparison:
    side = sa or sb
    assert side is not None
    value, nan = _geomean(side.values.values()), math.nan
    return StepComparison(
        *key,
        n_a=len(sa.values) if sa else 0,
        n_b=len(sb.values) if sb else 0,
        a_value=value if sa else nan,
        b_value=value if sb else nan,
        ratio=nan,
        p_value=nan,
        p_adjusted=nan,
        p_requests=nan,
        trial_sd=nan,
        noise_floor_pct=nan,
        floor_source="",
        threshold_pct=settings.threshold_pct,
        verdict="only in A" if sa else "only in B",
        detail=_plural(side.trials, "trial"),
    )


def target_trial_sd(steps: list[StepComparison]) -> float:
    """The target's typical between-trial spread: the median of its tested steps' trial_sd."""
    sds = [s.trial_sd for s in steps if not math.isnan(s.trial_sd)]
    return float(np.median(sds)) if sds else math.nan


def _within_run_floor(from_trials: float, settings: CompareSettings) -> tuple[float, str]:
    """(floor %, source) for trials inside one start: at least the default measured between runs.

    The spread between such trials does not contain the spread between runs (issue 21:
    identical runs differed by 0.76-1.60x while their trials agreed within a few %), so a
    floor computed from it alone lets run-to-run differences read as regressions
    (benchmarks/results/compare_coverage.md: about 1 false alarm in 4-5 A/A pairs). The
    default -- what single trials of identical back-to-back runs differ by -- is the
    least it can be.
    """
    if math.isnan(from_trials) or from_trials < settings.default_noise_floor_pct:
        return settings.default_noise_floor_pct, "default"
    return from_trials, "trials"


def _decide_steps(
    steps: list[StepComparison],
    settings: CompareSettings,
    target_sd: dict[str, float],
    independent: dict[str, bool],
    sides_a: dict[StepKey, Side],
    sides_b: dict[StepKey, Side],
) -> list[StepComparison]:
    """Each tested step's floor (only for trials inside one start), adjusted p, interval and verdict."""
    adjust = holm_adjust if settings.correction == "holm" else bh_adjust
    adjusted = adjust([s.p_value for s in steps])
    tested = sum(1 for s in steps if not math.isnan(s.p_value))
    level = 1 - settings.alpha / max(tested, 1)
    out = []
    for step, p_adj in zip(steps, adjusted, strict=True):
        if math.isnan(step.p_value):
            out.append(replace(step, independent=independent.get(step.target, False)))
            continue
        own = independent[step.target]
        floor, threshold = math.nan, settings.threshold_pct
        source = ""
        if not own:
            sd = max(step.trial_sd, target_sd[step.target])
            floor, source = _within_run_floor(noise_floor_pct(sd, sd, settings.alpha), settings)
            threshold = max(settings.threshold_pct, floor)
        a_logs = np.log(list(sides_a[step.key].values.values()))
        b_logs = np.log(list(sides_b[step.key].values.values()))
        interval = welch_interval(a_logs, b_logs, level)
        bound = 1 + threshold / 100
        verdict = "not significant"
        if p_adj < settings.alpha:
            verdict = "slower" if step.ratio > bound else "faster" if step.ratio < 1 / bound else "within noise"
        out.append(
            replace(
                step,
                p_adjusted=p_adj,
                noise_floor_pct=floor,
                threshold_pct=threshold,
                verdict=verdict,
                floor_source=source,
                ci_low=math.exp(interval.low),
                ci_high=math.exp(interval.high),
                independent=own,
            )
        )
    return out


# --- targets -------------------------------------------------------------------------------


def _log_matrix(sides: list[Side]) -> np.ndarray:
    """trials x steps log values; rows are trial numbers, so one row is one pass of the sweep."""
    trials = sorted({t for s in sides for t in s.values})
    row = {t: i for i, t in enumerate(trials)}
    matrix = np.full((len(trials), len(sides)), np.nan)
    for j, side in enumerate(sides):
        for t, value in side.values.items():
            matrix[row[t], j] = math.log(value)
    return matrix


def target_verdict(low: float, high: float, estimate: float, bound: float) -> str:
    """The five-way verdict on the log scale: ``low``/``high`` the interval, ``bound`` = log(1 + threshold).

    slower: the interval above 0 and the estimate beyond +bound (faster: mirrored); within
    threshold: the whole interval inside +-bound; not slower: its upper end inside +bound
    (a regression gate's pass); inconclusive: anything else.
    """
    if low > 0 and estimate > bound:
        return "slower"
    if high < 0 and estimate < -bound:
        return "faster"
    if -bound <= low and high <= bound:
        return "within threshold"
    return "not slower" if high <= bound else "inconclusive"


def _target(
    target: str,
    steps: list[StepComparison],
    sides_a: dict[StepKey, Side],
    sides_b: dict[StepKey, Side],
    settings: CompareSettings,
    level: float,
    sd: float,
    independent: bool,
) -> TargetSummary:
    used = [s for s in steps if s.in_geomean]
    nan = math.nan
    base = TargetSummary(
        target,
        len(used),
        len(steps) - len(used),
        0,
        0,
        nan,
        nan,
        nan,
        level,
        nan,
        "",
        settings.threshold_pct,
        "no clean steps",
        independent=independent,
    )
    if not used:
        return replace(base, detail="every step failed, saturated or is in one run only")
    la = _log_matrix([sides_a[s.key] for s in used])
    lb = _log_matrix([sides_b[s.key] for s in used])
    with np.errstate(invalid="ignore"):
        ratio = math.exp(float(np.mean(np.nanmean(lb, axis=0) - np.nanmean(la, axis=0))))
    base = replace(base, n_a=la.shape[0], n_b=lb.shape[0], ratio=ratio)
    if not independent:  # trials inside one start: their spread understates the runs' (docs/compare.md)
        floor, source = _within_run_floor(noise_floor_pct(sd, sd, settings.alpha), settings)
        base = replace(
            base, noise_floor_pct=floor, floor_source=source, threshold_pct=max(settings.threshold_pct, floor)
        )
    if min(base.n_a, base.n_b) < MIN_TRIALS:
        return replace(base, verdict="too few trials")
    score_a, score_b = trial_scores(la, lb)
    interval = welch_interval(score_a, score_b, level)
    bound = math.log1p(base.threshold_pct / 100)
    detectable = detectable_log_effect(interval.se, interval.dof, level, bound)
    needed = None
    if settings.detect_pct is not None:
        needed = trials_for_effect(interval.sd, math.log1p(settings.detect_pct / 100), bound, level)
    between, within = spread_components(la, lb)
    return replace(
        base,
        between_trial_sd=between,
        within_trial_sd=within,
        ratio=math.exp(interval.estimate),
        ci_low=math.exp(interval.low),
        ci_high=math.exp(interval.high),
        verdict=target_verdict(interval.low, interval.high, interval.estimate, bound),
        trial_sd=interval.sd,
        dof=interval.dof,
        detectable_pct=math.expm1(detectable) * 100,
        trials_needed=needed,
    )


def _testable(steps: list[StepComparison], sides_a: dict[StepKey, Side], sides_b: dict[StepKey, Side]) -> bool:
    """Whether a target gets an interval (counted for the split of alpha across targets)."""
    used = [s.key for s in steps if s.in_geomean]
    trials_a = {t for k in used for t in sides_a[k].values}
    trials_b = {t for k in used for t in sides_b[k].values}
    return bool(used) and min(len(trials_a), len(trials_b)) >= MIN_TRIALS


# --- the whole comparison ------------------------------------------------------------------


def compare_runs(a: RunData, b: RunData, settings: CompareSettings | None = None) -> CompareResult:
    """Compare run B against reference run A; see the module docstring for the rules."""
    settings = settings or CompareSettings()
    notes = check_schemas(a, b)
    sides_a = read_sides(a, settings.column, "A")
    sides_b = read_sides(b, settings.column, "B")
    targets_a, targets_b = a.targets, b.targets
    shared = [t for t in targets_a if t in set(targets_b)]
    if not shared:
        raise CompareError(f"the runs share no target (A: {sorted(targets_a)}, B: {sorted(targets_b)})")
    order = targets_a + [t for t in targets_b if t not in set(targets_a)]
    keys = [k for k in order_keys(set(sides_a) | set(sides_b), order) if k[0] in set(shared)]
    if not any(k in sides_a and k in sides_b for k in keys):
        raise CompareError(
            "the runs share targets but no step (mode, N, concurrency, rate): only in A: "
            + ", ".join(step_label(k) for k in keys if k in sides_a)
            + "; only in B: "
            + ", ".join(step_label(k) for k in keys if k in sides_b)
        )
    lat_a, lat_b = request_latencies(a), request_latencies(b)
    steps = [
        _step(k, sides_a[k], sides_b[k], settings, lat_a.get(k), lat_b.get(k))
        if k in sides_a and k in sides_b
        else _only_in(k, sides_a.get(k), sides_b.get(k), settings)
        for k in keys
    ]
    by_target = {t: [s for s in steps if s.target == t] for t in shared}
    target_sd = {t: target_trial_sd(by_target[t]) for t in shared}
    design_a, design_b = trial_designs(a), trial_designs(b)
    independent = {t: design_a.get(t) == design_b.get(t) == "restart" for t in shared}
    steps = _decide_steps(steps, settings, target_sd, independent, sides_a, sides_b)
    by_target = {t: [s for s in steps if s.target == t] for t in shared}
    tested = sum(1 for t in shared if _testable(by_target[t], sides_a, sides_b))
    level = 1 - settings.alpha / max(tested, 1)
    summaries, only_in_a, only_in_b = [], [], []
    for target in order:
        if target in by_target:
            summaries.append(
                _target(
                    target, by_target[target], sides_a, sides_b, settings, level, target_sd[target], independent[target]
                )
            )
            continue
        side, sides, listing = ("A", sides_a, only_in_a) if target in targets_a else ("B", sides_b, only_in_b)
        count = _plural(sum(1 for k in sides if k[0] == target), "step")
        listing.append(f"target {target} ({count})")
        nan = math.nan
        summaries.append(
            TargetSummary(
                target, 0, 0, 0, 0, nan, nan, nan, level, nan, "", settings.threshold_pct, f"only in {side}", count
            )
        )
    only_in_a += [s.label for s in steps if s.verdict == "only in A"]
    only_in_b += [s.label for s in steps if s.verdict == "only in B"]
    return CompareResult(settings, steps, summaries, only_in_a, only_in_b, notes)


def regressions(result: CompareResult, gate: str = "target") -> list[str]:
    """What fails ``--fail-on-regression``: slower targets (``gate='target'``) or slower steps (``'step'``)."""
    if gate not in GATES:
        raise CompareError(f"unknown gate {gate!r}; gates: {', '.join(GATES)}")
    if gate == "target":
        return [t.target for t in result.targets if t.verdict == "slower"]
    return [s.label for s in result.steps if s.verdict == "slower"]
