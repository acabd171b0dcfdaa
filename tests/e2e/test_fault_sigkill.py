"""Fault tests: SIGKILL servebench mid-work; none of its processes may survive it.

SIGKILL runs no ``finally``, no ``atexit`` hook and no signal handler, so this is the case
only the lifeline watchdog (targets/lifeline.py) covers. Each test starts a real
``python -m bench run | serve | ui`` on loopback with a unique environment variable, which
every process it starts inherits (watchdogs, gunicorn masters and workers, KServe servers
and workers), so the whole tree is found by that marker in /proc/PID/environ, also after
the kill re-parents it. Then: SIGKILL, and a bounded poll until no marked process is left.
For `bench run`, `bench report` must then call the run ``abandoned``.

The kill-to-gone times are printed (``pytest -s``); they are not asserted beyond the bound,
because the machine may be shared.

Which command meets which stand-in: the lifeline is armed where a stand-in starts
(targets/lifeline.py), the same code under every command, so `bench run` is killed with each
of the four targets (one gunicorn, gunicorn replicas, KServe with one and with two workers),
and `bench serve` and `bench ui` -- whose own process trees differ -- with the stand-ins
that start the most processes of each server family (serve: k8s-ibm and kubeflow-ibm) or
one of them (ui: greene-linserv). A KServe start costs 10-30 s of imports on two cores, so
the full command x target matrix would add about a minute and check nothing new.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from targets.process import proc_table
from tests.support.e2e import copy_calibration
from tests.support.paths import REPO

pytestmark = pytest.mark.slow

MARKER_VAR = "SERVEBENCH_FAULT_TEST"
GONE_WITHIN_S = 15.0  # every process of the killed command must be gone within this
READY_WITHIN_S = 300.0  # start-up on a loaded 2-core machine (KServe imports TensorFlow)
TARGETS = ["greene-linserv", "k8s-ibm", "kubeflow-gcp", "kubeflow-ibm"]
#: What each target's stand-in looks like in a command line (proves we found its processes).
STANDIN_SIGN = {
    "greene-linserv": "gunicorn",
    "k8s-ibm": "gunicorn",
    "kubeflow-gcp": "targets.kserve.server.main",
    "kubeflow-ibm": "targets.kserve.server.main",
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, trained_model) -> Path:
    """bench.toml as shipped with the shared model; results/reports in one folder for the module
    (so the client calibration is measured at most once and reused by every `bench run`)."""
    folder = tmp_path_factory.mktemp("fault")
    text = (REPO / "bench.toml").read_text()
    text, n = re.subn(r"(?m)^artifacts_dir = .*$", f'artifacts_dir = "{trained_model.dir}"', text)
    assert n == 1, "bench.toml's artifacts_dir line changed; update this test"
    text += '\n[paths]\nresults_dir = "results"\nreports_dir = "reports"\n'
    (folder / "bench.toml").write_text(text)
    copy_calibration(folder / "results")  # the session's, measured at most once
    return folder


def _marked(marker: str) -> set[int]:
    """Live (non-zombie) processes whose environment carries ``MARKER_VAR=marker``."""
    needle = f"{MARKER_VAR}={marker}".encode()
    found = set()
    for pid, _ppid, _pgrp in proc_table():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.add(pid)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _start(workdir: Path, *args: str, marker: str, stderr_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, MARKER_VAR: marker, "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "--config", str(workdir / "bench.toml"), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr_path.open("w"),
        text=True,
    )


def _wait_for_stdout(proc: subprocess.Popen[str], pattern: str, stderr_path: Path) -> str:
    deadline = time.monotonic() + READY_WITHIN_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"exited {proc.wait()} before printing {pattern!r}:\n{stderr_path.read_text()[-3000:]}")
        if re.search(pattern, line):
            return line
    pytest.fail(f"no {pattern!r} within {READY_WITHIN_S} s:\n{stderr_path.read_text()[-3000:]}")


def _wait_for_row(proc: subprocess.Popen[str], summary: Path, target: str, stderr_path: Path) -> None:
    """Until summary.csv has a row of ``target``: it is started and being measured."""
    deadline = time.monotonic() + READY_WITHIN_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"run ended (exit {proc.returncode}) before measuring {target}:\n{stderr_path.read_text()[-3000:]}"
            )
        try:
            if any(line.split(",", 2)[1] == target for line in summary.read_text().splitlines()[1:]):
                return
        except (OSError, IndexError):
            pass
        time.sleep(0.1)
    pytest.fail(f"no row of {target} within {READY_WITHIN_S} s:\n{stderr_path.read_text()[-3000:]}")


def _kill_and_time(proc: subprocess.Popen[str], marker: str, what: str, sign: str) -> float:
    """SIGKILL ``proc``; seconds until no process with the marker is left (fails past the bound)."""
    tree = _marked(marker) - {proc.pid}
    assert tree, f"{what}: no stand-in process found by the marker"
    assert any(sign in _cmdline(pid) for pid in tree), f"{what}: no {sign!r} process in {sorted(tree)}"
    started = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    try:
        while (left := _marked(marker)) and time.monotonic() - started < GONE_WITHIN_S:
            time.sleep(0.02)
        took = time.monotonic() - started
        assert not left, f"{what}: {len(left)} process(es) alive {GONE_WITHIN_S} s after SIGKILL: " + "; ".join(
            f"{pid} {_cmdline(pid)[:100]}" for pid in sorted(left)
        )
    finally:
        for pid in _marked(marker):  # never leave a failed test's processes behind
            os.kill(pid, signal.SIGKILL)
    print(f"\n{what}: {len(tree)} processes gone {took:.2f} s after SIGKILL (load {_loadavg()})")
    return took


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@pytest.mark.parametrize("target", TARGETS)
def test_sigkill_of_bench_run_leaves_nothing_and_the_run_is_abandoned(workdir, target, tmp_path) -> None:
    marker, run_id = uuid.uuid4().hex, f"sigkill-{target}"
    stderr_path = tmp_path / "stderr.txt"
    proc = _start(
        workdir,
        "run",
        target,
        "--requests",
        "1,2,4,8,16,32,64,128,256,512",
        "--modes",
        "sequential",
        "--run-id",
        run_id,
        "--no-report",
        marker=marker,
        stderr_path=stderr_path,
    )
    run_dir = workdir / "results" / run_id
    try:
        _wait_for_row(proc, run_dir / "summary.csv", target, stderr_path)
        _kill_and_time(proc, marker, f"bench run {target}", STANDIN_SIGN[target])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    on_disk = json.loads((run_dir / "meta.json").read_text())
    assert on_disk["status"] == "running"  # what the killed writer left...
    assert on_disk["outcomes"][target]["status"] == "running"  # ...naming the target it was measuring
    report = subprocess.run(
        [sys.executable, "-m", "bench", "--config", str(workdir / "bench.toml"), "report", run_id],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr
    assert f"run {run_id} was abandoned while measuring target {target}" in report.stderr
    md = (workdir / "reports" / run_id / "report.md").read_text()
    assert "abandoned: the run's process ended without finishing it" in md  # the run facts table's status row
    assert f"run {run_id} was abandoned while measuring target {target}" in md


@pytest.mark.parametrize("target", ["k8s-ibm", "kubeflow-ibm"])
def test_sigkill_of_bench_serve_leaves_nothing(workdir, target, tmp_path) -> None:
    marker, stderr_path = uuid.uuid4().hex, tmp_path / "stderr.txt"
    proc = _start(workdir, "serve", target, marker=marker, stderr_path=stderr_path)
    try:
        _wait_for_stdout(proc, r"is serving at http://127\.0\.0\.1:\d+", stderr_path)
        _kill_and_time(proc, marker, f"bench serve {target}", STANDIN_SIGN[target])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("target", ["greene-linserv"])
def test_sigkill_of_bench_ui_leaves_nothing(workdir, target, tmp_path) -> None:
    marker, stderr_path = uuid.uuid4().hex, tmp_path / "stderr.txt"
    proc = _start(workdir, "ui", "--target", target, "--port", "0", marker=marker, stderr_path=stderr_path)
    try:
        _wait_for_stdout(proc, r"digit page for .*http://127\.0\.0\.1:\d+", stderr_path)
        _kill_and_time(proc, marker, f"bench ui --target {target}", STANDIN_SIGN[target])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
