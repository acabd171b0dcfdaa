"""Host noise: sample how busy the machine was around and during each target, and warn when it was.

Recorded in meta.json's ``host_noise`` section; read back by :func:`noise_warnings`.

Why: the same sequential N=512 took 11.90 s on a loaded machine and 4.34 s on an idle
one, and nothing in meta.json said which was which. A latency figure from a shared or
virtual machine means little without the load it was measured under, so every run
records, per target:

* the load average (1/5/15 min) just before the target started and just after it stopped;
* over its sweep (ready to stop), from /proc/stat deltas: the share of all CPU time that
  was *stolen* by the hypervisor, spent in *iowait*, *busy* in all, used by *servebench*
  itself (this client process plus the stand-in's process group), and so used by *others*;
* the CPUs the client and the stand-in actually ran on (their affinity, beside the plan).

Raw samples are taken here (the only impure part: /proc, ``os.getloadavg``); turning them
into shares and deciding "busy" are pure functions, so the rules are tested on numbers.

Why the per-target load average is recorded but not judged: during a sweep servebench's
own client and stand-in are the load (a sequential sweep alone keeps load1 near 1, a
concurrent one higher), and the next target starts while that load is still decaying. So
the load-average rule is applied to the load when the run *started*, before servebench did
any work, and the per-target rules use CPU accounting, which can tell our CPU time from
everyone else's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ground.runmeta import RunMeta
from targets.process import group_pids, proc_table  # one /proc parser for process groups

__all__ = [
    "LOAD1_BUSY_FRACTION",
    "OTHERS_BUSY_SHARE",
    "STEAL_BUSY_SHARE",
    "CpuTimes",
    "TargetNoiseProbe",
    "load_busy",
    "noise_warnings",
    "online_cpus",
    "others_busy",
    "parse_pid_cpu_ticks",
    "parse_proc_stat",
    "read_loadavg",
    "run_start_load",
    "steal_busy",
    "target_busy_reasons",
    "window_shares",
]

#: The host is busy when the 1-minute load average exceeds this fraction of its CPUs:
#: more runnable tasks than half the CPUs means a CPU-bound stand-in will often queue.
LOAD1_BUSY_FRACTION = 0.5
#: A target's sweep was disturbed when more than this share of all CPU time was stolen
#: by the hypervisor (other guests on the same physical CPUs).
STEAL_BUSY_SHARE = 0.05
#: A target's sweep was disturbed when processes other than servebench's used more than
#: this share of all CPU time (0.10 on 2 CPUs = a fifth of a CPU on average). An idle
#: machine's background (daemons, the terminal) stays well under it.
OTHERS_BUSY_SHARE = 0.10

_PROC = Path("/proc")


@dataclass(frozen=True)
class CpuTimes:
    """The aggregate ``cpu`` line of /proc/stat, in clock ticks since boot (all CPUs)."""

    user: int
    nice: int
    system: int
    idle: int
    iowait: int
    irq: int
    softirq: int
    steal: int

    @property
    def total(self) -> int:
        return self.user + self.nice + self.system + self.idle + self.iowait + self.irq + self.softirq + self.steal

    @property
    def busy(self) -> int:
        """Ticks some CPU spent running something (steal included: the CPU was not idle for us)."""
        return self.user + self.nice + self.system + self.irq + self.softirq + self.steal


def parse_proc_stat(text: str) -> tuple[CpuTimes, int]:
    """(aggregate CPU times, number of CPUs listed) from the text of /proc/stat.

    guest/guest_nice are already inside user/nice, so they are not added again.
    """
    times: CpuTimes | None = None
    n_cpus = 0
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "cpu":
            values = [int(v) for v in fields[1:9]] + [0] * max(0, 8 - len(fields[1:9]))
            times = CpuTimes(*values)
        elif fields[0].startswith("cpu") and fields[0][3:].isdigit():
            n_cpus += 1
    if times is None:
        raise ValueError("no aggregate 'cpu' line in /proc/stat")
    return times, n_cpus


def parse_pid_cpu_ticks(stat_text: str) -> int:
    """utime + stime + cutime + cstime (clock ticks) from the text of /proc/PID/stat.

    The children's fields count workers that exited and were reaped inside the group.
    """
    rest = stat_text[stat_text.rfind(")") + 2 :].split()
    # rest[0] is field 3 (state); utime..cstime are fields 14..17.
    return sum(int(rest[i]) for i in range(11, 15))


def read_loadavg() -> list[float] | None:
    """[load1, load5, load15], or None where the OS has no load average."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def online_cpus() -> int:
    """CPUs the load average and /proc/stat count (the whole host, not our affinity)."""
    try:
        return parse_proc_stat((_PROC / "stat").read_text())[1] or (os.cpu_count() or 1)
    except (OSError, ValueError):
        return os.cpu_count() or 1


def run_start_load() -> dict[str, Any]:
    """The load before servebench does any work: what ``load_busy`` judges for the run."""
    return {"load": read_loadavg(), "n_cpus": online_cpus(), "at": round(time.time(), 3)}


def _read_cpu_times() -> CpuTimes | None:
    try:
        return parse_proc_stat((_PROC / "stat").read_text())[0]
    except (OSError, ValueError):
        return None


def _pid_ticks(pid: int | str) -> int:
    try:
        return parse_pid_cpu_ticks((_PROC / str(pid) / "stat").read_text())
    except (OSError, ValueError, IndexError):
        return 0


def _own_ticks(pgids: Sequence[int]) -> int:
    """CPU ticks of this process (every thread) plus every live member of ``pgids``."""
    ticks = 0
    try:
        rest = (_PROC / "self" / "stat").read_text()
        rest = rest[rest.rfind(")") + 2 :].split()
        ticks = int(rest[11]) + int(rest[12])  # our own utime + stime (not reaped children)
    except (OSError, ValueError, IndexError):
        pass
    if pgids:
        wanted = set(pgids)
        ticks += sum(_pid_ticks(pid) for pid, _ppid, pgrp in proc_table() if pgrp in wanted)
    return ticks


def _affinity(pids: Sequence[int]) -> list[int]:
    cpus: set[int] = set()
    for pid in pids:
        try:
            cpus |= os.sched_getaffinity(pid)
        except (OSError, AttributeError):
            continue
    return sorted(cpus)


def window_shares(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, float] | None:
    """Shares of all CPU time between two samples (each: the CpuTimes fields plus ``own``).

    ``others`` = busy minus servebench's own ticks, floored at 0 (ticks are sampled at
    slightly different instants). None when no time passed.
    """
    delta = {
        k: after[k] - before[k] for k in ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "own")
    }
    total = sum(delta[k] for k in ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"))
    if total <= 0:
        return None
    busy = total - delta["idle"] - delta["iowait"]
    own = min(max(delta["own"], 0), busy)
    return {
        "steal_share": round(delta["steal"] / total, 4),
        "iowait_share": round(delta["iowait"] / total, 4),
        "busy_share": round(busy / total, 4),
        "servebench_share": round(own / total, 4),
        "others_share": round(max(busy - own, 0) / total, 4),
    }


class TargetNoiseProbe:
    """Samples the host around one target; :meth:`facts` is what meta.json records.

    Call order: ``before_start`` -> (target ready) ``window_start`` -> ``window_end``
    (before stop) -> ``after_stop``. Any step may be skipped (a target that never became
    ready has no window). Reading /proc never raises: a missing figure is None.
    """

    def __init__(self) -> None:
        self._facts: dict[str, Any] = {"load_before": None, "load_after": None, "sweep_s": None, "cpus": None}
        self._start: dict[str, int] | None = None
        self._t0 = 0.0

    def before_start(self) -> None:
        self._facts["load_before"] = read_loadavg()

    def _sample(self, pgids: Sequence[int]) -> dict[str, int] | None:
        times = _read_cpu_times()
        if times is None:
            return None
        return {**{k: getattr(times, k) for k in CpuTimes.__dataclass_fields__}, "own": _own_ticks(pgids)}

    def window_start(self, pgids: Sequence[int]) -> None:
        self._t0 = time.monotonic()
        self._start = self._sample(pgids)
        members = [pid for pgid in pgids for pid in group_pids(pgid)]
        self._facts["cpus"] = {"client": _affinity([os.getpid()]), "standins": _affinity(members)}

    def window_end(self, pgids: Sequence[int]) -> None:
        if self._start is None:
            return
        end = self._sample(pgids)
        self._facts["sweep_s"] = round(time.monotonic() - self._t0, 3)
        if end is not None:
            self._facts.update(window_shares(self._start, end) or {})
        self._start = None

    def after_stop(self) -> None:
        self._facts["load_after"] = read_loadavg()

    def facts(self) -> dict[str, Any]:
        return dict(self._facts)


# --- pure rules ---------------------------------------------------------------------------


def load_busy(load1: float | None, n_cpus: int) -> bool:
    """True when the 1-minute load average is above ``LOAD1_BUSY_FRACTION`` of the CPUs."""
    return load1 is not None and n_cpus > 0 and load1 > LOAD1_BUSY_FRACTION * n_cpus


def steal_busy(steal_share: float | None) -> bool:
    """True when more than ``STEAL_BUSY_SHARE`` of all CPU time was stolen."""
    return steal_share is not None and steal_share > STEAL_BUSY_SHARE


def others_busy(others_share: float | None) -> bool:
    """True when other processes used more than ``OTHERS_BUSY_SHARE`` of all CPU time."""
    return others_share is not None and others_share > OTHERS_BUSY_SHARE


def target_busy_reasons(facts: Mapping[str, Any], n_cpus: int) -> list[str]:
    """Why one target's sweep was measured on a busy host ([] when it was not)."""
    reasons = []
    steal = facts.get("steal_share")
    if steal_busy(steal):
        reasons.append(f"{steal:.1%} of the CPU time was stolen by the hypervisor (above {STEAL_BUSY_SHARE:.0%})")
    others = facts.get("others_share")
    if others_busy(others):
        reasons.append(
            f"other processes used {others:.1%} of the CPU time, about {others * n_cpus:.2f} of "
            f"{n_cpus} CPUs (above {OTHERS_BUSY_SHARE:.0%})"
        )
    return reasons


def noise_warnings(meta: RunMeta) -> list[str]:
    """One line per reason to distrust a run's timings, naming the run and the target.

    Reads only meta.json's ``host_noise`` section; runs written before it existed get [].
    """
    noise = meta.details.get("host_noise") or {}
    run_id = meta.run_id or "?"
    start = noise.get("at_start") or {}
    n_cpus = int(start.get("n_cpus") or meta.host.get("cpu_count") or 1)
    warnings = []
    load = start.get("load")
    if load and load_busy(load[0], n_cpus):
        warnings.append(
            f"run {run_id}: the host was busy when the run started: load average {load[0]:.2f} over the last "
            f"minute on {n_cpus} CPUs (above {LOAD1_BUSY_FRACTION * n_cpus:g}, half the CPUs); its timings may "
            "be inflated by other work"
        )
    for target, facts in (noise.get("targets") or {}).items():
        for reason in target_busy_reasons(facts or {}, n_cpus):
            warnings.append(f"run {run_id}, target {target}: during its sweep {reason}; its timings may be inflated")
    return warnings
