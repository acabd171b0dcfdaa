"""The watchdog between servebench and one local stand-in: the stand-in dies with servebench.

Why a separate process: servebench stops its stand-ins in ``finally`` blocks, an
``atexit`` hook and SIGTERM/SIGHUP handlers (:mod:`targets.process`), but none of those
runs when servebench is killed with SIGKILL (or crashes in C, or is OOM-killed). Then the
stand-ins -- gunicorn masters and workers, KServe servers and workers, 300-760 MB each --
kept running and answering, re-parented to PID 1. The obvious kernel tool,
``prctl(PR_SET_PDEATHSIG)``, is not enough on its own: it fires when the parent *thread*
that forked the child exits (not the parent process), and it only reaches the direct
child, while gunicorn's and KServe's workers are forked by the stand-in itself.

So every stand-in is started through this small program, which leads the stand-in's
session and process group (``targets.process.spawn`` starts it with
``start_new_session=True``) and:

* holds the read end of a **lifeline pipe** whose only write end stays in the servebench
  process (non-inheritable, so no other child keeps it open). The kernel closes it when
  servebench dies, however it dies; ``select`` then sees end-of-file and the watchdog
  stops the **whole process group**: SIGTERM, up to :data:`GRACE_S` seconds, SIGKILL;
* starts the stand-in as its child with ``PR_SET_PDEATHSIG = SIGKILL`` (set in the child
  between fork and exec; safe here because this program has one thread), so a watchdog
  that is itself killed takes the stand-in's main process along;
* makes itself a **child subreaper**, so workers whose master died are re-parented to it
  (not to PID 1) and reaped here;
* pins itself, and so the stand-in from its first instruction, to ``--cpus``;
* exits the way the stand-in exited (same code; killed by the same signal), so
  ``Popen.returncode`` in servebench means what it meant before this wrapper existed.

Signals sent to the whole group (what ``ManagedProcess.stop`` and the safety nets do)
reach the stand-in directly; the watchdog only notes them and waits for its child, so the
stand-in gets each signal once. A SIGTERM/SIGINT/SIGHUP sent to the watchdog alone makes
it stop the group itself after :data:`SIGNAL_WAIT_S` seconds if the child is still there.

Standard library only, no servebench imports: it runs as ``python -I -S lifeline.py``
(no site-packages, ~10 MB, starts in tens of milliseconds). Usage::

    python -I -S lifeline.py --fd N [--cpus 0,1] [--grace 3.0] -- PROGRAM [ARGS...]
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

#: After the lifeline closes: seconds between SIGTERM to the group and SIGKILL. Long
#: enough for gunicorn and uvicorn to close their sockets; short because nobody is
#: waiting for the stand-in's answers any more.
GRACE_S = 3.0
#: After the stand-in's main process exited on its own: seconds its leftover workers get.
LEFTOVER_GRACE_S = 1.0
#: A signal sent to the watchdog alone: seconds to wait for the child before stopping the
#: group (longer than ``ManagedProcess.stop``'s own SIGTERM-to-SIGKILL wait of 10 s).
SIGNAL_WAIT_S = 20.0
#: Exit code when the program cannot be started at all (the shell's "not found").
EXIT_CANNOT_START = 127

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_NOTED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _prctl(option: int, value: int) -> bool:
    """``prctl(option, value)``; False where it does not exist (not Linux) or fails."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _parse(argv: list[str]) -> tuple[int, set[int], float, list[str]]:
    """(lifeline fd, CPUs, grace seconds, command) from ``argv`` (after the script name)."""
    if "--" not in argv:
        raise SystemExit("lifeline: usage: lifeline.py --fd N [--cpus 0,1] [--grace S] -- PROGRAM [ARGS...]")
    split = argv.index("--")
    opts, command = argv[:split], argv[split + 1 :]
    fd, cpus, grace = -1, set(), GRACE_S
    it = iter(opts)
    for opt in it:
        value = next(it, None)
        if value is None:
            raise SystemExit(f"lifeline: {opt} needs a value")
        if opt == "--fd":
            fd = int(value)
        elif opt == "--cpus":
            cpus = {int(c) for c in value.split(",") if c.strip()}
        elif opt == "--grace":
            grace = float(value)
        else:
            raise SystemExit(f"lifeline: unknown option {opt!r}")
    if fd < 0 or not command:
        raise SystemExit("lifeline: --fd and a command are required")
    return fd, cpus, grace, command


def _group_members(pgid: int) -> list[int]:
    """Live, non-zombie PIDs in process group ``pgid`` (from /proc)."""
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        if len(rest) >= 3 and rest[0] != "Z" and int(rest[2]) == pgid:
            found.append(int(name))
    return found


class Watchdog:
    """One stand-in child, its process group, and the lifeline to servebench."""

    def __init__(self, fd: int, grace: float, command: list[str]) -> None:
        self.fd = fd
        self.grace = grace
        self.command = command
        self.me = os.getpid()
        self.pgid = os.getpgrp()
        self.child: subprocess.Popen[bytes] | None = None
        self.child_status: int | None = None  # raw wait status of the direct child
        self.signalled_at: float | None = None
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self.wake = wake_r
        signal.set_wakeup_fd(wake_w)  # any handled signal (SIGCHLD too) wakes select()
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for sig in _NOTED:
            signal.signal(sig, self._note)

    def _note(self, signum: int, frame: object) -> None:
        if self.signalled_at is None:
            self.signalled_at = time.monotonic()

    def start(self) -> bool:
        parent = self.me

        def in_child() -> None:  # between fork and exec, in the one-threaded watchdog's child
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # the watchdog died before prctl: follow it
                os._exit(1)

        try:
            self.child = subprocess.Popen(self.command, preexec_fn=in_child, close_fds=True)
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"servebench lifeline: cannot start {self.command[0]!r}: {exc}", file=sys.stderr, flush=True)
            return False
        return True

    def reap(self) -> None:
        """Collect every exited child (the stand-in, and workers re-parented to us)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.child is not None and pid == self.child.pid:
                self.child_status = status
                self.child.returncode = os.waitstatus_to_exitcode(status)

    def others(self) -> list[int]:
        return [pid for pid in _group_members(self.pgid) if pid != self.me]

    def clear_group(self, grace: float) -> None:
        """SIGTERM every other member, wait up to ``grace`` s, then SIGKILL until none is left."""
        if not os.path.isdir("/proc"):  # no member list (not Linux): signal the group, us included
            os.killpg(self.pgid, signal.SIGTERM)
            time.sleep(grace)
            os.killpg(self.pgid, signal.SIGKILL)
        for pid in self.others():
            _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.others() and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.05)
        deadline = time.monotonic() + 5.0
        while (left := self.others()) and time.monotonic() < deadline:
            for pid in left:  # one by one, not killpg: the watchdog is in the group too
                _kill(pid, signal.SIGKILL)
            time.sleep(0.02)
            self.reap()
        self.reap()

    def run(self) -> int:
        """Watch until the child exits (return its wait status) or the lifeline closes."""
        while True:
            self.reap()
            if self.child_status is not None:
                self.clear_group(LEFTOVER_GRACE_S)  # workers of a master that died
                return self.child_status
            if self.signalled_at is not None and time.monotonic() - self.signalled_at > SIGNAL_WAIT_S:
                self.clear_group(self.grace)
                continue
            try:
                ready, _, _ = select.select([self.fd, self.wake], [], [], 1.0)
            except InterruptedError:  # pragma: no cover - PEP 475 retries select
                continue
            if self.wake in ready:
                try:
                    while os.read(self.wake, 512):
                        pass
                except BlockingIOError:
                    pass
            if self.fd in ready:
                try:
                    data = os.read(self.fd, 512)
                except OSError:
                    data = b""
                if not data:  # end of file: servebench is gone
                    os.close(self.fd)
                    self.clear_group(self.grace)
                    self.reap()
                    return self.child_status if self.child_status is not None else 0


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _exit_like(status: int) -> None:
    """Exit with the child's exit code, or die of the signal that killed it."""
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        sys.exit(code)
    sig = -code
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGSEGV/SIGABRT: no core of the watchdog
    except (ImportError, ValueError, OSError):
        pass
    signal.set_wakeup_fd(-1)
    if sig not in (signal.SIGKILL, signal.SIGSTOP):  # those two cannot be (and need not be) reset
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
    os.kill(os.getpid(), sig)
    time.sleep(1.0)  # a signal whose default is not to terminate: fall back to the shell's code
    sys.exit(128 + sig)


def main(argv: list[str]) -> None:
    fd, cpus, grace, command = _parse(argv)
    if cpus:
        try:
            os.sched_setaffinity(0, cpus)
        except (OSError, AttributeError) as exc:
            print(f"servebench lifeline: cannot pin to CPUs {sorted(cpus)}: {exc}", file=sys.stderr, flush=True)
            sys.exit(EXIT_CANNOT_START)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    dog = Watchdog(fd, grace, command)
    if not dog.start():
        sys.exit(EXIT_CANNOT_START)
    try:
        status = dog.run()
    except BaseException:  # a bug here must not leave the stand-in without its watchdog
        dog.clear_group(dog.grace)
        raise
    _exit_like(status)


if __name__ == "__main__":
    main(sys.argv[1:])
