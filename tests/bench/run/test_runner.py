"""Pure pieces of the run orchestration: death detection, meta finalisation, run ids."""

from __future__ import annotations

import json
import math

import pytest

from bench.results import ResultsError, latest_run, validate_run_id
from bench.results.header import SCHEMA_VERSION, new_meta
from bench.run.runner import (
    TargetOutcome,
    _is_dead,
    default_run_id,
    finish_meta,
)
from ground.runmeta import RunStatus


def test_dead_only_when_every_request_failed_to_connect():
    assert _is_dead({"n_ok": 0, "errors_by_class": "refused:8"})
    assert _is_dead({"n_ok": 0, "errors_by_class": "refused:3;reset:5"})
    assert not _is_dead({"n_ok": 1, "errors_by_class": "refused:7"})  # killed mid-step: not yet
    assert not _is_dead({"n_ok": 0, "errors_by_class": "timeout:8"})  # slow is measured, not dead
    assert not _is_dead({"n_ok": 0, "errors_by_class": "http_5xx:8"})
    assert not _is_dead({"n_ok": 8, "errors_by_class": ""})


def test_finish_meta_names_problems_and_unrun_targets(tmp_path):
    meta = new_meta(
        run_id="r", root=tmp_path, config_sha256="x", config_path="bench.toml", sweep={}, targets=["a", "b", "c"]
    )
    assert meta.schema_version == SCHEMA_VERSION and meta.complete is False and meta.status is RunStatus.RUNNING
    outcomes = [
        TargetOutcome("a", status="ok"),
        TargetOutcome("b", status="died", message="gone\nlog tail"),
        TargetOutcome("c"),
    ]
    finish_meta(meta, outcomes, RunStatus.INTERRUPTED, "interrupted (Ctrl-C or SIGTERM)")
    data = meta.to_json()
    assert data["complete"] is False and data["status"] == "interrupted" and data["finished_utc"]
    assert data["error"] == "interrupted (Ctrl-C or SIGTERM)"
    assert set(data["target_errors"]) == {"b", "c"} and data["outcomes"]["c"]["status"] == "not_run"
    finish_meta(meta, [TargetOutcome("a", status="ok")], RunStatus.COMPLETE)
    data = meta.to_json()
    assert data["complete"] is True and data["target_errors"] == {} and data["error"] is None
    json.dumps(data)  # serialisable as is
    with pytest.raises(ValueError, match="not 'running'"):
        finish_meta(meta, [], RunStatus.RUNNING)


def test_default_run_id_is_valid_and_sortable():
    assert default_run_id(0) == "19700101-000000"
    rid = default_run_id(1_795_900_000)
    assert validate_run_id(rid) == rid
    assert default_run_id(1_795_900_061) > rid  # later runs sort after earlier ones


def test_reference_and_calibration_are_not_runs(tmp_path):

    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "table3_inference_time.csv").write_text("n_requests\n1\n")
    (tmp_path / "calibration.json").write_text("{}")
    with pytest.raises(ResultsError, match="no runs"):
        latest_run(tmp_path)


def test_the_live_part_of_the_progress_line_shows_only_for_a_long_step():
    from bench.run.display import LONG_STEP_S, live_text
    from loadgen.live import LiveStats

    short = LiveStats(1.0, 59.0, 1.0, 40.0, 39.5, 0.012, 0.05, 0)
    assert live_text(short) == "" and live_text(None) == ""
    long = LiveStats(LONG_STEP_S + 78.0, 3597.0, 5.0, 40.0, 39.54, 0.0123, 0.0456, 2)
    assert live_text(long) == (
        " | offered 40.0, achieved 39.5 req/s, p50 12.3 ms, p99 45.6 ms (last 5 s), 2 errors, 1:23 elapsed, 59:57 left"
    )
    closed = LiveStats(7200.0, math.nan, 5.0, math.nan, 3.0, math.nan, math.nan, 1)
    assert live_text(closed) == " | offered -, achieved 3.0 req/s, p50 -, p99 - (last 5 s), 1 error, 2:00:00 elapsed"
