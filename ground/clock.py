"""Wall-clock stamps in the two forms servebench writes: ISO-8601 UTC and run-id stamps.

Why one module: meta.json, calibration files, pipeline stage rows and run ids all print
times; written in one place they cannot drift apart (one in local time, one without the
``Z``), and every layer may use them without importing the CLI layer.
"""

from __future__ import annotations

import time

__all__ = ["utc_iso", "utc_stamp"]


def utc_iso(epoch_s: float | None = None) -> str:
    """ISO-8601 UTC with seconds, e.g. 2026-11-28T21:40:03Z (now when ``epoch_s`` is None)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if epoch_s is None else epoch_s))


def utc_stamp(epoch_s: float | None = None) -> str:
    """Compact UTC stamp for folder names, e.g. 20261128-214003 (sorts by time)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if epoch_s is None else epoch_s))
