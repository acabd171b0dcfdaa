"""End to end: `python -m bench run` against the real local stand-ins, then report and compare.

These start real servers (gunicorn + Flask, KServe ModelServer) on 127.0.0.1 with short
sweeps, in a temporary results/reports folder; the trained model is shared with the other
tests (the ``trained_model`` fixture). Also: killing one stand-in mid-run, and Ctrl-C.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from targets.process import proc_table
from tests.support.e2e import REPO, e2e_config, run_bench
from tests.support.synthetic_runs import scale_run

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, trained_model) -> Path:
    """bench.toml as shipped, with results/reports in tmp_path and the shared model folder."""
    return e2e_config(tmp_path, trained_model)


def _bench(config: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return run_bench(config, *args, timeout=timeout)


def _children(pid: int) -> list[int]:
    return [child for child, parent, _pgrp in proc_table() if parent == pid]


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _rows(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):  # not there yet, or a row half-written
        return pd.DataFrame(columns=["target"])


def test_run_all_report_compare(tmp_path, trained_model):
    config = _config(tmp_path, trained_model)
    t0 = time.perf_counter()
    proc = _bench(config, "run", "all", "--requests", "1,4,8", "--run-id", "e2e")
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout}\nSTDERR:\n{proc.stderr[-5000:]}"
    print(f"bench run all --requests 1,4,8: {wall:.1f} s wall")
    run_dir = tmp_path / "results" / "e2e"
    targets = ["greene-linserv", "k8s-ibm", "kubeflow-gcp", "kubeflow-ibm"]

    summary = pd.read_csv(run_dir / "summary.csv")
    assert len(summary) == 4 * 2 * 3
    assert list(dict.fromkeys(summary["target"])) == targets
    assert (summary["errors"] == 0).all()
    assert (summary["accuracy"] >= 0.75).all()  # 13 real test images per target and mode
    with gzip.open(run_dir / "requests.csv.gz", "rt") as fh:
        requests = pd.read_csv(fh)
    assert len(requests) == 4 * 2 * (1 + 4 + 8)
    assert (requests["latency_s"] > 0).all() and (requests["status"] == 200).all()
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["complete"] is True and meta["status"] == "complete"
    assert meta["target_errors"] == {}
    assert set(meta["targets"]) == set(targets)
    assert meta["engine"]["name"] and meta["model"]["torchscript_sha256"]
    assert meta["host"]["cpu_count"] >= 1 and meta["config"]["sha256"]
    for t in targets:
        assert "127.0.0.1" in meta["targets"][t]["base_url"]
    assert "No of Req" in proc.stdout and "kubeflow-ibm" in proc.stdout  # the Table-3-style table
    timing = meta["timing"]  # where the time went, labelled on the console
    assert 0 <= timing["model_s"] + timing["calibration_s"] + timing["targets_s"] <= timing["total_s"] <= wall
    assert timing["targets_s"] > 0 and "time taken: " in proc.stderr + proc.stdout
    assert "targets (start-up, sweep, stop)" in proc.stderr + proc.stdout and "wall time" not in proc.stderr
    assert "answers correct " in proc.stderr + proc.stdout and " accuracy 0." not in proc.stderr + proc.stdout
    assert "One trial per step" in proc.stderr and "--trials 3" in proc.stderr  # the default single trial

    report_dir = tmp_path / "reports" / "e2e"
    for name in (
        "table3.md",
        "report.md",
        "report.html",
        "figures/fig21_total_time.png",
        "figures/fig21_total_time.svg",
        "figures/latency_cdf.png",
        "figures/throughput.svg",
    ):
        assert (report_dir / name).is_file(), name
    first = (report_dir / "table3.md").read_text()
    first_md = (report_dir / "report.md").read_text()
    shutil.rmtree(report_dir)
    again = _bench(config, "report", "e2e", timeout=300)
    assert again.returncode == 0, again.stderr
    assert (report_dir / "table3.md").read_text() == first
    assert (report_dir / "report.md").read_text() == first_md

    same = _bench(config, "compare", "e2e", "e2e", "--fail-on-regression", "--format", "csv", timeout=300)
    # one trial per run: the gate cannot judge, even a run against itself, and says why (exit 3)
    assert same.returncode == 3, same.stderr
    assert "cannot judge" in same.stderr and "--trials 3" in same.stderr
    rows = pd.read_csv(pd.io.common.StringIO(same.stdout), comment="#")
    steps = rows[rows["level"] == "step"]
    assert len(steps) == 24 and (steps["ratio"] == 1.0).all()
    # one trial per run: no test (bench compare's sample is the trial), the ratio is shown
    assert set(steps["verdict"]) == {"too few trials"}

    scale_run(run_dir, tmp_path / "results" / "e2e-slow", 1.5)
    slow = _bench(config, "compare", "e2e", "e2e-slow", "--fail-on-regression", "--format", "csv", timeout=300)
    # the gate cannot judge one-trial runs: it says so and exits 3 rather than pass a 1.5x slow-down
    assert slow.returncode == 3, slow.stdout + slow.stderr
    assert "# warning: the target gate cannot judge" in slow.stdout
    allowed = _bench(
        config,
        "compare",
        "e2e",
        "e2e-slow",
        "--fail-on-regression",
        "--allow-inconclusive",
        "--format",
        "csv",
        timeout=300,
    )
    assert allowed.returncode == 0 and "passing anyway (--allow-inconclusive)" in allowed.stderr
    rows = pd.read_csv(pd.io.common.StringIO(slow.stdout), comment="#")
    steps = rows[rows["level"] == "step"]
    assert (steps["ratio"].round(6) == 1.5).all()
    assert set(steps["verdict_text"]) == {"too few trials (n=1): 1.50x slower"}


def _start_run(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def _wait_for_rows(proc: subprocess.Popen, summary: Path, target: str, rows: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"run ended early (exit {proc.returncode}):\n{out}\n{err[-3000:]}")
        if (_rows(summary)["target"] == target).sum() >= rows:
            return
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no {rows} rows for {target} within {timeout} s")


def _standin_groups(pid: int) -> list[int]:
    """Process groups of the stand-ins the bench process started (each is a session leader)."""
    return [kid for kid in _children(pid) if os.getpgid(kid) == kid and "gunicorn" in _cmdline(kid)]


def test_killed_standin_is_recorded_and_others_finish(tmp_path, trained_model):
    config = _config(tmp_path, trained_model)
    run_dir = tmp_path / "results" / "kill"
    proc = _start_run(
        config,
        "run",
        "greene-linserv",
        "k8s-ibm",
        "--requests",
        "1,2,4,8,16,32",
        "--modes",
        "sequential",
        "--run-id",
        "kill",
        "--engine",
        "aiohttp",
    )
    try:
        _wait_for_rows(proc, run_dir / "summary.csv", "greene-linserv", 2)
        groups = _standin_groups(proc.pid)
        assert len(groups) == 1, f"expected one stand-in process group, found {groups}"
        os.killpg(groups[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, f"{out}\n{err[-4000:]}"
    assert "greene-linserv" in err.split("problems with target(s):", 1)[1]
    summary = pd.read_csv(run_dir / "summary.csv")
    greene = summary[summary["target"] == "greene-linserv"]
    assert len(greene) >= 3  # the steps before the kill, plus the failing one(s)
    assert (greene["errors"].iloc[:2] == 0).all()
    assert greene["errors"].iloc[-1] > 0 and greene["errors_by_class"].iloc[-1].startswith(("refused", "reset"))
    k8s = summary[summary["target"] == "k8s-ibm"]
    assert len(k8s) == 6 and (k8s["errors"] == 0).all()  # the other target ran its whole sweep
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["complete"] is True  # the run itself completed...
    assert "greene-linserv" in meta["target_errors"]  # ...but names the target that died
    assert meta["outcomes"]["greene-linserv"]["status"] in ("died", "errors")
    assert meta["outcomes"]["k8s-ibm"]["status"] == "ok"
    assert not _group_alive(groups[0])


def test_ctrl_c_keeps_rows_marks_meta_and_stops_standins(tmp_path, trained_model):
    config = _config(tmp_path, trained_model)
    run_dir = tmp_path / "results" / "intr"
    proc = _start_run(
        config,
        "run",
        "greene-linserv",
        "--requests",
        "1,2,4,8,16,32,64",
        "--modes",
        "sequential",
        "--run-id",
        "intr",
        "--engine",
        "aiohttp",
        "--no-report",
    )
    try:
        _wait_for_rows(proc, run_dir / "summary.csv", "greene-linserv", 2)
        groups = _standin_groups(proc.pid)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, f"{out}\n{err[-4000:]}"
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["complete"] is False and meta["status"] == "interrupted"
    assert meta["outcomes"]["greene-linserv"]["status"] == "interrupted"
    rows = pd.read_csv(run_dir / "summary.csv")
    assert 2 <= len(rows) < 7
    assert groups and not any(_group_alive(g) for g in groups)
