"""k6-like stages: parsing, validation, and the staged schedule's counts, laziness and seeds."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from loadgen.stages import (
    Stage,
    StagedSchedule,
    format_stages,
    parse_stage_table,
    parse_stages_text,
    peak_rate,
    planned_count,
)

RAMP_HOLD_RAMP = "2m:0-100,30m:100,2m:0"


def _offsets(schedule: StagedSchedule, size: int = 10_000) -> np.ndarray:
    return np.concatenate([np.zeros(0), *schedule.chunks(size)])


def _integral(stages: tuple[Stage, ...], t: np.ndarray) -> np.ndarray:
    """L(t) by brute force: the rate curve sampled on a fine grid, integrated by trapezoids."""
    grid, rates, t0, previous = [], [], 0.0, 0.0
    for stage in stages:
        start = previous if stage.start_rate is None else stage.start_rate
        grid.append(np.linspace(t0, t0 + stage.duration_s, 2001))
        rates.append(np.linspace(start, stage.rate, 2001))
        t0 += stage.duration_s
        previous = stage.rate
    g, r = np.concatenate(grid), np.concatenate(rates)
    cum = np.concatenate(([0.0], np.cumsum(np.diff(g) * (r[1:] + r[:-1]) / 2)))
    return np.interp(t, g, cum)


def _fits_the_rate_curve(offsets: np.ndarray, stages: tuple[Stage, ...], edges: np.ndarray) -> bool:
    """Counts per bin against N x (the bin's share of the integral): every bin within 5 sd, chi-square in bound."""
    counts = np.histogram(offsets, edges)[0]
    share = np.diff(_integral(stages, edges)) / _integral(stages, edges[-1:])[0]
    expected = len(offsets) * share
    keep = expected > 5
    z = (counts[keep] - expected[keep]) / np.sqrt(expected[keep] * (1 - share[keep]))
    chi2 = float(((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum())
    df = int(keep.sum()) - 1
    return bool(np.all(np.abs(z) < 5) and chi2 < df + 6 * np.sqrt(2 * df) and counts[~keep].sum() <= 5 * (~keep).sum())


def test_parse_the_cli_form_and_read_it_back() -> None:
    stages = parse_stages_text(RAMP_HOLD_RAMP)
    assert stages == (Stage(120.0, 100.0, 0.0), Stage(1800.0, 100.0), Stage(120.0, 0.0))
    assert format_stages(stages) == RAMP_HOLD_RAMP and parse_stages_text(format_stages(stages)) == stages
    assert planned_count(stages) == 6000 + 180_000 + 6000 and peak_rate(stages) == 100.0
    assert parse_stages_text("90:2.5, 1h30m:7") == (Stage(90.0, 2.5), Stage(5400.0, 7.0))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2m", "stage 1 '2m' is not DURATION:RATE"),
        ("2m:ten", "stage 1 '2m:ten' is not DURATION:RATE"),
        ("2m:10,5:-3", "stage 2 '5:-3' is not DURATION:RATE"),
        ("2m:10,1y:3", "stage 2's duration: '1y' is not a duration"),
        ("0s:10", "the stages last 0 s in all"),
        ("10s:0.04", "integrates to 0.2 requests over 10s, which rounds to 0"),
        ("", "stage 1 '' is not DURATION:RATE"),
    ],
)
def test_bad_cli_stages_name_the_stage(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match="--stages") as excinfo:
        parse_stages_text(text)
    assert problem in str(excinfo.value)


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"duration": "2m"}, "stages[1].rate: required key is missing"),
        ({"rate": 5}, "stages[1].duration: required key is missing"),
        ({"duration": "2m", "rate": 5, "target": 9}, "stages[1].target: unknown key"),
        ({"duration": "2m", "rate": -5}, "stages[1].rate: must be a rate in req/s"),
        ({"duration": "2m", "rate": True}, "stages[1].rate: must be a rate in req/s"),
        ({"duration": "2m", "rate": 5, "start_rate": "fast"}, "stages[1].start_rate: must be a rate"),
        ({"duration": "two minutes", "rate": 5}, "stages[1].duration: 'two minutes' is not a duration"),
        ("2m:5", "stages[1]: must be a table"),
    ],
)
def test_bad_stage_tables_name_the_key(table: object, problem: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        parse_stage_table(table, "stages[1]")
    assert problem in str(excinfo.value)


@pytest.mark.parametrize("arrival", ["poisson", "uniform"])
def test_counts_follow_the_integral_of_the_rate_curve(arrival: str) -> None:
    stages = parse_stages_text("1m:0-200,2m:200,30s:50-50,1m:0")  # a ramp, a hold, a jump down, a ramp to 0
    schedule = StagedSchedule(stages, arrival, seed=[0, 1, 1, 3])
    offsets = _offsets(schedule)
    assert len(offsets) == len(schedule) == planned_count(stages) == 6000 + 24_000 + 1500 + 1500
    assert offsets[0] >= 0 and offsets[-1] <= schedule.duration_s == 270.0 and np.all(np.diff(offsets) >= 0)
    per_stage = np.histogram(offsets, [0, 60, 180, 210, 270])[0]
    if arrival == "uniform":  # evenly spaced in cumulative intensity: each stage gets its integral, +-1
        np.testing.assert_allclose(per_stage, [6000, 24_000, 1500, 1500], atol=1)
    edges = np.linspace(0.0, 270.0, 55)  # 5 s bins: the ramps' quadratic shape is tested, not just totals
    assert _fits_the_rate_curve(offsets, stages, edges)
    # the check fails for a wrong schedule: the same count spread at a constant rate, or ramps inverted linearly
    flat = np.sort(np.random.default_rng(1).uniform(0, 270.0, len(offsets)))
    assert not _fits_the_rate_curve(flat, stages, edges)
    linear = np.interp(np.linspace(0, 1, len(offsets)), [0, 60 / 270, 180 / 270, 210 / 270, 1], [0, 60, 180, 210, 270])
    assert not _fits_the_rate_curve(linear, stages, edges)


def test_a_stage_at_rate_zero_is_idle_and_a_hold_is_evenly_spaced() -> None:
    stages = parse_stages_text("10s:10-10,10s:0-0,10s:10-10")
    offsets = _offsets(StagedSchedule(stages, "poisson", seed=4))
    assert len(offsets) == 200 and not np.any((offsets > 10.0) & (offsets < 20.0))
    hold = _offsets(StagedSchedule([Stage(10.0, 5.0, 5.0)], "uniform"))
    np.testing.assert_allclose(hold, np.arange(50) / 5.0)  # i / r, as the constant-rate uniform schedule


def test_same_seed_same_offsets_whatever_the_chunk_size() -> None:
    stages = parse_stages_text(RAMP_HOLD_RAMP)
    a = _offsets(StagedSchedule(stages, "poisson", seed=[0, 1, 1, 192_000]), size=1000)
    b = _offsets(StagedSchedule(stages, "poisson", seed=[0, 1, 1, 192_000]), size=77_777)
    c = _offsets(StagedSchedule(stages, "poisson", seed=[0, 1, 2, 192_000]), size=1000)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    schedule = StagedSchedule(stages, "poisson", seed=9)
    np.testing.assert_array_equal(_offsets(schedule), _offsets(schedule))  # a schedule can be read twice


def test_a_night_long_schedule_is_generated_in_chunks_never_whole() -> None:
    stages = parse_stages_text("10m:0-1100,7h40m:1100,10m:0")
    schedule = StagedSchedule(stages, "poisson", seed=1)
    n = len(schedule)
    assert n == 31_020_000  # 8 hours: over 30 M requests, 248 MB as one float64 array
    size, taken, last = 65_536, 0, 0.0
    tracemalloc.start()
    try:
        chunks = schedule.chunks(size)
        for _ in range(12):
            chunk = next(chunks)
            assert chunk.shape == (size,) and chunk.dtype == np.float64 and chunk[0] >= last
            last, taken = float(chunk[-1]), taken + chunk.size
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert taken == 12 * size
    # about 16 chunk-sized temporaries (measured): 8.6 MB, where the night as one array is 248 MB
    assert peak < 24 * size * 8 < n * 8 / 19
    # the first 12 chunks cover the ramp and the start of the hold: as many requests as the integral says
    assert 600.0 < last < 1200.0 and taken == pytest.approx(_integral(stages, np.array([last]))[0], rel=0.01)


def test_the_last_chunk_is_short_and_ends_within_the_stages() -> None:
    schedule = StagedSchedule(parse_stages_text("3s:0-7,2s:7"), "uniform")
    chunks = list(schedule.chunks(8))
    assert [len(c) for c in chunks] == [8, 8, 8, 1] and len(schedule) == 25
    assert chunks[-1][-1] <= schedule.duration_s
    with pytest.raises(ValueError, match="chunk size must be >= 1"):
        next(schedule.chunks(0))
