"""Statistics are pure functions of the raw records, checked against numpy on known data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadgen.records import RequestRecord, StepKey, StepResult
from loadgen.stats import (
    SUMMARY_COLUMNS,
    format_error_counts,
    latency_stats,
    parse_error_counts,
    percentile,
    summarize,
)


def _record(seq: int, latency: float, error: str = "", label: int = 1, predicted: int = 1) -> RequestRecord:
    return RequestRecord(
        seq=seq, intended_s=0.0, sent_s=0.0, latency_s=latency, service_s=latency, status=200 if not error else 0,
        error=error, error_detail="x" if error else "", bytes_out=100, bytes_in=50, label=label,
        predicted=predicted if not error else -1,
    )  # fmt: skip


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
