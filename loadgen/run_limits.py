"""The limits that keep a mistyped run from filling the disk or running forever.

What: two limits, checked before any request is sent.

- **Disk**: a run's raw records are written to ``requests.csv.gz``; measured on real runs
  at 45-49 bytes per record gzipped (rate-mode steps against the stand-ins), so
  :func:`estimated_disk_bytes` plans :data:`BYTES_PER_RECORD` = 64 per record (the
  measured figure with headroom for error details and long offsets) plus
  :data:`DISK_HEADROOM` for the run's other files, and :func:`check_free_space` refuses
  the run when that is more than the results folder's free space, with the estimate in
  the message.
- **Time**: ``max_duration_s`` bounds every step, so a step always ends.  Left at
  ``"auto"`` it follows the plan (:func:`auto_max_duration_s`): the longest step's planned
  span plus slack, and never less than the old fixed :data:`CLOSED_LOOP_MAX_DURATION_S`,
  so a two-hour soak is not cut at 600 s and a closed-loop step still stops.

Why these instead of a cap on requests per step (the old ``MAX_STEP_REQUESTS = 100_000``):
the cap stood for memory (every record of a step was held until it ended) and disk.  With
records streamed to disk, memory no longer grows with a step, and a soak of an hour at
1,000 req/s (3.6 M requests) is a legitimate run -- but a typo such as ``--rate 100000
--duration 2h`` (720 M requests, about 45 GB of records) still must fail at once, and the
free space is the bound that actually matters.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BYTES_PER_RECORD",
    "CLOSED_LOOP_MAX_DURATION_S",
    "DISK_HEADROOM",
    "DiskEstimate",
    "InsufficientDiskError",
    "auto_max_duration_s",
    "check_free_space",
    "estimated_disk_bytes",
    "free_bytes",
]

#: Bytes per record the disk check plans for.  Measured in requests.csv.gz on real rate-mode
#: runs against the stand-ins: 45.0 B on a 14,000-record staged step, 45-49 B on
#: 1,196-1,359-record steps (34 B on a 1 M-record in-memory run); docs/soak.md says how.  64
#: leaves headroom for error details and the longer offsets (more digits) of hour-long steps.
BYTES_PER_RECORD = 64
#: Extra share of the records' size planned for everything else the run writes (summary,
#: meta, checkpoints, logs, the report's figures).
DISK_HEADROOM = 0.25
#: The fixed step limit servebench used before ``"auto"``; still the least a step is given.
CLOSED_LOOP_MAX_DURATION_S = 600.0
#: Slack past a rate step's planned span: the last requests still need their answers.
_SLACK_FRACTION, _SLACK_S = 0.10, 60.0


class InsufficientDiskError(ValueError):
    """The run's records would need more disk than the results folder has free."""


@dataclass(frozen=True)
class DiskEstimate:
    """What a run will write: ``records`` raw records, ``bytes`` on disk in all (records + headroom)."""

    records: int
    bytes: int

    def describe(self) -> str:
        return (
            f"{self.records:,} records, about {_size(self.bytes)} on disk "
            f"({BYTES_PER_RECORD} B per record + {DISK_HEADROOM:.0%})"
        )


def estimated_disk_bytes(records: int) -> DiskEstimate:
    """The disk ``records`` raw records take in a run's folder, with :data:`DISK_HEADROOM` for the rest."""
    if records < 0:
        raise ValueError(f"records must be >= 0, got {records}")
    return DiskEstimate(records, int(math.ceil(records * BYTES_PER_RECORD * (1.0 + DISK_HEADROOM))))


def free_bytes(folder: Path) -> int:
    """Free bytes on the file system of ``folder`` (or of its nearest existing parent)."""
    path = Path(folder).resolve()
    while not path.exists() and path.parent != path:
        path = path.parent
    return shutil.disk_usage(path).free


def check_free_space(
    records: int, folder: Path, *, free: Callable[[Path], int] | None = None, what: str = "the run"
) -> DiskEstimate:
    """Refuse (:class:`InsufficientDiskError`) when ``records`` records would not fit in ``folder``'s free space.

    Returns the estimate when they fit.  ``free`` reads the free space (default
    :func:`free_bytes`, looked up at call time so a test can give the disk any size).
    """
    estimate = estimated_disk_bytes(records)
    available = (free or free_bytes)(folder)
    if estimate.bytes > available:
        raise InsufficientDiskError(
            f"{what} would write {estimate.describe()}, but {folder} has {_size(available)} free; "
            "shorten --duration or lower the rate, or write the run elsewhere with --out DIR"
        )
    return estimate


def auto_max_duration_s(planned_spans_s: list[float]) -> float:
    """``max_duration_s = "auto"``: the longest planned span plus 10 % and 60 s, at least 600 s.

    ``planned_spans_s``: each rate step's planned span (a Poisson schedule's own spread is
    part of the span given, see ``SweepSettings``).  Closed-loop steps have no planned span;
    they get the 600 s every step had before, or more when a rate step of the same run does.
    """
    longest = max(planned_spans_s, default=0.0)
    return max(CLOSED_LOOP_MAX_DURATION_S, longest * (1.0 + _SLACK_FRACTION) + _SLACK_S)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    raise AssertionError("unreachable")
