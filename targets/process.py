"""Runs local stand-in processes: spawn, pin, wait until ready, and stop with no orphans.

Every local stand-in (gunicorn for Flask and the k8s replicas,
the KServe ModelServer) has the same lifetime problems, and getting them wrong leaves
servers running after a benchmark or a failed test.  So:

* each stand-in starts under a small **watchdog** (:mod:`targets.lifeline`) that leads a
  **new session / process group** (``start_new_session=True``), so that ``stop`` can
  signal the whole tree (watchdog, gunicorn master + workers, kserve workers) with one
  ``killpg``: SIGTERM, wait, then SIGKILL;
* the watchdog holds a **lifeline pipe** to this process: when servebench dies in a way
  no ``finally`` survives (SIGKILL, a crash, the OOM killer), the kernel closes the pipe
  and the watchdog stops the whole group within seconds (see :mod:`targets.lifeline` for
  why ``PR_SET_PDEATHSIG`` alone cannot do this);
* stdout and stderr go to a **log file** whose tail is put into the error message when the
  stand-in dies or never becomes ready (the first thing anyone needs to see);
* CPU pinning is done by the watchdog on itself before it starts the stand-in, so the
  stand-in is pinned from its first instruction (no ``preexec_fn`` here, which is unsafe
  in a process that has threads);
* a registry of live processes plus an ``atexit`` hook and a SIGTERM/SIGHUP handler stop
  the stand-ins gracefully on the paths where Python still runs (a killed CLI, Ctrl-C in
  odd places); the lifeline is the net under that net.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from targets.base import TargetError

__all__ = [
    "LIFELINE_SCRIPT",
    "ManagedProcess",
    "Probe",
    "free_port",
    "group_pids",
    "proc_table",
    "http_probe",
    "live_processes",
    "log_tail",
    "spawn",
    "stop_all",
    "wait_ready",
]

#: An async readiness check: returns (ready, what it answered) and never raises.
Probe = Callable[[], Awaitable[tuple[bool, str]]]

_LIVE: dict[int, ManagedProcess] = {}
_LIVE_LOCK = threading.Lock()
_SAFETY_NET_INSTALLED = False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the kernel picks it).

    There is a small window between closing this socket and the server binding the
    port; stand-ins are started right after, and a clash shows up as a readiness failure
    with the server's "address in use" in the log tail.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def log_tail(path: str | os.PathLike[str] | None, n: int = 30) -> str:
    """The last ``n`` lines of a log file ("" when there is none), for error messages."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(lines[-n:])


def proc_table() -> list[tuple[int, int, int]]:
    """``(pid, ppid, pgrp)`` of every live, non-zombie process, from /proc (Linux).

    One parser for /proc/PID/stat, shared by :func:`group_pids` and the tests that prove
    no process outlives a stop. Empty where /proc does not exist.
    """
    table: list[tuple[int, int, int]] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return table
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Format: pid (comm) state ppid pgrp ...; comm may contain spaces/parens.
        rest = stat[stat.rfind(")") + 2 :].split()
        if len(rest) >= 3 and rest[0] != "Z":
            table.append((int(entry.name), int(rest[1]), int(rest[2])))
    return table


def group_pids(pgid: int) -> list[int]:
    """PIDs of live (non-zombie) processes in process group ``pgid`` (Linux /proc scan).

    Used to prove that ``stop`` left nothing behind: the leader exiting is not enough,
    a worker could outlive it.
    """
    if not Path("/proc").is_dir():  # not Linux: best effort via killpg(0)
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    return sorted(pid for pid, _ppid, pgrp in proc_table() if pgrp == pgid)


class ManagedProcess:
    """One spawned stand-in (under its watchdog) and its process group.

    ``pid`` and ``pgid`` are the watchdog's (it leads the group); ``returncode`` is the
    stand-in's, passed through by the watchdog. ``stop`` is idempotent and safe from any
    thread; ``astop`` runs it off the event loop.
    """

    def __init__(
        self, popen: subprocess.Popen[bytes], argv: Sequence[str], log_path: Path, lifeline_fd: int | None = None
    ) -> None:
        self.popen = popen
        self.argv = list(argv)
        self.log_path = log_path
        self.pid = popen.pid
        self.pgid = popen.pid  # start_new_session=True: the watchdog leads its own group
        self._lifeline_fd = lifeline_fd  # write end; closing it tells the watchdog to stop the group
        self._stopped = False
        self._lock = threading.Lock()

    @property
    def returncode(self) -> int | None:
        """Exit code of the leader, or None while it runs."""
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def group_alive(self) -> bool:
        """True while any process of the group is still running."""
        return bool(group_pids(self.pgid))

    def log_tail(self, n: int = 30) -> str:
        return log_tail(self.log_path, n)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the whole group, wait up to ``timeout`` s, then SIGKILL what is left.

        Returns the leader's exit code. Calling it again is a no-op.
        """
        with self._lock:
            if self._stopped:
                return self.popen.poll()
            try:
                _killpg(self.pgid, signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    self.popen.poll()
                    if self.popen.returncode is not None and not group_pids(self.pgid):
                        break
                    time.sleep(0.05)
                if group_pids(self.pgid) or self.popen.poll() is None:
                    _killpg(self.pgid, signal.SIGKILL)
                try:
                    self.popen.wait(timeout=5.0)
                except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
                    pass
                deadline = time.monotonic() + 5.0
                while group_pids(self.pgid) and time.monotonic() < deadline:
                    _killpg(self.pgid, signal.SIGKILL)
                    time.sleep(0.05)
            finally:
                self._stopped = True
                self.close_lifeline()
                with _LIVE_LOCK:
                    _LIVE.pop(self.pid, None)
            return self.popen.returncode

    def close_lifeline(self) -> None:
        """Close our end of the lifeline: a watchdog still running then stops its group."""
        fd, self._lifeline_fd = self._lifeline_fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    async def astop(self, timeout: float = 10.0) -> int | None:
        """``stop`` without blocking the event loop."""
        return await asyncio.to_thread(self.stop, timeout)

    def __repr__(self) -> str:
        state = "running" if self.alive() else f"exited {self.returncode}"
        return f"<ManagedProcess pid={self.pid} {state} {self.argv[0]!r}>"


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


#: The watchdog every stand-in runs under (standard library only; see its docstring).
LIFELINE_SCRIPT = Path(__file__).with_name("lifeline.py")


def _resolve_program(program: str, env: Mapping[str, str] | None) -> str:
    """The executable ``program`` names, or a TargetError saying it cannot be started.

    Checked here because the watchdog starts the program: a missing binary would
    otherwise show up only as exit code 127 in the log.
    """
    path_var = (env if env is not None else os.environ).get("PATH", os.defpath)
    found = shutil.which(program, path=path_var)
    if found is None:
        where = "" if os.sep in program else f" (not on PATH={path_var})"
        raise TargetError(f"cannot start {program!r}: no such executable{where}")
    return found


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    log_path: str | os.PathLike[str],
    cpus: Sequence[int] = (),
) -> ManagedProcess:
    """Start ``argv`` under a lifeline watchdog in a new process group, output appended to ``log_path``.

    ``env`` replaces the environment when given (callers usually pass
    ``{**os.environ, ...}``). ``cpus`` pins the process and everything it forks.
    The stand-in, its workers and the watchdog die with this process, however it dies.
    """
    if not argv:
        raise ValueError("spawn: empty argv")
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cpus = tuple(sorted(set(int(c) for c in cpus)))
    _resolve_program(str(argv[0]), env)
    read_end, write_end = os.pipe()  # both non-inheritable: only the watchdog gets read_end
    full_argv = [sys.executable, "-I", "-S", str(LIFELINE_SCRIPT), "--fd", str(read_end)]
    if cpus:
        full_argv += ["--cpus", ",".join(str(c) for c in cpus)]
    full_argv += ["--", *argv]
    _install_safety_net()
    try:
        with open(log_path, "ab") as log:
            log.write(f"--- servebench spawn: {' '.join(argv)}\n".encode())
            log.flush()
            popen = subprocess.Popen(
                full_argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
                pass_fds=(read_end,),
            )
    except OSError as exc:
        os.close(write_end)
        raise TargetError(f"cannot start {argv[0]!r}: {exc}") from exc
    finally:
        os.close(read_end)
    proc = ManagedProcess(popen, argv, log_path, lifeline_fd=write_end)
    with _LIVE_LOCK:
        _LIVE[proc.pid] = proc
    return proc


def live_processes() -> list[ManagedProcess]:
    """Processes spawned here and not yet stopped (for tests and the safety net)."""
    with _LIVE_LOCK:
        return list(_LIVE.values())


def stop_all(timeout: float = 5.0) -> None:
    """Stop every live process (the atexit / signal safety net)."""
    for proc in live_processes():
        try:
            proc.stop(timeout)
        except Exception:
            pass


def _kill_all_now(timeout: float = 3.0) -> None:
    """SIGTERM every live group, wait briefly, SIGKILL the rest; takes no locks.

    Runs inside a signal handler, possibly while the interrupted code holds a process's
    stop lock, so it must not wait for that lock.
    """
    procs = live_processes()
    for proc in procs:
        _killpg(proc.pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(group_pids(p.pgid) for p in procs):
        time.sleep(0.05)
    for proc in procs:
        _killpg(proc.pgid, signal.SIGKILL)


def _on_fatal_signal(signum: int, frame: Any) -> None:
    """Stop our children, then die of the same signal as if we had no handler."""
    _kill_all_now()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_safety_net() -> None:
    global _SAFETY_NET_INSTALLED
    if _SAFETY_NET_INSTALLED:
        return
    _SAFETY_NET_INSTALLED = True
    atexit.register(stop_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_fatal_signal)
        except (ValueError, OSError):  # pragma: no cover - exotic embedding
            pass


def http_probe(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    verify_tls: bool = True,
    timeout_s: float = 2.0,
    ok_statuses: Sequence[int] = (200,),
) -> Probe:
    """A probe that GETs ``url`` and is ready on one of ``ok_statuses``.

    The answer string is what the URL answered (status and the start of the body, or the
    connection error) so a failure message can say it.  Proxies from the environment are
    ignored: a loopback stand-in must be reached directly.
    """

    async def probe() -> tuple[bool, str]:
        import httpx  # lazy: keeps `bench targets` and imports of this module light

        try:
            async with httpx.AsyncClient(verify=verify_tls, timeout=timeout_s, trust_env=False) as client:
                resp = await client.get(url, headers=dict(headers or {}))
        except httpx.HTTPError as exc:
            return False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        text = resp.text[:300].strip()
        return resp.status_code in ok_statuses, f"HTTP {resp.status_code} {text}".strip()

    return probe


async def wait_ready(
    probe: str | Probe,
    *,
    timeout: float,
    process: ManagedProcess | Sequence[ManagedProcess] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    what: str = "",
    interval: float = 0.1,
) -> str:
    """Poll ``probe`` (a URL to GET, or an async probe) until ready; return its answer.

    Raises :class:`TargetError` naming ``what`` and the URL with the last answer and the
    last 30 log lines when ``timeout`` passes or any watched ``process`` exits first.
    """
    url = probe if isinstance(probe, str) else ""
    check = http_probe(probe) if isinstance(probe, str) else probe
    processes = [] if process is None else [process] if isinstance(process, ManagedProcess) else list(process)
    explicit_log = log_path is not None
    if log_path is None and processes:
        log_path = processes[0].log_path
    label = f"{what} " if what else ""
    at = f" at {url}" if url else ""
    deadline = time.monotonic() + timeout
    answer = "(no answer yet)"
    while True:
        for proc in processes:
            code = proc.returncode
            if code is not None:
                # Show the log of the process that died, not of its first sibling.
                died_log = log_path if explicit_log else proc.log_path
                raise TargetError(
                    f"{label}exited with code {code} before it was ready{at}; "
                    f"last answer: {answer}{_tail_block(died_log)}"
                )
        ready, answer = await check()
        if ready:
            return answer
        if time.monotonic() >= deadline:
            raise TargetError(f"{label}not ready after {timeout:g} s{at}; last answer: {answer}{_tail_block(log_path)}")
        await asyncio.sleep(interval)


def _tail_block(log_path: str | os.PathLike[str] | None) -> str:
    tail = log_tail(log_path, 30)
    return f"\n--- last lines of {log_path} ---\n{tail}" if tail else ""
