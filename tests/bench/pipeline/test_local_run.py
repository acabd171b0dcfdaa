"""The KFP v2 pipeline (issue 8, local slice): compile, a tiny local run, a forced failure.

The local runs use kfp.local's SubprocessRunner with this interpreter: real components,
real training/export, a real KServe stand-in on loopback.  No Kubeflow cluster is used.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from bench.config import parse_config
from bench.console import Console
from bench.pipeline.definition import STAGES
from bench.pipeline.local_run import (
    STAGE_COLUMNS,
    STAGES_FILE,
    compile_pipeline,
    run_pipeline,
)
from models.pipeline.timing import read_rows, stage_timer

TINY = {"trials": 2, "tune_epochs": 1, "epochs": 1, "train_size": 1000, "test_size": 200, "smoke_requests": 4}


def _config(tmp_path: Path):
    return parse_config('[paths]\nresults_dir = "results"\nreports_dir = "reports"\n', tmp_path)


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / STAGES_FILE, newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == STAGE_COLUMNS
        return list(reader)


def test_compiled_yaml_names_the_five_components(tmp_path: Path) -> None:
    path = compile_pipeline(tmp_path / "sub" / "pipeline.yaml")
    doc = yaml.safe_load(path.read_text())
    assert sorted(doc["components"]) == sorted(f"comp-{s}" for s in STAGES)
    tasks = doc["root"]["dag"]["tasks"]
    assert set(tasks) == set(STAGES)
    # artifacts flow as KFP artifacts: train's model feeds export, export's model feeds serve and smoke
    assert tasks["export"]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]["producerTask"] == "train"
    for stage in ("serve", "smoke"):
        assert tasks[stage]["inputs"]["artifacts"]["exported"]["taskOutputArtifact"]["producerTask"] == "export"
    assert "serve" in tasks["smoke"]["dependentTasks"]


def test_stage_timer_records_ok_and_failed_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    with stage_timer(str(path), "a"):
        pass
    with pytest.raises(RuntimeError, match="'b'"), stage_timer(str(path), "b", fail_stage="b"):
        pass
    rows = read_rows(path)
    assert [(r["stage"], r["status"]) for r in rows] == [("a", "ok"), ("b", "failed")]
    assert all(r["end"] >= r["start"] and r["seconds"] >= 0 for r in rows)


def test_bad_input_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path)
    quiet = Console(quiet=True)
    assert run_pipeline(config, pipeline="nope", run_id="x1", console=quiet) == 2
    assert run_pipeline(config, pipeline="servebench", run_id="x2", console=quiet, settings={"epoch": 1}) == 2
    assert run_pipeline(config, pipeline="servebench", run_id="../x", console=quiet) == 2


@pytest.mark.slow
@pytest.mark.timeout(480)  # kfp.local starts TF in every component: minutes on a busy 2-core machine
def test_local_run_times_every_stage(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert run_pipeline(config, pipeline="servebench", run_id="ok", console=Console(quiet=True), settings=TINY) == 0
    run_dir = config.results_dir / "ok"
    rows = _rows(run_dir)
    assert [r["stage"] for r in rows] == [*STAGES, "total"]
    assert all(r["status"] == "ok" and float(r["seconds"]) > 0 and r["pipeline"] == "servebench" for r in rows)
    stage_sum = sum(float(r["seconds"]) for r in rows[:-1])
    assert float(rows[-1]["seconds"]) >= stage_sum
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["kind"] == "pipeline" and meta["complete"] is True and meta["failed_stage"] is None
    # the exported artifact lives in the KFP pipeline root, not in a side folder
    assert list((run_dir / "kfp").glob("*/export/exported/savedmodel/mnist/1/saved_model.pb"))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_forced_failure_names_the_stage_and_keeps_earlier_rows(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = _config(tmp_path)
    rc = run_pipeline(
        config,
        pipeline="servebench",
        run_id="bad",
        console=Console(quiet=True),
        settings={**TINY, "fail_stage": "train"},
    )
    assert rc == 1
    out, err = capsys.readouterr()
    assert "stage 'train' failed" in err
    # kfp.local's task output goes to kfp.log (colour codes stripped), not to our stdout
    log = (config.results_dir / "bad" / "kfp.log").read_text()
    assert "forced failure requested by fail_stage: stage 'train'" in log and "\x1b[" not in log
    assert "Task" not in out and "INFO -" not in out
    rows = _rows(config.results_dir / "bad")
    assert [(r["stage"], r["status"]) for r in rows] == [("tune", "ok"), ("train", "failed"), ("total", "failed")]
    assert float(rows[0]["seconds"]) > 0
    meta = json.loads((config.results_dir / "bad" / "meta.json").read_text())
    assert meta["failed_stage"] == "train" and meta["complete"] is False and meta["status"] == "failed"


def test_cli_compiles_and_refuses_an_unknown_pipeline(tmp_path: Path, repo_root: Path, capsys) -> None:
    from bench.cli import main

    out = tmp_path / "pipeline.yaml"
    assert main(["--config", str(repo_root / "bench.toml"), "pipeline", "compile", "-o", str(out)]) == 0
    assert {f"comp-{stage}" for stage in STAGES} <= set(yaml.safe_load(out.read_text())["components"])
    config = tmp_path / "bench.toml"
    config.write_text(
        (repo_root / "bench.toml").read_text()
        + f'\n[paths]\nresults_dir = "{tmp_path / "results"}"\nreports_dir = "{tmp_path / "reports"}"\n'
    )
    assert main(["--config", str(config), "run", "pipeline", "--pipeline", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ctrl_c_keeps_stage_rows_marks_meta_and_leaves_no_process(tmp_path: Path, repo_root: Path) -> None:
    """Ctrl-C (SIGINT to the terminal's process group) mid-pipeline: exit 130, rows kept, nothing left running."""
    import os
    import signal
    import subprocess
    import sys
    import time

    config = tmp_path / "bench.toml"
    config.write_text('[paths]\nresults_dir = "results"\nreports_dir = "reports"\n')
    run_dir = tmp_path / "results" / "intr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "--config", str(config), "run", "pipeline", "--run-id", "intr", "--no-report"],
        cwd=repo_root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not read_rows(run_dir / "stage_timings.jsonl") and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.2)
        assert read_rows(run_dir / "stage_timings.jsonl"), "tune never finished"
        time.sleep(3.0)  # kfp.local starts the train task (~2 s), then its body runs ~10 s
        os.killpg(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted during stage 'train'" in err
    rows = _rows(run_dir)
    # SIGINT lands in train's body (its timer writes a failed row) or in kfp.local's start-up of
    # that task (no row yet); either way tune's row is kept and the run is marked interrupted.
    stages = [(r["stage"], r["status"]) for r in rows]
    assert stages in (
        [("tune", "ok"), ("train", "failed"), ("total", "interrupted")],
        [("tune", "ok"), ("total", "interrupted")],
    ), stages
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "interrupted" and meta["complete"] is False and meta["failed_stage"] == "train"
    # the whole group, kfp's task processes included, is gone (zombies awaiting their reaper aside)
    deadline = time.monotonic() + 10
    while (alive := _live_group_members(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive == [], alive


def _live_group_members(pgid: int) -> list[str]:
    """``pid state cmd`` of the processes in group ``pgid`` that are not zombies."""
    import subprocess

    out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat=,args="], capture_output=True, text=True, check=True).stdout
    return [
        line.strip()[:200]
        for line in out.splitlines()
        if line.split()[1] == str(pgid) and not line.split()[2].startswith("Z")
    ]
