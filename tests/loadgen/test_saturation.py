"""Open-loop saturation on synthetic steps: deterministic records, known answers, no clock."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadgen.pacing import schedule
from loadgen.records import RequestRecord, StepKey, StepResult
from loadgen.saturation import (
    FLAG_CLIENT_BEHIND,
    FLAG_CONNECTION_CAP,
    FLAG_TARGET_BEHIND,
    LAG_GROWTH_FLOOR_S,
    analyze_open_loop,
    lag_tolerance,
)
from loadgen.stats import FLAG_ERRORS, FLAG_SATURATED, SUMMARY_COLUMNS, open_loop_stats, step_flags, summarize

OPEN_LOOP_COLUMNS = ("offered_rps", "achieved_rps", "send_lag_p50_s", "send_lag_max_s", "lag_growth_s")


def rate_step(
    intended: np.ndarray,
    sent: np.ndarray,
    done: np.ndarray,
    *,
    rate: float,
    concurrency: int | None = None,
    errors: dict[int, str] | None = None,
    end: float | None = None,
) -> StepResult:
    """A ``rate`` step from absolute times (seconds from the step's start); NaN sent = never sent."""
    errors = errors or {}
    n = len(intended)
    records = []
    for i in range(n):
        error = errors.get(i, "")
        unsent = math.isnan(sent[i])
        records.append(
            RequestRecord(
                seq=i,
                intended_s=float(intended[i]),
                sent_s=float(sent[i]),
                latency_s=math.nan if unsent else float(done[i] - intended[i]),
                service_s=math.nan if unsent else float(done[i] - sent[i]),
                status=0 if error else 200,
                error=error,
                error_detail="x" if error else "",
                bytes_out=0 if unsent else 10,
                bytes_in=0 if error else 20,
                label=i % 10,
                predicted=-1 if error else i % 10,
            )
        )
    total = end if end is not None else float(np.nanmax(done))
    key = StepKey(target="t", mode="rate", n_requests=n, concurrency=concurrency or n, rate=rate, trial=1)
    return StepResult(key=key, records=tuple(records), total_s=total, started_at=1.7e9)


def fifo_server(arrivals: np.ndarray, service_s: float) -> np.ndarray:
    """Completion times of a one-at-a-time server (an M/D/1 queue in arrival order)."""
    done = np.empty_like(arrivals)
    free = 0.0
    for i, t in enumerate(arrivals):
        free = max(free, t) + service_s
        done[i] = free
    return done


def capped_client(intended: np.ndarray, max_rps: float) -> np.ndarray:
    """Send times of a client that cannot send faster than ``max_rps`` (it falls behind)."""
    sent = np.empty_like(intended)
    last = -math.inf
    for i, t in enumerate(intended):
        last = max(t, last + 1.0 / max_rps)
        sent[i] = last
    return sent


def jitter(n: int, scale: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, scale, size=n)


def test_a_sustainable_step_is_not_saturated_and_achieves_the_offered_rate() -> None:
    intended = schedule(400, 100.0, "uniform")
    sent = intended + 0.0002 + jitter(400, 0.001, 1)
    done = sent + 0.010 + jitter(400, 0.015, 2)  # 10-25 ms each, never queueing
    verdict = analyze_open_loop(rate_step(intended, sent, done, rate=100.0))
    assert verdict is not None and not verdict.saturated and verdict.details == ()
    assert verdict.offered_rps == pytest.approx(100.0)
    assert verdict.achieved_rps == pytest.approx(100.0, rel=0.02)
    assert verdict.send_lag_p50_s == pytest.approx(np.median(sent - intended))
    assert verdict.send_lag_max_s == pytest.approx(np.max(sent - intended))
    assert abs(verdict.lag_growth_s) < 0.001
    # throughput_rps divides by the whole step, the last answer's latency included: lower
    row = summarize(rate_step(intended, sent, done, rate=100.0))
    assert row["throughput_rps"] < row["achieved_rps"]
    assert row["saturated"] is False and row["flags"] == ""


def test_answers_falling_behind_on_time_sends_is_the_target() -> None:
    """The user's report: 200 req/s offered to a server that does 100 req/s."""
    intended = schedule(400, 200.0, "uniform")
    sent = intended + 0.0002
    done = fifo_server(sent, 0.010)
    step = rate_step(intended, sent, done, rate=200.0)
    verdict = analyze_open_loop(step)
    assert verdict is not None and verdict.saturated
    assert verdict.details == (FLAG_TARGET_BEHIND,)  # cap = N: nobody waited for a connection
    assert verdict.offered_rps == pytest.approx(200.0)
    assert verdict.achieved_rps == pytest.approx(100.0, rel=0.01)
    assert abs(verdict.lag_growth_s) < 1e-9 and verdict.service_growth_s > 0.5
    row = summarize(step)
    assert row["saturated"] is True and row["flags"] == "saturated;target_behind"
    assert step_flags(row) == {FLAG_SATURATED, FLAG_TARGET_BEHIND}


def test_a_connection_cap_that_makes_requests_wait_is_named() -> None:
    intended = schedule(400, 200.0, "uniform")
    sent = intended + 0.0002
    done = fifo_server(sent, 0.010)  # the wait for a connection is part of the service time
    verdict = analyze_open_loop(rate_step(intended, sent, done, rate=200.0, concurrency=8))
    assert verdict is not None and verdict.peak_in_flight > 8
    assert verdict.details == (FLAG_TARGET_BEHIND, FLAG_CONNECTION_CAP)
    # a cap that was never reached is not named
    calm = analyze_open_loop(rate_step(intended, sent, sent + 0.004, rate=200.0, concurrency=8))
    assert calm is not None and not calm.saturated and calm.peak_in_flight <= 8


def test_a_growing_send_lag_is_the_client_even_when_the_target_is_fine() -> None:
    intended = schedule(300, 100.0, "uniform")
    sent = capped_client(intended, 50.0)  # the client manages 50 req/s of the 100 asked
    done = sent + 0.005  # every answer 5 ms after its actual send
    step = rate_step(intended, sent, done, rate=100.0)
    verdict = analyze_open_loop(step)
    assert verdict is not None and verdict.saturated
    assert verdict.details == (FLAG_CLIENT_BEHIND,)
    assert verdict.lag_growth_s > 1.0 and abs(verdict.service_growth_s) < 1e-9
    assert verdict.achieved_rps == pytest.approx(50.0, rel=0.01)
    row = summarize(step)
    assert row["lag_growth_s"] == pytest.approx(verdict.lag_growth_s)
    assert row["flags"] == "saturated;client_behind"


def test_the_95_percent_rule_on_a_long_step() -> None:
    """10 s at 100 req/s: answers at 97 % of the offered rate pass, at 90 % they do not."""
    intended = schedule(1000, 100.0, "uniform")
    sent = intended + 0.0002
    verdicts = {}
    for fraction in (0.97, 0.90):
        done = np.maximum(np.arange(1000) / (100.0 * fraction), sent) + 0.005
        verdicts[fraction] = analyze_open_loop(rate_step(intended, sent, done, rate=100.0))
    assert not verdicts[0.97].saturated
    assert verdicts[0.97].achieved_rps == pytest.approx(97.0, rel=0.01)
    assert verdicts[0.90].saturated and verdicts[0.90].details == (FLAG_TARGET_BEHIND,)
    assert verdicts[0.90].achieved_rps == pytest.approx(90.0, rel=0.01)
    # here the relative part of the tolerance decides, not the 50-ms floor
    assert verdicts[0.90].tolerance_s > LAG_GROWTH_FLOOR_S


def test_tolerance_has_a_floor_and_grows_with_the_span() -> None:
    assert lag_tolerance(0.1) == LAG_GROWTH_FLOOR_S
    assert lag_tolerance(10.0) == pytest.approx(10.0 * (1 / 0.95 - 1))


def test_a_short_sparse_poisson_schedule_is_not_saturated() -> None:
    """Measured against what the schedule offered, not the configured rate."""
    seed = next(s for s in range(1000) if (5 / schedule(6, 100.0, "poisson", seed=s)[-1]) < 60.0)
    intended = schedule(6, 100.0, "poisson", seed=seed)  # came out at < 60 req/s
    sent = intended + 0.0003
    done = sent + 0.030  # each answer 30 ms: slow, but nothing queues
    step = rate_step(intended, sent, done, rate=100.0)
    verdict = analyze_open_loop(step)
    assert verdict is not None and not verdict.saturated
    assert verdict.offered_rps < 95.0 and verdict.achieved_rps == pytest.approx(verdict.offered_rps, rel=0.05)
    # vegeta's throughput (n / whole step) is far below even the realised rate here
    assert summarize(step)["throughput_rps"] < 0.95 * verdict.offered_rps


def test_a_short_dense_step_with_slow_parallel_answers_is_not_saturated() -> None:
    """4 requests at 50 req/s answered in 50 ms each, in parallel: not a queue."""
    intended = schedule(4, 50.0, "uniform")
    done = intended + 0.050
    verdict = analyze_open_loop(rate_step(intended, intended.copy(), done, rate=50.0))
    assert verdict is not None and not verdict.saturated
    assert verdict.achieved_rps == pytest.approx(50.0)


def test_one_hiccup_or_a_recovered_stall_is_not_a_trend() -> None:
    intended = schedule(100, 100.0, "uniform")
    sent = intended + 0.0002
    sent[90] += 0.2  # one 200-ms scheduler hiccup in the last quarter
    done = sent + 0.005
    done[40:60] = np.maximum(done[40:60], 0.65)  # a 250-ms stall mid-step, recovered from
    verdict = analyze_open_loop(rate_step(intended, sent, done, rate=100.0))
    assert verdict is not None and not verdict.saturated


def test_a_step_cut_off_at_its_deadline_is_saturated() -> None:
    """What a real run produced: 2000 requests at 1000 req/s to a server answering ~30 req/s,
    the step cut at max_duration_s = 5 s with most requests still waiting. Every cut-off
    request 'ends' at the same instant, so counting it as answered then would make the last
    quarter look less late than the first; they count as unanswered (infinitely late)."""
    intended = schedule(2000, 1000.0, "uniform")
    sent = intended + 0.0003
    end = 5.0
    served = fifo_server(sent, 1 / 30)
    done = np.minimum(served, end)
    errors = {i: "timeout" for i in range(2000) if served[i] > end}
    step = rate_step(intended, sent, done, rate=1000.0, concurrency=32, errors=errors, end=end)
    verdict = analyze_open_loop(step)
    assert verdict is not None and verdict.saturated
    assert verdict.details == (FLAG_TARGET_BEHIND, FLAG_CONNECTION_CAP)
    assert verdict.service_growth_s == math.inf and verdict.lag_growth_s == pytest.approx(0.0)
    assert verdict.achieved_rps == pytest.approx(30.0, rel=0.02)
    assert verdict.offered_rps == pytest.approx(1000.0)
    assert {FLAG_SATURATED, FLAG_ERRORS, FLAG_TARGET_BEHIND} <= step_flags(summarize(step))


def test_requests_never_sent_before_the_deadline_are_the_client() -> None:
    """The client stopped sending at 0.5 s of a 1-s schedule; the step ended at 1.2 s."""
    intended = schedule(100, 100.0, "uniform")
    sent = np.where(intended < 0.5, intended, np.nan)
    done = sent + 0.005
    errors = {i: "other" for i in range(50, 100)}
    verdict = analyze_open_loop(rate_step(intended, sent, done, rate=100.0, errors=errors, end=1.2))
    assert verdict is not None and verdict.saturated
    assert verdict.details == (FLAG_CLIENT_BEHIND,) and verdict.lag_growth_s == math.inf


def test_fast_failures_lower_the_achieved_rate_but_are_not_saturation() -> None:
    intended = schedule(200, 100.0, "uniform")
    sent = intended + 0.0002
    errors = {i: "refused" for i in range(0, 200, 5)}  # one in five refused at once
    done = np.array([sent[i] + (0.0001 if i in errors else 0.005) for i in range(200)])
    row = summarize(rate_step(intended, sent, done, rate=100.0, errors=errors))
    assert row["saturated"] is False and row["flags"] == "errors"
    assert row["achieved_rps"] == pytest.approx(80.0, rel=0.02)


def test_a_single_request_has_no_rate() -> None:
    step = rate_step(np.zeros(1), np.zeros(1), np.full(1, 0.01), rate=50.0)
    stats = open_loop_stats(step)
    assert math.isnan(stats["offered_rps"]) and math.isnan(stats["achieved_rps"])
    assert stats["saturated"] is False and stats["flags"] == ""
    assert stats["send_lag_p50_s"] == 0.0


def test_nothing_answered_achieves_zero() -> None:
    intended = schedule(20, 100.0, "uniform")
    errors = {i: "refused" for i in range(20)}
    row = summarize(rate_step(intended, intended.copy(), intended + 0.0001, rate=100.0, errors=errors))
    assert row["achieved_rps"] == 0.0 and row["saturated"] is False
    assert row["flags"] == "errors;all_failed"


@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
def test_closed_loop_modes_have_no_open_loop_figures(mode: str) -> None:
    intended = np.arange(10) * 0.01
    step = rate_step(intended, intended.copy(), intended + 0.01, rate=100.0)
    closed = StepResult(
        key=StepKey("t", mode, 10, 1 if mode == "sequential" else 4, 0.0, 1),
        records=step.records,
        total_s=step.total_s,
        started_at=step.started_at,
    )
    assert analyze_open_loop(closed) is None
    row = summarize(closed)
    assert tuple(row) == SUMMARY_COLUMNS
    assert all(math.isnan(row[c]) for c in OPEN_LOOP_COLUMNS)
    assert row["saturated"] is False and row["flags"] == ""


def test_the_console_shows_the_offered_rate_and_says_who_fell_behind() -> None:
    from bench.console import open_loop_text, saturation_warning, step_label

    assert step_label(StepKey("t", "rate", 2000, 32, 1000.0, 1)) == "t rate N=2000 @ 1000 req/s trial 1"
    assert step_label(StepKey("t", "concurrent", 8, 8, 0.0, 2)) == "t concurrent N=8 trial 2"
    intended = schedule(400, 200.0, "uniform")
    sent = intended + 0.0002
    over = summarize(rate_step(intended, sent, fifo_server(sent, 0.010), rate=200.0, concurrency=8))
    text = open_loop_text(over)
    assert text.startswith(", offered 200.0 req/s, achieved 100.0 req/s, send lag p50 0.20 ms")
    warning = saturation_warning(over)
    assert "achieved 100.0 of 200.0 req/s offered" in warning and "answers fell behind" in warning
    assert "8 connections (--concurrency)" in warning
    slow_client = summarize(
        rate_step(intended, capped_client(intended, 50.0), capped_client(intended, 50.0) + 0.005, rate=200.0)
    )
    assert "the step measured the client, not the target" in saturation_warning(slow_client)
    calm = summarize(rate_step(intended, sent, sent + 0.002, rate=200.0))
    assert saturation_warning(calm) == "" and open_loop_text({"mode": "sequential"}) == ""
