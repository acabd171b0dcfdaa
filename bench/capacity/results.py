"""The capacity search's files in ``results/<run-id>/``: rows out, and frames back in.

Why three files beside summary.csv: summary.csv and requests.csv.gz keep every probe's raw
records and its summary row (modes ``capacity`` and ``capacity_closed``), but not the
search's own judgement -- which phase a probe was, whether it met the objective and why
not, what the search concluded. So:

- ``capacity.csv``: one row per target and search (``repeat``): the objective, the capacity
  in req/s, the latencies at that rate (the confirmation probe), VALID/INVALID, the
  client-bound flag, the number of probes and the seconds spent, and the closed-loop best.
- ``capacity_probes.csv``: one row per open-loop probe, in order, with its verdict; its
  ``trial`` column is the probe's ``trial`` in summary.csv and requests.csv.gz.
- ``capacity_concurrency.csv``: the closed-loop sweep, one row per concurrency.

Rows are appended and flushed as they are known, like summary.csv: a probe's row right
after the probe, a search's row when it ends, the closed loop's when it ends. Reading is pure
pandas; nothing here measures or prints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.results import RunData
from bench.results import append_csv_rows as append_rows  # appended and flushed as summary.csv is
from loadgen.capacity import CapacityResult, ProbeRecord
from loadgen.concurrency_search import ClosedLoopResult

__all__ = [
    "CAPACITY_COLUMNS",
    "CAPACITY_FILE",
    "CAPACITY_MODES",
    "CLOSED_MODE",
    "CONCURRENCY_COLUMNS",
    "CONCURRENCY_FILE",
    "OPEN_MODE",
    "PROBE_COLUMNS",
    "PROBES_FILE",
    "CapacityData",
    "append_rows",
    "capacity_row",
    "concurrency_rows",
    "load_capacity",
    "split_capacity",
    "probe_row",
]

OPEN_MODE = "capacity"  # summary.csv mode of the open-loop probes
CLOSED_MODE = "capacity_closed"  # summary.csv mode of the closed-loop concurrency sweep
CAPACITY_MODES: tuple[str, ...] = (OPEN_MODE, CLOSED_MODE)

CAPACITY_FILE = "capacity.csv"
PROBES_FILE = "capacity_probes.csv"
CONCURRENCY_FILE = "capacity_concurrency.csv"

CAPACITY_COLUMNS: tuple[str, ...] = (
    "run_id",
    "target",
    "repeat",
    "objective",
    "percentile",
    "bound_s",
    "capacity_rps",
    "verdict",
    "client_bound",
    "client_ceiling_rps",
    "upper_rps",
    "precision_reached",
    "stop_reason",
    "probes",
    "seconds",
    "at_offered_rps",
    "at_achieved_rps",
    "at_lat_p50_s",
    "at_lat_p90_s",
    "at_lat_p99_s",
    "at_lat_objective_s",
    "at_errors",
    "at_saturated",
    "closed_best_concurrency",
    "closed_best_rps",
    "closed_best_lat_objective_s",
    "seed",
    # the evidence (schema 2; older capacity.csv files lack these and read as empty)
    "confidence",
    "upper_decision",
    "at_decision",
    "at_n",
    "at_exceed",
    "at_n_effective",
    "at_lat_objective_lo_s",
    "at_lat_objective_hi_s",
    # the episode rule (schema 3; absent in older files)
    "at_episodes",
    "at_cluster_size",
    "at_span_s",
)
PROBE_COLUMNS: tuple[str, ...] = (
    "run_id",
    "target",
    "repeat",
    "probe",
    "phase",
    "offered_rps",
    "n_requests",
    "achieved_rps",
    "lat_p50_s",
    "lat_p90_s",
    "lat_p99_s",
    "lat_objective_s",
    "errors",
    "error_classes",
    "saturated",
    "met",
    "violation",
    "seconds",
    "trial",
    # the evidence at this rate after this look (schema 2; absent in older files)
    "look",
    "final",
    "decision",
    "confidence",
    "n_judged",
    "exceed",
    "n_effective",
    "exceed_effective",
    "p_met",
    "p_violated",
    "lat_objective_lo_s",
    "lat_objective_hi_s",
    # the episode rule (schema 3; absent in older files): episodes over the bound, requests
    # per episode (the larger of the bound's and the cluster level's), seconds of arrivals
    "episodes",
    "cluster_size",
    "span_s",
)
CONCURRENCY_COLUMNS: tuple[str, ...] = (
    "run_id",
    "target",
    "objective",
    "concurrency",
    "n_requests",
    "throughput_rps",
    "lat_p50_s",
    "lat_objective_s",
    "errors",
    "met",
    "near_client_ceiling",
    "client_ceiling_rps",
    "seconds",
    "stop",
)


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def capacity_row(
    run_id: str,
    target: str,
    repeat: int,
    result: CapacityResult,
    closed: ClosedLoopResult | None,
    *,
    ceiling_rps: float | None,
    seed: int,
) -> dict[str, Any]:
    """One capacity.csv row for a finished search."""
    at = result.at_capacity
    o = at.outcome if at is not None else None
    ev = at.evidence if at is not None else None
    best = closed.best if closed is not None else None
    return {
        "run_id": run_id,
        "target": target,
        "repeat": repeat,
        "objective": result.objective.describe(),
        "percentile": result.objective.percentile,
        "bound_s": result.objective.bound_s,
        "capacity_rps": result.capacity_rps,
        "verdict": result.verdict,
        "client_bound": result.client_bound,
        "client_ceiling_rps": _nan(ceiling_rps),
        "upper_rps": result.upper_rps,
        "precision_reached": result.precision_reached,
        "stop_reason": result.stop_reason,
        "probes": len(result.probes),
        "seconds": round(result.seconds, 3),
        "at_offered_rps": _nan(o.rate if o else None),
        "at_achieved_rps": _nan(o.achieved_rps if o else None),
        "at_lat_p50_s": _nan(o.p50_s if o else None),
        "at_lat_p90_s": _nan(o.p90_s if o else None),
        "at_lat_p99_s": _nan(o.p99_s if o else None),
        "at_lat_objective_s": _nan(o.latency_s if o else None),
        "at_errors": o.errors if o else "",
        "at_saturated": o.saturated if o else "",
        "closed_best_concurrency": best.spec.concurrency if best else "",
        "closed_best_rps": _nan(best.outcome.throughput_rps if best else None),
        "closed_best_lat_objective_s": _nan(best.outcome.latency_s if best else None),
        "seed": seed,
        "confidence": result.confidence,
        "upper_decision": result.upper_decision,
        "at_decision": at.decision if at is not None else "",
        "at_n": ev.n if ev else "",
        "at_exceed": ev.exceed if ev else "",
        "at_n_effective": round(ev.n_effective, 1) if ev else "",
        "at_lat_objective_lo_s": _nan(ev.lat_lo_s if ev else None),
        "at_lat_objective_hi_s": _nan(ev.lat_hi_s if ev else None),
        "at_episodes": ev.episodes if ev else "",
        "at_cluster_size": round(ev.cluster_size, 2) if ev else "",
        "at_span_s": round(ev.span_s, 2) if ev and math.isfinite(ev.span_s) else "",
    }


def probe_row(run_id: str, target: str, repeat: int, record: ProbeRecord, trial: int) -> dict[str, Any]:
    """One capacity_probes.csv row; ``trial`` is the probe's trial number in summary.csv."""
    o = record.outcome
    ev = record.evidence
    return {
        "run_id": run_id,
        "target": target,
        "repeat": repeat,
        "probe": record.spec.index,
        "phase": record.spec.phase,
        "offered_rps": record.spec.rate,
        "n_requests": o.n_requests,
        "achieved_rps": o.achieved_rps,
        "lat_p50_s": o.p50_s,
        "lat_p90_s": o.p90_s,
        "lat_p99_s": o.p99_s,
        "lat_objective_s": o.latency_s,
        "errors": o.errors,
        "error_classes": o.error_classes,
        "saturated": o.saturated,
        "met": record.met,
        "violation": record.violation,
        "seconds": round(o.duration_s, 3),
        "trial": trial,
        "look": record.spec.look,
        "final": record.final,
        "decision": record.decision,
        "confidence": ev.confidence if ev else "",
        "n_judged": ev.n if ev else "",
        "exceed": ev.exceed if ev else "",
        "n_effective": round(ev.n_effective, 1) if ev else "",
        "exceed_effective": round(ev.exceed_effective, 2) if ev else "",
        "p_met": f"{ev.p_met:.4g}" if ev else "",
        "p_violated": f"{ev.p_violated:.4g}" if ev else "",
        "lat_objective_lo_s": _nan(ev.lat_lo_s if ev else None),
        "lat_objective_hi_s": _nan(ev.lat_hi_s if ev else None),
        "episodes": ev.episodes if ev else "",
        "cluster_size": round(ev.cluster_size, 2) if ev else "",
        "span_s": round(ev.span_s, 2) if ev and math.isfinite(ev.span_s) else "",
    }


def concurrency_rows(
    run_id: str, target: str, closed: ClosedLoopResult, ceiling_at: Mapping[int, float | None]
) -> list[dict[str, Any]]:
    """capacity_concurrency.csv rows; ``ceiling_at[c]`` is the client's req/s at concurrency c."""
    from loadgen.capacity import CLIENT_BOUND_FRACTION

    rows = []
    for record in closed.levels:
        o = record.outcome
        ceiling = ceiling_at.get(record.spec.concurrency)
        near = bool(ceiling and o.throughput_rps >= CLIENT_BOUND_FRACTION * ceiling)
        rows.append(
            {
                "run_id": run_id,
                "target": target,
                "objective": closed.objective.describe(),
                "concurrency": record.spec.concurrency,
                "n_requests": o.n_requests,
                "throughput_rps": o.throughput_rps,
                "lat_p50_s": o.p50_s,
                "lat_objective_s": o.latency_s,
                "errors": o.errors,
                "met": record.met,
                "near_client_ceiling": near,
                "client_ceiling_rps": _nan(ceiling),
                "seconds": round(o.duration_s, 3),
                "stop": record.stop,
            }
        )
    return rows


@dataclass(frozen=True)
class CapacityData:
    """A run's capacity files as frames (empty frames when a file is absent)."""

    capacity: pd.DataFrame
    probes: pd.DataFrame
    concurrency: pd.DataFrame

    @property
    def empty(self) -> bool:
        return self.capacity.empty and self.probes.empty and self.concurrency.empty

    @property
    def targets(self) -> list[str]:
        frames = (self.capacity, self.probes, self.concurrency)
        return list(dict.fromkeys(t for f in frames if "target" in f for t in f["target"].astype(str)))


def _read(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    if not path.is_file():
        return pd.DataFrame(columns=list(columns))
    try:
        frame = pd.read_csv(path, keep_default_na=True, float_precision="round_trip")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a readable CSV: {exc}") from exc
    missing = {"target"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path} lacks the column 'target'; is it a servebench {path.name}?")
    frame["target"] = frame["target"].astype(str)
    for col in columns:  # a file written before a column existed reads it as empty
        if col not in frame:
            frame[col] = math.nan
    for col in (
        "stop_reason",
        "violation",
        "error_classes",
        "stop",
        "verdict",
        "phase",
        "objective",
        "decision",
        "upper_decision",
        "at_decision",
    ):
        if col in frame:
            frame[col] = frame[col].fillna("").astype(str)
    return frame


def load_capacity(run_dir: Path) -> CapacityData:
    """Read capacity.csv, capacity_probes.csv and capacity_concurrency.csv of one run."""
    run_dir = Path(run_dir)
    return CapacityData(
        capacity=_read(run_dir / CAPACITY_FILE, CAPACITY_COLUMNS),
        probes=_read(run_dir / PROBES_FILE, PROBE_COLUMNS),
        concurrency=_read(run_dir / CONCURRENCY_FILE, CONCURRENCY_COLUMNS),
    )


def split_capacity(run: RunData) -> tuple[RunData, CapacityData | None]:
    """(the run without capacity rows, its capacity files) -- None when it has no capacity search."""
    classic = run.without_modes(CAPACITY_MODES)
    data = load_capacity(run.path)
    if data.empty and len(classic.steps) == len(run.steps):
        return classic, None
    return classic, data
