"""How far this machine's wall clock may be off: the kernel's own NTP estimate (adjtimex).

Why: shards of one run start their steps at the same wall-clock instant on different
machines, so their start skew is only as good as the machines' clocks agree.  A process
cannot measure another machine's clock without a reference it trusts, but the Linux
kernel keeps the NTP daemon's (chrony, ntpd, systemd-timesyncd) view of its own clock:
whether it is synchronised, the estimated error and the maximum error (``adjtimex(2)``,
read-only with ``modes = 0``, allowed in unprivileged containers).  That is what is
recorded: an estimate, labelled as such, never a measured offset between shards.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Any

__all__ = ["clock_facts"]

_STA_UNSYNC = 0x0040  # status bit: the clock is not synchronised
_STA_NANO = 0x2000  # status bit: ``offset`` is in nanoseconds, not microseconds
_TIME_ERROR = 5  # adjtimex's return value when the clock is not synchronised
_STATES = {0: "TIME_OK", 1: "TIME_INS", 2: "TIME_DEL", 3: "TIME_OOP", 4: "TIME_WAIT", 5: "TIME_ERROR"}


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """``struct timex`` of <sys/timex.h> (Linux, glibc/musl), padding included."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_padding", ctypes.c_int * 11),
    ]


def clock_facts() -> dict[str, Any]:
    """The kernel's view of this clock: ``{"source", "synchronised", "est_error_s", "max_error_s", ...}``.

    ``source`` is ``"unavailable"`` (with ``why``) where adjtimex cannot be read (not
    Linux, no libc found, the call refused); never raises.
    """
    if not sys.platform.startswith("linux"):
        return {"source": "unavailable", "why": f"adjtimex is Linux-only (platform {sys.platform})"}
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6", use_errno=True)
        timex = _Timex()
        timex.modes = 0  # read only
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError) as exc:
        return {"source": "unavailable", "why": f"adjtimex could not be called: {exc}"}
    if state < 0:
        return {"source": "unavailable", "why": f"adjtimex failed (errno {ctypes.get_errno()})"}
    unsynced = bool(timex.status & _STA_UNSYNC) or state == _TIME_ERROR
    offset_unit = 1e-9 if timex.status & _STA_NANO else 1e-6
    return {
        "source": "adjtimex (the kernel's NTP estimate; not a measurement against the other shards)",
        "synchronised": not unsynced,
        "state": _STATES.get(state, str(state)),
        "est_error_s": timex.esterror * 1e-6,
        "max_error_s": timex.maxerror * 1e-6,
        "offset_s": timex.offset * offset_unit,
    }
