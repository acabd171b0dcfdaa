"""Stage rows from a Kubeflow Pipelines run's details (``GET /apis/v2beta1/runs/{id}``).

Why pure functions over the kfp_server_api models: the mapping from KFP's task list to our
stage names is the part most likely to be wrong against a real cluster, so it is kept
apart from the HTTP calls and tested on its own.

What is read (attribute names of kfp_server_api 2.17's ``V2beta1Run`` /
``V2beta1RunDetails`` / ``V2beta1PipelineTaskDetail``): ``run.created_at``,
``run.finished_at``, ``run.state``, ``run.error``, and for every
``run.run_details.task_details`` entry ``display_name``, ``start_time``, ``end_time``,
``state`` and ``error``.  KFP names a task after the IR's ``taskInfo.name``
(:func:`display_names`); entries with other names (the root DAG, ``*-driver`` pods,
executors) are not stages and are reported as unmapped, not timed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["FINISHED_STATES", "RunTimings", "display_names", "epoch", "run_timings", "stage_status"]

#: Run states after which the run will not change any more.
FINISHED_STATES = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"})


def display_names(pipeline_doc: Mapping[str, Any]) -> dict[str, str]:
    """KFP display name -> stage for the root DAG of a compiled IR document.

    The stage is the task key with KFP's ``-`` turned back into the component function's
    ``_`` (KFP compiles ``load_data`` to the task ``load-data``; our stage rows say ``load_data``).
    """
    tasks = pipeline_doc["root"]["dag"]["tasks"]
    return {spec.get("taskInfo", {}).get("name", key): key.replace("-", "_") for key, spec in tasks.items()}


def epoch(value: datetime | str | None) -> float | None:
    """Seconds since the epoch; None for unset times (KFP sends 1970-01-01 for "not yet")."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        from dateutil.parser import isoparse

        value = isoparse(value)
    seconds = value.timestamp()
    return seconds if seconds > 0 else None


def _state(value: Any) -> str:
    return str(value or "RUNTIME_STATE_UNSPECIFIED").upper()


def stage_status(state: str) -> str:
    """Our status words for a KFP task state (the local run writes ``ok`` / ``failed``)."""
    return {
        "SUCCEEDED": "ok",
        "FAILED": "failed",
        "CANCELED": "canceled",
        "CANCELING": "canceled",
        "SKIPPED": "skipped",
    }.get(state, state.lower())


def _error(obj: Any) -> str:
    err = getattr(obj, "error", None)
    return str(getattr(err, "message", "") or "") if err is not None else ""


@dataclass
class RunTimings:
    """What a run's details say, as rows in the local pipeline_stages.csv shape (epoch seconds)."""

    state: str
    rows: list[dict[str, Any]]  # stage, start, end, seconds, status (+ "total" last when finished)
    failed_stage: str = ""
    error: str = ""
    missing: list[str] = field(default_factory=list)  # stages with no finished task entry
    unmapped: list[str] = field(default_factory=list)  # task display names that are not stages


def run_timings(run: Any, names: Mapping[str, str], stage_order: Sequence[str]) -> RunTimings:
    """Rows for every stage whose task has start and end times, ordered by start; plus ``total``.

    A stage that ran more than once (a retried task) spans its first start to its last end
    and takes the last attempt's state.  ``total`` spans the run's ``created_at`` to
    ``finished_at`` (queueing and driver pods included) and is added once the run finished.
    The failed stage is the first failed stage row, else the first stage in ``stage_order``
    without an ``ok`` row (the run failed outside our tasks, e.g. in a driver).
    """
    state = _state(getattr(run, "state", None))
    details = getattr(run, "run_details", None)
    tasks = list(getattr(details, "task_details", None) or [])
    attempts: dict[str, list[Any]] = {}
    unmapped: set[str] = set()
    for task in tasks:
        name = str(getattr(task, "display_name", "") or "")
        stage = names.get(name)
        if stage is None:
            unmapped.add(name)
        else:
            attempts.setdefault(stage, []).append(task)
    rows: list[dict[str, Any]] = []
    errors: dict[str, str] = {}
    for stage, entries in attempts.items():
        entries.sort(key=lambda t: epoch(getattr(t, "start_time", None)) or float("inf"))
        start = epoch(getattr(entries[0], "start_time", None))
        end = max((e for e in (epoch(getattr(t, "end_time", None)) for t in entries) if e is not None), default=None)
        last = entries[-1]
        if start is None or end is None:
            continue  # not finished (still running at a timeout): no honest duration
        status = stage_status(_state(getattr(last, "state", None)))
        rows.append({"stage": stage, "start": start, "end": end, "seconds": end - start, "status": status})
        if _error(last):
            errors[stage] = _error(last)
    order = {s: i for i, s in enumerate(stage_order)}
    rows.sort(key=lambda r: (r["start"], order.get(r["stage"], len(order))))
    done = {r["stage"] for r in rows}
    missing = [s for s in stage_order if s not in done]
    failed = ""
    if state != "SUCCEEDED" and state in FINISHED_STATES:
        failed = next((r["stage"] for r in rows if r["status"] != "ok"), "")
        failed = failed or next((s for s in stage_order if s not in done), "unknown")
    created, finished = epoch(getattr(run, "created_at", None)), epoch(getattr(run, "finished_at", None))
    if state in FINISHED_STATES and created is not None and finished is not None:
        rows.append(
            {
                "stage": "total",
                "start": created,
                "end": finished,
                "seconds": finished - created,
                "status": "ok" if state == "SUCCEEDED" else "failed",
            }
        )
    error = errors.get(failed, "") or _error(run)
    return RunTimings(
        state=state, rows=rows, failed_stage=failed, error=error, missing=missing, unmapped=sorted(unmapped)
    )
