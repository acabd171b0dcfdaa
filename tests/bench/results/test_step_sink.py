"""Streamed steps on disk: StepSink's members, its checkpoints, a full disk, the partial row of a cut-short step."""

from __future__ import annotations

import errno
import gzip
import io
import zlib

import numpy as np
import pandas as pd
import pytest

from bench.results import RunWriter, load_run, read_requests
from bench.results import writer as writer_module
from bench.results.header import SCHEMA_VERSION
from bench.results.partial import FLAG_PARTIAL
from bench.results.writer import ROWS_PER_MEMBER, ResultsWriteError
from ground.runmeta import RunMeta
from loadgen.stats import SUMMARY_COLUMNS, summarize
from tests.support.synthetic_runs import make_step


def _members(path) -> int:
    data, count = path.read_bytes(), 0
    while data:
        d = zlib.decompressobj(wbits=31)
        d.decompress(data)
        data = d.unused_data
        count += 1
    return count


def _writer(tmp_path, name="r1") -> RunWriter:
    writer = RunWriter(tmp_path / name, name, SUMMARY_COLUMNS)
    writer.write_meta(RunMeta(kind="serving", run_id=name, schema_version=SCHEMA_VERSION))
    return writer


def _step(n=50, fail_every=4):
    return make_step("t1", "concurrent", n, 4, 0.01, np.random.default_rng(2), fail_every=fail_every)


def test_a_streamed_step_reads_back_as_the_same_rows_as_one_written_at_its_end(tmp_path):
    step = _step()
    with _writer(tmp_path, "whole") as whole:
        whole.append_requests(step.key, step.records)
    with _writer(tmp_path, "streamed") as streamed:
        sink = streamed.step_sink(step.key)
        records = list(step.records)
        for start in range(0, len(records), 7):
            sink.write(records[start : start + 7])
        sink.close()
        assert streamed.requests_written == len(records)
    a = read_requests(tmp_path / "whole" / "requests.csv.gz").drop(columns="run_id")
    b = read_requests(tmp_path / "streamed" / "requests.csv.gz").drop(columns="run_id")
    pd.testing.assert_frame_equal(a, b)


def test_members_are_bounded_by_time_and_by_count_and_each_is_checkpointed(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(writer_module.time, "monotonic", lambda: clock[0])
    seen = []
    step = _step(n=30, fail_every=0)
    with _writer(tmp_path) as writer:
        sink = writer.step_sink(step.key, on_checkpoint=lambda key, n, at, started: seen.append((key, n)))
        records = list(step.records)
        sink.write(records[:10])
        assert not writer.requests_path.exists()  # under both bounds: still buffered
        clock[0] += writer_module.CHECKPOINT_S
        sink.write(records[10:20])  # the time bound: one member, fsynced, checkpointed
        assert _members(writer.requests_path) == 1 and seen == [(step.key, 20)]
        assert len(read_requests(writer.requests_path)) == 20  # readable while the step goes on
        monkeypatch.setattr(writer_module, "ROWS_PER_MEMBER", 5)
        sink.write(records[20:26])  # the count bound
        sink.write(records[26:])
        sink.close()
    assert _members(writer.requests_path) == 3 and [n for _, n in seen] == [20, 26, 30]
    assert ROWS_PER_MEMBER == 20_000


class FullDisk(io.BytesIO):
    """A file that takes ``room`` more bytes (appended to the real file), then raises ENOSPC."""

    def __init__(self, path, room: list[int]) -> None:
        super().__init__()
        self.path, self.room = path, room

    def write(self, data):
        take = min(len(data), self.room[0])
        with self.path.open("ab") as real:
            real.write(data[:take])
        self.room[0] -= take
        if take < len(data):
            raise OSError(errno.ENOSPC, "No space left on device")
        return take

    def fileno(self):
        return -1  # os.fsync is patched out in the test


def test_a_full_disk_raises_a_clear_error_and_keeps_what_was_written(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_module.os, "fsync", lambda fd: None)
    step = _step(n=60, fail_every=0)
    records = list(step.records)
    with _writer(tmp_path) as writer:
        path = writer.requests_path
        room = [10**9]
        sink = writer.step_sink(step.key, opener=lambda p: FullDisk(p, room))
        sink.write(records[:20])
        sink.flush()
        room[0] = len(path.read_bytes()) // 3  # the next member does not fit
        sink.write(records[20:40])
        with pytest.raises(ResultsWriteError) as caught:
            sink.flush()
        assert "disk is full" in str(caught.value) and str(path) in str(caught.value)
        with pytest.raises(ResultsWriteError):  # nothing more after a failure
            sink.write(records[40:])
        sink.close()  # quiet after a failure
    kept = read_requests(path)
    # every flushed record, then the complete lines of the truncated member (the readers keep those)
    assert 20 <= len(kept) < 40 and kept["seq"].tolist() == [r.seq for r in records[: len(kept)]]
    with gzip.open(path) as handle, pytest.raises((EOFError, gzip.BadGzipFile)):
        handle.read()  # the truncated tail really is there


def test_a_step_cut_short_reads_back_with_a_partial_row_from_its_records(tmp_path):
    done, cut = _step(n=40), _step(n=80, fail_every=5)
    cut = type(cut)(key=type(cut.key)(**{**vars(cut.key), "trial": 2}), records=cut.records, total_s=1.0, started_at=0)
    with _writer(tmp_path) as writer:
        writer.append_summary(summarize(done))
        writer.append_requests(done.key, done.records)
        sink = writer.step_sink(cut.key)
        sink.write(list(cut.records)[:50])
        sink.flush()  # then the process is killed: no summary row for it
        meta = RunMeta(kind="serving", run_id="r1", schema_version=SCHEMA_VERSION)
        meta.details["checkpoint"] = {"step": vars(cut.key), "records_written": 50}
        writer.write_meta(meta)
    run = load_run(tmp_path / "r1", with_requests=False)
    assert len(run.steps) == 2
    partial = run.steps[1]
    assert partial.key == cut.key and FLAG_PARTIAL in partial.flags
    kept = list(cut.records)[:50]
    assert partial.n_ok == sum(r.ok for r in kept) and partial.errors == sum(not r.ok for r in kept)
    assert partial.lat_p50_s == pytest.approx(float(np.median([r.latency_s for r in kept if r.ok])))
    assert FLAG_PARTIAL not in run.steps[0].flags
