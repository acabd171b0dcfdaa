"""The log-bucket histogram a thinned step's percentiles come from: within 0.1 %, exact ranks, mergeable."""

from __future__ import annotations

import numpy as np
import pytest

from loadgen.log_histogram import HIGHEST, RELATIVE_ERROR, LogHistogram
from loadgen.stats import histogram_latency_stats, latency_stats


def _sample(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.lognormal(np.log(0.02), 0.6, n - n // 50), rng.uniform(0.3, 2.0, n // 50)])


def test_every_order_statistic_is_within_the_stated_relative_error():
    values = _sample(20_000, 1)
    histogram = LogHistogram()
    histogram.add(values)
    ranks = np.arange(1, values.size + 1)
    read = histogram.value_at_ranks(ranks)
    exact = np.sort(values)
    assert np.max(np.abs(read - exact) / exact) <= RELATIVE_ERROR * (1 + 1e-9)
    assert read[0] == exact[0] and read[-1] == exact[-1]  # the extremes are kept exactly


def test_the_summary_columns_from_a_histogram_match_the_exact_ones_within_the_error():
    values = _sample(50_000, 2)
    histogram = LogHistogram()
    for chunk in np.array_split(values, 7):  # added in chunks, as a step drains
        histogram.add(chunk)
    exact, approx = latency_stats(values), histogram_latency_stats(histogram)
    assert list(exact) == list(approx)
    for name, value in exact.items():
        assert approx[name] == pytest.approx(value, rel=RELATIVE_ERROR * 1.0001), name
    assert approx["lat_mean_s"] == pytest.approx(exact["lat_mean_s"], rel=1e-12)  # an exact sum


def test_histograms_merge_into_the_histogram_of_both_samples():
    a, b = _sample(3_000, 3), _sample(5_000, 4)
    left, right, both = LogHistogram(), LogHistogram(), LogHistogram()
    left.add(a)
    right.add(b)
    both.add(np.concatenate([a, b]))
    left.merge(right)
    assert np.array_equal(left.counts, both.counts)
    assert (left.minimum, left.maximum, len(left)) == (both.minimum, both.maximum, 8_000)


def test_zeros_and_values_beyond_the_range_read_back_as_the_exact_extremes():
    histogram = LogHistogram()
    histogram.add(np.array([0.0, 0.0, 0.01, 2 * HIGHEST]))
    assert list(histogram.value_at_ranks(np.array([1, 2, 4]))) == [0.0, 0.0, 2 * HIGHEST]
    assert histogram.value_at_ranks(np.array([3]))[0] == pytest.approx(0.01, rel=RELATIVE_ERROR)
    with pytest.raises(ValueError, match="ranks"):
        histogram.value_at_ranks(np.array([5]))
    for bad in (np.array([np.nan]), np.array([-1.0]), np.array([np.inf])):
        with pytest.raises(ValueError, match="finite values"):
            histogram.add(bad)
    empty = histogram_latency_stats(LogHistogram())
    assert all(np.isnan(v) for v in empty.values())
