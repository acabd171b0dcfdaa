"""A target's run as a timeline: per time window, offered and achieved rate, p50/p99 and errors.

What it computes, per target, from request rows given in chunks (any number, any order of
steps; rows of one step in their file order), in fixed memory:

- **windows** of :func:`window_seconds` (1 s for a minute, 10 s for an hour: at most
  :data:`MAX_WINDOWS`), on the wall clock: a row's send time is its step's ``started_at``
  plus its ``intended_s`` (so a ramp's offered rate is what the schedule did, whatever the
  settings said);
- **offered** rate: intended sends per second of window; **achieved**: successful
  completions per second (completion = intended send + latency); **errors per second** by
  class, counted when they completed (or, never sent, when they were due);
- **p50 / p99** of the successful requests *sent* in a window, from a log histogram per
  window (:mod:`bench.report.timeline_hist`: within 1 % of the exact order statistic),
  NaN where the window's count is below the percentile-bounds rule's minimum;
- **outages** (:class:`Outage`): a stretch of at least :data:`OUTAGE_MIN_REQUESTS`
  consecutive requests of a step (in send order) that all failed with ``refused``,
  ``reset`` or ``timeout`` -- the target answered nothing -- lasting at least
  :data:`OUTAGE_MIN_S`; it starts at the first such send and ends at the next request the
  target answered (or, when the step ended first, at the last failed send);
- the **latency-vs-send-time points** of up to :data:`SCATTER_MAX` requests per target (for
  the vegeta-style scatter; none kept beyond that).

Why windows are chosen from the summary (each step's ``started_at`` and ``total_s``)
before any record is read: the rows are then read once, chunk by chunk. Drift batches
are filled in the same pass (:mod:`bench.report.drift`). Pure: no I/O, no printing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.report.drift import DriftBatches
from bench.report.timeline_hist import N_BINS, bin_index, min_count_for

__all__ = [
    "KEY_COLUMNS",
    "MAX_WINDOWS",
    "OUTAGE_CLASSES",
    "SCATTER_MAX",
    "TIMELINE_COLUMNS",
    "Outage",
    "StepSpan",
    "TargetTimeline",
    "TimelineAccumulator",
    "window_seconds",
]

KEY_COLUMNS = ("target", "mode", "n_requests", "concurrency", "rate", "trial")
#: The request columns the timeline reads.
TIMELINE_COLUMNS = (*KEY_COLUMNS, "intended_s", "latency_s", "error")
MAX_WINDOWS = 400
#: The fewest windows a timeline is cut into when windows are widened for a p99.
MIN_WINDOWS = 60
#: Successes a window needs for both 95 % bounds of its p99 (368).
P99_MIN_COUNT = min_count_for(0.99)
_NICE_WINDOWS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
OUTAGE_CLASSES = frozenset({"refused", "reset", "timeout"})
OUTAGE_MIN_REQUESTS = 3
OUTAGE_MIN_S = 1.0
SCATTER_MAX = 100_000


def window_seconds(span_s: float, max_windows: int = MAX_WINDOWS, rate_rps: float = 0.0) -> float:
    """The shortest of 1, 2, 5, 10, 15, 30 s, 1, 2, 5 ... min that cuts ``span_s`` into at most
    ``max_windows`` windows (a minute: 1 s; an hour: 10 s; a day: 300 s). Never under 1 s: a
    shorter window holds too few requests at the rates servebench runs for a rate or a p50.

    With the run's mean ``rate_rps``, windows are widened until one holds the requests a p99
    needs (:data:`P99_MIN_COUNT`), as long as that still leaves at least
    :data:`MIN_WINDOWS` of them: a 33-minute soak at 50 req/s gets 10 s windows (500
    requests: a p99 per window) rather than 5 s ones (250: no p99 anywhere); a 40 s run at
    30 req/s keeps its 1 s windows (a p99 would leave three).
    """
    width = next((float(w) for w in _NICE_WINDOWS if span_s / w <= max_windows), float(_NICE_WINDOWS[-1]))
    if rate_rps > 0:
        for wider in _NICE_WINDOWS:
            if wider > width and span_s / wider >= MIN_WINDOWS and rate_rps * width < P99_MIN_COUNT:
                width = float(wider)
    return width


@dataclass(frozen=True)
class StepSpan:
    """One step (one trial) on the wall clock: its key, Unix start and length (s)."""

    key: tuple  # KEY_COLUMNS values
    started_at: float
    total_s: float

    @property
    def label(self) -> str:
        _, mode, n, c, rate, trial = self.key
        what = f"rate {float(rate):g}/s" if mode == "rate" else f"{mode} N={int(n)} c={int(c)}"
        return f"{what} #{int(trial)}"


@dataclass(frozen=True)
class Outage:
    """A stretch in which the target answered nothing (Unix seconds; requests that failed)."""

    target: str
    start: float
    end: float
    requests: int
    classes: tuple[str, ...]
    until_step_end: bool  # the step ended inside it: its end is the last failed send

    @property
    def length_s(self) -> float:
        return self.end - self.start


@dataclass
class TargetTimeline:
    """One target's windows and what happened in them; arrays are per window."""

    target: str
    t0: float  # Unix seconds at the start of window 0 (the target's first step)
    window_s: float
    span_s: float  # from t0 to the end of the target's last step
    steps: list[StepSpan]
    offered: np.ndarray  # intended sends per window
    achieved: np.ndarray  # successful completions per window
    errors: dict[str, np.ndarray]  # error class -> failures per window
    hist: np.ndarray  # windows x N_BINS, successes by send window
    outages: list[Outage] = field(default_factory=list)
    drift: dict[tuple, DriftBatches] = field(default_factory=dict)
    scatter: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # send time, latency, ok
    records: int = 0

    @property
    def n_windows(self) -> int:
        return int(self.offered.size)

    @property
    def starts(self) -> np.ndarray:
        """Each window's start, seconds since ``t0``."""
        return np.arange(self.n_windows) * self.window_s

    def per_second(self, counts: np.ndarray) -> np.ndarray:
        """Counts per window as per second of the window's time inside the run (the last one is partial)."""
        covered = np.clip(self.span_s - self.starts, 0.0, self.window_s)
        # a last window under half a width says little per second (3 answers in 0.01 s = 300/s): none
        return np.where(covered >= self.window_s / 2, counts / np.maximum(covered, 1e-9), np.nan)


class _OpenRun:
    """A run of consecutive outage-class failures still open at a chunk's end."""

    __slots__ = ("classes", "count", "last", "start")

    def __init__(self, start: float) -> None:
        self.start, self.last, self.count, self.classes = start, start, 0, set()


class TimelineAccumulator:
    """Feed request rows in chunks (:meth:`add`), then :meth:`finish` for one timeline per target.

    ``steps``: every step to place on the clock (rows of other steps are ignored);
    a step without a finite ``started_at`` cannot be placed and is left out (:attr:`unplaced`).
    """

    def __init__(self, steps: Iterable[StepSpan], *, drift_min_s: float | None = None) -> None:
        self.unplaced: list[StepSpan] = []
        self._steps: dict[tuple, StepSpan] = {}
        by_target: dict[str, list[StepSpan]] = {}
        for step in steps:
            if not (math.isfinite(step.started_at) and math.isfinite(step.total_s)):
                self.unplaced.append(step)
                continue
            key = _norm_key(step.key)
            self._steps[key] = StepSpan(key, step.started_at, step.total_s)
            by_target.setdefault(key[0], []).append(self._steps[key])
        self._timelines: dict[str, TargetTimeline] = {}
        for target, spans in by_target.items():
            spans.sort(key=lambda s: s.started_at)
            t0 = spans[0].started_at
            span = max(s.started_at + max(s.total_s, 0.0) for s in spans) - t0
            sent = sum(int(s.key[2]) for s in spans)  # planned counts: a killed step's too
            width = window_seconds(span, rate_rps=sent / span if span > 0 else 0.0)
            n = int(math.floor(span / width)) + 1
            self._timelines[target] = TargetTimeline(
                target,
                t0,
                width,
                span,
                spans,
                np.zeros(n, np.int64),
                np.zeros(n, np.int64),
                {},
                np.zeros((n, N_BINS), np.int64),
                scatter=(np.empty(0), np.empty(0, np.float32), np.empty(0, bool)),
            )
            for s in spans:
                if drift_min_s is not None and s.total_s >= drift_min_s:
                    self._timelines[target].drift[s.key] = DriftBatches(s.total_s)
        self._open: dict[tuple, _OpenRun | None] = {}
        self._scatter_parts: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}

    def add(self, frame: pd.DataFrame) -> None:
        """Account one chunk of request rows (columns :data:`TIMELINE_COLUMNS`)."""
        if frame.empty:
            return
        for raw_key, rows in frame.groupby(list(KEY_COLUMNS), sort=False):
            key = _norm_key(raw_key)
            step = self._steps.get(key)
            if step is None:
                continue
            self._add_step_rows(self._timelines[key[0]], step, rows)

    def _add_step_rows(self, tl: TargetTimeline, step: StepSpan, rows: pd.DataFrame) -> None:
        intended = rows["intended_s"].to_numpy(np.float64)
        latency = rows["latency_s"].to_numpy(np.float64)
        error = rows["error"].to_numpy(str)
        send = step.started_at + intended - tl.t0
        ok = (error == "") & np.isfinite(latency)
        n = tl.n_windows
        send_w = _window(send, tl.window_s, n)
        done = send + latency
        done_w = np.where(np.isfinite(done), _window(np.nan_to_num(done), tl.window_s, n), send_w)
        tl.records += len(rows)
        tl.offered += np.bincount(send_w, minlength=n)[:n]
        tl.achieved += np.bincount(done_w[ok], minlength=n)[:n]
        failed = np.where(error == "", "other", error)[~ok]  # a "success" without a latency: other
        failed_w = done_w[~ok]
        for cls in np.unique(failed):
            counts = tl.errors.setdefault(str(cls), np.zeros(n, np.int64))
            counts += np.bincount(failed_w[failed == cls], minlength=n)[:n]
        if ok.any():
            flat = send_w[ok] * N_BINS + bin_index(latency[ok])
            tl.hist += np.bincount(flat, minlength=n * N_BINS)[: n * N_BINS].reshape(n, N_BINS)
        drift = tl.drift.get(step.key)
        if drift is not None:
            drift.add(intended, latency, ok)
        self._track_outages(tl, step, send + tl.t0, error)
        self._keep_scatter(tl, send, latency, ok)

    def _track_outages(self, tl: TargetTimeline, step: StepSpan, send: np.ndarray, error: np.ndarray) -> None:
        """Runs of consecutive outage-class failures (send order), carried across chunks."""
        run = self._open.get(step.key)
        down = np.isin(error, list(OUTAGE_CLASSES))
        if not down.any():
            if run is not None:
                self._close(tl, run, float(send[0]), until_end=False)
            self._open[step.key] = None
            return
        edges = np.flatnonzero(np.diff(np.concatenate(([False], down, [False])).astype(np.int8)))
        firsts, lasts = edges[0::2], edges[1::2] - 1  # each run of failures: first and last row
        for first, last in zip(firsts, lasts, strict=True):
            if run is not None and first != 0:  # the open run ended at row 0 (an answer)
                self._close(tl, run, float(send[0]), until_end=False)
                run = None
            if run is None:
                run = _OpenRun(float(send[first]))
            run.last, run.count = float(send[last]), run.count + int(last - first + 1)
            run.classes.update(str(c) for c in np.unique(error[first : last + 1]))
            if last + 1 < len(send):  # answered at last + 1
                self._close(tl, run, float(send[last + 1]), until_end=False)
                run = None
        self._open[step.key] = run

    @staticmethod
    def _close(tl: TargetTimeline, run: _OpenRun, end: float, *, until_end: bool) -> None:
        if run.count >= OUTAGE_MIN_REQUESTS and end - run.start >= OUTAGE_MIN_S:
            tl.outages.append(Outage(tl.target, run.start, end, run.count, tuple(sorted(run.classes)), until_end))

    def _keep_scatter(self, tl: TargetTimeline, send: np.ndarray, latency: np.ndarray, ok: np.ndarray) -> None:
        if tl.scatter is None:
            return
        if tl.records > SCATTER_MAX:  # too many to draw one by one: the scatter is not made
            tl.scatter = None
            self._scatter_parts.pop(tl.target, None)
            return
        self._scatter_parts.setdefault(tl.target, []).append((send, latency.astype(np.float32), ok))

    def finish(self) -> list[TargetTimeline]:
        """The timelines, targets in the order their first step started."""
        for key, run in self._open.items():
            if run is not None:
                self._close(self._timelines[key[0]], run, run.last, until_end=True)
        self._open = {}
        for tl in self._timelines.values():
            parts = self._scatter_parts.pop(tl.target, [])
            if tl.scatter is not None and parts:
                tl.scatter = tuple(np.concatenate(p) for p in zip(*parts, strict=True))
            tl.outages.sort(key=lambda o: o.start)
        return sorted(self._timelines.values(), key=lambda t: t.t0)


def _norm_key(key: Sequence) -> tuple:
    target, mode, n, c, rate, trial = key
    return (str(target), str(mode), int(n), int(c), round(float(rate), 6), int(trial))


def _window(seconds: np.ndarray, width: float, n: int) -> np.ndarray:
    """Window index of each time (seconds since t0), clamped to 0..n-1; NaN -> 0 (callers mask it)."""
    index = np.floor(np.nan_to_num(seconds) / width).astype(np.int64)
    return np.clip(index, 0, n - 1)
