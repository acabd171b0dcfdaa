"""What ``bench compare`` reads from a run: per step, one value per clean trial, plus its flags.

The comparison must not care whether a run is schema 1 or 2, came with ``requests.csv.gz``
or only ``summary.csv``, or lacks a column an older servebench did not write; all of that is
settled here, once. Pure: ``RunData`` in, dicts out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from bench.results import RunData
from bench.results.digest import ok_latencies_of
from bench.results.parse import StepSummary
from bench.results.schema import SCHEMA_ADDED, SCHEMA_VERSION
from loadgen.modes import MODES

__all__ = [
    "CompareError",
    "Side",
    "StepKey",
    "check_schemas",
    "order_keys",
    "read_sides",
    "request_latencies",
    "step_label",
    "trial_designs",
]

StepKey = tuple[str, str, int, int, float]  # target, mode, n_requests, concurrency, rate

_MODE_RANK = {mode: rank for rank, mode in enumerate(MODES)}  # loadgen.modes.Mode order


class CompareError(ValueError):
    """The two runs cannot be compared (nothing in common, a newer schema, a missing column)."""


@dataclass(frozen=True)
class Side:
    """One run's rows of one step."""

    values: dict[int, float]  # trial -> per-trial statistic, clean trials only
    flags: frozenset[str]  # union of loadgen.stats.step_flags over the step's rows (StepSummary.flags)
    flagged_trials: int
    trials: int
    failed_requests: int
    requests: int


def step_label(key: StepKey) -> str:
    """'target/mode/N=64', with rate= and c= when they are not the mode's default."""
    target, mode, n, c, rate = key
    label = f"{target}/{mode}/N={n}"
    if mode == "rate":
        label += f"/rate={rate:g}"
        if c not in (0, n):
            label += f"/c={c}"
    elif not (mode == "sequential" and c == 1) and not (mode == "concurrent" and c in (0, n)):
        label += f"/c={c}"
    return label


def check_schemas(a: RunData, b: RunData) -> list[str]:
    """Notes about differing schemas; CompareError only for a schema newer than this code knows."""
    for name, run in (("A", a), ("B", b)):
        version = run.schema_version
        if version is not None and version > SCHEMA_VERSION:
            raise CompareError(
                f"{name} ({run.path}) has schema {version}, newer than this servebench knows "
                f"({SCHEMA_VERSION}); compare with the servebench that wrote it"
            )
    va, vb = a.schema_version, b.schema_version
    if va is not None and vb is not None and va != vb:
        added = "; ".join(SCHEMA_ADDED[v] for v in range(min(va, vb) + 1, max(va, vb) + 1) if v in SCHEMA_ADDED)
        return [
            f"A has schema {va}, B schema {vb}: the columns added since schema {min(va, vb)} ({added}) are "
            "absent on the older side, whose failures are derived from its error counts"
        ]
    return []


def _key(step: StepSummary) -> StepKey:
    k = step.key
    return (k.target, k.mode, k.n_requests, k.concurrency, round(k.rate, 6))


def read_sides(run: RunData, column: str, name: str) -> dict[StepKey, Side]:
    """Every step of ``run``: its clean trials' ``column`` values and its flags and counts.

    A trial flagged by ``step_flags`` (errors, all_failed, saturated) gives no value: its
    latency describes the survivors or a queue, not the service. The rows are the reader's
    :class:`bench.results.parse.StepSummary` records, so schema 1 and 2 read alike.
    """
    if not any(getattr(step, column) is not None for step in run.steps):
        raise CompareError(
            f"{name} ({run.path}) has no {column!r} column (or no value in it) in summary.csv; pick another --metric"
        )
    groups: dict[StepKey, list[StepSummary]] = {}
    for step in run.steps:
        groups.setdefault(_key(step), []).append(step)
    sides = {}
    for key, steps in groups.items():
        values: dict[int, float] = {}
        flags: set[str] = set()
        flagged = failed = sent = 0
        for step in steps:
            flags |= step.flags
            flagged += bool(step.flags)
            sent += step.key.n_requests
            failed += step.errors
            value = getattr(step, column)
            if not step.flags and value is not None and value > 0:
                trial = step.key.trial
                while trial in values:  # the same trial twice (concatenated summaries): keep both
                    trial += 1_000_000
                values[trial] = value
        sides[key] = Side(values, frozenset(flags), flagged, len(steps), failed, sent)
    return sides


def trial_designs(run: RunData) -> dict[str, str]:
    """Per target, what its trials replicate: ``restart`` (each trial a fresh start of the
    stand-in, :mod:`bench.run.trial_design`) or ``within-run`` (one start for all trials).

    Runs written before issue 21, merged shard runs and remote targets have no ``restart``
    entry: their trials were inside one start, which is what the default says.
    """
    design = run.meta.details.get("trial_design") if run.meta is not None else None
    per_target = (design or {}).get("per_target") if isinstance(design, dict) else None
    recorded = per_target if isinstance(per_target, dict) else {}
    return {target: "restart" if recorded.get(target) == "restart" else "within-run" for target in run.targets}


def request_latencies(run: RunData) -> dict[StepKey, np.ndarray]:
    """Successful requests' latencies per step, all trials pooled (for the detail column)."""
    return ok_latencies_of(run.latencies())


def order_keys(keys: Iterable[StepKey], target_order: list[str]) -> list[StepKey]:
    """Run order of targets, then sequential < concurrent < rate, then N, concurrency, rate."""
    rank = {t: i for i, t in enumerate(target_order)}
    return sorted(
        keys, key=lambda k: (rank.get(k[0], len(rank)), k[0], _MODE_RANK.get(k[1], 9), k[1], k[2], k[3], k[4])
    )
