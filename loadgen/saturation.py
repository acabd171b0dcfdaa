"""Did an open-loop (``rate``) step keep up? Offered vs achieved rate, send lag, who fell behind. Pure.

Why: an open loop that the target -- or the client itself -- cannot keep up with still
produces numbers, but they describe a growing queue, not the service: a user who asked for
1,500 req/s and got 680 with a p50 of half a second must be told so.  And the two causes
call for different actions: a target that falls behind has reached its capacity (a result),
a client that falls behind measured itself (no result at all).

Every figure comes from the raw records of one step, ordered by intended send time.

**Lateness.**  A request's *send lag* is its actual minus its intended send time (the
client's delay); its *answer lag* is its latency from the intended time (completion minus
intended send); their difference is its service time (completion minus actual send,
including any wait for one of the step's ``concurrency`` connections inside the engine).
A request still unanswered when the step ended (the step hit ``max_duration_s``: cut off
in flight, or due but never sent) is later than any answer: its lateness counts as
infinite, not as "answered at the deadline" -- that lower bound would be the same instant
for all of them and make a late quarter look *earlier* than an early one.  Requests due
after the step ended are left out (they were never due).

**Growth over the step.**  The due requests are split into quarters; the *growth* of a
lateness is the median of the last quarter minus the median of the first (medians, so one
slow request or one scheduler hiccup on a busy machine does not count as a trend; a
quarter most of which was never answered has an unbounded median, and a last quarter like
that is always growth).  ``D`` is the time between the two quarters' median intended send
times.  If answers come back
at a fraction ``f`` of the offered rate, the answer lag grows by ``D (1/f - 1)``; so
"achieved below 95 % of offered" is "answer lag grew by more than ``D (1/0.95 - 1)`` =
5.3 % of ``D``".

**Saturated** when the answer lag or the send lag grew by more than the tolerance
``max(50 ms, 5.3 % of D)``: the relative part is the 95 % rule above; the absolute floor
keeps a short step (where D is tens of milliseconds) from being flagged for the few
milliseconds a loaded 2-core machine may add to one quarter.  What the floor costs: a
step shorter than about a second is only flagged when its queue grew by 50 ms or more.
A stall in the middle of a step that the target recovers from is not a trend and is not
flagged (it shows in the latency percentiles); a stall at the end is.

**Who fell behind** (extra ``flags`` tokens next to ``saturated``):

- ``client_behind``: the send lag grew beyond the tolerance -- the load generator could
  not send at the offered rate (CPU-starved, or the ``max_rps`` politeness cap).  The
  step measured the client; it says nothing about the target, so ``target_behind`` is
  never given with it (a starved client also reads answers late, and an engine's
  connection pool under thousands of waiting requests is the client's own queue).
- ``target_behind``: the sends kept to the schedule and the answers fell behind -- the
  target answered slower than requests arrived.  (A client saturated by *reading* answers
  while still sending on time looks the same; near the client's calibrated ceiling, suspect
  the client -- docs/reading-the-report.md.)
- ``connection_cap``: with ``target_behind``: more requests were in flight than the
  step's ``concurrency`` connections, so some waited for a connection inside the client.
  The target could not answer the offered rate *at that concurrency* (C / latency < rate);
  a larger ``--concurrency`` offers more in parallel.

When neither the send lag nor the service time grew past the tolerance on its own but the
answer lag (their sum) did, the larger share names the cause.

**Rates** (columns; NaN with fewer than two requests, where no rate exists):

- ``offered_rps``: requests per second the schedule offered between the two quarters'
  median intended times (= the configured ``rate`` for a uniform schedule; a short Poisson
  schedule comes out sparser or denser by chance, and this is what the target was
  actually offered).
- ``achieved_rps``: *successful* answers per second, measured the same way on the
  successful requests (their quarters' median completion times), so a target that keeps
  up achieves the offered rate however long each answer takes -- unlike
  ``throughput_rps``, which divides by the whole step including the last answer's
  latency.  Failed requests lower it; they do not make the step ``saturated`` (fast
  failures are not falling behind; they have the ``errors`` flag).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from loadgen.record_columns import RecordColumns
from loadgen.records import StepResult

__all__ = [
    "FLAG_CLIENT_BEHIND",
    "FLAG_CONNECTION_CAP",
    "FLAG_TARGET_BEHIND",
    "LAG_GROWTH_FLOOR_S",
    "LAG_GROWTH_RELATIVE",
    "SATURATION_ACHIEVED_FRACTION",
    "SATURATION_DETAILS",
    "OpenLoopVerdict",
    "analyze_open_loop",
    "lag_tolerance",
]

# Answers below this fraction of the offered rate: the step did not keep up.
SATURATION_ACHIEVED_FRACTION = 0.95
# ...which is a lateness growing by this fraction of the time it grew over (1/0.95 - 1).
LAG_GROWTH_RELATIVE = 1.0 / SATURATION_ACHIEVED_FRACTION - 1.0
# Growth below this is never a trend: scheduler noise of a loaded machine, not a queue.
LAG_GROWTH_FLOOR_S = 0.05

FLAG_CLIENT_BEHIND = "client_behind"  # the sends fell behind the schedule: the client was the limit
FLAG_TARGET_BEHIND = "target_behind"  # sends on time, answers fell behind: the target was the limit
FLAG_CONNECTION_CAP = "connection_cap"  # requests waited for one of the step's connections
SATURATION_DETAILS: tuple[str, ...] = (FLAG_CLIENT_BEHIND, FLAG_TARGET_BEHIND, FLAG_CONNECTION_CAP)


@dataclass(frozen=True)
class OpenLoopVerdict:
    """The open-loop figures of one ``rate`` step (see the module docstring for each)."""

    offered_rps: float
    achieved_rps: float
    send_lag_p50_s: float
    send_lag_max_s: float
    lag_growth_s: float  # growth of the send lag (the client's)
    answer_lag_growth_s: float  # growth of the latency from intended send
    service_growth_s: float  # growth of completion minus actual send (the target's, plus pool waits)
    span_s: float  # D: between the first and last quarters' median intended times
    tolerance_s: float
    peak_in_flight: int  # most requests handed to the engine and not yet finished, at any time
    saturated: bool
    details: tuple[str, ...]  # subset of SATURATION_DETAILS, in that order

    def columns(self) -> dict[str, float | bool]:
        """The summary.csv columns this verdict fills (``flags`` is added by the caller)."""
        return {
            "offered_rps": self.offered_rps,
            "achieved_rps": self.achieved_rps,
            "send_lag_p50_s": self.send_lag_p50_s,
            "send_lag_max_s": self.send_lag_max_s,
            "lag_growth_s": self.lag_growth_s,
            "saturated": self.saturated,
        }


def lag_tolerance(span_s: float) -> float:
    """How much a lateness may grow over ``span_s`` seconds before the step is saturated."""
    return max(LAG_GROWTH_FLOOR_S, LAG_GROWTH_RELATIVE * span_s)


def _quarters(n: int) -> tuple[slice, slice]:
    """First and last quarter of ``n >= 2`` items (one item each for n < 8; never overlapping)."""
    q = max(1, n // 4)
    return slice(0, q), slice(n - q, n)


def _growth(values: np.ndarray) -> float:
    """Median of the last quarter minus median of the first; ``inf`` when the last quarter's
    median is unbounded (most of it still unanswered when the step ended), whatever the first's."""
    first, last = _quarters(len(values))
    m_first, m_last = float(np.median(values[first])), float(np.median(values[last]))
    if m_last == math.inf:
        return math.inf
    return m_last - m_first


def _rate_between_quarters(times: np.ndarray, weight: int = 1) -> float:
    """Items per second between the first and last quarters' median times (``times`` in order;
    each stands for ``weight`` items: a thinned step's one-in-``stride`` sample)."""
    if len(times) < 2:
        return math.nan
    first, last = _quarters(len(times))
    gap = float(np.median(times[last]) - np.median(times[first]))
    return weight * (len(times) - (first.stop - first.start)) / gap if gap > 0 else math.nan


def _peak_in_flight(sent: np.ndarray, done: np.ndarray) -> int:
    """Most intervals [sent, done) open at once (an interval ending when another starts is closed)."""
    if sent.size == 0:
        return 0
    starts, ends = np.sort(sent), np.sort(done)
    finished = np.searchsorted(ends, starts, side="right")
    return int(np.max(np.arange(1, starts.size + 1) - finished))


def _unfinished(step: StepResult, cols: RecordColumns, order: np.ndarray) -> np.ndarray:
    """Requests still unanswered when the step ended: never sent, or cut off at its deadline
    (``timeout`` recorded at the step's end by :func:`loadgen.modes.run_step`); in ``order``."""
    end = step.total_s - 1e-6
    intended = cols.column("intended_s")[order]
    sent, latency = cols.column("sent_s")[order], cols.column("latency_s")[order]
    timeout = cols.error_is("timeout")[order]
    with np.errstate(invalid="ignore"):
        return np.isnan(sent) | np.isnan(latency) | (timeout & (intended + latency >= end))


def _largest(lags: np.ndarray, cols: RecordColumns) -> float:
    """The largest send lag: the tally's exact one for a thinned step (the sample may miss it)."""
    if cols.tally is not None:
        return cols.tally.send_lag_max if math.isfinite(cols.tally.send_lag_max) else math.nan
    return float(np.max(lags)) if lags.size else math.nan


def analyze_open_loop(step: StepResult) -> OpenLoopVerdict | None:
    """The open-loop verdict of a ``rate`` step; None for closed-loop modes (nothing is offered).

    A thinned step (:class:`~loadgen.record_columns.RecordColumns` with ``stride`` k > 1)
    is judged on its one-in-k systematic sample -- quarter medians over hundreds of
    thousands of requests -- with rates scaled by k, its largest send lag from the exact
    tally and its peak in flight as the step counted it live (a merged or partial step,
    which nobody counted live: the sample's peak x k, an estimate that only decides
    ``connection_cap``).
    """
    if step.key.mode != "rate":
        return None
    cols = RecordColumns.of(step.records)
    order = np.lexsort((cols.column("seq"), cols.column("intended_s")))  # by (intended_s, seq)
    intended = cols.column("intended_s")[order]
    sent = cols.column("sent_s")[order]
    latency = cols.column("latency_s")[order]
    ok_mask = cols.ok()[order]
    n_records = len(cols)
    was_sent = ~np.isnan(sent)
    unfinished = _unfinished(step, cols, order)
    due = was_sent | (intended < step.total_s)  # a request due after the step ended was never late
    inf, nan = math.inf, math.nan
    send_lag = np.where(was_sent, sent - intended, inf)  # never sent: later than the whole step
    answer_lag = np.where(unfinished, inf, latency)
    service = answer_lag - np.where(was_sent, send_lag, 0.0)

    growth_send = growth_answer = growth_service = span = nan
    if due.sum() >= 2:
        first, last = _quarters(int(due.sum()))
        due_intended = intended[due]
        span = float(np.median(due_intended[last]) - np.median(due_intended[first]))
        growth_send = _growth(send_lag[due])
        growth_answer = _growth(answer_lag[due])
    if was_sent.sum() >= 2:  # over the requests actually sent: the others were never served
        growth_service = _growth(service[was_sent])
    tolerance = lag_tolerance(span) if not math.isnan(span) else nan

    if n_records < 2:
        achieved = nan
    elif ok_mask.any():
        achieved = _rate_between_quarters(intended[ok_mask] + latency[ok_mask], cols.stride)
    else:
        achieved = 0.0

    done = np.where(np.isnan(latency), step.total_s, intended + latency)
    if cols.tally is not None and cols.tally.peak_in_flight is not None:
        peak = cols.tally.peak_in_flight  # counted live by the step
    else:  # every record, or a thinned sample nobody counted live: its peak x stride, an estimate
        peak = _peak_in_flight(sent[was_sent], done[was_sent]) * cols.stride
    details: list[str] = []
    saturated = False
    if not math.isnan(tolerance):
        client = growth_send > tolerance
        saturated = client or growth_service > tolerance or growth_answer > tolerance
        if client:  # a client that cannot send on time times the answers badly too: no verdict on the target
            details.append(FLAG_CLIENT_BEHIND)
        elif saturated and growth_service >= growth_send:
            details.append(FLAG_TARGET_BEHIND)
            if peak > step.key.concurrency:
                details.append(FLAG_CONNECTION_CAP)
        elif saturated:  # neither alone past the tolerance, together past it: the larger share
            details.append(FLAG_CLIENT_BEHIND)
    actual_lags = (sent - intended)[was_sent]
    return OpenLoopVerdict(
        offered_rps=_rate_between_quarters(intended[due], cols.stride),
        achieved_rps=achieved,
        send_lag_p50_s=float(np.median(actual_lags)) if actual_lags.size else nan,
        send_lag_max_s=_largest(actual_lags, cols),
        lag_growth_s=growth_send,
        answer_lag_growth_s=growth_answer,
        service_growth_s=growth_service,
        span_s=span,
        tolerance_s=tolerance,
        peak_in_flight=peak,
        saturated=bool(saturated),
        details=tuple(details),
    )
