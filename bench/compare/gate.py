"""What ``bench compare --fail-on-regression`` decides: regression, pass, or cannot judge.

Why a gate must be able to say "cannot judge" (issue 21): before, "too few trials",
"inconclusive", "no clean steps" and steps in one run only all passed, so a one-trial CI
job passed a 1.5x slow-down, and on a busy host a target whose interval lay wholly above
1 (1.08-1.76) passed as "within +-168.5 %" because the noise floor had swallowed the
threshold. A gate passes a target (or step) only when the comparison *showed* that B is
not slower than A by more than the user's threshold: the interval's upper end is inside
+threshold, and that threshold was the user's, not one raised by a noise floor. It fails
on "slower". Everything else is named with its reason and makes the command exit
:data:`EXIT_CANNOT_JUDGE` unless the user opts in with ``--allow-inconclusive``.

Pure: CompareResult in, :class:`GateResult` out; ``bench.compare.show`` prints it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.compare.verdict import GATES, CompareError, CompareResult, StepComparison, TargetSummary

__all__ = ["EXIT_BAD_INPUT", "EXIT_CANNOT_JUDGE", "EXIT_OK", "EXIT_REGRESSION", "GateResult", "exit_code", "judge"]

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_BAD_INPUT = 2
EXIT_CANNOT_JUDGE = 3

_PASS_TARGET = frozenset({"within threshold", "not slower"})  # passes when the threshold is the user's


@dataclass(frozen=True)
class GateResult:
    """The gate's findings: what regressed, and what it could not judge (name, reason)."""

    gate: str
    regressions: list[str]
    blind: list[tuple[str, str]]

    def lines(self) -> list[str]:
        """One line per target/step the gate cannot judge, reason included."""
        return [f"the {self.gate} gate cannot judge {name}: {reason}" for name, reason in self.blind]


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


def _floor_reason(threshold_pct: float, floor_pct: float, source: str) -> str:
    where = "the default measured between identical runs" if source == "default" else "from the spread between trials"
    return (
        f"its trials ran inside one start of the stand-in, which cannot show how much runs differ, so the "
        f"threshold is raised to the noise floor {floor_pct:.1f} % ({where}), above your {threshold_pct:g} %: a change "
        f"of {threshold_pct:g} % cannot be tested; record both runs with local stand-ins restarted per trial "
        f"(the default `bench run --trials 3` or more) or raise --threshold"
    )


def _target_reason(t: TargetSummary, threshold_pct: float) -> str | None:
    """Why the target gate cannot judge ``t`` (None when it can: a pass or a regression)."""
    if t.verdict in ("slower", "faster"):  # a regression, or shown faster beyond even a raised threshold
        return None
    floored = not t.independent and not math.isnan(t.noise_floor_pct) and t.noise_floor_pct > threshold_pct
    if t.verdict in _PASS_TARGET and not floored:
        return None
    if t.verdict == "too few trials":
        return (
            f"{min(t.n_a, t.n_b)} trial(s) on a side, and one trial has no spread to judge by; record both runs "
            "with `python -m bench run ... --trials 3` or more"
        )
    if t.verdict in ("only in A", "only in B"):
        return f"it is {t.verdict} ({t.detail})"
    if t.verdict == "no clean steps":
        return t.detail or "no step is clean in both runs"
    if floored:
        return _floor_reason(threshold_pct, t.noise_floor_pct, t.floor_source)
    detect = (
        ""
        if math.isnan(t.detectable_pct)
        else (f"; the smallest slow-down these runs could detect (80 % power) is about {t.detectable_pct:.0f} %")
    )
    return (
        f"its {t.ci_level * 100:.4g} % interval {t.ci_low:.3f}-{t.ci_high:.3f} ({_pct(t.ci_low)} to "
        f"{_pct(t.ci_high)}) crosses the +{t.threshold_pct:.1f} % threshold{detect}; more trials narrow it "
        "(`bench compare --detect PCT` says how many)"
    )


def _step_reason(s: StepComparison, threshold_pct: float) -> str | None:
    if s.verdict in ("slower", "faster"):
        return None
    if s.verdict in ("failed", "saturated"):
        return s.detail
    if s.verdict in ("only in A", "only in B"):
        return f"it is {s.verdict} ({s.detail})"
    if s.verdict == "too few trials":
        return f"{min(s.n_a, s.n_b)} trial(s) on a side; record both runs with --trials 3 or more"
    if not s.independent and not math.isnan(s.noise_floor_pct) and s.noise_floor_pct > threshold_pct:
        return _floor_reason(threshold_pct, s.noise_floor_pct, s.floor_source)
    if not math.isnan(s.ci_high) and s.ci_high <= 1 + s.threshold_pct / 100:
        return None
    return (
        f"its interval {s.ci_low:.3f}-{s.ci_high:.3f} reaches past the +{s.threshold_pct:.1f} % threshold ({s.verdict})"
    )


def judge(result: CompareResult, gate: str = "target") -> GateResult:
    """Regressions and cannot-judge reasons at ``gate`` ('target' or 'step')."""
    if gate not in GATES:
        raise CompareError(f"unknown gate {gate!r}; gates: {', '.join(GATES)}")
    threshold = result.settings.threshold_pct
    if gate == "target":
        failing = [t.target for t in result.targets if t.verdict == "slower"]
        blind = [(t.target, r) for t in result.targets if (r := _target_reason(t, threshold)) is not None]
    else:
        failing = [s.label for s in result.steps if s.verdict == "slower"]
        blind = [(s.label, r) for s in result.steps if (r := _step_reason(s, threshold)) is not None]
    return GateResult(gate, failing, blind)


def exit_code(regressed: bool, blind: bool, *, allow_inconclusive: bool) -> int:
    """1 on a regression (it wins), 3 when something could not be judged (unless allowed), else 0."""
    if regressed:
        return EXIT_REGRESSION
    if blind and not allow_inconclusive:
        return EXIT_CANNOT_JUDGE
    return EXIT_OK
