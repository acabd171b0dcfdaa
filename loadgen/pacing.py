"""Open-loop pacing as pure functions: when each request of a ``rate`` step is due.

Why pure: the schedule decides every latency in ``rate`` mode (latency is counted from
the *intended* time), so it must be testable without a clock or a network, and
reproducible from a seed (vegeta's ``Pacer.Pace``; MLPerf LoadGen keeps a schedule seed
separate from the sample-choice seed, and so do we).

Definitions:

- ``uniform``: request ``i`` is due at ``i / rate`` seconds (the first one at 0).
- ``poisson``: a Poisson process of intensity ``rate``: inter-arrival gaps are i.i.d.
  exponential with mean ``1 / rate``; the first request is due at 0 (so a step never
  starts with an idle gap) and request ``i`` at the sum of the first ``i`` gaps.

A step consumes its schedule as an :class:`OffsetSchedule`: its length, its duration and
its offsets in consecutive chunks, so a step of hours never holds millions of offsets at
once (a staged schedule, :mod:`loadgen.stages`, computes each chunk when asked).  A plain
array of offsets is one too, through :func:`as_schedule`.

:class:`ConstantRateSchedule` is the same schedule produced lazily, a chunk at a time, for
steps too long to hold every offset (an hour at 1,000 req/s is 3.6 M of them): its chunks,
concatenated, equal :func:`schedule`'s array exactly (the same draws from the same
generator, summed in the same order).  Schedules whose rate changes over the step
(k6-like stages) are :class:`loadgen.stages.StagedSchedule`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "ARRIVALS",
    "ArraySchedule",
    "Arrival",
    "ConstantRateSchedule",
    "OffsetSchedule",
    "as_schedule",
    "pace",
    "schedule",
]

Arrival = Literal["uniform", "poisson"]
ARRIVALS: tuple[str, ...] = ("uniform", "poisson")


def schedule(n: int, rate_rps: float, arrival: Arrival = "uniform", seed: int | Sequence[int] | None = 0) -> np.ndarray:
    """Intended send offsets (seconds from the step's start) of ``n`` requests, ascending.

    ``seed`` only matters for ``poisson``; it seeds a generator of its own (anything
    ``numpy.random.default_rng`` accepts, e.g. ``[seed, trial]``), so the arrival pattern
    does not change when the image order (another seed) does.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not rate_rps > 0 or not np.isfinite(rate_rps):
        raise ValueError(f"rate_rps must be a finite number > 0, got {rate_rps}")
    if arrival == "uniform":
        return np.arange(n, dtype=np.float64) / rate_rps
    if arrival == "poisson":
        if n == 0:
            return np.zeros(0)
        gaps = np.random.default_rng(seed).exponential(1.0 / rate_rps, size=n - 1)
        return np.concatenate(([0.0], np.cumsum(gaps)))
    raise ValueError(f"arrival must be one of {', '.join(ARRIVALS)}, got {arrival!r}")


def pace(offsets: np.ndarray, elapsed: float, hits: int) -> tuple[float, bool]:
    """vegeta's ``Pace(elapsed, hits) -> (wait, stop)`` over a precomputed schedule.

    ``hits`` requests have been launched and ``elapsed`` seconds have passed since the
    step started: return how long to wait before launching the next one (0 when it is
    already due or overdue -- an open loop never skips a request to catch up, it sends
    it late and its latency counts from the intended time) and whether the schedule is
    exhausted.
    """
    if hits < 0:
        raise ValueError(f"hits must be >= 0, got {hits}")
    if hits >= len(offsets):
        return 0.0, True
    return max(0.0, float(offsets[hits]) - elapsed), False


@runtime_checkable
class OffsetSchedule(Protocol):
    """The intended send offsets of one ``rate`` step, produced a chunk at a time.

    ``len()`` is the number of requests; :meth:`chunks` yields consecutive arrays of
    non-decreasing offsets in seconds from the step's start (together, ``len()`` of them);
    ``duration_s`` is when the schedule ends (the last offset, or the stage's end).
    """

    duration_s: float

    def __len__(self) -> int: ...

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """The offsets in order, ``size`` at a time (the last chunk may be shorter)."""
        ...


class ArraySchedule:
    """An :class:`OffsetSchedule` over a precomputed array of offsets (what :func:`schedule` returns)."""

    def __init__(self, offsets: np.ndarray | Sequence[float]) -> None:
        self.offsets = np.asarray(offsets, dtype=np.float64)
        if self.offsets.ndim != 1:
            raise ValueError(f"offsets must be one-dimensional, got shape {self.offsets.shape}")
        if self.offsets.size and (np.any(np.isnan(self.offsets)) or np.any(np.diff(self.offsets) < 0)):
            raise ValueError("offsets must be non-decreasing numbers")
        self.duration_s = float(self.offsets[-1]) if self.offsets.size else 0.0

    def __len__(self) -> int:
        return int(self.offsets.size)

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        if size < 1:
            raise ValueError(f"chunk size must be >= 1, got {size}")
        for start in range(0, self.offsets.size, size):
            yield self.offsets[start : start + size]


def as_schedule(offsets: OffsetSchedule | np.ndarray | Sequence[float]) -> OffsetSchedule:
    """``offsets`` as an :class:`OffsetSchedule` (an array or a sequence is wrapped)."""
    if isinstance(offsets, np.ndarray | list | tuple):
        return ArraySchedule(offsets)
    if isinstance(offsets, OffsetSchedule):
        return offsets
    raise TypeError(f"offsets must be an array of seconds or an OffsetSchedule, got {type(offsets).__name__}")


class ConstantRateSchedule:
    """:func:`schedule` ``(n, rate_rps, arrival, seed)`` generated lazily, in chunks of consecutive offsets.

    ``duration_s`` is ``n / rate_rps``, the span the step's arrivals describe (the
    ``--duration`` that sized it); the last offset is near ``(n - 1) / rate_rps``
    (exactly, for ``uniform``).  Each :meth:`chunks` call starts again from the first
    offset with a fresh generator of the same seed, so a schedule can be read twice and
    the chunk size never changes an offset.
    """

    def __init__(
        self, n: int, rate_rps: float, arrival: Arrival = "uniform", seed: int | Sequence[int] | None = 0
    ) -> None:
        schedule(0, rate_rps, arrival, seed)  # the same checks as the array form
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.n = int(n)
        self.rate_rps = float(rate_rps)
        self.arrival: Arrival = arrival
        self.seed = seed
        self.duration_s = self.n / self.rate_rps

    def __len__(self) -> int:
        return self.n

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """Consecutive offsets, ``size`` at a time (the last chunk may be shorter), ascending."""
        if size < 1:
            raise ValueError(f"chunk size must be >= 1, got {size}")
        if self.arrival == "uniform":
            for start in range(0, self.n, size):
                yield np.arange(start, min(start + size, self.n), dtype=np.float64) / self.rate_rps
            return
        rng = np.random.default_rng(self.seed)
        scale = 1.0 / self.rate_rps
        last = 0.0
        for start in range(0, self.n, size):
            stop = min(start + size, self.n)
            if start == 0:  # the first request is due at 0, then n - 1 gaps in all
                gaps = rng.exponential(scale, size=stop - 1)
                chunk = np.concatenate(([0.0], np.cumsum(gaps)))
            else:  # summed on from the last offset, in the same order as one cumsum over all gaps
                gaps = rng.exponential(scale, size=stop - start)
                chunk = np.cumsum(np.concatenate(([last], gaps)))[1:]
            last = float(chunk[-1])
            yield chunk
