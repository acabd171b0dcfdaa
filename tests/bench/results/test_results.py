"""results/<run-id>/ writer and reader: round trip, crash tolerance, refusing to overwrite."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from bench.results import (
    RUN_MARKERS,
    SHARDS_DIR,
    ResultsError,
    RunWriter,
    fresh_run_dir,
    holds_run,
    latest_run,
    load_run,
    read_requests,
    resolve_run,
    validate_run_id,
)
from bench.results.header import SCHEMA_VERSION, scrub
from ground.runmeta import RunMeta, RunStatus
from loadgen.records import RECORD_COLUMNS
from loadgen.stats import SUMMARY_COLUMNS, summarize
from tests.support.synthetic_runs import make_step, write_synthetic_run


def test_round_trip_summary_requests_meta(tmp_path):
    rng = np.random.default_rng(1)
    steps = [make_step("t1", "sequential", n, 0, 0.01, rng, fail_every=3) for n in (1, 4, 8)]
    with RunWriter(tmp_path / "r1", "r1", SUMMARY_COLUMNS) as writer:
        writer.write_meta(RunMeta(kind="serving", run_id="r1", schema_version=SCHEMA_VERSION))
        for step in steps:
            writer.append_summary(summarize(step))
            writer.append_requests(step.key, step.records)
    run = load_run(tmp_path / "r1")
    assert run.run_id == "r1" and run.schema_version == SCHEMA_VERSION
    assert list(run.summary.columns) == list(SUMMARY_COLUMNS)
    assert run.columns == {"run_id", *SUMMARY_COLUMNS}  # what the file holds
    assert run.summary["n_requests"].tolist() == [1, 4, 8]
    for step, (_, row) in zip(steps, run.summary.iterrows(), strict=False):
        expected = summarize(step)
        assert row["total_s"] == expected["total_s"]  # full float precision survives CSV
        assert row["lat_p99_s"] == pytest.approx(expected["lat_p99_s"], rel=0, abs=0)
        assert row["errors"] == expected["errors"]
        assert (row["errors_by_class"] if isinstance(row["errors_by_class"], str) else "") == expected[
            "errors_by_class"
        ]
    req = run.requests
    assert len(req) == 13
    assert list(req.columns) == [
        "run_id",
        "target",
        "mode",
        "n_requests",
        "concurrency",
        "rate",
        "trial",
        *RECORD_COLUMNS,
    ]
    flat = [r for s in steps for r in s.records]
    np.testing.assert_array_equal(req["latency_s"].to_numpy(), [r.latency_s for r in flat])
    assert req["error"].tolist() == [r.error for r in flat]
    assert req["predicted"].tolist() == [r.predicted for r in flat]


def test_requests_file_is_one_gzip_member_per_step(tmp_path):
    rng = np.random.default_rng(2)
    writer = RunWriter(tmp_path / "r", "r", SUMMARY_COLUMNS)
    for n in (2, 3):
        step = make_step("t", "concurrent", n, 0, 0.01, rng)
        writer.append_requests(step.key, step.records)
    writer.close()
    text = gzip.decompress((tmp_path / "r" / "requests.csv.gz").read_bytes()).decode()
    lines = text.splitlines()
    assert lines[0].startswith("run_id,target,mode") and len(lines) == 1 + 5
    assert sum(1 for line in lines if line.startswith("run_id")) == 1  # header once


def test_truncated_last_member_keeps_complete_rows(tmp_path):
    """A crash while appending a step must not lose the steps written before it."""
    rng = np.random.default_rng(3)
    writer = RunWriter(tmp_path / "r", "r", SUMMARY_COLUMNS)
    for n in (4, 8):
        step = make_step("t", "sequential", n, 0, 0.01, rng)
        writer.append_requests(step.key, step.records)
    writer.close()
    path = tmp_path / "r" / "requests.csv.gz"
    whole = path.read_bytes()
    path.write_bytes(whole[:-25])  # cut into the second member
    frame = read_requests(path)
    assert frame is not None and 4 <= len(frame) < 12
    assert frame["n_requests"].iloc[0] == 4


def test_writer_refuses_to_overwrite_and_bad_ids(tmp_path):
    RunWriter(tmp_path / "r", "r", SUMMARY_COLUMNS).close()
    with pytest.raises(ResultsError, match="already holds a run"):
        RunWriter(tmp_path / "r", "r", SUMMARY_COLUMNS)
    for bad in ("../x", "a/b", "", ".hidden", "x" * 101):
        with pytest.raises(ResultsError, match="run id"):
            validate_run_id(bad)


@pytest.mark.parametrize("marker", RUN_MARKERS)
def test_every_kind_of_run_is_refused_by_the_one_check(tmp_path, marker):
    """A load, tuning or pipeline run in the folder: the writer and fresh_run_dir both refuse it."""
    folder = tmp_path / "taken"
    folder.mkdir()
    assert not holds_run(folder)
    (folder / marker).write_text("x")
    assert holds_run(folder)
    with pytest.raises(ResultsError, match="already holds a run"):
        fresh_run_dir(tmp_path, "taken", "hpo")
    with pytest.raises(ResultsError, match="already holds a run"):
        RunWriter(folder, "taken", SUMMARY_COLUMNS)


def test_a_merge_may_write_beside_its_shards_but_nowhere_else_taken(tmp_path):
    folder = tmp_path / "clients"
    (folder / SHARDS_DIR).mkdir(parents=True)
    assert holds_run(folder) and not holds_run(folder, ignoring=(SHARDS_DIR,))
    RunWriter(folder, "clients", SUMMARY_COLUMNS, expected=(SHARDS_DIR,)).close()
    with pytest.raises(ResultsError, match="already holds a run"):  # now it holds the merged run too
        RunWriter(folder, "clients", SUMMARY_COLUMNS, expected=(SHARDS_DIR,))


def test_unknown_summary_column_is_an_error(tmp_path):
    with RunWriter(tmp_path / "r", "r", ("target", "mode")) as writer, pytest.raises(ResultsError, match="bogus"):
        writer.append_summary({"target": "t", "mode": "m", "bogus": 1})


def test_interrupted_run_keeps_rows_and_says_incomplete(tmp_path):
    run_dir = write_synthetic_run(tmp_path, "cut", ns=(1, 4), trials=1, complete=False)
    run = load_run(run_dir)
    assert run.meta.complete is False and run.meta.status is RunStatus.INTERRUPTED
    assert len(run.summary) == 4 * 2 * 2


def test_meta_scrub_drops_secrets_but_keeps_env_var_names():
    meta = {
        "targets": {
            "x": {
                "bearer_token_env": "MY_TOKEN",
                "token": "s3cr3t",
                "Authorization": "Bearer z",
                "cookie": "a=b",
                "base_url": "http://127.0.0.1:1",
            }
        }
    }
    cleaned = json.dumps(scrub(meta))
    assert "MY_TOKEN" in cleaned and "s3cr3t" not in cleaned and "Bearer z" not in cleaned and "a=b" not in cleaned


def test_latest_and_resolve(tmp_path):
    write_synthetic_run(tmp_path, "old", ns=(1,), trials=1)
    newer = write_synthetic_run(tmp_path, "new", ns=(1,), trials=1)
    meta = json.loads((newer / "meta.json").read_text())
    meta["started_at"] += 100
    (newer / "meta.json").write_text(json.dumps(meta))
    assert latest_run(tmp_path) == newer
    assert resolve_run("old", tmp_path) == tmp_path / "old"
    with pytest.raises(ResultsError, match="not found"):
        resolve_run("nope", tmp_path)
    with pytest.raises(ResultsError, match="no runs"):
        latest_run(tmp_path / "empty")


def test_load_run_from_summary_csv_only(tmp_path):
    run_dir = write_synthetic_run(tmp_path, "s", ns=(1, 4), trials=1)
    run = load_run(run_dir / "summary.csv")
    assert run.requests is None and run.run_id == "s" and len(run.summary) == 16
    (tmp_path / "junk.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ResultsError, match="lacks columns"):
        load_run(tmp_path / "junk.csv")
