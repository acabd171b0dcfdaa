"""How much of a run is noise: the one-trial caution and steps that break the expected order.

With the default single trial every cell of Table 3 is one measurement, and two single
trials of identical code differ by up to about a quarter (docs/compare.md: the 95th
percentile of |B/A - 1| between the first trials of identical back-to-back runs,
:data:`DEFAULT_NOISE_FLOOR_PCT`, which ``bench compare`` uses too). A report that shows such
numbers unmarked invites readers to rank targets on differences the run cannot resolve. So a
run whose steps have one trial says so -- in the report, in table3.md and on the console --
with that figure, where it comes from, and the command that would resolve more.

And steps that break what must hold whatever the target -- a closed-loop step's total time
does not fall when N grows; a throughput is not far above (or below) both its neighbours --
by more than that noise are pointed out as notes, never corrected: the numbers stay as
measured.

Everything here is a pure function of summary rows (as :func:`bench.report.tables.step_means`
averages them); the wording is shared by every place that shows it.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report.tables import modes_in, step_means
from bench.results import RunData
from loadgen.modes import Mode

__all__ = [
    "DEFAULT_NOISE_FLOOR_PCT",
    "MIN_ORDER_NOTE_PCT",
    "ORDER_NOTES_INTRO",
    "NOISE_SOURCE",
    "ONE_TRIAL_NOISE_PCT",
    "OrderNote",
    "TRIALS_SUGGESTED",
    "min_trials",
    "noise_notes",
    "order_notes",
    "rerun_command",
    "single_trial_caution",
    "step_noise_pct",
]

# The compare command's noise floor (%) where a side has a single trial, so the spread between trials cannot
# be measured: the 95th percentile of |B/A - 1| between the first trials of identical
# back-to-back runs, over 200 steps (benchmarks/aa_study.py, 10 pairs, greene-linserv +
# kubeflow-gcp, N 1,4,8,16,64, 2-vCPU machine, load 0.3 before the study): 24.9 %.
DEFAULT_NOISE_FLOOR_PCT = 25.0
#: The spread one trial cannot rule out (%): the compare command's one-trial noise floor.
ONE_TRIAL_NOISE_PCT: float = DEFAULT_NOISE_FLOOR_PCT
NOISE_SOURCE = (
    "the 95th percentile of |B/A - 1| between the first trials of 10 pairs of identical back-to-back "
    "runs, 200 steps, on a quiet 2-vCPU machine -- a busy one adds more; docs/compare.md, "
    '"The noise floor"'
)
#: Trials suggested to a one-trial run (docs/compare.md's recommendation for gateable runs).
TRIALS_SUGGESTED = 3
#: With several trials the measured spread sets the threshold, but never below this (%):
#: compare's default --threshold, the smallest effect it counts.
MIN_ORDER_NOTE_PCT = 5.0
_Z95 = 1.959963984540054  # two-sided 95 % normal quantile, as compare's floor uses
_CLOSED_LOOP = tuple(m.value for m in Mode if not m.open_loop)
ORDER_NOTES_INTRO = (
    "Steps out of order (noted, not corrected: the numbers are as measured; a larger N should not "
    "finish sooner, and a throughput should not jump far above or below both its neighbours):"
)


@dataclass(frozen=True)
class OrderNote:
    """One step whose number breaks the expected order by more than the noise.

    ``kind``: ``"total_falls"`` (a larger N finished sooner) or ``"throughput_outlier"``
    (a step's throughput far above or below both neighbours).
    """

    target: str
    mode: str
    kind: str
    n_requests: int
    text: str


def min_trials(summary: pd.DataFrame) -> int:
    """The fewest trials any step of the run has (0 for an empty summary)."""
    if summary.empty:
        return 0
    counts = summary.groupby(["target", "mode", "n_requests", "rate"], dropna=False)["trial"].nunique()
    return int(counts.min())


def rerun_command(command: str | None, trials: int = TRIALS_SUGGESTED) -> str:
    """The run's own command line with ``--trials`` set (and ``--run-id`` dropped: that folder
    exists); a generic one when meta.json recorded no command."""
    if not command:
        return f"python -m bench run all --trials {trials}"
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    if len(words) < 2 or words[1] != "run":  # not a `bench run` command line (a test, a merge)
        return f"python -m bench run all --trials {trials}"
    words = ["python", "-m", "bench", *words[1:]]
    kept: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
            continue
        if word in ("--trials", "--run-id"):
            skip = True
            continue
        if word.startswith(("--trials=", "--run-id=")):
            continue
        kept.append(word)
    return shlex.join([*kept, "--trials", str(trials)])


def single_trial_caution(summary: pd.DataFrame, command: str | None = None) -> str | None:
    """The caution a run with one-trial steps needs, or None when every step has several trials."""
    trials = min_trials(summary)
    if trials != 1:
        return None
    which = "every step" if int(summary["trial"].nunique()) == 1 else "some steps"
    return (
        f"**One trial per step**: {which} of this run was "
        f"measured once, so each number is a single measurement. Two single trials of identical code "
        f"differ by up to about {ONE_TRIAL_NOISE_PCT:.0f} % ({NOISE_SOURCE}): differences between targets "
        f"or steps smaller than that are not resolved by this run. For means and their spread, run "
        f"`{rerun_command(command)}`."
    )


def step_noise_pct(part: pd.DataFrame, summary: pd.DataFrame | None = None) -> float:
    """The change between two steps of one target and mode that noise cannot explain (%).

    One trial: :data:`ONE_TRIAL_NOISE_PCT`. K trials: the two-sided 95 % range of the log
    ratio of two K-trial means, ``exp(z * sqrt(2/K) * s) - 1``, with ``s`` the median over
    the steps of the std of log total time across trials (from ``summary``'s rows), and
    at least :data:`MIN_ORDER_NOTE_PCT`.
    """
    trials = int(part["trials"].min()) if "trials" in part and not part.empty else 1
    if trials <= 1 or summary is None:
        return ONE_TRIAL_NOISE_PCT
    rows = summary[(summary["target"] == part["target"].iloc[0]) & (summary["mode"] == part["mode"].iloc[0])]
    rows = rows[pd.to_numeric(rows["total_s"], errors="coerce") > 0]
    spreads = (
        rows.groupby(["n_requests", "rate"])["total_s"]
        .apply(lambda s: float(np.std(np.log(s.astype(float)), ddof=1)) if len(s) > 1 else np.nan)
        .dropna()
    )
    if spreads.empty:
        return ONE_TRIAL_NOISE_PCT
    pct = 100.0 * (math.exp(_Z95 * math.sqrt(2.0 / trials) * float(spreads.median())) - 1.0)
    return max(pct, MIN_ORDER_NOTE_PCT)


def _usable(part: pd.DataFrame) -> pd.DataFrame:
    """Steps whose numbers describe every request: failed or saturated steps are flagged elsewhere."""
    bad = np.zeros(len(part), dtype=bool)
    for column in ("flag_all_failed", "flag_errors", "flag_saturated"):
        if column in part:
            bad |= part[column].fillna(False).to_numpy(dtype=bool)
    part = part[~bad]
    return part[(pd.to_numeric(part["total_s"], errors="coerce") > 0)].sort_values("n_requests")


def _trial_word(part: pd.DataFrame) -> str:
    trials = int(part["trials"].min()) if "trials" in part and not part.empty else 1
    return "one trial" if trials <= 1 else f"means of {trials} trials"


def order_notes(
    means: pd.DataFrame, summary: pd.DataFrame | None = None, modes: Sequence[str] | None = None
) -> list[OrderNote]:
    """Closed-loop steps that break the expected order by more than the noise (see the module doc).

    ``means``: :func:`bench.report.tables.step_means` rows; ``summary``: the per-trial rows
    (for the spread of several trials). Open-loop steps are left out: they are compared
    against their offered rate, not against N.
    """
    notes: list[OrderNote] = []
    modes = [m for m in (modes or sorted(set(means["mode"]))) if m in _CLOSED_LOOP]
    for mode in modes:
        for target in dict.fromkeys(means.loc[means["mode"] == mode, "target"]):
            part = _usable(means[(means["target"] == target) & (means["mode"] == mode)])
            if len(part) < 2:
                continue
            noise = step_noise_pct(part, summary)
            found = _total_falls(part, target, mode, noise) + _throughput_outliers(part, target, mode, noise)
            notes += sorted(found, key=lambda note: note.n_requests)  # in N order within a target
    return notes


def _total_falls(part: pd.DataFrame, target: str, mode: str, noise: float) -> list[OrderNote]:
    out = []
    ns, totals = part["n_requests"].astype(int).tolist(), part["total_s"].astype(float).tolist()
    for (n0, t0), (n1, t1) in zip(zip(ns, totals, strict=False), zip(ns[1:], totals[1:], strict=False), strict=False):
        if t1 * (1.0 + noise / 100.0) < t0:
            out.append(
                OrderNote(
                    target,
                    mode,
                    "total_falls",
                    n1,
                    (
                        f"`{target}` {mode} N={n1}: total time {t1:.3g} s, less than the {t0:.3g} s of N={n0} "
                        f"although it answered more requests (N={n0} took {t0 / t1:.2f}x as long); beyond the "
                        f"{_factor(noise)} that {_trial_word(part)} can differ by: re-measure before reading it."
                    ),
                )
            )
    return out


def _throughput_outliers(part: pd.DataFrame, target: str, mode: str, noise: float) -> list[OrderNote]:
    out = []
    ns, rps = part["n_requests"].astype(int).tolist(), part["throughput_rps"].astype(float).tolist()
    factor = 1.0 + noise / 100.0
    for i in range(1, len(ns) - 1):
        left, here, right = rps[i - 1], rps[i], rps[i + 1]
        if not all(math.isfinite(v) and v > 0 for v in (left, here, right)):
            continue
        if here > factor * max(left, right):
            where, ratio = "above", here / max(left, right)
        elif here * factor < min(left, right):
            where, ratio = "below", min(left, right) / here
        else:
            continue
        out.append(
            OrderNote(
                target,
                mode,
                "throughput_outlier",
                ns[i],
                (
                    f"`{target}` {mode} N={ns[i]}: throughput {here:,.0f} req/s, {ratio:.2f}x {where} the nearer "
                    f"of its neighbours ({left:,.0f} at N={ns[i - 1]}, {right:,.0f} at N={ns[i + 1]}); beyond the "
                    f"{_factor(noise)} that {_trial_word(part)} can differ by: re-measure before reading it."
                ),
            )
        )
    return out


def _factor(noise_pct: float) -> str:
    """The noise as the factor it bounds (it is a bound on |log(B/A)|): '1.25x (25 %)'."""
    return f"{1.0 + noise_pct / 100.0:.2f}x ({noise_pct:.0f} %)"


def noise_notes(run: RunData) -> tuple[str | None, list[str]]:
    """The one-trial caution (None with several trials) and the steps out of order beyond the noise.

    Capacity-search rows must already be split off (they are not Table 3 steps)."""
    if run.summary.empty:
        return None, []
    command = run.meta.details.get("command")
    caution = single_trial_caution(run.summary, command if isinstance(command, str) else None)
    notes = order_notes(step_means(run.summary), run.summary, modes_in(run.summary))
    return caution, [n.text for n in notes]
