"""Run a command as a child and measure it: exit code, wall seconds, peak resident memory.

Why one helper: the memory benchmarks (bench_memory.py: `bench report`/`compare`;
bench_merge_memory.py: `bench merge`) each need the same three figures of a child process,
and a child that would eat the machine must be stopped before it does. The peak is the
child's own ``ru_maxrss`` from ``os.wait4`` (the kernel's high-water mark, not a sample); a
watchdog thread reads its ``VmRSS`` every 0.2 s and kills its process group past
``max_gb`` or after ``max_min`` minutes, saying which.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["run_measured"]


def _watch(pid: int, limit_kb: int, deadline: float, stopped: list[str]) -> None:
    """Kill ``pid``'s process group when its RSS passes ``limit_kb`` or the time passes ``deadline``."""
    status = Path(f"/proc/{pid}/status")
    while True:
        try:
            text = status.read_text()
        except OSError:
            return  # it ended
        rss = next((int(line.split()[1]) for line in text.splitlines() if line.startswith("VmRSS:")), 0)
        why = (
            f"RSS {rss / 1024**2:.1f} GB > limit" if rss > limit_kb else "time limit" if time.time() > deadline else ""
        )
        if why:
            stopped.append(why)
            os.killpg(pid, signal.SIGKILL)
            return
        time.sleep(0.2)


def run_measured(cmd: list[str], tree: Path, log: Path, max_gb: float = 16.0, max_min: float = 60.0) -> dict[str, Any]:
    """Run ``cmd`` in ``tree`` (output to ``log``): ``exit``, ``wall_s``, ``peak_mb`` and
    ``stopped`` (why the watchdog killed it, or "")."""
    stopped: list[str] = []
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=tree, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        watcher = threading.Thread(
            target=_watch, args=(proc.pid, int(max_gb * 1024**2), time.time() + 60 * max_min, stopped), daemon=True
        )
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    watcher.join(timeout=5)
    return {
        "exit": proc.returncode,
        "wall_s": round(time.monotonic() - started, 1),
        "peak_mb": round(usage.ru_maxrss / 1024, 1),
        "stopped": stopped[0] if stopped else "",
    }
