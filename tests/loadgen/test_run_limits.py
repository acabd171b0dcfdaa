"""The limits of a long run: the disk its records need, and a step limit that follows the plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadgen import run_limits
from loadgen.run_limits import (
    BYTES_PER_RECORD,
    InsufficientDiskError,
    auto_max_duration_s,
    check_free_space,
    estimated_disk_bytes,
    free_bytes,
)
from loadgen.sweep import SweepPlan


def test_the_estimate_is_records_times_the_measured_size_plus_headroom() -> None:
    estimate = estimated_disk_bytes(3_600_000)  # an hour at 1,000 req/s
    assert estimate.bytes == 3_600_000 * BYTES_PER_RECORD * 1.25 == 288_000_000
    assert "3,600,000 records, about 288.0 MB on disk" in estimate.describe()
    with pytest.raises(ValueError):
        estimated_disk_bytes(-1)


def test_a_run_that_does_not_fit_is_refused_with_the_estimate(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(run_limits, "free_bytes", lambda folder: 1_000_000_000)  # a disk with 1 GB free
    typo = SweepPlan(n_requests=(1,), modes=("rate",), rate_rps=100_000.0, duration_s="2h")  # meant 100 req/s
    with pytest.raises(InsufficientDiskError) as excinfo:
        check_free_space(typo.planned_records(4), tmp_path / "results")
    message = str(excinfo.value)
    assert "2,880,000,000 records, about 230.4 GB on disk" in message and "has 1.0 GB free" in message
    assert "--out DIR" in message
    meant = SweepPlan(n_requests=(1,), modes=("rate",), rate_rps=100.0, duration_s="2h")
    assert check_free_space(meant.planned_records(4), tmp_path / "results").records == 2_880_000


def test_free_bytes_reads_the_nearest_existing_folder(tmp_path: Path) -> None:
    assert free_bytes(tmp_path / "not" / "yet" / "made") == free_bytes(tmp_path) > 0


def test_auto_max_duration_follows_the_longest_planned_step() -> None:
    assert auto_max_duration_s([]) == 600.0  # closed-loop steps only: the old fixed limit
    assert auto_max_duration_s([10.0, 300.0]) == 600.0
    assert auto_max_duration_s([7200.0]) == pytest.approx(7200 * 1.1 + 60)
    soak = SweepPlan(n_requests=(1,), modes=("rate",), rate_rps=50.0, duration_s="2h", arrival="uniform")
    assert soak.max_duration_s == pytest.approx((360_000 - 1) / 50.0 * 1.1 + 60)  # a 2 h soak is not cut at 600 s
    staged = SweepPlan(n_requests=(1,), modes=("rate",), stages=[{"duration": "1h", "rate": 10}])
    assert staged.max_duration_s == pytest.approx(3600 * 1.1 + 60)
    # "auto" is derived again when the plan is rebuilt with a longer duration (SweepPlan.from_config)
    from loadgen.sweep_settings import SweepSettings

    short = SweepSettings(modes=("rate",), duration_s=10.0)
    assert short.max_duration_s == 600.0
    longer = SweepSettings(**{**short.__dict__, "duration_s": "3h"})
    assert longer.max_duration_s == pytest.approx(
        (3 * 3600 * 50 - 1) / 50 * 1.1 + 60 + 6 * (3 * 3600 * 50 - 1) ** 0.5 / 50 * 1.1
    )
    # a number is a hard limit, and a schedule longer than it is refused
    with pytest.raises(ValueError, match="longer than max_duration_s = 3600 s"):
        SweepSettings(modes=("rate",), duration_s="2h", max_duration_s="1h")
