"""A run's effective status: running only while its recorded writer is alive (bench.results.status)."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.results.status import (
    HostView,
    effective_status,
    process_start_ticks,
    resolve_status,
    status_and_noise_warnings,
    writer_facts,
)
from ground.runmeta import RunMeta, RunStatus

WRITER = {"host": "box", "boot_id": "boot-1", "pid": 4242, "start_ticks": 1000}


def _here(alive: dict[int, int], host: str = "box", boot: str = "boot-1") -> HostView:
    return HostView(host, boot, alive.get)


def _meta(status: str = "running", writer: dict | None = WRITER) -> RunMeta:
    meta = {
        "run_id": "r",
        "status": status,
        "complete": status == "complete",
        "outcomes": {
            "a": {"name": "a", "status": "ok", "message": "", "steps": 4},
            "b": {"name": "b", "status": "running", "message": "", "steps": 2},
            "c": {"name": "c", "status": "pending", "message": "", "steps": 0},
        },
        "target_errors": {},
    }
    if writer is not None:
        meta["writer"] = dict(writer)
    return RunMeta.from_json(meta)


def _running(writer: dict) -> RunMeta:
    return RunMeta.from_json({"status": "running", "writer": writer})


def test_running_only_while_that_pid_with_that_start_time_lives() -> None:
    assert effective_status(_meta(), _here({4242: 1000}))[0] == "running"
    status, why = effective_status(_meta(), _here({}))
    assert status == "abandoned" and "(pid 4242 on host box) is gone" in why
    status, why = effective_status(_meta(), _here({4242: 5555}))  # pid recycled by another process
    assert status == "abandoned" and "another process" in why
    status, why = effective_status(_meta(), _here({4242: 1000}, boot="boot-2"))  # rebooted since
    assert status == "abandoned" and "rebooted" in why


def test_other_host_or_no_writer_is_unknown_and_final_statuses_stay() -> None:
    status, why = effective_status(_meta(), _here({}, host="elsewhere"))
    assert status == "unknown" and "cannot be checked from host elsewhere" in why
    assert effective_status(_meta(writer=None), _here({}))[0] == "unknown"
    for final in ("complete", "failed", "interrupted"):
        assert effective_status(_meta(final), _here({})) == (RunStatus(final), "")
    assert effective_status(_meta("crashed"), _here({}))[0] is RunStatus.FAILED  # an old word, read as now
    nothing = RunMeta.from_json({"run_id": "x"})  # no status recorded at all
    assert effective_status(nothing, _here({})) == (RunStatus.UNKNOWN, "meta.json records no status")
    assert status_and_noise_warnings(nothing) == ["run x: status unknown: meta.json records no status"]


def test_resolve_marks_the_target_being_measured_and_the_unstarted_ones() -> None:
    meta = _meta()
    resolved = resolve_status(meta, _here({}))
    assert meta.status is RunStatus.RUNNING and meta.details["outcomes"]["b"]["status"] == "running"  # untouched
    assert resolved.status is RunStatus.ABANDONED and resolved.recorded_status == "running"
    outcomes = resolved.details["outcomes"]
    assert outcomes["a"]["status"] == "ok"
    assert outcomes["b"]["status"] == "abandoned" and "died while measuring" in outcomes["b"]["message"]
    assert outcomes["c"]["status"] == "not_run"
    assert set(resolved.details["target_errors"]) == {"b", "c"}
    (warning,) = status_and_noise_warnings(resolved)
    assert warning.startswith("run r was abandoned while measuring target b: its writer (pid 4242")
    alive = resolve_status(meta, _here({4242: 1000}))
    assert alive.status is RunStatus.RUNNING and alive.recorded_status == ""
    assert status_and_noise_warnings(alive)[0].startswith("run r is still running")


def test_writer_facts_describe_this_live_process() -> None:
    facts = writer_facts()
    assert facts["pid"] == os.getpid() and facts["start_ticks"] == process_start_ticks(os.getpid())
    assert facts["start_ticks"] is not None and facts["host"]
    assert effective_status(_running(facts), HostView.current())[0] == "running"


def test_a_dead_writer_is_abandoned_on_the_real_host() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    ticks = process_start_ticks(child.pid)
    child.wait()
    facts = {**writer_facts(), "pid": child.pid, "start_ticks": ticks}
    assert process_start_ticks(child.pid) is None or process_start_ticks(child.pid) != ticks
    assert effective_status(_running(facts), HostView.current())[0] == "abandoned"
