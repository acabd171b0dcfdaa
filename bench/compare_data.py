"""What ``bench compare`` reads from a run: per step, one value per clean trial, plus its flags.

Why its own module: the comparison must not care whether a run is schema 1 or 2, came
with ``requests.csv.gz`` or only ``summary.csv``, or lacks a column an older servebench
did not write; all of that is settled here, once. Pure: ``RunData`` in, dicts out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from bench.meta import SCHEMA_VERSION
from bench.results import RunData
from loadgen.modes import MODES
from loadgen.stats import step_flags

__all__ = [
    "CompareError",
    "Side",
    "StepKey",
    "check_schemas",
    "order_keys",
    "read_sides",
    "request_latencies",
    "step_label",
]

StepKey = tuple[str, str, int, int, float]  # target, mode, n_requests, concurrency, rate

_MODE_RANK = {mode: rank for rank, mode in enumerate(MODES)}  # loadgen.modes.Mode order


class CompareError(ValueError):
    """The two runs cannot be compared (nothing in common, a newer schema, a missing column)."""


@dataclass(frozen=True)
class Side:
    """One run's rows of one step."""

    values: dict[int, float]  # trial -> per-trial statistic, clean trials only
    flags: frozenset[str]  # union of loadgen.stats.step_flags over the step's rows
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
            raise CompareError(f"{name} ({run.path}) has schema {version}, newer than this servebench knows "
                               f"({SCHEMA_VERSION}); compare with the servebench that wrote it")
    va, vb = a.schema_version, b.schema_version
    if va is not None and vb is not None and va != vb:
        return [f"A has schema {va}, B schema {vb}: the columns added since schema {min(va, vb)} (open-loop "
                "rates, saturated, flags) are absent on the older side, whose failures are derived from its "
                "error counts"]
    return []


def _int_or(value: object, default: int) -> int:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return default if math.isnan(number) else int(number)


def _float_or(value: object, default: float) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return default if math.isnan(number) else number


def _key(row: dict) -> StepKey:
    mode = str(row["mode"])
    n = int(row["n_requests"])
    c = _int_or(row.get("concurrency"), 1 if mode == "sequential" else n)
    return (str(row["target"]), mode, n, c, round(_float_or(row.get("rate"), 0.0), 6))


def read_sides(run: RunData, column: str, name: str) -> dict[StepKey, Side]:
    """Every step of ``run``: its clean trials' ``column`` values and its flags and counts.

    A trial flagged by ``step_flags`` (errors, all_failed, saturated) gives no value: its
    latency describes the survivors or a queue, not the service.
    """
    if column not in run.summary.columns:
        raise CompareError(f"{name} ({run.path}) has no {column!r} column in summary.csv; pick another --metric")
    groups: dict[StepKey, list[dict]] = {}
    for row in run.summary.to_dict("records"):
        groups.setdefault(_key(row), []).append(row)
    sides = {}
    for key, rows in groups.items():
        values: dict[int, float] = {}
        flags: set[str] = set()
        flagged = failed = sent = 0
        for position, row in enumerate(rows):
            row_flags = step_flags(row)
            flags |= row_flags
            flagged += bool(row_flags)
            n = _int_or(row.get("n_requests"), 0)
            sent += n
            failed += _int_or(row.get("errors"), n - _int_or(row.get("n_ok"), n))
            value = _float_or(row.get(column), math.nan)
            if not row_flags and value > 0:
                trial = _int_or(row.get("trial"), position)
                while trial in values:  # the same trial twice (concatenated summaries): keep both
                    trial += 1_000_000
                values[trial] = value
        sides[key] = Side(values, frozenset(flags), flagged, len(rows), failed, sent)
    return sides


def request_latencies(run: RunData) -> dict[StepKey, np.ndarray]:
    """Successful requests' latencies per step, all trials pooled (for the detail column)."""
    requests = run.requests
    if requests is None or requests.empty:
        return {}
    ok = requests[requests["error"].isin(["", "nan"])]
    out = {}
    for (target, mode, n, c, rate), group in ok.groupby(["target", "mode", "n_requests", "concurrency", "rate"]):
        key = _key({"target": target, "mode": mode, "n_requests": n, "concurrency": c, "rate": rate})
        out[key] = group["latency_s"].to_numpy(float)
    return out


def order_keys(keys: Iterable[StepKey], target_order: list[str]) -> list[StepKey]:
    """Run order of targets, then sequential < concurrent < rate, then N, concurrency, rate."""
    rank = {t: i for i, t in enumerate(target_order)}
    return sorted(keys, key=lambda k: (rank.get(k[0], len(rank)), k[0], _MODE_RANK.get(k[1], 9), k[1], k[2], k[3],
                                       k[4]))
