"""targets.process: process groups die whole, readiness failures explain themselves.

These spawn short-lived plain processes (no servers, no model), so they are quick. The
lifeline tests kill a parent with SIGKILL (no handler, no atexit runs) and check that the
watchdog (targets/lifeline.py) takes the whole group along; waits are bounded polls.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from targets.base import TargetError
from targets.process import free_port, group_pids, live_processes, log_tail, proc_table, spawn, wait_ready
from tests.support.paths import REPO

GONE_WITHIN_S = 15.0  # generous bound for a loaded 2-core machine; typical is well under 4 s


def _wait_until(predicate, timeout: float = GONE_WITHIN_S, interval: float = 0.02) -> float | None:
    """Seconds until ``predicate()`` held, or None if it did not within ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    return None


def _children_of(pid: int) -> list[int]:
    return [child for child, parent, _pgrp in proc_table() if parent == pid]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


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
    script = (
        "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(7))\n"
        "print('RE' + 'ADY', flush=True)\ntime.sleep(300)"
    )
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
        assert _wait_until(lambda: any("sleep" in _cmdline(c).split()[0] for c in _children_of(proc.pid)), 5)
        (child,) = _children_of(proc.pid)  # the stand-in itself, pinned from its start by the watchdog
        assert os.sched_getaffinity(child) == {cpu}
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


def _parent_with_standin(tmp_path, script: str) -> tuple[subprocess.Popen[str], int]:
    """A separate Python process that spawns ``bash -c script`` and sleeps; returns it and the pgid."""
    code = (
        "import sys, time; from targets.process import spawn;"
        f"p = spawn(['bash', '-c', {script!r}], log_path={str(tmp_path / 'parent.log')!r});"
        "print(p.pgid, flush=True); time.sleep(300)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    return parent, int(parent.stdout.readline())


def test_sigkill_of_the_parent_takes_the_whole_group_along(tmp_path) -> None:
    """No finally, no atexit, no handler runs on SIGKILL: the lifeline pipe closing is all there is."""
    # A master with three workers, one of which ignores SIGTERM (it must get SIGKILL).
    parent, pgid = _parent_with_standin(tmp_path, "sleep 300 & (trap '' TERM; sleep 300) & sleep 300 & wait")
    try:
        assert _wait_until(lambda: len(group_pids(pgid)) >= 5, 10), group_pids(pgid)  # watchdog, bash, 3 sleeps
        parent.kill()
        parent.wait(timeout=10)
        took = _wait_until(lambda: group_pids(pgid) == [])
        assert took is not None, f"still alive {GONE_WITHIN_S} s after SIGKILL of the parent: {group_pids(pgid)}"
        print(f"group gone {took:.2f} s after SIGKILL of its parent (one member ignored SIGTERM)")
    finally:
        if parent.poll() is None:
            parent.kill()
        os.killpg(pgid, signal.SIGKILL) if group_pids(pgid) else None


def test_the_spawning_thread_ending_does_not_stop_the_standin(tmp_path) -> None:
    """PR_SET_PDEATHSIG fires when the parent *thread* exits; the lifeline must not."""
    spawned = []
    thread = threading.Thread(target=lambda: spawned.append(spawn(["sleep", "300"], log_path=tmp_path / "t.log")))
    thread.start()
    thread.join()
    (proc,) = spawned
    try:
        assert _wait_until(lambda: len(group_pids(proc.pgid)) == 2, 5)  # watchdog and sleep
        assert _wait_until(lambda: len(group_pids(proc.pgid)) < 2, 1.0) is None  # still both, a second later
        assert proc.alive()
    finally:
        proc.stop()
    assert group_pids(proc.pgid) == []


def test_a_killed_watchdog_takes_the_standin_along(tmp_path) -> None:
    """The stand-in's main process has PR_SET_PDEATHSIG=SIGKILL towards the watchdog."""
    proc = spawn(["sleep", "300"], log_path=tmp_path / "w.log")
    try:
        assert _wait_until(lambda: len(_children_of(proc.pid)) == 1, 5)
        (child,) = _children_of(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        assert _wait_until(lambda: not Path(f"/proc/{child}").exists() or child not in group_pids(proc.pgid))
        assert proc.popen.wait(timeout=5) == -signal.SIGKILL
    finally:
        proc.stop()
    assert group_pids(proc.pgid) == []


def test_exit_codes_and_signals_pass_through_the_watchdog(tmp_path) -> None:
    proc = spawn(["bash", "-c", "exit 3"], log_path=tmp_path / "e.log")
    assert proc.popen.wait(timeout=10) == 3
    proc.stop()
    proc = spawn(["sleep", "300"], log_path=tmp_path / "k.log")
    try:
        assert _wait_until(lambda: len(_children_of(proc.pid)) == 1, 5)
        os.kill(_children_of(proc.pid)[0], signal.SIGKILL)  # the stand-in, not its watchdog
        assert proc.popen.wait(timeout=10) == -signal.SIGKILL
    finally:
        proc.stop()


def test_a_master_that_exits_leaves_no_workers(tmp_path) -> None:
    """Workers orphaned by their master are the watchdog's (a subreaper) and die with it."""
    proc = spawn(["bash", "-c", "sleep 300 & sleep 300 & echo READY; sleep 0.5; exit 4"], log_path=tmp_path / "m.log")
    try:
        assert proc.popen.wait(timeout=15) == 4
        assert group_pids(proc.pgid) == []
    finally:
        proc.stop()


def test_stop_closes_the_lifeline(tmp_path) -> None:
    proc = spawn(["sleep", "300"], log_path=tmp_path / "l.log")
    fd = proc._lifeline_fd
    assert fd is not None and os.get_inheritable(fd) is False  # no other child may hold it open
    proc.stop()
    assert proc._lifeline_fd is None
    with pytest.raises(OSError):
        os.fstat(fd)
