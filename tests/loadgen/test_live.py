"""The live window of a running step: rates, percentiles and errors over its last seconds, bounded."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadgen import live as live_module
from loadgen.live import WINDOW_S, LiveWindow


def _window(rate: float, seconds: float, latency: float, fail_every: int = 0, capacity: int = 1 << 15):
    window = LiveWindow(t0=100.0, duration_s=60.0, capacity=capacity)
    n = int(rate * seconds)
    for i in range(n):
        at = 100.0 + i / rate
        window.sent(at)
        window.done(at + latency, latency, not (fail_every and i % fail_every == 0))
    return window, 100.0 + seconds


def test_rates_and_percentiles_cover_only_the_last_window():
    window, now = _window(rate=100.0, seconds=30.0, latency=0.02)
    stats = window.stats(now)
    assert stats.window_s == pytest.approx(WINDOW_S)
    assert stats.offered_rps == pytest.approx(100.0, rel=0.02)
    assert stats.achieved_rps == pytest.approx(100.0, rel=0.02)
    assert stats.p50_s == pytest.approx(0.02) and stats.p99_s == pytest.approx(0.02)
    assert stats.elapsed_s == pytest.approx(30.0) and stats.remaining_s == pytest.approx(30.0)
    assert stats.errors == 0


def test_errors_count_since_the_start_and_leave_the_percentiles():
    window, now = _window(rate=50.0, seconds=10.0, latency=0.01, fail_every=5)
    stats = window.stats(now)
    assert stats.errors == 100
    assert stats.achieved_rps == pytest.approx(40.0, rel=0.05)  # answers, not failures


def test_a_full_ring_says_it_covers_less_than_the_window():
    window, now = _window(rate=1000.0, seconds=10.0, latency=0.001, capacity=1000)
    stats = window.stats(now)
    assert stats.window_s == pytest.approx(1.0, rel=0.01)  # the last 1000 completions span ~1 s
    assert stats.achieved_rps == pytest.approx(1000.0, rel=0.02)
    assert window.done_at.size == 1000  # bounded, however long the step


def test_figures_are_recomputed_at_most_every_interval(monkeypatch):
    window, now = _window(rate=10.0, seconds=10.0, latency=0.1)
    first = window.stats(now)
    window.done(now, 5.0, True)
    assert window.stats(now + live_module.LIVE_INTERVAL_S / 2) is first
    assert window.stats(now + live_module.LIVE_INTERVAL_S).p99_s > 0.1


def test_before_anything_completed_the_figures_are_unknown_not_zero():
    stats = LiveWindow(t0=0.0).stats(0.0)
    assert math.isnan(stats.p50_s) and math.isnan(stats.offered_rps) and math.isnan(stats.remaining_s)
    assert np.isnan(stats.achieved_rps)
