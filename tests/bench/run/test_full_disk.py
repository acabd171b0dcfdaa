"""A full disk while a run measures: the run stops, the targets are stopped, what was written stays readable.

The disk is made full at the file layer (requests.csv.gz's file object raises ENOSPC after
the first member), on the in-memory engine on virtual time: no real disk is filled.
"""

from __future__ import annotations

import errno
import io
import json
from pathlib import Path

import numpy as np
import pytest

from bench.results import RunWriter, read_requests
from bench.results import writer as writer_module
from bench.results.header import new_meta
from bench.results.writer import ResultsWriteError
from bench.run.runner import RunEvents, TargetOutcome, sweep_targets
from bench.run.trial_design import WITHIN_RUN
from loadgen.engines.memory_engine import MemoryEngine
from loadgen.engines.virtual_time import run_virtual
from loadgen.stats import SUMMARY_COLUMNS
from loadgen.sweep import SweepPlan, run_sweep
from tests.bench.run.test_runner_trials import LocalFake
from tests.support.loadgen import SingleWorker, digit_images

LABELS = np.random.default_rng(4).integers(0, 10, size=50)
IMAGES = digit_images(LABELS)


class FillingDisk(io.BytesIO):
    """Appends to the real file until ``room`` bytes are used, then raises ENOSPC (a partial write first)."""

    def __init__(self, path: Path, room: list[int]) -> None:
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
        return -1  # os.fsync is patched out


def test_a_full_disk_stops_the_run_and_keeps_what_was_written(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_module.os, "fsync", lambda fd: None)
    run_dir = tmp_path / "r"
    writer = RunWriter(run_dir, "r", SUMMARY_COLUMNS)
    room = [1000]  # the first step's member (header and 20 records, ~800 bytes) fits; the next does not
    original = writer.step_sink
    monkeypatch.setattr(
        writer, "step_sink", lambda key, **kw: original(key, opener=lambda p: FillingDisk(p, room), **kw)
    )
    plan = SweepPlan(n_requests=(20, 40), modes=("sequential", "concurrent"), trials=1, warmup=0, seed=3)
    targets = [LocalFake("a", []), LocalFake("b", [])]
    outcomes = [TargetOutcome(t.name) for t in targets]
    meta = new_meta(
        run_id="r", root=tmp_path, config_sha256="0", config_path="c", sweep=plan.describe(), targets=["a", "b"]
    )
    with pytest.raises(ResultsWriteError) as caught:
        run_virtual(
            sweep_targets(
                targets,
                outcomes,
                run_sweep=run_sweep,
                engine_factory=MemoryEngine.factory(SingleWorker(0.001)),
                plan=plan,
                images=IMAGES,
                labels=LABELS,
                writer=writer,
                meta=meta,
                events=RunEvents(),
                trial_design=WITHIN_RUN,
            )
        )
    writer.close()
    assert "disk is full" in str(caught.value) and "requests.csv.gz" in str(caught.value)
    a, b = outcomes
    assert a.status == "failed" and "disk is full" in a.message
    assert b.status == "pending"  # never started: the run stopped
    assert targets[0].log == [("start", "a"), ("stop", "a")] and targets[1].log == []
    kept = read_requests(run_dir / "requests.csv.gz")
    assert len(kept) >= 20 and kept["seq"].tolist()[:20] == list(range(20))  # the first step, whole
    assert a.steps >= 1  # its summary row was written before the disk filled


def test_a_meta_json_that_cannot_be_written_leaves_the_old_one_and_no_temp_file(tmp_path, monkeypatch):
    """The checkpoint's meta.json rewrite on a full disk: the previous meta.json stays, no meta.json.tmp."""
    target = tmp_path / "meta.json"
    writer_module.write_json_atomic(target, {"status": "running"})
    real_write_text = Path.write_text

    def full(self, text, *args, **kwargs):
        real_write_text(self, text[: len(text) // 2], *args, **kwargs)  # a partial write, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError) as caught:
        writer_module.write_json_atomic(target, {"status": "complete"})
    monkeypatch.undo()
    assert caught.value.errno == errno.ENOSPC
    assert json.loads(target.read_text()) == {"status": "running"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]
