"""The pure capacity search (loadgen/capacity.py) against deterministic models of a server.

Why models, not servers: the search's decisions (which rate next, when to stop, VALID or
INVALID) must be checked exactly; a fake probe computes each probe's outcome from a
formula (a hard knee, an M/M/1 queue, a server that drifts slower), so the true capacity
is known and every assertion is about the logic, never about timing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math

import numpy as np
import pytest

from loadgen.capacity import (
    CLIENT_BOUND_FRACTION,
    Objective,
    ProbeOutcome,
    ProbeSpec,
    SearchSettings,
    find_capacity,
    parse_objective,
    violation,
)
from loadgen.slo_evidence import CLUSTER_FRACTION

P99_100MS = Objective(99.0, 0.100)


def outcome(
    spec: ProbeSpec,
    latency_s: float,
    *,
    errors: int = 0,
    saturated: bool = False,
    fatal: bool = False,
    duration_s: float | None = None,
) -> ProbeOutcome:
    """Every successful request takes ``latency_s``: a rate is met (no exceedance) or
    violated (all exceed) deterministically, so these tests are about the search's logic."""
    achieved = spec.rate * (0.5 if saturated else 1.0)
    ok = max(spec.n_requests - errors, 0)
    latencies = np.full(ok, latency_s) if not math.isnan(latency_s) else np.empty(0)
    return ProbeOutcome(
        rate=spec.rate,
        n_requests=spec.n_requests,
        latency_s=latency_s,
        p50_s=latency_s / 3,
        achieved_rps=achieved,
        errors=errors,
        saturated=saturated,
        duration_s=spec.planned_s if duration_s is None else duration_s,
        fatal=fatal,
        error_classes="timeout:1" if errors else "",
        latencies_s=latencies,
    )


def knee(capacity: float):
    """Latency 5 ms up to ``capacity`` req/s, then 1 s (a queue that never drains)."""
    calls: list[ProbeSpec] = []

    async def probe(spec: ProbeSpec) -> ProbeOutcome:
        calls.append(spec)
        return outcome(spec, 0.005 if spec.rate <= capacity else 1.0)

    return probe, calls


def mm1(mu: float):
    """M/M/1 with service rate ``mu``: p99 of the sojourn time is ln(100) / (mu - rate);
    at or above mu the queue grows without bound (saturated)."""

    async def probe(spec: ProbeSpec) -> ProbeOutcome:
        if spec.rate >= mu:
            return outcome(spec, 5.0, saturated=True)
        return outcome(spec, math.log(100) / (mu - spec.rate))

    return probe


def search(probe, objective: Objective = P99_100MS, **settings) -> object:
    settings.setdefault("start_rps", 10.0)
    settings.setdefault("max_seconds", 1e9)
    settings.setdefault("max_requests", 10**9)
    settings.setdefault("max_probes", 50)
    return asyncio.run(find_capacity(probe, objective, SearchSettings(**settings)))


@pytest.mark.parametrize("capacity", [13.0, 100.0, 157.0, 1234.5])
@pytest.mark.parametrize("precision", [0.05, 0.1, 0.25])
def test_a_hard_knee_is_found_within_the_precision(capacity: float, precision: float) -> None:
    probe, calls = knee(capacity)
    result = search(probe, precision=precision)
    assert result.capacity_rps <= capacity < result.upper_rps
    assert result.upper_rps / result.capacity_rps <= 1 + precision
    assert result.precision_reached and result.verdict == "VALID"
    assert calls[-1].phase == "confirm" and calls[-1].rate == result.capacity_rps
    assert [c.index for c in calls] == list(range(1, len(calls) + 1))


def test_constant_latencies_near_the_bound_are_one_burst_so_the_capacity_is_where_they_stay_low() -> None:
    # every request takes ln(100) / (mu - rate): no send times, so requests over the cluster
    # level (0.3 x bound) in a row are one episode -- a whole probe of them is one burst,
    # never "met"; the capacity is the rate whose latency stays at or under 30 ms. Between
    # that rate and the one whose latency passes the bound, every rate is undecided (no
    # request over the bound, too few episodes to show "met"): the bracket's upper end is
    # the first rate *violated*, and the search says which rates it could not settle.
    mu = 500.0
    low = mu - math.log(100) / (CLUSTER_FRACTION * 0.100)  # ~346.5 req/s
    violated_from = mu - math.log(100) / 0.100  # ~453.9 req/s
    result = search(mm1(mu), precision=0.02, start_rps=20.0)
    assert result.capacity_rps <= low and result.capacity_rps > low / 1.02
    assert violated_from < result.upper_rps <= violated_from * 1.02
    assert result.upper_decision == "violated" and not result.precision_reached
    assert result.stop_reason.startswith("undecided at ")
    assert result.verdict == "VALID"
    at = result.at_capacity.outcome
    assert at.latency_s <= CLUSTER_FRACTION * 0.100 and at.rate == result.capacity_rps
    inside = [r for r in result.probes if r.final and result.capacity_rps < r.spec.rate < result.upper_rps]
    assert inside and all(r.decision == "undecided" for r in inside)
    # each look is one run of slow requests: one episode per look
    assert all(r.evidence.cluster_size == pytest.approx(r.evidence.n / r.evidence.looks) for r in inside)


def test_ramp_is_geometric_then_bisection_is_geometric() -> None:
    probe, calls = knee(100.0)
    search(probe, start_rps=10.0, growth=2.0, precision=0.1)
    ramp = [c.rate for c in calls if c.phase == "ramp"]
    assert ramp == [10.0, 20.0, 40.0, 80.0, 160.0]
    first_bisect = next(c for c in calls if c.phase == "bisect")
    assert first_bisect.rate == pytest.approx(math.sqrt(80.0 * 160.0))


def test_a_start_above_capacity_ramps_down() -> None:
    probe, calls = knee(30.0)
    result = search(probe, start_rps=200.0)
    ramp = [c.rate for c in calls if c.phase == "ramp"]
    assert ramp[:4] == [200.0, 100.0, 50.0, 25.0]
    assert result.capacity_rps <= 30.0 < result.upper_rps and result.verdict == "VALID"


def test_confirmation_that_fails_is_invalid() -> None:
    # the server gets slower with every probe (a noisy neighbour arrives): the rate found
    # by the search no longer holds when it is offered again
    async def drifting(spec: ProbeSpec) -> ProbeOutcome:
        capacity = 200.0 - 4.0 * spec.index
        return outcome(spec, 0.005 if spec.rate <= capacity else 1.0)

    result = search(drifting, precision=0.05)
    assert result.verdict == "INVALID"
    assert not result.confirmation.met and "p99" in result.confirmation.violation
    assert not math.isnan(result.capacity_rps)  # the number is reported, with its verdict


def test_no_rate_meets_the_objective() -> None:
    async def slow(spec: ProbeSpec) -> ProbeOutcome:
        return outcome(spec, 0.5)

    result = search(slow, max_probes=6)
    assert result.verdict == "NOT_FOUND" and math.isnan(result.capacity_rps)
    assert len(result.probes) <= 6 and all(not p.met for p in result.probes)
    assert result.confirmation is None


@pytest.mark.parametrize("max_probes", [2, 3, 5, 8])
def test_the_probe_cap_is_respected_and_keeps_room_for_the_confirmation(max_probes: int) -> None:
    probe, calls = knee(1e9)  # never violates: only the caps stop the ramp
    result = search(probe, max_probes=max_probes)
    assert len(calls) == len(result.probes) <= max_probes
    assert result.confirmation is not None and result.verdict == "VALID"
    assert "probe cap" in result.stop_reason


@pytest.mark.parametrize("max_seconds", [25.0, 30.0, 40.0])
def test_the_time_cap_is_respected(max_seconds: float) -> None:
    probe, calls = knee(1e9)
    result = search(probe, start_rps=100.0, max_seconds=max_seconds, min_seconds=2.0, min_requests=50)
    assert result.seconds <= max_seconds
    assert "time cap" in result.stop_reason
    assert result.confirmation is not None  # the reserve kept room for it
    assert result.verdict == "VALID"


@pytest.mark.parametrize("max_requests", [3_000, 6_000, 12_000])
def test_the_request_budget_is_respected_and_keeps_room_for_the_confirmation(max_requests: int) -> None:
    probe, calls = knee(1e9)  # never violates: only the caps stop the ramp
    result = search(probe, start_rps=100.0, max_requests=max_requests)
    assert sum(c.n_requests for c in calls) <= max_requests
    assert "request budget" in result.stop_reason
    assert result.confirmation is not None and result.verdict == "VALID"


def knee_with_overhead(capacity: float):
    """A knee whose probes last their planned length plus 0.3 s (warm-up and drain): no
    exceedance up to ``capacity``, 1.5 % of requests over the bound up to 1.25 x (undecided
    until the third look, as the Flask stand-ins' 23 req/s probe: 41 of 1632), all above."""

    async def probe(spec: ProbeSpec) -> ProbeOutcome:
        base = outcome(spec, 0.005 if spec.rate <= 1.25 * capacity else 1.0, duration_s=spec.planned_s + 0.3)
        if not capacity < spec.rate <= 1.25 * capacity:
            return base
        lat = np.full(spec.n_requests, 0.005)
        lat[:: round(1 / 0.015)] = 0.150
        return dataclasses.replace(base, latencies_s=lat)

    return probe


def test_a_slow_target_is_bracketed_and_confirmed_under_the_default_caps() -> None:
    # a Flask stand-in's scale: capacity 20 req/s, the search starting at 33 req/s. Each
    # rate needs >= 408 requests (p99 at 95 %), 20-35 s here: the old 90 s cap ended such
    # searches before a bracket; the request budget and the 360 s safety cap do not
    old = search(knee_with_overhead(20.0), start_rps=33.0, max_seconds=90.0, max_requests=10**9)
    assert not old.precision_reached and "time cap" in old.stop_reason
    defaults = SearchSettings(start_rps=33.0)
    result = asyncio.run(find_capacity(knee_with_overhead(20.0), P99_100MS, defaults))
    assert result.verdict == "VALID" and result.precision_reached
    assert result.capacity_rps <= 20.0 < result.upper_rps
    assert result.seconds <= defaults.max_seconds


def test_a_fast_target_is_found_in_well_under_a_minute_under_the_default_caps() -> None:
    defaults = SearchSettings(start_rps=123.0)  # a KServe stand-in's scale: capacity 200 req/s
    result = asyncio.run(find_capacity(knee_with_overhead(200.0), P99_100MS, defaults))
    assert result.verdict == "VALID" and result.precision_reached
    assert sum(p.spec.n_requests for p in result.probes) <= defaults.max_requests
    assert result.seconds < 60.0


def test_a_slow_low_rate_probe_is_not_started_beyond_the_time_cap() -> None:
    # 200 requests at 1 req/s would take 200 s: the search refuses it rather than overrun
    probe, calls = knee(0.5)
    result = search(probe, start_rps=1.0, min_requests=200, max_seconds=60.0)
    assert calls == [] and result.verdict == "NOT_FOUND" and "time cap" in result.stop_reason


def test_errors_stop_the_ramp_even_when_latency_is_fine() -> None:
    async def fails_above_60(spec: ProbeSpec) -> ProbeOutcome:
        return outcome(spec, 0.005, errors=3 if spec.rate > 60 else 0)

    result = search(fails_above_60)
    assert result.capacity_rps <= 60 < result.upper_rps
    bad = [p for p in result.probes if not p.met]
    assert bad and all("requests failed" in p.violation for p in bad)
    assert all(p.spec.rate > 60 for p in bad)


def test_saturation_is_a_violation_even_under_the_bound() -> None:
    async def saturates_above_90(spec: ProbeSpec) -> ProbeOutcome:
        return outcome(spec, 0.010, saturated=spec.rate > 90)

    result = search(saturates_above_90)
    assert result.capacity_rps <= 90 < result.upper_rps
    assert any(p.violation.startswith("saturated") for p in result.probes)


def test_a_target_that_stops_answering_ends_the_search_at_once() -> None:
    calls: list[ProbeSpec] = []

    async def dies(spec: ProbeSpec) -> ProbeOutcome:
        calls.append(spec)
        dead = spec.rate >= 40
        return outcome(spec, math.nan if dead else 0.005, errors=spec.n_requests if dead else 0, fatal=dead)

    result = search(dies)
    assert calls[-1].rate == 40.0 and len(calls) == 3  # 10, 20, 40: nothing after the fatal probe
    assert result.fatal and result.verdict == "UNCONFIRMED" and "stopped answering" in result.stop_reason
    assert result.capacity_rps == 20.0


def test_the_offered_rate_never_exceeds_the_cap_and_a_capped_search_says_so() -> None:
    probe, calls = knee(1e9)
    result = search(probe, max_rate_rps=150.0, max_rate_reason="the [loadgen] max_rps politeness cap")
    assert max(c.rate for c in calls) == 150.0
    assert result.capacity_rps == 150.0 and math.isnan(result.upper_rps)
    assert "max_rps" in result.stop_reason and not result.precision_reached


@pytest.mark.parametrize(("ceiling", "bound"), [(150.0, True), (1000.0, False), (None, False)])
def test_client_bound_flag(ceiling: float | None, bound: bool) -> None:
    probe, _ = knee(100.0)
    result = search(probe, client_ceiling_rps=ceiling)
    assert result.client_bound is bound
    if ceiling:
        assert (result.capacity_rps >= CLIENT_BOUND_FRACTION * ceiling) is bound


def test_a_capacity_at_the_client_ceiling_is_flagged_not_silently_reported() -> None:
    probe, calls = knee(1e9)
    result = search(
        probe, max_rate_rps=800.0, max_rate_reason="the client's calibrated ceiling", client_ceiling_rps=800.0
    )
    assert result.client_bound and result.capacity_rps == 800.0
    assert "client's calibrated ceiling" in result.stop_reason


def noisy(mu: float):
    """M/M/1 with multiplicative noise drawn from the probe's own seed."""

    async def probe(spec: ProbeSpec) -> ProbeOutcome:
        noise = np.random.default_rng(spec.seed).lognormal(0.0, 0.3)
        if spec.rate >= mu:
            return outcome(spec, 5.0, saturated=True)
        return outcome(spec, noise * math.log(100) / (mu - spec.rate))

    return probe


def test_seeded_searches_repeat_exactly_and_seeds_differ_per_probe() -> None:
    a = search(noisy(300.0), seed=7)
    b = search(noisy(300.0), seed=7)
    assert [(p.spec.rate, p.spec.seed, p.outcome.latency_s) for p in a.probes] == [
        (p.spec.rate, p.spec.seed, p.outcome.latency_s) for p in b.probes
    ]
    assert a.capacity_rps == b.capacity_rps and a.verdict == b.verdict
    assert len({p.spec.seed for p in a.probes}) == len(a.probes)
    c = search(noisy(300.0), seed=8)
    assert [p.spec.seed for p in c.probes] != [p.spec.seed for p in a.probes]


def test_probe_sizes_follow_min_requests_and_min_seconds() -> None:
    s = SearchSettings(start_rps=10.0, min_requests=200, min_seconds=2.0)
    assert s.requests_for(10.0) == 200 and s.planned_seconds(10.0) == pytest.approx(20.0)
    assert s.requests_for(500.0) == 1000 and s.planned_seconds(500.0) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("confidence", "looks", "first"), [(0.95, 3, 408), (0.99, 1, 459), (0.95, 1, 299), (0.90, 3, 339)]
)
def test_the_first_look_follows_the_percentile_and_the_confidence(confidence: float, looks: int, first: int) -> None:
    # the fewest requests with no exceedance that show p99 met at (1 - confidence) / looks:
    # 0.99**n <= delta_look, e.g. 0.99**459 < 0.01 (MLPerf's 459 at 99 %)
    s = SearchSettings(start_rps=10.0, min_requests=1, min_seconds=0.01, confidence=confidence, max_looks=looks)
    assert s.requests_for(10.0, 99.0) == first
    assert 0.99**first <= (1 - confidence) / looks < 0.99 ** (first - 1)
    # later looks double the cumulative count: n1, n1, 2 n1
    assert [s.requests_for(10.0, 99.0, k) for k in (1, 2, 3)] == [first, first, 2 * first]


@pytest.mark.parametrize(
    ("text", "pct", "bound"),
    [
        ("p99=100ms", 99.0, 0.1),
        ("p99<=0.25s", 99.0, 0.25),
        ("p99.9:250ms", 99.9, 0.25),
        ("p50=800us", 50.0, 0.0008),
        (" P95 = 20 MS ", 95.0, 0.02),
    ],
)
def test_parse_objective(text: str, pct: float, bound: float) -> None:
    objective = parse_objective(text)
    assert objective.percentile == pct and objective.bound_s == pytest.approx(bound)


@pytest.mark.parametrize("text", ["p99", "99=100ms", "p99=100", "p100=1s", "p0=1s", "p99=0ms", "p99=fast", ""])
def test_parse_objective_rejects_malformed_or_impossible_objectives(text: str) -> None:
    with pytest.raises(ValueError, match="objective"):
        parse_objective(text)


def test_objective_describe() -> None:
    assert Objective(99.0, 0.1).describe() == "p99 <= 100 ms"
    assert Objective(99.9, 12.0).describe() == "p99.9 <= 12 s"


def test_violation_texts() -> None:
    spec = ProbeSpec(index=1, phase="ramp", rate=100.0, n_requests=500, planned_s=5.0, seed=0)
    assert violation(outcome(spec, 0.02), P99_100MS) == ""
    # 500 requests of 50 ms in a row: one burst over the cluster level, not evidence of "met"
    assert violation(outcome(spec, 0.05), P99_100MS).startswith("undecided: 0 of 500 over 100 ms, bursts of 500")
    assert violation(outcome(spec, 0.15), P99_100MS).startswith("p99 over 100 ms: 500 of 500 over 100 ms")
    short = dataclasses.replace(spec, n_requests=100)
    assert violation(outcome(short, 0.02), P99_100MS).startswith("undecided: 0 of 100")  # too few to say met
    assert violation(outcome(spec, math.nan, errors=500), P99_100MS) == "no request succeeded"
    assert violation(outcome(spec, 0.05, saturated=True), P99_100MS).startswith("saturated")


@pytest.mark.parametrize(
    "bad",
    [
        dict(start_rps=0.0),
        dict(growth=1.0),
        dict(precision=0.0),
        dict(precision=1.0),
        dict(max_probes=1),
        dict(max_seconds=0.0),
        dict(max_requests=1),
        dict(min_requests=0),
        dict(confidence=0.5),
        dict(confidence=1.0),
        dict(max_looks=0),
        dict(min_met_seconds=-1.0),
    ],
)
def test_settings_reject_nonsense(bad: dict) -> None:
    args = dict(start_rps=10.0) | bad
    with pytest.raises(ValueError):
        SearchSettings(**args)


def mixture(p_slow: float, *, fast_s: float = 0.004, slow_s: float = 0.150):
    """Latency independent of load: ``fast_s``, or ``slow_s`` with probability ``p_slow``
    (drawn from the probe's own seed). True p99 is ``slow_s`` when p_slow > 1 %."""
    calls: list[ProbeSpec] = []

    async def probe(spec: ProbeSpec) -> ProbeOutcome:
        calls.append(spec)
        rng = np.random.default_rng(spec.seed)
        lat = np.where(rng.random(spec.n_requests) < p_slow, slow_s, fast_s)
        o = outcome(spec, float(np.percentile(lat, 99)))
        return dataclasses.replace(o, latencies_s=lat)

    return probe, calls


@pytest.mark.parametrize("seed", range(8))
def test_a_load_independent_violating_server_is_never_valid(seed: int) -> None:
    # the server: 4 ms, or 150 ms with 2 %: its p99 is 150 ms at every rate
    probe, calls = mixture(0.02)
    result = search(probe, seed=seed, max_seconds=200.0, max_rate_rps=400.0)
    assert result.verdict == "NOT_FOUND" and math.isnan(result.capacity_rps)
    assert not any(p.met for p in result.probes)
    assert all(p.decision in ("violated", "undecided") for p in result.probes)


def test_a_server_well_under_the_bound_is_valid_up_to_the_cap() -> None:
    probe, _ = mixture(0.001)
    result = search(probe, seed=3, max_rate_rps=160.0)
    assert result.verdict == "VALID" and result.capacity_rps == 160.0
    assert result.confirmation.evidence.confidence == 0.95


def test_an_undecided_rate_is_extended_with_doubling_looks_and_stays_undecided() -> None:
    # exactly 1 % over the bound: h/n sits on the boundary, no look can decide
    async def at_bound(spec: ProbeSpec) -> ProbeOutcome:
        lat = np.full(spec.n_requests, 0.004)
        lat[::100] = 0.150
        return dataclasses.replace(outcome(spec, 0.004), latencies_s=lat)

    records = []
    result = asyncio.run(
        find_capacity(
            at_bound, P99_100MS, SearchSettings(start_rps=100.0, max_seconds=1e9, max_probes=50), records.append
        )
    )
    first_rate = [r for r in records if r.spec.rate == 100.0]
    assert [r.spec.look for r in first_rate] == [1, 2, 3]
    n1 = first_rate[0].spec.n_requests
    assert [r.spec.n_requests for r in first_rate] == [n1, n1, 2 * n1]
    assert [r.final for r in first_rate] == [False, False, True]
    assert all(r.decision == "undecided" for r in first_rate)
    assert first_rate[-1].evidence.n == 4 * n1 and "after 3 looks" in first_rate[-1].violation
    assert result.verdict == "NOT_FOUND"  # undecided everywhere: nothing was met
    assert records == list(result.probes)  # on_record saw every look, in order


def test_a_confirmation_that_stays_undecided_is_unconfirmed_not_valid() -> None:
    async def turns_marginal(spec: ProbeSpec) -> ProbeOutcome:
        lat = np.full(spec.n_requests, 0.004)
        if spec.phase == "confirm":
            lat[::100] = 0.150
        return dataclasses.replace(outcome(spec, 0.004), latencies_s=lat)

    result = search(turns_marginal, max_rate_rps=80.0)
    assert result.verdict == "UNCONFIRMED" and "undecided" in result.stop_reason
    assert result.capacity_rps == 80.0 and not result.confirmation.met


def test_an_extension_that_does_not_fit_leaves_the_rate_undecided() -> None:
    async def at_bound(spec: ProbeSpec) -> ProbeOutcome:
        lat = np.full(spec.n_requests, 0.004)
        lat[::100] = 0.150
        return dataclasses.replace(outcome(spec, 0.004), latencies_s=lat)

    # look 1 (408 requests, 4.1 s) and the confirmation's full reserve (408 + 408 + 816
    # requests: 16.3 s) fit in 24 s; look 2 on top of them does not
    result = search(at_bound, start_rps=100.0, max_seconds=24.0)
    assert len(result.probes) == 1 and result.probes[0].decision == "undecided"
    assert "no room for look 2" in result.probes[0].violation and result.verdict == "NOT_FOUND"


def test_a_fast_rate_needs_the_floor_of_time_before_it_is_met() -> None:
    # 5 ms at every rate, with send times: the first look at 500 req/s spans 2 s of arrivals,
    # short of the 4 s floor, so "met" comes at the second look (cumulative 4 s)
    async def probe(spec: ProbeSpec) -> ProbeOutcome:
        base = outcome(spec, 0.005)
        return dataclasses.replace(base, sent_s=np.arange(spec.n_requests) / spec.rate)

    result = search(probe, start_rps=500.0, max_rate_rps=500.0, min_seconds=2.0)
    first = [r for r in result.probes if r.spec.rate == 500.0 and r.spec.phase == "ramp"]
    assert [r.spec.look for r in first] == [1, 2] and [r.decision for r in first] == ["undecided", "met"]
    assert first[0].evidence.short_of_time and "needs 4 s" in first[0].violation
    assert first[1].evidence.span_s >= 4.0 - 0.01


@pytest.mark.parametrize("max_requests", [4_000, 9_000])
def test_every_search_look_leaves_room_for_all_the_confirmations_looks(max_requests: int) -> None:
    # the search's looks stop while the confirmation's three looks (408 + 408 + 816 requests
    # at p99 / 95 %) still fit, so a confirmation near the knee is never cut short by the budget
    probe, calls = knee(1e9)
    result = search(probe, start_rps=100.0, max_requests=max_requests)
    searched = sum(c.n_requests for c in calls if c.phase != "confirm")
    assert searched + 408 + 408 + 816 <= max_requests
    assert "request budget" in result.stop_reason and result.verdict == "VALID"


def undecided_zone(met_up_to: float, undecided_up_to: float):
    """4 ms up to ``met_up_to`` req/s; above it, up to ``undecided_up_to``, exactly 1 % of
    requests take 150 ms (p99 at the bound: never met, never violated); all slow above."""

    async def probe(spec: ProbeSpec) -> ProbeOutcome:
        lat = np.full(spec.n_requests, 0.004)
        if spec.rate > undecided_up_to:
            lat[:] = 0.5
        elif spec.rate > met_up_to:
            lat[::100] = 0.150
        return dataclasses.replace(outcome(spec, 0.004), latencies_s=lat)

    return probe


def test_an_undecided_zone_does_not_close_the_bracket_whose_upper_end_is_violated() -> None:
    # 4 ms up to 100 req/s; from there to 150 req/s exactly 1 % of requests take 150 ms (p99
    # at the bound: never met, never violated); all slow above. The old driver stopped at
    # the first undecided rate; the bracket's upper end must be a rate *violated*.
    result = search(
        undecided_zone(100.0, 150.0), start_rps=40.0, max_requests=60_000, max_seconds=3600.0, max_probes=60
    )
    assert result.verdict == "VALID"
    assert 100.0 / 1.1 < result.capacity_rps <= 100.0
    assert 150.0 < result.upper_rps <= 150.0 * 1.1 and result.upper_decision == "violated"
    decisions = {r.spec.rate: r.decision for r in result.probes if r.final and r.spec.phase != "confirm"}
    assert all(d == "undecided" for rate, d in decisions.items() if 100.0 < rate <= 150.0)
    assert any(100.0 < rate <= 150.0 for rate in decisions)  # the ramp went through the zone
    assert result.stop_reason.startswith("undecided at ") and not result.precision_reached


def test_the_ramp_steps_down_by_half_the_factor_from_an_undecided_rate() -> None:
    # met up to 60 req/s, exactly 1 % slow (undecided) up to 120, all slow above: from an
    # undecided start the ramp goes down by sqrt(2), from a violated one by 2
    probe = undecided_zone(60.0, 120.0)

    def first_rates(start: float) -> list[float]:
        result = search(probe, start_rps=start, max_requests=60_000, max_seconds=3600.0, max_probes=60)
        ramp = [r.spec.rate for r in result.probes if r.final and r.spec.phase == "ramp"]
        return ramp[:3]

    assert first_rates(100.0) == pytest.approx([100.0, 100.0 / math.sqrt(2), 50.0])
    assert first_rates(200.0)[:2] == pytest.approx([200.0, 100.0])
