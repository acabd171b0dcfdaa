"""The closed-loop concurrency sweep (loadgen/concurrency_search.py) and the capacity comparison
(bench/compare/capacity.py), both pure, against models and hand-made frames."""

from __future__ import annotations

import asyncio
import math

import pandas as pd
import pytest

from bench.compare.capacity import compare_capacity_frames
from loadgen.capacity import Objective
from loadgen.concurrency_search import LevelOutcome, LevelSpec, concurrency_levels, concurrency_sweep

P99 = Objective(99.0, 0.100)


def server(workers: int, service_s: float, *, errors_from: int = 0):
    """A closed loop against ``workers`` parallel servers of fixed service time: throughput
    grows with C until C = workers, then stays; latency = C / throughput (Little's law)."""
    calls: list[LevelSpec] = []

    async def measure(spec: LevelSpec) -> LevelOutcome:
        calls.append(spec)
        tput = min(spec.concurrency, workers) / service_s
        latency = spec.concurrency / tput
        errors = 1 if errors_from and spec.concurrency >= errors_from else 0
        return LevelOutcome(
            concurrency=spec.concurrency,
            n_requests=spec.n_requests,
            throughput_rps=tput,
            latency_s=latency * 1.5,
            p50_s=latency,
            errors=errors,
            duration_s=spec.n_requests / tput,
        )

    return measure, calls


def sweep(measure, objective: Objective = P99, **kw):
    kw = dict(max_concurrency=64, min_requests=100, min_seconds=1.0, max_seconds=1e9) | kw
    return asyncio.run(concurrency_sweep(measure, objective, **kw))


def test_levels_double_up_to_the_maximum() -> None:
    assert concurrency_levels(1) == [1]
    assert concurrency_levels(8) == [1, 2, 4, 8]
    assert concurrency_levels(12) == [1, 2, 4, 8, 12]
    with pytest.raises(ValueError):
        concurrency_levels(0)


def test_stops_when_throughput_stops_growing() -> None:
    measure, calls = server(workers=4, service_s=0.010)
    result = sweep(measure)
    assert [c.concurrency for c in calls] == [1, 2, 4, 8]
    assert "grew < 5%" in result.stop_reason
    assert result.best.spec.concurrency == 4 and result.best.outcome.throughput_rps == pytest.approx(400.0)


def test_stops_when_the_objective_is_crossed() -> None:
    measure, calls = server(workers=64, service_s=0.040)  # p99 modelled as 1.5 x 40 ms = 60 ms
    result = sweep(measure, Objective(99.0, 0.050))
    assert [c.concurrency for c in calls] == [1]
    assert "p99 60 ms > 50 ms" in result.stop_reason and result.best is None
    assert not result.levels[0].met


def test_stops_on_errors() -> None:
    measure, calls = server(workers=64, service_s=0.001, errors_from=4)
    result = sweep(measure)
    assert [c.concurrency for c in calls] == [1, 2, 4]
    assert "failed at concurrency 4" in result.stop_reason
    assert result.best.spec.concurrency == 2


def test_reaches_max_concurrency() -> None:
    measure, calls = server(workers=64, service_s=0.001)
    result = sweep(measure, max_concurrency=8)
    assert [c.concurrency for c in calls] == [1, 2, 4, 8] and result.stop_reason == "reached max_concurrency 8"


def test_level_sizes_follow_min_requests_min_seconds_and_the_time_cap() -> None:
    measure, calls = server(workers=64, service_s=0.010)
    result = sweep(measure, min_requests=50, min_seconds=2.0, max_seconds=5.0)
    # C=1: 50 requests (no estimate yet); then >= 2 s at the last level's throughput
    assert calls[0].n_requests == 50 and calls[1].n_requests == math.ceil(100.0 * 2.0)
    assert result.seconds <= 5.0 + calls[0].n_requests / 100.0
    assert "time cap" in result.stop_reason and result.levels[-1].stop == result.stop_reason


# -- comparing capacities -------------------------------------------------------------------


def frame(
    target: str,
    capacities: list[float],
    *,
    objective: str = "p99 <= 100 ms",
    verdict: str = "VALID",
    client_bound: bool = False,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "target": target,
            "objective": objective,
            "capacity_rps": capacities,
            "verdict": verdict,
            "client_bound": client_bound,
        }
    )


@pytest.mark.parametrize(
    ("a", "b", "verdict"),
    [
        ([100, 104, 98], [150, 148, 155], "higher"),
        ([100, 104, 98], [60, 62, 59], "lower"),
        ([100, 120, 90], [105, 95, 118], "within spread"),
        ([100, 101, 100.5], [102.5, 103, 102.6], "below threshold"),
        ([100], [60], "single search"),
    ],
)
def test_capacity_verdicts_follow_the_spread(a: list[float], b: list[float], verdict: str) -> None:
    (c,) = compare_capacity_frames(frame("t", a), frame("t", b), threshold_pct=5.0)
    assert c.verdict == verdict
    assert c.ratio == pytest.approx(pd.Series(b).median() / pd.Series(a).median())
    assert c.ratio_low == pytest.approx(min(b) / max(a)) and c.ratio_high == pytest.approx(max(b) / min(a))
    assert c.is_regression is (verdict == "lower")


def test_capacity_comparison_notes_and_refusals() -> None:
    (c,) = compare_capacity_frames(
        frame("t", [100, 101], verdict="INVALID", client_bound=True), frame("t", [100, 99], objective="p99 <= 50 ms")
    )
    assert c.verdict == "objectives differ" and "A possibly client-bound" in c.notes and "INVALID" in c.notes
    (c,) = compare_capacity_frames(frame("t", [math.nan]), frame("t", [100.0]))
    assert c.verdict == "no capacity" and math.isnan(c.ratio)
    assert compare_capacity_frames(frame("a", [1.0]), frame("b", [1.0])) == []
