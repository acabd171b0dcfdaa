"""Pacing is a pure function: the schedule decides every open-loop latency."""

from __future__ import annotations

import numpy as np
import pytest

from loadgen.pacing import pace, schedule
from loadgen.throttle import make_throttle, throttle_params


def test_uniform_schedule_is_evenly_spaced_from_zero() -> None:
    offsets = schedule(5, 50.0, "uniform")
    np.testing.assert_allclose(offsets, [0.0, 0.02, 0.04, 0.06, 0.08])


def test_poisson_schedule_is_seeded_and_has_the_right_rate() -> None:
    a = schedule(20_000, 100.0, "poisson", seed=7)
    b = schedule(20_000, 100.0, "poisson", seed=7)
    c = schedule(20_000, 100.0, "poisson", seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a[0] == 0.0 and np.all(np.diff(a) >= 0)
    gaps = np.diff(a)
    # exponential gaps: mean 1/rate, coefficient of variation 1 (both within ~3 %, n = 20k)
    assert gaps.mean() == pytest.approx(0.01, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.03)


def test_schedule_accepts_a_seed_sequence_and_edge_counts() -> None:
    seeded = schedule(3, 10.0, "poisson", seed=[0, 1, 2])
    np.testing.assert_array_equal(seeded, schedule(3, 10.0, "poisson", seed=[0, 1, 2]))
    assert schedule(0, 10.0, "poisson").size == 0
    assert schedule(1, 10.0, "poisson").tolist() == [0.0]


@pytest.mark.parametrize(
    "args", [(-1, 10.0, "uniform"), (3, 0.0, "uniform"), (3, float("inf"), "uniform"), (3, 1.0, "burst")]
)
def test_schedule_rejects_bad_input(args: tuple) -> None:
    with pytest.raises(ValueError):
        schedule(*args)


def test_pace_waits_until_due_never_skips_and_stops_at_the_end() -> None:
    offsets = schedule(3, 10.0, "uniform")  # 0.0, 0.1, 0.2
    assert pace(offsets, 0.0, 0) == (0.0, False)
    wait, stop = pace(offsets, 0.03, 1)
    assert wait == pytest.approx(0.07) and not stop
    assert pace(offsets, 0.5, 2) == (0.0, False)  # overdue: send now, late, not skipped
    assert pace(offsets, 0.5, 3) == (0.0, True)
    with pytest.raises(ValueError):
        pace(offsets, 0.0, -1)


def test_throttle_parameters_average_the_cap_exactly() -> None:
    for max_rps in (0.5, 1.0, 2.5, 50.0, 123.4):
        limit, period = throttle_params(max_rps)
        assert limit >= 1 and limit / period == pytest.approx(max_rps)
    assert make_throttle(0.0) is None
    with pytest.raises(ValueError):
        throttle_params(-1.0)


@pytest.mark.parametrize("arrival", ["uniform", "poisson"])
@pytest.mark.parametrize("n", [0, 1, 2, 5, 1000, 70_001])
def test_the_lazy_constant_rate_schedule_is_todays_schedule_exactly(arrival: str, n: int) -> None:
    from loadgen.pacing import ConstantRateSchedule

    seed = [0, 1, 3, n]
    whole = schedule(n, 37.5, arrival, seed=seed)
    lazy = ConstantRateSchedule(n, 37.5, arrival, seed=seed)
    assert len(lazy) == n and lazy.duration_s == n / 37.5
    for size in (1, 7, 4096, 1 << 20):
        chunks = list(lazy.chunks(size))
        assert all(len(c) == size for c in chunks[:-1])
        got = np.concatenate([np.zeros(0), *chunks])
        np.testing.assert_array_equal(got, whole)  # bit for bit: the same draws, summed in the same order


def test_todays_poisson_offsets_are_unchanged_for_an_existing_seed() -> None:
    from loadgen.pacing import ConstantRateSchedule

    # schedule(5, 10.0, "poisson", seed=[0, 1, 1, 5]) as main computed it before the lazy form existed
    # (the sweep's seed of trial 1, N = 5); both forms must keep giving exactly these offsets
    pinned = [0.0, 0.015688251098953315, 0.053900940341794254, 0.1393299239470376, 0.23153966291620431]
    assert schedule(5, 10.0, "poisson", seed=[0, 1, 1, 5]).tolist() == pinned
    lazy = ConstantRateSchedule(5, 10.0, "poisson", seed=[0, 1, 1, 5])
    assert np.concatenate(list(lazy.chunks(2))).tolist() == pinned
