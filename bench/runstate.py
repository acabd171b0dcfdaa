"""Who is writing a run, and whether it is still running: ``running`` vs ``abandoned``.

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

A status other than ``running`` (complete, failed, interrupted, ...) is final and
returned as is. The CLI applies :func:`resolve_status` when it reads a run (``bench
report``, ``bench compare``); meta.json on disk is never rewritten by a reader.
"""

from __future__ import annotations

import copy
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.hostload import noise_warnings

__all__ = [
    "HostView",
    "effective_status",
    "process_start_ticks",
    "resolve_status",
    "run_warnings",
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


def effective_status(meta: Mapping[str, Any], here: HostView) -> tuple[str, str]:
    """(status, why) of a run: its recorded status, or for ``running`` whether that is still true."""
    status = str(meta.get("status") or ("complete" if meta.get("complete") else ""))
    if status != "running":  # final ("" when meta.json records no status at all)
        return status, ""
    writer = meta.get("writer") or {}
    pid, ticks, host = writer.get("pid"), writer.get("start_ticks"), writer.get("host")
    if not isinstance(pid, int) or host is None:
        return "unknown", ("meta.json says running but names no writer (an older servebench wrote it): "
                           "cannot tell whether it is still running")
    who = f"pid {pid} on host {host}"
    if host != here.host:
        return "unknown", f"written by {who}; its process cannot be checked from host {here.host}"
    boot = writer.get("boot_id") or ""
    if boot and here.boot_id and boot != here.boot_id:
        return "abandoned", f"its writer ({who}) ran before this machine last rebooted"
    now = here.start_ticks(pid)
    if now is None:
        return "abandoned", f"its writer ({who}) is gone: killed or crashed before it could record an end"
    if ticks is not None and now != ticks:
        return "abandoned", (f"its writer ({who}) is gone: that pid now belongs to another process "
                             "(a different start time)")
    return "running", f"its writer ({who}) is still running"


def resolve_status(meta: Mapping[str, Any], here: HostView) -> dict[str, Any]:
    """A copy of ``meta`` with the effective status; targets left mid-way say so.

    For an abandoned run: the target that was ``running`` becomes ``abandoned`` and the
    targets that never started become ``not_run``. The recorded status is kept in
    ``recorded_status`` and the reason in ``status_reason``.
    """
    resolved = copy.deepcopy(dict(meta))
    status, why = effective_status(meta, here)
    resolved["status_reason"] = why
    if status == resolved.get("status"):
        return resolved
    resolved["recorded_status"] = resolved.get("status")
    resolved["status"] = status
    if status != "abandoned":
        return resolved
    outcomes = resolved.get("outcomes") or {}
    for name, outcome in outcomes.items():
        if not isinstance(outcome, dict):
            continue
        if outcome.get("status") == "running":
            outcome["status"] = "abandoned"
            outcome["message"] = ("the run's process died while measuring this target; the steps measured "
                                  "before are kept in summary.csv")
        elif outcome.get("status") == "pending":
            outcome["status"] = "not_run"
            outcome["message"] = "not run: the run's process died before this target"
    errors = dict(resolved.get("target_errors") or {})
    for name, outcome in outcomes.items():
        if isinstance(outcome, dict) and outcome.get("status") in ("abandoned", "not_run"):
            errors[name] = f"{outcome['status']}: {outcome['message']}"
    resolved["target_errors"] = errors
    return resolved


def status_warnings(meta: Mapping[str, Any]) -> list[str]:
    """Lines about a resolved run's status: abandoned, still running, or undecidable."""
    status, why, run_id = meta.get("status"), meta.get("status_reason") or "", meta.get("run_id", "?")
    if status == "abandoned":
        during = [name for name, o in (meta.get("outcomes") or {}).items()
                  if isinstance(o, dict) and o.get("status") == "abandoned"]
        where = f" while measuring target {', '.join(during)}" if during else ""
        return [f"run {run_id} was abandoned{where}: {why}; meta.json still says "
                f"'{meta.get('recorded_status', 'running')}'. Only the rows written before are there."]
    if status == "running":
        return [f"run {run_id} is still running ({why}): its results are incomplete"]
    if status == "unknown":
        return [f"run {run_id}: status unknown: {why}"]
    return []


def run_warnings(meta: Mapping[str, Any]) -> list[str]:
    """Everything to say before showing a resolved run's numbers: its status, then host noise."""
    return status_warnings(meta) + noise_warnings(meta)
