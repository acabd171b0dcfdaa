"""Which target is measured when: the trial design of ``bench run`` (pure, no I/O).

Why restart per trial (issue 21): trials measured inside one start of a stand-in share
its process placement, worker balance, ports and caches, so they agree with each other
far better than two runs do. Eight pairs of identical back-to-back runs of two targets
with three interleaved trials each gave per-target B/A of 0.76-1.60, and in 9 of 16
comparisons a 97.5 % interval over the trials excluded 1 although nothing had changed:
the trials were not replicates of what differs between runs. pyperf answers the same
problem by spreading values over many fresh worker processes. So, by default
(``restart``), every trial of a *local* stand-in is a fresh start -- new processes, new
ports, new CPU placement -- and the targets run in a seeded shuffled order per trial, so
slow drift of the host spreads over targets instead of always hitting the last one.

A *remote* target cannot be restarted by servebench (its deployment is somebody
else's): its trials stay inside one visit (``within-run``), in round 1 of the shuffled
order, and meta.json says so; ``bench compare`` then keeps the noise floor for it. A
sharded client (``--shard``/``--clients``) always sends to a remote endpoint, so its
steps keep the one schedule all shards share.

``within-run`` for every target is the old design (start once, ``for trial: for mode:
for n``) and can still be chosen (``bench run --trial-design within-run``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["DESIGNS", "RESTART", "WITHIN_RUN", "Visit", "describe_design", "visit_schedule"]

RESTART = "restart"
WITHIN_RUN = "within-run"
DESIGNS = (RESTART, WITHIN_RUN)
_ORDER_STREAM = 3  # RNG stream [seed, 3, trial]: apart from the images' (0) and the schedules' (1, 2)


@dataclass(frozen=True)
class Visit:
    """One start-sweep-stop of one target: ``trials`` are the trial numbers it measures (empty = all)."""

    index: int  # position of the target in the run's target list
    trials: tuple[int, ...]
    last: bool  # this target's last visit (where a once-per-target phase such as capacity runs)


def _round_order(n_targets: int, trial: int, seed: int, shuffle: bool) -> list[int]:
    if not shuffle or n_targets < 2:
        return list(range(n_targets))
    return [int(i) for i in np.random.default_rng([seed, _ORDER_STREAM, trial]).permutation(n_targets)]


def visit_schedule(
    remote: Sequence[bool], trials: int, *, design: str = RESTART, seed: int = 0, has_plan: bool = True
) -> list[Visit]:
    """The run's visits in order.

    ``remote[i]``: whether target ``i`` is remote (never restarted). ``trials``: the plan's
    trial count. ``has_plan`` False (a capacity-only run) means one visit per target.
    ``restart``: rounds 1..trials, each a seeded permutation of the targets; a local target
    measures that round's trial, a remote one all its trials in round 1. ``within-run``:
    one visit per target in list order, all trials -- the design before issue 21.
    """
    if design not in DESIGNS:
        raise ValueError(f"unknown trial design {design!r}; designs: {', '.join(DESIGNS)}")
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    n = len(remote)
    if design == WITHIN_RUN or not has_plan or trials == 1:
        return [Visit(i, (), True) for i in range(n)]
    visits: list[Visit] = []
    for trial in range(1, trials + 1):
        for i in _round_order(n, trial, seed, shuffle=True):
            if remote[i]:
                if trial == 1:
                    visits.append(Visit(i, (), True))
                continue
            visits.append(Visit(i, (trial,), trial == trials))
    return visits


def describe_design(
    names: Sequence[str], remote: Sequence[bool], trials: int, *, design: str, seed: int, has_plan: bool = True
) -> dict[str, object]:
    """meta.json's ``trial_design`` section: what a trial replicates, per target, and the visit order."""
    visits = visit_schedule(remote, trials, design=design, seed=seed, has_plan=has_plan)
    restarted = design == RESTART and has_plan and trials > 1
    per_target = {
        name: (WITHIN_RUN if (is_remote or not restarted) else RESTART)
        for name, is_remote in zip(names, remote, strict=True)
    }
    return {
        "design": design,
        "trials": trials,
        "seed": seed,
        "per_target": per_target,  # restart: each trial a fresh start; within-run: one start for all trials
        "remote_within_run": [name for name, r in zip(names, remote, strict=True) if r and restarted],
        "visits": [{"target": names[v.index], "trials": list(v.trials) or "all"} for v in visits],
        "why": "trials of one start share its placement, ports and caches and are not replicates of what differs "
        "between runs; a fresh start per trial is (docs/compare.md)",
    }
