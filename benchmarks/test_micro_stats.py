"""Micro-benchmarks: a step's summary statistics over 1,000,000 request records.

Why: ``loadgen.stats.summarize`` runs once per measured step, between steps, from the raw
records (``StepResult.records``, a tuple of dataclasses); for an open-loop step it also
runs the saturation analysis (``loadgen.saturation.analyze_open_loop``), which sorts the
records by intended send time.  A sweep step holds at most 100,000 records; 1 M shows
how the Python-level passes over the records scale.  ``latency_stats`` alone is the
numpy part (sort once, five percentiles, ten order-statistic bounds), for telling the two
apart.

Each answer is checked against numpy computed from the arrays the records were drawn
from, never against a stored number.
"""

from __future__ import annotations

import numpy as np
import pytest
from micro_data import StepArrays, open_loop_step

from loadgen.quantile_bounds import quantile_ci
from loadgen.records import StepKey, StepResult
from loadgen.stats import LATENCY_PERCENTILES, PERCENTILE_CONFIDENCE, SUMMARY_COLUMNS, latency_stats, summarize

N_RECORDS = 1_000_000


@pytest.fixture(scope="module")
def rate_step() -> tuple:
    return open_loop_step(N_RECORDS, seed=11, mode="rate")


def check_row(row: dict, arrays: StepArrays) -> None:
    """The summary row agrees with numpy on the arrays the records came from."""
    ok = ~arrays.failed
    ok_latency = arrays.latency_s[ok]
    assert tuple(row) == SUMMARY_COLUMNS
    assert row["n_requests"] == arrays.latency_s.size
    assert row["n_ok"] == int(ok.sum())
    assert row["errors"] == int(arrays.failed.sum()) > 0
    assert row["errors_by_class"] == f"http_5xx:{int(arrays.failed.sum())}"
    assert row["n_correct"] == int(arrays.correct.sum())
    assert row["bytes_out"] == int(arrays.bytes_out.sum())
    assert row["bytes_in"] == int(arrays.bytes_in.sum())
    assert row["lat_mean_s"] == pytest.approx(float(np.mean(ok_latency)), rel=1e-12)
    assert (row["lat_min_s"], row["lat_max_s"]) == (float(ok_latency.min()), float(ok_latency.max()))
    for q, suffix in LATENCY_PERCENTILES:
        assert row[f"lat_{suffix}_s"] == pytest.approx(float(np.percentile(ok_latency, q)), rel=1e-12)
        lo, hi = quantile_ci(ok_latency, q / 100.0, 1.0 - PERCENTILE_CONFIDENCE)  # 1 M answers: both exist
        assert (row[f"lat_{suffix}_lo_s"], row[f"lat_{suffix}_hi_s"]) == (lo, hi)
        assert lo <= row[f"lat_{suffix}_s"] <= hi


def test_summarize_rate_step_1m(benchmark, rate_step: tuple) -> None:
    """Open loop: latency statistics plus offered/achieved rate, send lag and the saturation verdict."""
    step, arrays = rate_step
    row = benchmark(summarize, step)
    check_row(row, arrays)
    # A healthy step: offered ~ the configured Poisson rate, achieved ~ offered, not saturated.
    assert row["offered_rps"] == pytest.approx(arrays.rate, rel=0.01)
    assert row["achieved_rps"] == pytest.approx(row["offered_rps"], rel=0.01)
    assert row["saturated"] is False
    assert row["flags"] == "errors"


def test_summarize_closed_loop_step_1m(benchmark, rate_step: tuple) -> None:
    """Closed loop (the same records under a ``concurrent`` key): no open-loop analysis."""
    step, arrays = rate_step
    key = StepKey(step.key.target, "concurrent", step.key.n_requests, 64, 0.0, 0)
    closed = StepResult(key=key, records=step.records, total_s=step.total_s, started_at=step.started_at)
    row = benchmark(summarize, closed)
    check_row(row, arrays)
    assert np.isnan(row["offered_rps"]) and row["saturated"] is False


def test_latency_stats_1m(benchmark, rate_step: tuple) -> None:
    """The numpy part alone: mean, min, five exact percentiles and max of 1 M latencies."""
    _, arrays = rate_step
    latencies = arrays.latency_s
    stats = benchmark(latency_stats, latencies)
    assert stats["lat_p99_s"] == pytest.approx(float(np.percentile(latencies, 99.0)), rel=1e-12)
    assert stats["lat_max_s"] == float(latencies.max())
