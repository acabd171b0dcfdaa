"""A target another engine sent (gRPC) is judged against that engine's ceiling, never the run's HTTP one."""

from __future__ import annotations

import pandas as pd

from bench.report.runfacts import meta_rows, target_ceilings
from bench.report.tables import flag_near_ceiling, table3_rows
from ground.runmeta import KIND_SERVING, RunMeta

HTTP = {"engine": "fast", "rps_by_concurrency": {"1": 20000.0, "64": 60000.0}}
GRPC = {"engine": "grpc", "rps_by_concurrency": {"1": 1700.0, "64": 2500.0}}


def _details(grpc_ceiling: dict | None) -> dict:
    return {
        "client_ceiling": HTTP,
        "client_ceilings": {"grpc": grpc_ceiling} if grpc_ceiling else {},
        "targets": {
            "json": {"base_url": "http://127.0.0.1:1", "protocol": "v2"},
            "grpc": {"base_url": "grpc://127.0.0.1:2", "client_engine": "grpc (grpcio 1.85.4)"},
        },
    }


def _steps() -> pd.DataFrame:
    """Both targets at 1,500 req/s with 64 in flight: 75 % of the grpc engine's ceiling, 2.5 % of fast's."""
    from bench.results.parse import StepSummary, summary_frame

    rows = [
        {
            "target": target,
            "mode": "concurrent",
            "n_requests": 64,
            "concurrency": 64,
            "trial": 1,
            "total_s": 64 / 1500.0,
            "throughput_rps": 1500.0,
            "n_ok": 64,
        }
        for target in ("json", "grpc")
    ]
    return summary_frame(map(StepSummary.from_row, rows))


def test_target_ceilings_name_the_targets_another_engine_sent() -> None:
    assert target_ceilings(_details(GRPC)) == {"grpc": GRPC}
    assert target_ceilings(_details(None)) == {"grpc": None}  # not calibrated: no ceiling, not the HTTP one
    assert target_ceilings({"targets": {"json": {"protocol": "v2"}}}) == {}


def test_a_grpc_step_near_its_own_engines_ceiling_is_flagged_and_the_http_one_is_not() -> None:
    steps = _steps()
    by_target = target_ceilings(_details(GRPC))
    assert flag_near_ceiling(steps, HTTP, by_target).tolist() == [False, True]
    assert flag_near_ceiling(steps, HTTP).tolist() == [False, False]  # judged by the HTTP engine: missed
    # with no grpc calibration the grpc target is not judged at all (never against fast's ceiling)
    low_http = {"engine": "fast", "rps_by_concurrency": {"64": 2000.0}}
    assert flag_near_ceiling(steps, low_http, target_ceilings(_details(None))).tolist() == [True, False]


def test_table3_marks_the_grpc_step_and_the_run_facts_say_which_ceiling() -> None:
    _, rows = table3_rows(_steps(), "concurrent", ["json", "grpc"], HTTP, target_ceilings(_details(GRPC)))
    (row,) = rows
    assert not row[1].endswith("*") and row[2].endswith("*")
    meta = RunMeta(kind=KIND_SERVING, run_id="r", details=_details(None))
    facts = dict(meta_rows(meta))
    assert "grpc (sent by the grpc engine): not measured (bench calibrate --engines" in facts["client ceiling"]
