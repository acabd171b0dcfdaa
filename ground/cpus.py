"""CPU placement: keep the load generator and the local stand-ins off each other's cores.

Why: on a small machine the client and the servers compete for CPU, and every cycle the
client burns is stolen from what is measured. With two or more CPUs we give the client
its own core(s) and the stand-ins the rest (the study's client and servers were on
different machines).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["CpuPlan", "available_cpus", "listed_cpus", "pin_current_process", "pin_process", "pinned", "plan_cpus"]


@dataclass(frozen=True)
class CpuPlan:
    client: tuple[int, ...]  # empty = not pinned
    standins: tuple[int, ...]  # empty = not pinned

    def describe(self) -> dict[str, list[int]]:
        return {"client": list(self.client), "standins": list(self.standins)}


def available_cpus() -> tuple[int, ...]:
    """CPUs this process may run on (respects taskset/cgroups), sorted."""
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return tuple(range(os.cpu_count() or 1))


def plan_cpus(setting: str | Sequence[int], cpus: Sequence[int] | None = None) -> CpuPlan:
    """Split CPUs between client and stand-ins.

    ``"auto"``: the client takes the last CPU, the stand-ins all others (no pinning on a
    one-CPU machine). ``"none"``: nobody is pinned. A list: the client gets exactly those
    CPUs and the stand-ins the rest (or all, if the list covers every CPU).
    """
    cpus = tuple(sorted(cpus if cpus is not None else available_cpus()))
    if setting == "none" or len(cpus) < 2 and setting == "auto":
        return CpuPlan((), ())
    if setting == "auto":
        return CpuPlan((cpus[-1],), cpus[:-1])
    client = listed_cpus(setting, cpus)
    rest = tuple(c for c in cpus if c not in client)
    return CpuPlan(client, rest or cpus)


def listed_cpus(setting: str | Sequence[int], cpus: Sequence[int]) -> tuple[int, ...]:
    """The CPUs a ``[loadgen] cpus`` list names, sorted; ValueError for any other string or a CPU not in ``cpus``."""
    if isinstance(setting, str):
        raise ValueError(f"cpus must be 'auto', 'none' or a list of CPU numbers, got {setting!r}")
    listed = tuple(sorted(set(int(c) for c in setting)))
    unknown = [c for c in listed if c not in cpus]
    if unknown:
        raise ValueError(f"loadgen.cpus names CPUs {unknown} that this process cannot use (has {list(cpus)})")
    return listed


def pin_current_process(cpus: Sequence[int]) -> None:
    """Restrict this process (all its threads) to ``cpus``; no-op for an empty set."""
    pin_process(0, cpus)


def pin_process(pid: int, cpus: Sequence[int]) -> bool:
    """Restrict process ``pid`` (0 = this one) to ``cpus``; no-op for an empty set or off Linux.

    Returns False when the process is already gone (its starter reports that, not this).
    """
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return True
    try:
        os.sched_setaffinity(pid, set(cpus))
    except ProcessLookupError:
        return False
    return True


@contextmanager
def pinned(cpus: Sequence[int]) -> Iterator[None]:
    """Pin this process to ``cpus`` for the block, then restore its previous CPU set.

    Why restore: a calibration inside ``bench run`` pins the client for its measurement
    only; the run decides its own placement afterwards.
    """
    if not cpus or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
