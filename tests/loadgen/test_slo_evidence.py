"""The verdict of one rate (loadgen/slo_evidence.py): counts, episodes, looks, time, error rate.

Why these checks: a capacity is only as trustworthy as the per-rate verdict it rests on, so
the verdict is checked against what it promises -- "met" wrongly at most delta_look of
the time on a server exactly at the bound, bursts counted as episodes (a queue, also
before it exceeds; a burst in an earlier look), independent slow requests not merged,
"met" never on less than the floor of time, looks pooled and sized as documented.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.capacity.results import CAPACITY_FILE, load_capacity
from bench.capacity.table import capacity_legend, capacity_table
from loadgen.quantile_bounds import SloDecision, min_requests_to_meet
from loadgen.slo_evidence import CLUSTER_FRACTION, SequentialRule, count_episodes, judge

RULE = SequentialRule(confidence=0.95, max_looks=3)


def mm1(rng: np.random.Generator, rate: float, mu: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(send offsets, latencies) of a FIFO M/M/1 queue starting empty."""
    gaps = rng.exponential(1 / rate, n)
    service = rng.exponential(1 / mu, n)
    wait, out = 0.0, np.empty(n)
    for i in range(n):
        out[i] = wait + service[i]
        wait = max(0.0, wait + service[i] - gaps[i])
    return np.concatenate(([0.0], np.cumsum(gaps[:-1]))), out


def steady(n: int, seconds: float) -> np.ndarray:
    """Send offsets of n requests spread evenly over ``seconds``."""
    return np.linspace(0.0, seconds, n)


def test_bonferroni_splits_delta_over_the_looks_and_the_first_look_can_show_met() -> None:
    assert RULE.delta == pytest.approx(0.05) and RULE.delta_per_look == pytest.approx(0.05 / 3)
    n1 = RULE.first_look(99.0)
    assert n1 == min_requests_to_meet(99.0, 0.05 / 3) == 408
    fast = np.full(n1, 0.004)
    assert judge([fast], 99.0, 0.1, RULE, sent=[steady(n1, 5.0)]).decision is SloDecision.MET
    short = judge([fast[:-1]], 99.0, 0.1, RULE, sent=[steady(n1 - 1, 5.0)])
    assert short.decision is SloDecision.UNDECIDED  # one request short


def test_met_needs_the_floor_of_time_and_says_so() -> None:
    n1 = RULE.first_look(99.0)
    fast = np.full(n1, 0.004)
    ev = judge([fast], 99.0, 0.1, RULE, sent=[steady(n1, 2.0)])  # the counts say met, 2 s of arrivals
    assert ev.decision is SloDecision.UNDECIDED and ev.short_of_time
    assert ev.span_s == pytest.approx(2.0, rel=0.01) and "only 2.0 s of arrivals (needs 4 s)" in ev.describe("p99", 100)
    two = judge([fast, fast], 99.0, 0.1, RULE, sent=[steady(n1, 2.0), steady(n1, 2.1)])  # spans add up
    assert two.decision is SloDecision.MET and two.span_s == pytest.approx(4.1, rel=0.01)
    assert judge([fast], 99.0, 0.1, SequentialRule(min_met_seconds=0.0), sent=[steady(n1, 2.0)]).decision is (
        SloDecision.MET
    )
    unknown = judge([fast], 99.0, 0.1, RULE)  # no send times: no floor can be checked
    assert unknown.decision is SloDecision.MET and math.isnan(unknown.span_s)


def test_many_exceedances_violate_and_the_evidence_carries_the_counts_and_bounds() -> None:
    lat = np.where(np.arange(400) % 10 == 0, 0.150, 0.004)  # 10 % over the bound, spread out
    ev = judge([lat], 99.0, 0.1, RULE, sent=[steady(400, 40.0)])
    assert ev.decision is SloDecision.VIOLATED and ev.n == 400 and ev.exceed == 40 and ev.episodes == 40
    assert ev.p_violated <= RULE.delta_per_look < ev.p_met
    assert ev.lat_lo_s == pytest.approx(0.150)  # the p99's lower bound is itself over the bound
    assert ev.confidence == 0.95 and ev.looks == 1


def test_looks_pool_their_counts_and_send_times_must_match() -> None:
    a = np.full(300, 0.004)
    b = np.full(300, 0.004)
    b[7] = 0.2
    ev = judge([a, b], 99.0, 0.1, RULE)
    assert (ev.n, ev.exceed, ev.looks, ev.episodes) == (600, 1, 2, 1)
    with pytest.raises(ValueError, match="max_looks"):
        judge([a, a, a, a], 99.0, 0.1, RULE)
    with pytest.raises(ValueError, match="at least one look"):
        judge([], 99.0, 0.1, RULE)
    with pytest.raises(ValueError, match="send times"):
        judge([a], 99.0, 0.1, RULE, sent=[steady(299, 3.0)])
    with pytest.raises(ValueError, match="sent has 1 looks"):
        judge([a, b], 99.0, 0.1, RULE, sent=[steady(300, 3.0)])


def test_episodes_are_chains_of_overlapping_slow_requests() -> None:
    sent = np.array([0.0, 0.01, 0.02, 0.5, 0.51, 2.0])
    lat = np.array([0.15, 0.15, 0.004, 0.15, 0.004, 0.15])
    over = lat > 0.1
    # 0.0-0.15 and 0.01-0.16 overlap: one; 0.5-0.65: two; 2.0-2.15: three
    assert count_episodes(over, sent, lat) == 3
    # without send times: runs of consecutive slow requests in send order (0-1, 3, 5)
    assert count_episodes(over, None, lat) == 3
    assert count_episodes(np.array([True, True, False, True]), None, lat[:4]) == 2
    assert count_episodes(np.zeros(4, dtype=bool), sent[:4], lat[:4]) == 0


def test_a_queue_clustering_below_the_bound_counts_less_before_it_exceeds() -> None:
    # 90 % utilisation starting empty: waves over 60 ms (0.3 of 200 ms), none over 200 ms
    sent, queue = mm1(np.random.default_rng(1), 450.0, 500.0, 3000)
    assert CLUSTER_FRACTION == 0.3
    assert (queue > 0.2).sum() == 0 and (queue > 0.06).sum() > 20
    ev = judge([queue], 99.0, 0.2, RULE, sent=[sent])  # no exceedance, yet the queue counts less
    assert ev.exceed == 0 and ev.cluster_size > 5 and ev.n_effective < ev.n / 5
    assert ev.decision is not SloDecision.MET


def test_independent_slow_requests_are_merged_only_when_they_overlap_by_chance() -> None:
    # load-independent latencies: at 10 req/s slow requests rarely overlap; at 50 req/s a
    # quarter of them are over 30 ms and overlap by chance -- counted as bursts (the rule's
    # price in power on busy independent servers, never a false "met")
    rng = np.random.default_rng(4)
    n = 2000
    lat = rng.lognormal(-4, 0.8, n)  # p99 ~ 117 ms: a few over 100 ms, many over 30 ms
    gaps = rng.exponential(1.0, n)
    calm = judge([lat], 99.0, 0.1, RULE, sent=[np.cumsum(gaps / 10.0)])
    busy = judge([lat], 99.0, 0.1, RULE, sent=[np.cumsum(gaps / 50.0)])
    assert calm.exceed > 5 and calm.cluster_size < 1.3
    assert 1.3 < busy.cluster_size < 3


def test_a_quiet_look_does_not_dilute_a_burst_in_an_earlier_look() -> None:
    # 12 overlapping exceedances in one burst in look 1, then two quiet looks: one episode of
    # 12, so the looks are worth ~1/12 of their requests and 1 episode is not "met".
    n1 = RULE.first_look(99.0)
    burst = np.full(n1, 0.004)
    burst[100:112] = 0.150
    looks = [burst, np.full(n1, 0.004), np.full(2 * n1, 0.004)]
    sent = [steady(n1, 2.0), steady(n1, 2.0), steady(2 * n1, 4.0)]
    ev = judge(looks, 99.0, 0.1, RULE, sent=sent)
    assert (ev.n, ev.exceed, ev.episodes) == (4 * n1, 12, 1)
    assert ev.cluster_size >= 12 and ev.n_effective == pytest.approx(ev.n / ev.cluster_size)
    assert ev.decision is not SloDecision.MET


def test_the_cluster_fraction_can_be_overridden_and_is_checked() -> None:
    lat = np.where(np.arange(816) % 50 < 10, 0.060, 0.004)  # waves over half the bound, none over it
    sent = [steady(816, 8.0)]
    assert judge([lat], 99.0, 0.1, RULE, sent=sent, cluster_fraction=1.0).cluster_size == 1.0
    assert judge([lat], 99.0, 0.1, RULE, sent=sent, cluster_fraction=0.5).cluster_size > 3
    with pytest.raises(ValueError, match="cluster_fraction"):
        judge([lat], 99.0, 0.1, RULE, cluster_fraction=0.0)


@pytest.mark.parametrize("look_count", [1, 3])
def test_met_is_wrong_at_most_delta_per_look_at_the_bound(look_count: int) -> None:
    # a server whose true exceedance rate is exactly 1 %: "met" for p99 is false every time
    rng = np.random.default_rng(11)
    n1 = RULE.first_look(99.0)
    trials = 1500
    wrong = 0
    for _ in range(trials):
        sizes = [RULE.look_size(k, n1) for k in range(1, look_count + 1)]
        looks = [np.where(rng.random(size) < 0.01, 0.2, 0.004) for size in sizes]
        sent = [steady(size, 5.0 * size / n1) for size in sizes]  # 80 req/s: no overlaps, > 4 s
        wrong += judge(looks, 99.0, 0.1, RULE, sent=sent).decision is SloDecision.MET
    # binomial test's size is <= delta_look (discreteness makes it smaller); 3 sd of slack for the draw
    limit = RULE.delta_per_look
    assert wrong / trials <= limit + 3 * math.sqrt(limit * (1 - limit) / trials)


def test_rule_rejects_nonsense() -> None:
    for bad in (dict(confidence=0.4), dict(confidence=1.0), dict(max_looks=0), dict(min_met_seconds=-1.0)):
        with pytest.raises(ValueError):
            SequentialRule(**bad)
    with pytest.raises(ValueError, match="look"):
        RULE.look_size(0, 10)


def test_a_capacity_csv_written_before_the_evidence_columns_still_renders(tmp_path) -> None:
    old = pd.DataFrame(
        [
            {
                "run_id": "old",
                "target": "k8s-ibm",
                "repeat": 1,
                "objective": "p99 <= 100 ms",
                "percentile": 99.0,
                "bound_s": 0.1,
                "capacity_rps": 52.0,
                "verdict": "VALID",
                "client_bound": False,
                "client_ceiling_rps": 900.0,
                "upper_rps": 55.0,
                "precision_reached": True,
                "stop_reason": "bracket within 10%",
                "probes": 8,
                "seconds": 30.0,
                "at_offered_rps": 52.0,
                "at_achieved_rps": 50.1,
                "at_lat_p50_s": 0.02,
                "at_lat_p90_s": 0.04,
                "at_lat_p99_s": 0.09,
                "at_lat_objective_s": 0.09,
                "at_errors": 0,
                "at_saturated": False,
                "closed_best_concurrency": 2,
                "closed_best_rps": 60.0,
                "closed_best_lat_objective_s": 0.05,
                "seed": 1,
            }
        ]
    )
    old.to_csv(tmp_path / CAPACITY_FILE, index=False)
    cap = load_capacity(tmp_path)
    columns, rows = capacity_table(cap)
    row = dict(zip(columns, rows[0], strict=False))
    assert row["capacity: offered (req/s)"] == "52" and row["achieved at it (req/s)"] == "50.1"
    assert row["verdict"] == "VALID" and row["bracket (req/s)"] == "52-55"
    assert row["p99 at capacity (ms) [bounds]; evidence"] == "90.00"  # no counts recorded: the point estimate only
    assert any("written before verdicts carried a confidence" in line for line in capacity_legend(cap))
