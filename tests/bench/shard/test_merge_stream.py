"""`bench merge` streamed in bounded chunks: the same rows and records as the record-object merge,
a step past EXACT_RECORDS thinned and flagged, the share checks unchanged.

The shard runs are synthetic (tests/support/synthetic_shards.py: seeded columns written by the
real writer, no servers); the reference is a frozen copy of the old merge
(tests/support/legacy_merge.py). The chunks are made small, so steps start and end inside
chunks and span several of them.
"""

from __future__ import annotations

import gzip
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import bench.shard.step_frames as step_frames
import loadgen.record_columns as record_columns
from bench.report.timeline_stats import TIMELINE_COLUMNS, StepSpan, TimelineAccumulator
from bench.results import load_run, read_requests
from bench.results.chunks import iter_request_frames
from bench.results.digest import digest_requests
from bench.shard.merge import MergeError, merge_runs
from loadgen.stats import LATENCY_PERCENTILES, summarize
from loadgen.sweep import SweepPlan
from tests.support.legacy_merge import legacy_merge
from tests.support.synthetic_shards import TARGET, write_synthetic_shards

PLAN = SweepPlan(n_requests=(40, 301), modes=("concurrent", "rate"), rate_rps=500.0, warmup=0, trials=2)
SMALL_CHUNK = 3000  # bytes of CSV text: ~25 rows, so every step spans chunks and most chunks hold two steps
_ORDER = ["trial", "mode", "n_requests", "seq"]


@pytest.fixture(scope="module")
def two_shards(tmp_path_factory) -> list[Path]:
    return write_synthetic_shards(tmp_path_factory.mktemp("two"), PLAN, 2, chunk=100)


@pytest.fixture(scope="module")
def three_streamed(tmp_path_factory) -> list[Path]:
    """Three shards whose rows are in completion order (as a streamed step writes them)."""
    return write_synthetic_shards(tmp_path_factory.mktemp("three"), PLAN, 3, chunk=100, completion_order=True)


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch) -> None:
    monkeypatch.setattr(step_frames, "CHUNK_BYTES", SMALL_CHUNK)


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _assert_rows_equal(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert list(got) == list(want)
    different = {k: (got[k], want[k]) for k in want if not _same_value(got[k], want[k])}
    assert not different, f"{got['mode']} N={got['n_requests']} t{got['trial']}: {different}"


@pytest.mark.parametrize("which", ["two_shards", "three_streamed"])
def test_streamed_merge_equals_the_record_merge(which: str, request, tmp_path: Path) -> None:
    shards = request.getfixturevalue(which)
    want_rows, want_records = legacy_merge(shards, TARGET)
    result = merge_runs(shards, tmp_path / "merged")
    assert len(result.steps) == len(want_rows) == len(PLAN.steps(TARGET))
    for step, want in zip(result.steps, want_rows, strict=True):
        _assert_rows_equal(step.row, want)  # every column, to the last bit
        assert step.requests == step.key.n_requests == sum(s["n"] for s in step.shards)
    written = pd.read_csv(tmp_path / "merged" / "summary.csv", float_precision="round_trip")
    assert len(written) == len(want_rows)
    got = read_requests(tmp_path / "merged" / "requests.csv.gz")
    columns = list(want_records.columns)
    if which == "two_shards":  # shards written in seq order: the merged file is in the old order too
        pd.testing.assert_frame_equal(got[columns].reset_index(drop=True), want_records, check_dtype=False)
    else:  # completion order within each shard's block: the same rows, in another order
        steps = got.groupby(["trial", "mode", "n_requests"])
        assert any(not rows["seq"].is_monotonic_increasing for _, rows in steps)  # really not in seq order
        pd.testing.assert_frame_equal(
            got[columns].sort_values(_ORDER, kind="stable").reset_index(drop=True),
            want_records.sort_values(_ORDER, kind="stable").reset_index(drop=True),
            check_dtype=False,
        )


def test_readers_of_a_merged_run_in_completion_order(three_streamed: list[Path], tmp_path: Path) -> None:
    """Re-summarising, the digest (report's CDF, compare) and the timeline read the unsorted file
    as they read the sorted one."""
    want_rows, want_records = legacy_merge(three_streamed, TARGET)
    merge_runs(three_streamed, tmp_path / "merged")
    run = load_run(tmp_path / "merged")
    for step, want in zip(run.step_results(), want_rows, strict=True):
        _assert_rows_equal(summarize(step), want)
    digest = digest_requests(tmp_path / "merged" / "requests.csv.gz")
    assert digest is not None
    ok = want_records[want_records["error"] == ""]
    for (_target, mode, n, _c, _rate), latencies in digest.items():
        part = want_records[(want_records["mode"] == mode) & (want_records["n_requests"] == n)]
        assert latencies.sent == len(part) == 2 * n  # both trials pooled
        expected = ok[(ok["mode"] == mode) & (ok["n_requests"] == n)]["latency_s"].to_numpy()
        assert np.array_equal(np.sort(latencies.ok), np.sort(expected))

    spans = [
        StepSpan(
            (r["target"], r["mode"], r["n_requests"], r["concurrency"], r["rate"], r["trial"]),
            r["started_at"],
            r["total_s"],
        )
        for r in want_rows
    ]
    from_file, from_old = TimelineAccumulator(spans), TimelineAccumulator(spans)
    for frame in iter_request_frames(tmp_path / "merged" / "requests.csv.gz", TIMELINE_COLUMNS, chunk_bytes=4000):
        from_file.add(frame)
    from_old.add(want_records[list(TIMELINE_COLUMNS)])
    (a,), (b,) = from_file.finish(), from_old.finish()
    assert a.records == b.records == len(want_records)
    for name in ("offered", "achieved", "hist"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.errors.keys() == b.errors.keys() and all(np.array_equal(a.errors[k], b.errors[k]) for k in a.errors)


def test_a_merged_step_past_exact_records_is_thinned_and_flagged(
    two_shards: list[Path], tmp_path: Path, monkeypatch
) -> None:
    exact_rows, want_records = legacy_merge(two_shards, TARGET)  # every row held: the exact figures
    monkeypatch.setattr(record_columns, "EXACT_RECORDS", 200)
    result = merge_runs(two_shards, tmp_path / "merged")
    got = read_requests(tmp_path / "merged" / "requests.csv.gz")
    assert len(got) == len(want_records)  # the file keeps every record; only the summary is thinned
    for step, exact in zip(result.steps, exact_rows, strict=True):
        row = step.row
        flags = row["flags"].split(";")
        assert ("histogram" in flags) == (step.key.n_requests > 200)
        for name in ("n_ok", "errors", "errors_by_class", "n_correct", "n_agree", "bytes_out", "bytes_in"):
            assert row[name] == exact[name], name  # counts are exact, thinned or not
        assert row["lat_min_s"] == exact["lat_min_s"] and row["lat_max_s"] == exact["lat_max_s"]
        if "histogram" not in flags:
            _assert_rows_equal(row, exact)
            continue
        assert _same_value(row["send_lag_max_s"], exact["send_lag_max_s"])  # from the exact tally (NaN: closed loop)
        for _, suffix in LATENCY_PERCENTILES:
            assert row[f"lat_{suffix}_s"] == pytest.approx(exact[f"lat_{suffix}_s"], rel=1.001e-3), suffix
        assert row["lat_mean_s"] == pytest.approx(exact["lat_mean_s"], rel=1e-12)


def _rewrite(shard: Path, edit) -> None:
    frame = read_requests(shard / "requests.csv.gz")
    with gzip.open(shard / "requests.csv.gz", "wt", newline="") as fh:
        edit(frame).to_csv(fh, index=False)


def _rate_step(frame: pd.DataFrame) -> pd.Series:
    return (frame["mode"] == "rate") & (frame["n_requests"] == 301) & (frame["trial"] == 2)


@pytest.mark.parametrize(
    "edit, found",
    [
        (lambda f: f.assign(seq=np.where(_rate_step(f) & (f["seq"] == 7), 6, f["seq"])), 151),  # 6 twice, 7 lost
        (lambda f: f[~(_rate_step(f) & (f["seq"] == 7))], 150),  # one lost
        (lambda f: pd.concat([f, f[_rate_step(f) & (f["seq"] == 7)]]).sort_index(kind="stable"), 152),  # 7 twice
        (lambda f: f.assign(seq=np.where(_rate_step(f) & (f["seq"] == 7), 151, f["seq"])), 151),  # shard 1's
    ],
)
def test_a_shard_whose_records_are_not_its_share_is_refused(two_shards, tmp_path, edit, found) -> None:
    copies = []
    for path in two_shards:
        shutil.copytree(path, tmp_path / path.name)
        copies.append(tmp_path / path.name)
    _rewrite(copies[0], edit)
    with pytest.raises(MergeError) as info:
        merge_runs(copies, tmp_path / "m")
    assert str(info.value) == (
        f"shard 0 ({copies[0]}) has {found} records for step rate N=301 trial 2, not its share "
        "(requests 0 to 150 of 301)"
    )
    assert not (tmp_path / "m").exists()  # the steps merged before it are removed again


def test_a_record_column_that_is_not_numbers_is_refused_naming_it(two_shards, tmp_path) -> None:
    copies = []
    for path in two_shards:
        shutil.copytree(path, tmp_path / path.name)
        copies.append(tmp_path / path.name)
    _rewrite(copies[1], lambda f: f.assign(status=f["status"].astype(object).where(f["seq"] != 160, "oops")))
    with pytest.raises(MergeError, match=r"shard 1 .*requests.csv.gz column 'status' is not all numbers"):
        merge_runs(copies, tmp_path / "m")
    assert not (tmp_path / "m").exists()
