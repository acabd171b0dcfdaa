"""The verdict of one rate (loadgen/slo_evidence.py): counts, design effect, looks, error rate.

Why these checks: a capacity is only as trustworthy as the per-rate verdict it rests on, so
the verdict is checked against what it promises -- "met" wrongly at most delta_look of
the time on a server exactly at the bound, clustering recognised (a queue, also
before it exceeds) and not invented (ties, independent draws, drift of the bulk far below
the bound), looks pooled and sized as documented.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from bench.capacity.results import CAPACITY_FILE, load_capacity
from bench.capacity.table import capacity_legend, capacity_table
from loadgen.quantile_bounds import SloDecision, effective_sample_size, min_requests_to_meet
from loadgen.slo_evidence import CLUSTER_FRACTION, SequentialRule, design_effect, judge

RULE = SequentialRule(confidence=0.95, max_looks=3)


def mm1_latencies(rng: np.random.Generator, rate: float, mu: float, n: int) -> np.ndarray:
    wait, out = 0.0, np.empty(n)
    for i in range(n):
        service = rng.exponential(1 / mu)
        out[i] = wait + service
        wait = max(0.0, wait + service - rng.exponential(1 / rate))
    return out


def test_bonferroni_splits_delta_over_the_looks_and_the_first_look_can_show_met() -> None:
    assert RULE.delta == pytest.approx(0.05) and RULE.delta_per_look == pytest.approx(0.05 / 3)
    n1 = RULE.first_look(99.0)
    assert n1 == min_requests_to_meet(99.0, 0.05 / 3) == 408
    fast = np.full(n1, 0.004)
    assert judge([fast], 99.0, 0.1, RULE).decision is SloDecision.MET
    assert judge([fast[:-1]], 99.0, 0.1, RULE).decision is SloDecision.UNDECIDED  # one request short


def test_many_exceedances_violate_and_the_evidence_carries_the_counts_and_bounds() -> None:
    lat = np.where(np.arange(400) % 10 == 0, 0.150, 0.004)  # 10 % over the bound
    ev = judge([lat], 99.0, 0.1, RULE)
    assert ev.decision is SloDecision.VIOLATED and ev.n == 400 and ev.exceed == 40
    assert ev.p_violated <= RULE.delta_per_look < ev.p_met
    assert ev.lat_lo_s == pytest.approx(0.150)  # the p99's lower bound is itself over the bound
    assert ev.confidence == 0.95 and ev.looks == 1


def test_looks_pool_their_counts() -> None:
    a = np.full(300, 0.004)
    b = np.full(300, 0.004)
    b[7] = 0.2
    ev = judge([a, b], 99.0, 0.1, RULE)
    assert (ev.n, ev.exceed, ev.looks) == (600, 1, 2)
    with pytest.raises(ValueError, match="max_looks"):
        judge([a, a, a, a], 99.0, 0.1, RULE)
    with pytest.raises(ValueError, match="at least one look"):
        judge([], 99.0, 0.1, RULE)


def test_design_effect_sees_a_queue_but_not_independent_draws_or_ties() -> None:
    rng = np.random.default_rng(4)
    iid = rng.lognormal(-4, 0.8, 2000)  # p99 ~ 117 ms: a few over 100 ms and many over 25 ms, independent
    ties = np.where(rng.random(2000) < 0.02, 0.150, 0.004)  # two values: ties must not look like a trend
    queue = mm1_latencies(rng, 450.0, 500.0, 2000)  # 90 % utilisation: latencies come in long waves
    assert design_effect(iid, 0.1) < 1.3
    assert design_effect(ties, 0.1) < 1.3
    assert design_effect(queue, 0.1) > 5


def test_a_queue_clustering_over_a_quarter_of_the_bound_counts_less_before_it_exceeds() -> None:
    # 90 % utilisation starting empty: waves over 50 ms (a quarter of 200 ms), none over 200 ms
    queue = mm1_latencies(np.random.default_rng(6), 450.0, 500.0, 2000)
    assert CLUSTER_FRACTION == 0.25
    assert (queue > 0.2).sum() == 0 and (queue > 0.05).sum() > 20
    assert design_effect(queue, 0.2) > 5
    ev = judge([queue], 99.0, 0.2, RULE)  # no exceedance, yet the queue counts less
    assert ev.exceed == 0 and ev.n_effective < ev.n / 5


def test_drift_of_the_bulk_far_below_the_bound_is_not_penalised() -> None:
    # a busy host: the median drifts 11 -> 17 ms over the look (bound 100 ms), draws otherwise
    # independent and none near the bound. The old rule (ranks' design effect) saw the drift.
    rng = np.random.default_rng(6)
    n = 816
    lat = np.linspace(0.011, 0.017, n) * rng.lognormal(0.0, 0.15, n)
    assert lat.max() < 0.1 and (lat > 0.025).sum() < 10
    rank_deff = n / effective_sample_size(rankdata(lat))
    assert rank_deff > 3  # what the ranks would have charged
    assert design_effect(lat, 0.1) < 1.3
    ev = judge([lat], 99.0, 0.1, RULE)
    assert ev.n_effective > 0.75 * n and ev.decision is SloDecision.MET


def test_a_quiet_look_does_not_dilute_a_burst_in_an_earlier_look() -> None:
    # 12 exceedances in one burst in look 1, then two quiet looks: 0.74 % over the bound,
    # all in one cluster. Pooling per-look effective counts would weigh the quiet looks
    # fully (deff 1) and the burst at ~1/12: "met". The design effect of the whole series
    # keeps the ratio h / n and sees the burst: not met.
    n1 = RULE.first_look(99.0)
    burst = np.full(n1, 0.004)
    burst[100:112] = 0.150
    looks = [burst, np.full(n1, 0.004), np.full(2 * n1, 0.004)]
    ev = judge(looks, 99.0, 0.1, RULE)
    assert (ev.n, ev.exceed) == (4 * n1, 12)
    assert ev.exceed_effective / ev.n_effective == pytest.approx(12 / (4 * n1))
    assert ev.n_effective < ev.n / 5 and ev.decision is not SloDecision.MET
    per_look = sum(x.size / design_effect(x, 0.1) for x in looks)
    assert per_look > 0.9 * 3 * n1  # what the per-look pooling counted


def test_the_cluster_fraction_can_be_overridden_and_is_checked() -> None:
    lat = np.where(np.arange(816) % 50 < 10, 0.060, 0.004)  # waves over half the bound, none over it
    assert design_effect(lat, 0.1, cluster_fraction=1.0) == 1.0  # the exceedance series alone: constant
    assert design_effect(lat, 0.1, cluster_fraction=0.5) > 3
    with pytest.raises(ValueError, match="cluster_fraction"):
        design_effect(lat, 0.1, cluster_fraction=0.0)


@pytest.mark.parametrize("look_count", [1, 3])
def test_met_is_wrong_at_most_delta_per_look_at_the_bound(look_count: int) -> None:
    # a server whose true exceedance rate is exactly 1 %: "met" for p99 is false every time
    rng = np.random.default_rng(11)
    n1 = RULE.first_look(99.0)
    trials = 1500
    wrong = 0
    for _ in range(trials):
        looks = [np.where(rng.random(RULE.look_size(k, n1)) < 0.01, 0.2, 0.004) for k in range(1, look_count + 1)]
        wrong += judge(looks, 99.0, 0.1, RULE).decision is SloDecision.MET
    # binomial test's size is <= delta_look (discreteness makes it smaller); 3 sd of slack for the draw
    limit = RULE.delta_per_look
    assert wrong / trials <= limit + 3 * math.sqrt(limit * (1 - limit) / trials)


def test_rule_rejects_nonsense() -> None:
    for bad in (dict(confidence=0.4), dict(confidence=1.0), dict(max_looks=0)):
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
