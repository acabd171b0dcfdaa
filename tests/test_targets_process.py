"""targets.process: process groups die whole, readiness failures explain themselves.

These spawn short-lived plain processes (no servers, no model), so they are quick.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time

import pytest

from targets.base import TargetError
from targets.process import free_port, group_pids, live_processes, log_tail, spawn, wait_ready


def test_free_port_is_bindable_on_loopback() -> None:
    port = free_port("127.0.0.1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_log_tail_returns_last_lines(tmp_path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(log, 3).splitlines() == ["line 97", "line 98", "line 99"]
    assert log_tail(tmp_path / "missing.log") == ""


def test_stop_kills_the_whole_group_even_if_sigterm_is_ignored(tmp_path) -> None:
    # A leader that ignores SIGTERM and two grandchildren (one also ignoring it).
    script = "trap '' TERM; sleep 300 & (trap '' TERM; sleep 300) & sleep 300"
    proc = spawn(["bash", "-c", script], log_path=tmp_path / "g.log")
    deadline = time.monotonic() + 5
    while len(group_pids(proc.pgid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(group_pids(proc.pgid)) >= 3
    assert proc in live_processes()
    started = time.monotonic()
    proc.stop(timeout=0.5)
    assert time.monotonic() - started < 5
    assert group_pids(proc.pgid) == []
    assert proc not in live_processes()
    proc.stop()  # idempotent


def test_stop_is_graceful_first(tmp_path) -> None:
    script = "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\nprint('RE' + 'ADY', flush=True)\ntime.sleep(300)"
    proc = spawn([sys.executable, "-c", script], log_path=tmp_path / "p.log")
    deadline = time.monotonic() + 10
    while "READY" not in log_tail(proc.log_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.stop(timeout=5) == 7  # exited through its SIGTERM handler, not SIGKILL


def test_cpu_pinning(tmp_path) -> None:
    cpu = sorted(os.sched_getaffinity(0))[0]
    proc = spawn(["sleep", "30"], log_path=tmp_path / "s.log", cpus=(cpu,))
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if os.sched_getaffinity(proc.pid) == {cpu} and "sleep" in open(f"/proc/{proc.pid}/cmdline").read():
                    break
            except OSError:
                pass
            time.sleep(0.02)
        assert os.sched_getaffinity(proc.pid) == {cpu}
    finally:
        proc.stop()


def test_wait_ready_reports_exit_code_and_log_tail(tmp_path) -> None:
    proc = spawn(
        [sys.executable, "-c", "import sys; print('model file is corrupt'); sys.exit(3)"],
        log_path=tmp_path / "dies.log",
    )
    url = f"http://127.0.0.1:{free_port()}/healthz"
    with pytest.raises(TargetError) as info:
        asyncio.run(wait_ready(url, timeout=20, process=proc, what="target 'x'"))
    message = str(info.value)
    assert "target 'x' exited with code 3" in message
    assert url in message
    assert "model file is corrupt" in message
    proc.stop()
    assert group_pids(proc.pgid) == []


def test_wait_ready_timeout_names_url_and_last_answer(tmp_path) -> None:
    url = f"http://127.0.0.1:{free_port()}/healthz"
    started = time.monotonic()
    with pytest.raises(TargetError) as info:
        asyncio.run(wait_ready(url, timeout=0.5, what="target 'y'"))
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "not ready after 0.5 s" in message and url in message and "ConnectError" in message


def test_wait_ready_with_custom_probe() -> None:
    calls = []

    async def probe() -> tuple[bool, str]:
        calls.append(1)
        return len(calls) >= 3, f"attempt {len(calls)}"

    assert asyncio.run(wait_ready(probe, timeout=10, interval=0.01)) == "attempt 3"


def test_spawn_of_missing_program_is_a_target_error(tmp_path) -> None:
    with pytest.raises(TargetError, match="cannot start"):
        spawn(["/nonexistent/servebench-binary"], log_path=tmp_path / "n.log")


def test_sigterm_to_the_parent_stops_its_standins(tmp_path) -> None:
    """The safety net: a parent killed by SIGTERM (no finally runs) takes its groups along."""
    import signal
    import subprocess

    code = (
        "import sys, time; from targets.process import spawn;"
        f"p = spawn(['sleep', '300'], log_path={str(tmp_path / 'c.log')!r});"
        "print(p.pgid, flush=True); time.sleep(300)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pgid = int(parent.stdout.readline())
        assert group_pids(pgid)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=20) == -signal.SIGTERM
        deadline = time.monotonic() + 5
        while group_pids(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert group_pids(pgid) == []
    finally:
        if parent.poll() is None:
            parent.kill()
