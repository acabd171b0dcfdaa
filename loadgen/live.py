"""What a running step looks like right now: rates, p50/p99 and errors over its last seconds.

Why: a long step's progress line must show whether the target keeps up *now* -- the
offered and achieved rate and the tail latency over the last window, not counts since
the start (vegeta's and k6's live output).  :class:`LiveWindow` is a fixed-size ring
buffer of the latest completions (and of the latest sends, for the offered rate), so it
costs the same at minute 1 and at hour 10; :meth:`LiveWindow.stats` reads it at most a
few times a second (:data:`LIVE_INTERVAL_S`), never per request.

A completion counts as an error here when the engine failed it or its status was not
2xx: the live line does not decode answers (that happens off the send path, when the
records are made), so an undecodable 2xx shows up in the step's summary, not here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["LIVE_INTERVAL_S", "WINDOW_S", "LiveStats", "LiveWindow"]

#: Seconds of completions the live figures cover (at most the ring's capacity of them).
WINDOW_S = 5.0
#: The live figures are recomputed at most this often (the display is not the load).
LIVE_INTERVAL_S = 0.25
_CAPACITY = 1 << 15  # completions (and sends) kept: 32,768 x 3 arrays, ~0.6 MB


@dataclass(frozen=True)
class LiveStats:
    """The live figures of a running step (times in seconds; rates in req/s; NaN when unknown).

    ``window_s``: the span the rates and percentiles cover (up to :data:`WINDOW_S`; less
    early in the step, or when more than the ring's capacity completed in that time).
    ``remaining_s``: time left of a ``rate`` step's schedule; NaN in closed loops (they
    end when their N requests are answered, whenever that is).
    """

    elapsed_s: float
    remaining_s: float
    window_s: float
    offered_rps: float
    achieved_rps: float
    p50_s: float
    p99_s: float
    errors: int


class LiveWindow:
    """Ring buffers of the latest sends and completions of one step (times on the engine's clock)."""

    def __init__(self, t0: float, duration_s: float = math.nan, capacity: int = _CAPACITY) -> None:
        self.t0, self.duration_s = t0, duration_s
        self.done_at = np.full(capacity, np.nan)
        self.latency = np.full(capacity, np.nan)
        self.ok = np.zeros(capacity, dtype=bool)
        self.sent_at = np.full(capacity, np.nan)
        self.n_done = self.n_sent = self.errors = 0
        self._cached: LiveStats | None = None
        self._cached_at = -math.inf

    def sent(self, at: float) -> None:
        self.sent_at[self.n_sent % self.sent_at.size] = at
        self.n_sent += 1

    def done(self, at: float, latency: float, ok: bool) -> None:
        i = self.n_done % self.done_at.size
        self.done_at[i], self.latency[i], self.ok[i] = at, latency, ok
        self.n_done += 1
        self.errors += not ok

    def stats(self, now: float) -> LiveStats:
        """The figures at ``now``; recomputed at most every :data:`LIVE_INTERVAL_S`."""
        if self._cached is not None and now - self._cached_at < LIVE_INTERVAL_S:
            return self._cached
        elapsed = now - self.t0
        start = max(self.t0, now - WINDOW_S)
        done = self.done_at >= start
        sent = self.sent_at >= start
        span = now - start
        if self.n_done > self.done_at.size and np.any(done):  # the ring is full: it covers less than the window
            span = min(span, now - float(np.nanmin(self.done_at)))
        latencies = self.latency[done & self.ok]
        p50, p99 = np.percentile(latencies, [50, 99]) if latencies.size else (math.nan, math.nan)
        self._cached = LiveStats(
            elapsed_s=elapsed,
            remaining_s=max(0.0, self.duration_s - elapsed) if not math.isnan(self.duration_s) else math.nan,
            window_s=span,
            offered_rps=int(np.count_nonzero(sent)) / span if span > 0 else math.nan,
            achieved_rps=int(np.count_nonzero(done & self.ok)) / span if span > 0 else math.nan,
            p50_s=float(p50),
            p99_s=float(p99),
            errors=self.errors,
        )
        self._cached_at = now
        return self._cached
