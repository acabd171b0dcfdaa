"""Statistics are pure functions of the raw records, checked against numpy on known data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadgen.quantile_bounds import quantile_ci
from loadgen.records import RequestRecord, StepKey, StepResult
from loadgen.stats import (
    BOUND_COLUMNS,
    LATENCY_PERCENTILES,
    PERCENTILE_CONFIDENCE,
    SUMMARY_COLUMNS,
    format_error_counts,
    latency_stats,
    parse_error_counts,
    percentile,
    summarize,
)


def _record(seq: int, latency: float, error: str = "", label: int = 1, predicted: int = 1) -> RequestRecord:
    return RequestRecord(
        seq=seq,
        intended_s=0.0,
        sent_s=0.0,
        latency_s=latency,
        service_s=latency,
        status=200 if not error else 0,
        error=error,
        error_detail="x" if error else "",
        bytes_out=100,
        bytes_in=50,
        label=label,
        predicted=predicted if not error else -1,
    )


def _step(records: list[RequestRecord], total_s: float = 2.0) -> StepResult:
    key = StepKey(target="t", mode="concurrent", n_requests=len(records), concurrency=4, rate=0.0, trial=1)
    return StepResult(key=key, records=tuple(records), total_s=total_s, started_at=1.7e9)


def test_percentile_matches_numpy_linear_on_known_data() -> None:
    data = np.arange(1, 11, dtype=float)  # 1..10
    assert percentile(data, 50) == 5.5
    assert percentile(data, 90) == pytest.approx(9.1)
    assert percentile(data, 0) == 1.0 and percentile(data, 100) == 10.0
    rng = np.random.default_rng(3)
    sample = rng.lognormal(size=1001)
    qs = [1, 50, 90, 95, 99, 99.9]
    np.testing.assert_array_equal(percentile(sample, qs), np.percentile(sample, qs, method="linear"))
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(data, 101)
    with pytest.raises(ValueError):
        percentile([1.0, float("nan")], 50)


def test_percentiles_are_exact_not_bucketed() -> None:
    # values that a two-significant-digit histogram would merge stay distinct
    data = [0.001234, 0.001236, 0.001238]
    assert percentile(data, 50) == 0.001236
    assert percentile(data, 100) == 0.001238


def test_latency_stats_on_known_data_and_empty() -> None:
    stats = latency_stats([0.3, 0.1, 0.2, 0.4])
    assert stats["lat_mean_s"] == pytest.approx(0.25)
    assert stats["lat_min_s"] == 0.1 and stats["lat_max_s"] == 0.4
    assert stats["lat_p50_s"] == pytest.approx(0.25)
    assert stats["lat_p999_s"] == pytest.approx(np.percentile([0.1, 0.2, 0.3, 0.4], 99.9))
    assert all(math.isnan(v) for v in latency_stats([]).values())


def test_bounds_are_the_binomial_order_statistics_of_known_data() -> None:
    """1..100 ms shuffled: each bound is the k-th smallest latency, k from the binomial tails."""
    rng = np.random.default_rng(8)
    data = rng.permutation(np.arange(1, 101) / 1000.0)  # the k-th smallest is k ms
    stats = latency_stats(data)
    assert PERCENTILE_CONFIDENCE == 0.95
    # Textbook ranks at n = 100, 95 %: the median lies between X_(40) and X_(61); p90 between
    # X_(84) and X_(96); p99's lower bound is X_(97) and nothing bounds it from above.
    assert (stats["lat_p50_lo_s"], stats["lat_p50_hi_s"]) == (0.040, 0.061)
    assert (stats["lat_p90_lo_s"], stats["lat_p90_hi_s"]) == (0.084, 0.096)
    assert stats["lat_p99_lo_s"] == 0.097 and math.isnan(stats["lat_p99_hi_s"])
    for q, suffix in LATENCY_PERCENTILES:
        lo, hi = quantile_ci(data, q / 100.0, 1 - PERCENTILE_CONFIDENCE)
        np.testing.assert_equal((stats[f"lat_{suffix}_lo_s"], stats[f"lat_{suffix}_hi_s"]), (lo, hi))
        if not math.isnan(hi):
            assert stats[f"lat_{suffix}_lo_s"] <= stats[f"lat_{suffix}_s"] <= hi


def test_bounds_of_a_small_step_are_missing_not_made_up() -> None:
    """Five answers bound no median; 64 bound no p99 from above (NaN, never a number)."""
    five = latency_stats([0.5, 0.1, 0.3, 0.2, 0.4])
    assert math.isnan(five["lat_p50_lo_s"]) and math.isnan(five["lat_p50_hi_s"])
    six = latency_stats([0.6, 0.5, 0.1, 0.3, 0.2, 0.4])
    assert (six["lat_p50_lo_s"], six["lat_p50_hi_s"]) == (0.1, 0.6)  # the smallest six with a median bound
    sixty_four = latency_stats(np.arange(1, 65) / 1000.0)
    # Binom(64, 0.99): P(<= 60) = 0.004 <= 2.5 % < P(<= 61) = 0.026, so the lower bound is X_(61)
    assert sixty_four["lat_p99_lo_s"] == 0.061 and math.isnan(sixty_four["lat_p99_hi_s"])
    empty = latency_stats([])
    assert all(math.isnan(empty[c]) for pair in BOUND_COLUMNS.values() for c in pair)


def test_bounds_in_the_summary_use_successful_requests_only() -> None:
    records = [_record(i, (i + 1) / 1000.0) for i in range(50)] + [
        _record(50 + i, 0.0001, "refused") for i in range(30)
    ]
    row = summarize(_step(records))
    assert list(row)[list(row).index("lat_max_s") + 1 : list(row).index("n_correct")] == [
        c for _, suffix in LATENCY_PERCENTILES for c in BOUND_COLUMNS[f"lat_{suffix}_s"]
    ]
    lo, hi = quantile_ci([(i + 1) / 1000.0 for i in range(50)], 0.5)
    assert (row["lat_p50_lo_s"], row["lat_p50_hi_s"]) == (lo, hi) == (0.018, 0.033)


def test_summarize_counts_errors_and_accuracy() -> None:
    records = [
        _record(0, 0.1),
        _record(1, 0.2),
        _record(2, 0.3, label=4, predicted=7),  # a wrong digit: ok, not correct
        _record(3, 9.9, error="timeout"),
        _record(4, 0.01, error="refused"),
        _record(5, 0.02, error="timeout"),
    ]
    row = summarize(_step(records, total_s=2.0))
    assert tuple(row) == SUMMARY_COLUMNS
    assert row["n_requests"] == 6 and row["n_ok"] == 3 and row["errors"] == 3
    assert row["errors_by_class"] == "refused:1;timeout:2"
    assert row["n_correct"] == 2
    assert row["accuracy"] == pytest.approx(2 / 6) and row["accuracy_ok"] == pytest.approx(2 / 3)
    assert row["throughput_rps"] == pytest.approx(1.5)
    # latencies over successful requests only: the 9.9 s timeout is excluded
    assert row["lat_max_s"] == 0.3 and row["lat_mean_s"] == pytest.approx(0.2)
    assert row["lat_p90_s"] == pytest.approx(np.percentile([0.1, 0.2, 0.3], 90))
    assert row["bytes_out"] == 600 and row["bytes_in"] == 300
    assert row["target"] == "t" and row["trial"] == 1 and row["started_at"] == 1.7e9


def test_summarize_all_failed_gives_nan_latencies_and_zero_accuracy() -> None:
    row = summarize(_step([_record(0, 0.1, error="refused"), _record(1, 0.1, error="refused")]))
    assert row["n_ok"] == 0 and row["accuracy"] == 0.0
    assert math.isnan(row["lat_p50_s"]) and math.isnan(row["accuracy_ok"])
    assert row["throughput_rps"] == 0.0


def test_error_counts_round_trip() -> None:
    counts = {"timeout": 3, "refused": 2}
    text = format_error_counts(counts)
    assert text == "timeout:3;refused:2"
    assert parse_error_counts(text) == counts
    assert parse_error_counts("") == {} and format_error_counts({}) == ""
    with pytest.raises(ValueError):
        parse_error_counts("timeout3")
