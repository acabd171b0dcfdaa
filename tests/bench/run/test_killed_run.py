"""End to end: a `bench run` killed with SIGKILL mid-step keeps its checkpointed records, and reads as abandoned.

One real run against the Flask stand-in (a rate step of 30 s at 20 req/s, loopback), killed
as soon as meta.json says a few hundred records of the step are on disk; then `bench report`
on it.  What is asserted is what was kept, not how fast the stand-in answered.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from bench.results import load_run, read_requests
from bench.results.partial import FLAG_PARTIAL
from tests.support.e2e import e2e_config, run_bench
from tests.support.paths import REPO


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory, trained_model):
    """(config, run folder, records the checkpoint had announced) of a run killed mid-step."""
    tmp = tmp_path_factory.mktemp("killed")
    config = e2e_config(tmp, trained_model)
    args = ["run", "greene-linserv", "--rate", "20", "--duration", "30", "--trials", "1", "--run-id", "killed"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "--config", str(config), *args, "--no-report", "-q"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    meta_path = tmp / "results" / "killed" / "meta.json"
    announced = 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                checkpoint = json.loads(meta_path.read_text()).get("checkpoint") or {}
            except (OSError, ValueError):
                checkpoint = {}
            if checkpoint.get("step", {}).get("mode") == "rate" and checkpoint.get("records_written", 0) >= 60:
                announced = int(checkpoint["records_written"])
                break
            time.sleep(0.2)
        assert proc.poll() is None, f"the run ended before it was killed: {proc.stderr.read()[-3000:]!r}"
        assert announced, "no checkpoint of the rate step within 60 s"
        os.kill(proc.pid, signal.SIGKILL)  # the bench process only: its stand-ins follow through their lifeline
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        proc.stderr.close()
    return config, meta_path.parent, announced


@pytest.mark.slow
def test_a_killed_run_keeps_every_checkpointed_record_and_reads_as_abandoned(killed_run):
    config, run_dir, announced = killed_run
    requests = read_requests(run_dir / "requests.csv.gz")
    rate_rows = requests[requests["mode"] == "rate"]
    assert len(rate_rows) >= announced  # every record the checkpoint announced (maybe one member more)
    assert len(rate_rows) < 600  # killed mid-step: not the whole step (20 req/s x 30 s)
    assert sorted(rate_rows["seq"]) == sorted(set(rate_rows["seq"]))

    run = load_run(run_dir)
    partial = [s for s in run.steps if FLAG_PARTIAL in s.flags]
    assert len(partial) == 1 and partial[0].key.mode == "rate"
    assert partial[0].n_ok + partial[0].errors == len(rate_rows)

    proc = run_bench(config, "report", str(run_dir), timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout}\nSTDERR:\n{proc.stderr[-5000:]}"
    said = proc.stdout + proc.stderr
    assert "abandoned" in said
    report = (run_dir.parents[1] / "reports" / "killed" / "report.md").read_text()
    assert FLAG_PARTIAL in report
