"""Run metadata as one typed record (ground.runmeta): round trip, one finish, every old status word."""

from __future__ import annotations

import json

import pytest

from bench.results import read_meta, write_meta_file
from bench.results.header import SCHEMA_VERSION, new_meta, run_header
from ground.runmeta import (
    KIND_HPO,
    KIND_PIPELINE,
    LEGACY_STATUS,
    MetaError,
    RunMeta,
    RunStatus,
    parse_status,
    read_run_meta,
    utc_iso,
)


def test_a_written_meta_reads_back_as_the_same_record(tmp_path) -> None:
    meta = new_meta(
        run_id="r",
        root=tmp_path,
        config_sha256="ab",
        config_path="bench.toml",
        sweep={"n_requests": [1, 4]},
        targets=["a", "b"],
        load_at_start={"load": [0.1] * 3, "n_cpus": 2},
    )
    meta.details["client_ceiling"] = {"engine": "fast", "rps_by_concurrency": {"1": 2500.0}}
    (tmp_path / "r").mkdir()
    write_meta_file(tmp_path / "r", meta)
    running = read_meta(tmp_path / "r")
    assert running == meta and running.status is RunStatus.RUNNING and running.schema_version == SCHEMA_VERSION
    meta.finish(RunStatus.FAILED, error="ValueError: boom", now=1_767_225_600.0)
    write_meta_file(tmp_path / "r", meta)
    on_disk = json.loads((tmp_path / "r" / "meta.json").read_text())
    # the keys readers have always used, in the vocabulary of now
    assert (on_disk["status"], on_disk["complete"], on_disk["finished_utc"], on_disk["error"]) == (
        "failed",
        False,
        "2026-01-01T00:00:00Z",
        "ValueError: boom",
    )
    assert on_disk["targets_order"] == ["a", "b"] and on_disk["run_id"] == "r" and on_disk["kind"] == "serving"
    assert read_meta(tmp_path / "r") == meta


@pytest.mark.parametrize("kind", [KIND_HPO, KIND_PIPELINE])
def test_tuning_and_pipeline_runs_share_the_header_and_the_finish(tmp_path, kind: str) -> None:
    meta = run_header(kind=kind, run_id="x", root=tmp_path, extra_packages=("optuna",), totals={})
    assert meta.kind == kind and meta.versions.keys() >= {"optuna", "numpy"} and meta.writer["pid"] > 0
    meta.finish(RunStatus.COMPLETE, error="ignored when complete")
    assert meta.complete and meta.error is None and meta.finished_utc == utc_iso(meta.finished_at)
    assert RunMeta.from_json(json.loads(json.dumps(meta.to_json()))) == meta


def test_finish_accepts_only_a_final_status() -> None:
    meta = RunMeta(kind="serving", run_id="r")
    for status in (RunStatus.RUNNING, RunStatus.ABANDONED, RunStatus.UNKNOWN):
        with pytest.raises(ValueError, match="finishes complete, failed or interrupted"):
            meta.finish(status)
    meta.finish(RunStatus.INTERRUPTED, error="interrupted (Ctrl-C or SIGTERM)")
    assert meta.status is RunStatus.INTERRUPTED and meta.incomplete and not meta.complete


def test_details_cannot_shadow_the_header() -> None:
    with pytest.raises(ValueError, match="header keys"):
        RunMeta(kind="serving", run_id="r", details={"status": "ok"})


# Every status word the four old vocabularies wrote: load runs, tuning, local and remote pipelines.
OLD_WORDS = [
    ("running", RunStatus.RUNNING, None),
    ("complete", RunStatus.COMPLETE, None),
    ("interrupted", RunStatus.INTERRUPTED, None),
    ("crashed", RunStatus.FAILED, None),
    ("error: RuntimeError: no trial", RunStatus.FAILED, "RuntimeError: no trial"),
    ("ok", RunStatus.COMPLETE, None),
    ("failed", RunStatus.FAILED, None),
    ("timeout", RunStatus.FAILED, "the wait for the run timed out"),
]


@pytest.mark.parametrize(("word", "status", "error"), OLD_WORDS)
def test_every_old_status_word_reads_into_the_one_vocabulary(word: str, status: RunStatus, error: str | None) -> None:
    meta = RunMeta.from_json({"run_id": "old", "status": word, "complete": word in ("complete", "ok")})
    assert meta.status is status and meta.error == error
    assert meta.recorded_status == ("" if word == status.value else word)  # the word on disk, when it differs
    assert meta.to_json()["status"] == status.value


def test_legacy_words_are_mapped_in_one_table_and_an_error_key_wins() -> None:
    assert set(LEGACY_STATUS) == {"ok", "crashed", "error", "timeout"}
    remote = RunMeta.from_json({"status": "timeout", "error": "run 7 still RUNNING after 60 s"})
    assert remote.status is RunStatus.FAILED and remote.error == "run 7 still RUNNING after 60 s"


def test_no_status_or_an_unknown_word_reads_as_unknown_not_refused() -> None:
    assert parse_status(None, True) == (RunStatus.COMPLETE, "")
    assert parse_status(None, False) == (RunStatus.RUNNING, "")  # never finalised
    assert parse_status("", None)[0] is RunStatus.UNKNOWN
    weird = RunMeta.from_json({"status": "paused"})
    assert weird.status is RunStatus.UNKNOWN and "'paused'" in weird.status_reason and weird.incomplete
    nothing = RunMeta.from_json({}, default_run_id="folder")
    assert nothing.run_id == "folder" and nothing.kind == "serving" and not nothing.incomplete


def test_reading_a_file_names_a_broken_one(tmp_path) -> None:
    assert read_run_meta(tmp_path / "meta.json") is None
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(MetaError, match="meta.json is not valid JSON"):
        read_run_meta(tmp_path / "meta.json")
    (tmp_path / "meta.json").write_text("[1, 2]")
    with pytest.raises(MetaError, match="JSON object, not list"):
        read_run_meta(tmp_path / "meta.json")
