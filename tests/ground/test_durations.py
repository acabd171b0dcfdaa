"""Durations with units: the one parser behind --duration, --stages and [sweep]'s durations."""

from __future__ import annotations

import pytest

from ground.durations import DURATION_FORMS, DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("1.5", 1.5),
        (".5", 0.5),
        ("90s", 90.0),
        ("30m", 1800.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("2m30s", 150.0),
        ("1h0m5s", 3605.0),
        ("0.5h", 1800.0),
        (" 2H ", 7200.0),
        (0, 0.0),
        ("0s", 0.0),
    ],
)
def test_good_durations(value: object, seconds: float) -> None:
    assert parse_duration(value, "duration_s") == seconds


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "'' is not a duration"),
        ("2x", "'2x' is not a duration"),
        ("h", "'h' is not a duration"),
        ("1h 30m", "'1h 30m' is not a duration"),
        ("-5", "'-5' is not a duration"),
        ("1d", "'1d' is not a duration"),
        ("30m1h", "repeats a unit or puts a smaller one first"),
        ("1m1m", "repeats a unit"),
        (-1.0, "must be a finite duration >= 0"),
        (float("inf"), "must be a finite duration >= 0"),
        (float("nan"), "must be a finite duration >= 0"),
        (True, "must be a duration"),
        ([60], "must be a duration"),
    ],
)
def test_bad_durations_name_the_key_and_the_accepted_forms(value: object, problem: str) -> None:
    with pytest.raises(DurationError) as excinfo:
        parse_duration(value, "sweep.duration_s")
    message = str(excinfo.value)
    assert message.startswith("sweep.duration_s: ") and problem in message and DURATION_FORMS in message


@pytest.mark.parametrize("seconds", [0.0, 0.25, 59.0, 90.5, 3600.0, 5400.0, 7322.0, 86400.0])
def test_format_duration_reads_back(seconds: float) -> None:
    assert parse_duration(format_duration(seconds), "x") == pytest.approx(seconds)
    assert format_duration(5400.0) == "1h30m" and format_duration(90.5) == "1m30.5s"
