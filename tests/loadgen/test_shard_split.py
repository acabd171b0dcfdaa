"""Splitting one plan over K shards is pure: counts add up, seeds are independent, rates superpose.

The statistical checks use fixed seeds, so they are deterministic: each asserts a property
of the construction (uniform order statistics => Poisson given the count), not of a clock.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from loadgen.records import StepKey
from loadgen.shard import (
    SHARD_INDEX_ENV,
    ShardError,
    ShardSpec,
    check_shardable,
    parse_shard,
    parse_start_at,
    shard_offsets,
    split_evenly,
    step_share,
)
from loadgen.sweep import SweepPlan


def _plan(**kw) -> SweepPlan:
    values = {"n_requests": (8,), "modes": ("concurrent", "rate"), "rate_rps": 100.0}
    values.update(kw)
    return SweepPlan(**values)


# --- parsing ------------------------------------------------------------------------------


def test_parse_shard_explicit_and_from_the_indexed_job_variable() -> None:
    assert parse_shard("1/4", {}) == ShardSpec(1, 4)
    assert parse_shard(" 0/1 ", {}) == ShardSpec(0, 1)
    assert parse_shard("auto/3", {SHARD_INDEX_ENV: "2"}) == ShardSpec(2, 3)


@pytest.mark.parametrize(
    "text, env, words",
    [
        ("4/4", {}, "0 to 3"),
        ("-1/2", {}, "0 to 1"),
        ("1", {}, "I/N"),
        ("a/2", {}, "whole number"),
        ("1/x", {}, "whole number of shards"),
        ("0/0", {}, ">= 1"),
        ("auto/2", {}, SHARD_INDEX_ENV),
        ("auto/2", {SHARD_INDEX_ENV: "5"}, "0 to 1"),
        ("auto/2", {SHARD_INDEX_ENV: "x"}, f"${SHARD_INDEX_ENV}='x'"),
    ],
)
def test_parse_shard_refuses_with_a_reason(text: str, env: dict, words: str) -> None:
    with pytest.raises(ShardError, match=None) as info:
        parse_shard(text, env)
    assert words in str(info.value)


def test_parse_start_at_takes_unix_seconds_or_zoned_iso() -> None:
    assert parse_start_at("1767225600.25") == 1767225600.25
    assert parse_start_at("2026-01-01T00:00:00Z") == 1767225600.0
    assert parse_start_at("2026-01-01T01:00:00+01:00") == 1767225600.0
    for bad, words in (("2026-01-01T00:00:00", "zone"), ("soon", "Unix seconds"), ("nan", "finite"), ("-5", "> 0")):
        with pytest.raises(ShardError) as info:
            parse_start_at(bad)
        assert words in str(info.value)


# --- counts -------------------------------------------------------------------------------


@pytest.mark.parametrize("count", range(1, 9))
def test_split_evenly_covers_the_whole_once_with_the_extra_on_the_first_shards(count: int) -> None:
    for total in range(0, 60):
        shares = split_evenly(total, count)
        sizes = [size for _, size in shares]
        assert sum(sizes) == total
        assert max(sizes) - min(sizes) <= 1
        assert sizes == sorted(sizes, reverse=True)  # the first total % count shards have one more
        covered = [i for first, size in shares for i in range(first, first + size)]
        assert covered == list(range(total))


@pytest.mark.parametrize("concurrency", [0, 3, 7])
@pytest.mark.parametrize("count", [1, 2, 3])
def test_step_shares_add_up_to_the_step(concurrency: int, count: int) -> None:
    plan = _plan(n_requests=(7, 10), concurrency=concurrency)
    for key in plan.steps("t"):
        shares = [step_share(plan, ShardSpec(i, count), key) for i in range(count)]
        assert sum(s.sent.n_requests for s in shares) == key.n_requests
        assert sum(s.sent.concurrency for s in shares) == key.concurrency  # in flight / connections split too
        blocks = [i for s in shares for i in range(s.first, s.first + s.sent.n_requests)]
        assert blocks == list(range(key.n_requests))  # together: exactly the step's requests
        assert all(s.key == key for s in shares)  # recorded under the plan's step


def test_refusals_name_the_reason() -> None:
    with pytest.raises(ShardError, match="sequential mode cannot be sharded: it sends one request at a time"):
        check_shardable(_plan(modes=("sequential", "concurrent")), 2)
    with pytest.raises(ShardError, match="capacity search cannot be sharded"):
        check_shardable(_plan(), 2, capacity=True)
    with pytest.raises(ShardError, match="N=1 cannot be split over 2 shards"):
        check_shardable(_plan(n_requests=(1, 8)), 2)
    with pytest.raises(ShardError, match="has 1 in flight"):
        check_shardable(_plan(n_requests=(8,), modes=("concurrent",), concurrency=1), 2)
    with pytest.raises(ShardError, match="has 2 connections"):
        check_shardable(_plan(n_requests=(8,), modes=("rate",), concurrency=2), 3)
    check_shardable(_plan(n_requests=(2, 8)), 2)  # a shardable plan passes


# --- rate mode: schedules -----------------------------------------------------------------


def _rate_key(n: int, rate: float) -> StepKey:
    return StepKey("t", "rate", n, n, rate, 1)


def test_rate_shares_are_seeded_reproducible_and_independent() -> None:
    plan = _plan(rate_rps=50.0, seed=3)
    a0 = shard_offsets(plan, ShardSpec(0, 2), 4000, trial=1)
    a1 = shard_offsets(plan, ShardSpec(1, 2), 4000, trial=1)
    np.testing.assert_array_equal(a0, shard_offsets(plan, ShardSpec(0, 2), 4000, trial=1))  # same seed, same stream
    assert not np.array_equal(a0, shard_offsets(plan, ShardSpec(0, 2), 4000, trial=2))  # the trial is in the seed
    assert not np.array_equal(a0, shard_offsets(_plan(rate_rps=50.0, seed=4), ShardSpec(0, 2), 4000, trial=1))
    assert not np.array_equal(a0, shard_offsets(plan, ShardSpec(0, 3), 4000, trial=1)[: len(a0)])
    assert not set(a0.tolist()) & set(a1.tolist())
    # independent streams: their inter-arrival gaps are uncorrelated (|r| within 3 standard errors of 0)
    r = np.corrcoef(np.diff(a0), np.diff(a1))[0, 1]
    assert abs(r) < 3 / np.sqrt(a0.size)


@pytest.mark.parametrize("count", [2, 3, 5])
def test_superposed_shards_are_a_poisson_stream_at_the_full_rate(count: int) -> None:
    n, rate = 6000, 200.0
    plan = _plan(rate_rps=rate, seed=11)
    parts = [shard_offsets(plan, ShardSpec(i, count), n, trial=1) for i in range(count)]
    window = n / rate
    union = np.sort(np.concatenate(parts))
    assert union.size == n and union.min() >= 0 and union.max() < window
    assert n / window == rate  # the merged step offers exactly the plan's rate over its window
    # given N arrivals in [0, T), a rate-R Poisson process is N independent uniform points ...
    assert stats.kstest(union / window, "uniform").pvalue > 0.01
    # ... so the gaps are exponential with mean 1/R (all but the edge effects of a finite window)
    assert stats.kstest(np.diff(union), "expon", args=(0, 1 / rate)).pvalue > 0.01
    for part in parts:  # and each shard's own stream is Poisson at about R/K over the same window
        assert part.max() < window and part.min() >= 0
        assert stats.kstest(np.diff(part), "expon", args=(0, window / part.size)).pvalue > 0.01
        assert part.size / window == pytest.approx(rate / count, rel=0.001 + count / n)


def test_uniform_shards_interleave_into_the_one_client_schedule() -> None:
    plan = _plan(rate_rps=40.0, arrival="uniform")
    parts = [shard_offsets(plan, ShardSpec(i, 3), 100, trial=1) for i in range(3)]
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), plan.offsets(100, trial=1))


def test_rate_step_share_carries_the_schedule_and_split_connections() -> None:
    plan = _plan(n_requests=(9,), modes=("rate",), concurrency=4, rate_rps=30.0)
    key = plan.steps("t")[0]
    shares = [step_share(plan, ShardSpec(i, 2), key) for i in range(2)]
    assert [s.sent.n_requests for s in shares] == [5, 4]
    assert [s.sent.concurrency for s in shares] == [2, 2]
    assert [len(s.offsets) for s in shares] == [5, 4]
    assert all(s.offsets.max() < 9 / 30.0 for s in shares)


STAGES = (
    {"duration": "20s", "start_rate": 0, "rate": 200},
    {"duration": "40s", "rate": 200},
    {"duration": "10s", "rate": 0},
)


def test_uniform_shards_of_a_staged_step_interleave_into_the_one_client_schedule() -> None:
    plan = _plan(modes=("rate",), stages=STAGES, arrival="uniform")
    (key,) = plan.steps("t")
    parts = [_offsets(shard_offsets(plan, ShardSpec(i, 3), key.n_requests, trial=1)) for i in range(3)]
    assert [p.size for p in parts] == [n for _, n in split_evenly(key.n_requests, 3)]
    np.testing.assert_array_equal(np.sort(np.concatenate(parts)), plan.offsets(key.n_requests, trial=1))


@pytest.mark.parametrize("count", [2, 3])
def test_poisson_shards_of_a_staged_step_superpose_into_its_rate_curve(count: int) -> None:
    """Each shard draws its n_i of the N independent points of density r(t) / L(T): the union is
    distributed as the one-client staged schedule (checked against the curve's CDF), lazily, reproducibly."""
    plan = _plan(modes=("rate",), stages=STAGES, seed=4)
    (key,) = plan.steps("t")
    n = key.n_requests  # L(T) = 0.5*20*200 + 40*200 + 0.5*10*200 = 11,000
    assert n == 11_000
    schedules = [shard_offsets(plan, ShardSpec(i, count), n, trial=1) for i in range(count)]
    parts = [_offsets(s) for s in schedules]
    assert [p.size for p in parts] == [size for _, size in split_evenly(n, count)]
    assert all(np.all(np.diff(p) >= 0) and p.min() >= 0 and p.max() <= 70 for p in parts)
    np.testing.assert_array_equal(parts[0], _offsets(shard_offsets(plan, ShardSpec(0, count), n, trial=1)))
    assert not np.array_equal(parts[0][:100], parts[1][:100])  # the shards draw independently

    def curve_cdf(t: np.ndarray) -> np.ndarray:  # L(t) / L(T) of the three stages
        up = 0.5 * 200 * np.minimum(t, 20) ** 2 / 20
        hold = 200 * np.clip(t - 20, 0, 40)
        down_t = np.clip(t - 60, 0, 10)
        down = 200 * down_t - 0.5 * 200 * down_t**2 / 10
        return (up + hold + down) / 11_000

    union = np.concatenate(parts)
    assert stats.kstest(union, curve_cdf).pvalue > 0.01
    for part in parts:
        assert stats.kstest(part, curve_cdf).pvalue > 0.01


def _offsets(schedule) -> np.ndarray:
    return np.concatenate(list(schedule.chunks(997))) if hasattr(schedule, "chunks") else np.asarray(schedule)
