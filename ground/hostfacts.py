"""Host facts: the "on what machine" of every figure, one dictionary for every file.

Why one function: meta.json (every run) and the calibration file (the client's ceiling)
both record the host, and a calibration is only reused on the same host -- if the two
wrote different keys, a reader could not compare them.  The keys are the union of what
both files have always held, so older files stay readable by the same names:

``hostname``, ``cpu_model``, ``cpu_count`` (``os.cpu_count()``), ``cpus_usable`` (CPUs this
process may run on), ``available_cpus`` (their numbers), ``os`` (system and release),
``platform`` (``platform.platform()``), ``python`` (version) and ``python_implementation``.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from ground.cpus import available_cpus

__all__ = ["HOST_KEYS", "cpu_model", "host_facts", "same_host"]

#: The keys that identify a machine (a calibration from another one is not reused).
HOST_KEYS: tuple[str, ...] = ("hostname", "cpu_model", "cpu_count")


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def host_facts() -> dict[str, Any]:
    """CPU model and counts, OS and Python of this process's machine (keys: module docstring)."""
    usable = available_cpus()
    return {
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count() or 1,
        "cpus_usable": len(usable),
        "available_cpus": list(usable),
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }


def same_host(recorded: Any, here: dict[str, Any] | None = None) -> bool:
    """Whether host facts ``recorded`` (from a file, maybe malformed) describe this machine."""
    if not isinstance(recorded, dict):
        return False
    here = here if here is not None else host_facts()
    return all(recorded.get(key) == here[key] for key in HOST_KEYS)
