"""bench.results.parse: results come back as the records they were written from, any schema."""

from __future__ import annotations

import csv
import gzip
import math
from dataclasses import replace

import numpy as np
import pytest

from bench.results import RunWriter, load_run
from bench.results.parse import (
    ReadError,
    StepSummary,
    ok_latencies,
    read_requests_csv,
    read_summary_csv,
    request_records,
    summary_frame,
)
from loadgen.records import RequestRecord, StepKey, StepResult
from loadgen.stats import BOUND_COLUMNS, FLAG_ALL_FAILED, FLAG_ERRORS, FLAG_SATURATED, SUMMARY_COLUMNS, summarize
from tests.support.synthetic_runs import make_rate_step, make_step, write_flagged_run

SCHEMA_2_ONLY = (
    "offered_rps",
    "achieved_rps",
    "send_lag_p50_s",
    "send_lag_max_s",
    "lag_growth_s",
    "saturated",
    "flags",
)


def _steps(rng: np.random.Generator) -> list[StepResult]:
    not_sent = RequestRecord(
        seq=2,
        intended_s=0.1,
        sent_s=math.nan,
        latency_s=math.nan,
        service_s=math.nan,
        status=0,
        error="other",
        error_detail="not sent: the step reached max_duration_s",
        bytes_out=0,
        bytes_in=0,
        label=3,
        predicted=-1,
    )
    cut = make_step("b", "concurrent", 3, 1, 0.002, rng)
    return [
        make_step("a", "sequential", 6, 0, 0.01, rng, fail_every=3),
        make_step("a", "concurrent", 4, 0, 0.01, rng, fail_every=1),  # every request failed
        make_rate_step("b", 64, 0, 40.0, 0.01, rng, backlog_s=0.01),  # saturated
        replace(cut, records=cut.records[:2] + (not_sent,)),
    ]


def _write(tmp_path, steps: list[StepResult]):
    with RunWriter(tmp_path / "r", "r", SUMMARY_COLUMNS) as writer:
        for step in steps:
            writer.append_summary(summarize(step))
            writer.append_requests(step.key, step.records)
    return tmp_path / "r"


def _same_record(a: RequestRecord, b: RequestRecord) -> bool:
    """Field by field, NaN equal to NaN (a request never sent has no send time)."""
    return all(
        x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
        for x, y in zip(a.__dict__.values(), b.__dict__.values(), strict=True)
    )


def test_records_written_read_back_equal(tmp_path) -> None:
    steps = _steps(np.random.default_rng(5))
    run_dir = _write(tmp_path, steps)
    records = request_records(read_requests_csv(run_dir / "requests.csv.gz"))
    assert list(records) == [s.key for s in steps]
    for step in steps:
        assert len(records[step.key]) == len(step.records)
        assert all(_same_record(a, b) for a, b in zip(step.records, records[step.key], strict=True))
    clean = [r for r in steps[0].records]
    assert list(records[steps[0].key]) == clean  # no NaN in it: plain dataclass equality


def test_summary_rows_read_back_as_the_summaries_measured(tmp_path) -> None:
    steps = _steps(np.random.default_rng(6))
    read = read_summary_csv(_write(tmp_path, steps) / "summary.csv")
    assert read.run_id == "r" and read.columns == {"run_id", *SUMMARY_COLUMNS}
    assert list(read.steps) == [StepSummary.from_row(summarize(s)) for s in steps]
    first, all_failed, saturated, cut = read.steps
    assert first.flags == {FLAG_ERRORS} and first.errors == 2 and first.errors_by_class == {"refused": 2}
    assert all_failed.flags == {FLAG_ERRORS, FLAG_ALL_FAILED} and all_failed.lat_p50_s is None  # no answer
    assert FLAG_SATURATED in saturated.flags and saturated.saturated and saturated.offered_rps is not None
    assert first.offered_rps is None  # closed loop: no offered rate (NaN on disk)
    assert cut.errors_by_class == {"other": 1}


def test_the_reader_gives_back_what_summarize_computes_from_the_records(tmp_path) -> None:
    """Report and compare read what loadgen.stats wrote, and loadgen.stats applies to what they read."""
    steps = _steps(np.random.default_rng(7))
    run = load_run(_write(tmp_path, steps))
    again = run.step_results()
    assert [s.key for s in again] == [s.key for s in steps]
    assert [StepSummary.from_row(summarize(s)) for s in again] == list(run.steps)


def test_schema_1_summaries_read_with_derived_flags(tmp_path) -> None:
    run_dir = write_flagged_run(tmp_path, ns=(1, 8), trials=2)
    new = read_summary_csv(run_dir / "summary.csv")
    with (run_dir / "summary.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    old_path = tmp_path / "schema1.csv"
    keep = [c for c in rows[0] if c not in SCHEMA_2_ONLY]
    with old_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, keep, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    old = read_summary_csv(old_path)
    assert old.columns == set(keep)
    for a, b in zip(new.steps, old.steps, strict=True):
        assert b.key == a.key and b.total_s == a.total_s and b.errors == a.errors
        assert b.offered_rps is None and b.lag_growth_s is None
        assert b.flags == a.flags - {FLAG_SATURATED, "client_behind", "target_behind", "connection_cap"}
        assert b.saturated is False  # not measured then, so never claimed
    assert any(FLAG_ALL_FAILED in s.flags for s in old.steps)  # derived from the counts alone
    frame = summary_frame(old.steps)
    assert list(frame.columns) == list(SUMMARY_COLUMNS) and frame["offered_rps"].isna().all()
    assert frame["flags"].str.contains("errors").any()


def test_schema_2_summaries_read_with_the_bounds_missing(tmp_path) -> None:
    """A run written before the percentile bounds reads; the bounds come back None (NaN in the frame)."""
    steps = _steps(np.random.default_rng(9))
    run_dir = _write(tmp_path, steps)
    new = read_summary_csv(run_dir / "summary.csv")
    bounds = [c for pair in BOUND_COLUMNS.values() for c in pair]
    first = new.steps[0]  # 4 answers of 6: p90 and p99 have a lower bound only
    assert first.n_ok == 4 and first.lat_p99_lo_s is not None and first.lat_p99_hi_s is None
    assert first.lat_p99_lo_s <= first.lat_max_s
    with (run_dir / "summary.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    keep = [c for c in rows[0] if c not in bounds and c not in ("n_agree", "agreement")]
    old_path = tmp_path / "schema2.csv"
    with old_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, keep, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    old = read_summary_csv(old_path)
    assert old.columns == set(keep) and not old.columns & set(bounds)
    for a, b in zip(new.steps, old.steps, strict=True):
        # schema < 4 has no agreement: it reads as the digit's accuracy
        assert replace(a, **{c: None for c in bounds}, n_agree=a.n_correct, agreement=a.accuracy) == b
    frame = summary_frame(old.steps)
    assert list(frame.columns) == list(SUMMARY_COLUMNS) and frame[bounds].isna().all().all()
    assert load_run(old_path).schema_version == 2  # guessed without meta.json: flags, no bounds
    assert load_run(run_dir / "summary.csv").schema_version == 4


def test_a_hand_made_summary_gets_its_missing_counts_derived() -> None:
    row = {
        "target": "t",
        "mode": "sequential",
        "n_requests": "8",
        "trial": "0",
        "total_s": "1.5",
        "n_ok": "6",
        "accuracy": "0.5",
    }
    step = StepSummary.from_row(row)
    assert step.key == StepKey("t", "sequential", 8, 1, 0.0, 0)  # sequential: concurrency 1
    assert (step.errors, step.n_correct, step.flags) == (2, 4, frozenset({FLAG_ERRORS}))
    burst = StepSummary.from_row({**row, "mode": "concurrent", "errors_by_class": "timeout:3", "n_ok": ""})
    assert burst.key.concurrency == 8 and (burst.errors, burst.n_ok) == (3, 5)
    assert StepSummary.from_row({**row, "n_ok": "", "errors": ""}).errors == 0


def test_bad_summaries_are_refused_by_name(tmp_path) -> None:
    path = tmp_path / "summary.csv"
    path.write_text("target,mode\nt,m\n")
    with pytest.raises(ReadError, match="lacks columns .*n_requests"):
        read_summary_csv(path)
    path.write_text("target,mode,n_requests,trial,total_s,errors_by_class\nt,m,4,0,1.0,refused=3\n")
    with pytest.raises(ReadError, match="summary.csv: summary row t/m/N=4: bad errors_by_class"):
        read_summary_csv(path)
    with pytest.raises(ReadError, match="not found"):
        read_summary_csv(tmp_path / "none.csv")


def test_ok_latencies_pool_trials_per_step(tmp_path) -> None:
    rng = np.random.default_rng(8)
    steps = [make_step("a", "sequential", 6, trial, 0.01, rng, fail_every=3) for trial in (0, 1)]
    pooled = ok_latencies(read_requests_csv(_write(tmp_path, steps) / "requests.csv.gz"))
    expected = [r.latency_s for s in steps for r in s.records if r.ok]
    assert list(pooled) == [("a", "sequential", 6, 1, 0.0)]
    np.testing.assert_array_equal(pooled[("a", "sequential", 6, 1, 0.0)], expected)


def test_schema_3_requests_read_with_sample_and_agree_derived(tmp_path) -> None:
    """requests.csv.gz before schema 4 has no ``sample``/``agree``: -1, and agree from the digit."""

    header = "run_id,target,mode,n_requests,concurrency,rate,trial,seq,intended_s,sent_s,latency_s,service_s,"
    header += "status,error,error_detail,bytes_out,bytes_in,label,predicted\n"
    rows = [
        "r,t,sequential,3,1,0,1,0,0,0,0.01,0.01,200,,,10,10,7,7",
        "r,t,sequential,3,1,0,1,1,0,0,0.01,0.01,200,,,10,10,7,1",
        "r,t,sequential,3,1,0,1,2,0,0,0.01,0.01,500,http_5xx,boom,10,10,7,-1",
    ]
    path = tmp_path / "requests.csv.gz"
    path.write_bytes(gzip.compress((header + "\n".join(rows) + "\n").encode()))
    frame = read_requests_csv(path)
    assert frame is not None and frame["sample"].tolist() == [-1, -1, -1] and frame["agree"].tolist() == [1, 0, -1]
    (records,) = request_records(frame).values()
    assert [r.agree for r in records] == [1, 0, -1] and [r.correct for r in records] == [True, False, False]
