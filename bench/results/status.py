"""A run's effective status -- is its writer still running? -- and the warnings shown before its numbers.

``running`` vs ``abandoned`` is decided from meta.json's ``writer`` (:func:`writer_facts`).

Why: meta.json says ``"status": "running"`` from the first step until the writer
rewrites it at the end. A writer killed with SIGKILL (or by a crash, a reboot, the OOM
killer) never gets there, so the run said ``running`` forever, with the outcome of the
target it was measuring left at ``pending``. So meta.json records its writer (host name,
boot id, pid and the pid's start time in clock ticks since boot, from /proc/PID/stat, so
that a recycled pid is not taken for the writer) and :func:`effective_status` decides,
purely from meta.json and a :class:`HostView` of this machine:

* ``running``   -- same host and boot, and that pid is alive with that start time;
* ``abandoned`` -- same host, and the writer is gone (pid missing, a zombie, a different
  process under that pid, or the machine rebooted since);
* ``unknown``   -- the run says running but was written on another host, or by a
  servebench too old to record its writer: nothing here can tell.

A status other than ``running`` (complete, failed, interrupted, or unknown when meta.json
recorded none) is returned as is. The statuses are :class:`ground.runmeta.RunStatus`. The
CLI applies :func:`resolve_status` when it reads a run (``bench report``, ``bench
compare``); meta.json on disk is never rewritten by a reader.
"""

from __future__ import annotations

import copy
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.hostnoise import noise_warnings
from ground.runmeta import RunMeta, RunStatus

__all__ = [
    "HostView",
    "effective_status",
    "process_start_ticks",
    "resolve_status",
    "status_and_noise_warnings",
    "status_warnings",
    "writer_facts",
]

_PROC = Path("/proc")


def process_start_ticks(pid: int) -> int | None:
    """Start time of a live, non-zombie ``pid`` in clock ticks since boot; None if there is none."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    rest = stat[stat.rfind(")") + 2 :].split()
    if len(rest) < 20 or rest[0] in ("Z", "X"):
        return None
    return int(rest[19])  # field 22 (starttime); rest[0] is field 3


def _boot_id() -> str:
    try:
        return (_PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return ""


def writer_facts() -> dict[str, Any]:
    """This process as a run's writer: host, boot id, pid and the pid's start time."""
    pid = os.getpid()
    return {"host": platform.node(), "boot_id": _boot_id(), "pid": pid, "start_ticks": process_start_ticks(pid)}


@dataclass(frozen=True)
class HostView:
    """What this machine can tell about processes: its name, boot, and a pid's start time."""

    host: str
    boot_id: str
    start_ticks: Callable[[int], int | None]

    @classmethod
    def current(cls) -> HostView:
        return cls(platform.node(), _boot_id(), process_start_ticks)


def effective_status(meta: RunMeta, here: HostView) -> tuple[RunStatus, str]:
    """(status, why) of a run: its recorded status, or for ``running`` whether that is still true."""
    if meta.status is not RunStatus.RUNNING:  # final, or unknown (no status recorded)
        return meta.status, meta.status_reason
    writer = meta.writer
    pid, ticks, host = writer.get("pid"), writer.get("start_ticks"), writer.get("host")
    if not isinstance(pid, int) or host is None:
        return RunStatus.UNKNOWN, (
            "meta.json says running but names no writer (an older servebench wrote it): "
            "cannot tell whether it is still running"
        )
    who = f"pid {pid} on host {host}"
    if host != here.host:
        return RunStatus.UNKNOWN, f"written by {who}; its process cannot be checked from host {here.host}"
    boot = writer.get("boot_id") or ""
    if boot and here.boot_id and boot != here.boot_id:
        return RunStatus.ABANDONED, f"its writer ({who}) ran before this machine last rebooted"
    now = here.start_ticks(pid)
    if now is None:
        return RunStatus.ABANDONED, f"its writer ({who}) is gone: killed or crashed before it could record an end"
    if ticks is not None and now != ticks:
        return RunStatus.ABANDONED, (
            f"its writer ({who}) is gone: that pid now belongs to another process (a different start time)"
        )
    return RunStatus.RUNNING, f"its writer ({who}) is still running"


def resolve_status(meta: RunMeta, here: HostView) -> RunMeta:
    """A copy of ``meta`` with the effective status; targets left mid-way say so.

    For an abandoned run: the target that was ``running`` becomes ``abandoned`` and the
    targets that never started become ``not_run``. The recorded status word is kept in
    ``recorded_status`` and the reason in ``status_reason``.
    """
    status, why = effective_status(meta, here)
    resolved = copy.deepcopy(meta)
    resolved.status_reason = why
    if status is meta.status:
        return resolved
    resolved.recorded_status = meta.recorded_status or meta.status.value
    resolved.status = status
    if status is not RunStatus.ABANDONED:
        return resolved
    outcomes = resolved.details.get("outcomes") or {}
    for outcome in outcomes.values():
        if not isinstance(outcome, dict):
            continue
        if outcome.get("status") == "running":
            outcome["status"] = "abandoned"
            outcome["message"] = (
                "the run's process died while measuring this target; the steps measured before are kept in summary.csv"
            )
        elif outcome.get("status") == "pending":
            outcome["status"] = "not_run"
            outcome["message"] = "not run: the run's process died before this target"
    errors = dict(resolved.details.get("target_errors") or {})
    for name, outcome in outcomes.items():
        if isinstance(outcome, dict) and outcome.get("status") in ("abandoned", "not_run"):
            errors[name] = f"{outcome['status']}: {outcome['message']}"
    resolved.details["target_errors"] = errors
    return resolved


def status_warnings(meta: RunMeta) -> list[str]:
    """Lines about a resolved run's status: abandoned, still running, or undecidable."""
    status, why, run_id = meta.status, meta.status_reason, meta.run_id or "?"
    if status is RunStatus.ABANDONED:
        during = [
            name
            for name, o in (meta.details.get("outcomes") or {}).items()
            if isinstance(o, dict) and o.get("status") == "abandoned"
        ]
        where = f" while measuring target {', '.join(during)}" if during else ""
        return [
            f"run {run_id} was abandoned{where}: {why}; meta.json still says "
            f"'{meta.recorded_status or 'running'}'. Only the rows written before are there."
        ]
    if status is RunStatus.RUNNING:
        return [f"run {run_id} is still running ({why}): its results are incomplete"]
    if status is RunStatus.UNKNOWN and why:
        return [f"run {run_id}: status unknown: {why}"]
    return []


def status_and_noise_warnings(meta: RunMeta) -> list[str]:
    """Everything to say before showing a resolved run's numbers: its status, then host noise."""
    return status_warnings(meta) + noise_warnings(meta)
