"""Lifecycle and CLI: failures mid-start, `bench serve` interrupted, `bench targets`/`manifests`.

The promise under test: whatever happens (a stand-in that cannot boot, Ctrl-C, SIGTERM),
no process is left behind, and failures say why (the stand-in's log tail).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from targets.base import TargetContext, TargetError
from targets.process import live_processes
from targets.registry import build_target
from targets.spec import TargetSpec
from tests.support.targets import descendants, listening_addresses

TABLES = """
[targets.linserv]
adapter = "flask"
workers = 2

[targets.cluster]
adapter = "k8s"
replicas = 3
model_loading = "startup"

[targets.far-away]
adapter = "k8s"
endpoint = "http://203.0.113.7:80"
host_header = "mnist.example.com"
bearer_token_env = "SB_NOT_SET_TOKEN"
"""


def _cli(args: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}  # rich wraps tables to the terminal width
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env, **kwargs
    )


def _corrupt_artifacts(tmp_path: Path) -> Path:
    folder = tmp_path / "bad-artifacts"
    (folder / "torchscript").mkdir(parents=True)
    (folder / "torchscript" / "model.pt").write_bytes(b"PK\x03\x04 this is not a TorchScript archive")
    return folder


@pytest.mark.parametrize("adapter", ["flask", "k8s"])
@pytest.mark.slow
def test_standin_failing_mid_start_raises_with_log_tail_and_leaves_nothing(adapter, tmp_path) -> None:
    before = descendants(os.getpid())
    ctx = TargetContext(artifacts_dir=_corrupt_artifacts(tmp_path), log_dir=tmp_path / "logs", ready_timeout_s=60)
    target = build_target(TargetSpec("broken", adapter, {"model_loading": "startup"}), ctx)
    started = time.monotonic()
    with pytest.raises(TargetError) as info:
        asyncio.run(target.start())
    message = str(info.value)
    assert "target 'broken'" in message and "before it was ready" in message
    assert "--- last lines of" in message and "Worker failed to boot" in message
    assert time.monotonic() - started < 60
    assert not target.processes and not live_processes()
    assert descendants(os.getpid()) - before == set()


def test_missing_model_is_a_clear_error_before_spawning(tmp_path) -> None:
    ctx = TargetContext(artifacts_dir=tmp_path / "nothing", log_dir=tmp_path / "logs")
    target = build_target(TargetSpec("t", "flask", {}), ctx)
    with pytest.raises(TargetError, match=r"TorchScript model not found at .*nothing.*bench train"):
        asyncio.run(target.start())
    assert not live_processes()


def test_bench_targets_lists_local_and_remote(tmp_path, repo_root) -> None:
    (tmp_path / "bench.toml").write_text(TABLES)
    result = _cli(["--config", str(tmp_path / "bench.toml"), "targets"], cwd=repo_root)
    assert result.returncode == 0, result.stderr
    lines = {
        line.split()[1]: line for line in result.stdout.splitlines() if re.match(r"^\W+\s*\S", line) and "│" in line
    }
    assert "(started on demand)" in lines["linserv"] and "local" in lines["linserv"]
    assert "replicas=3" in lines["cluster"]
    assert "remote" in lines["far-away"] and "http://203.0.113.7:80" in lines["far-away"]


def test_bench_manifests_prints_and_writes(tmp_path, repo_root) -> None:
    (tmp_path / "bench.toml").write_text(TABLES)
    config = ["--config", str(tmp_path / "bench.toml")]
    printed = _cli([*config, "manifests", "linserv"], cwd=repo_root)
    assert printed.returncode == 0, printed.stderr
    assert "# --- Dockerfile ---" in printed.stdout and "proxy_pass http://127.0.0.1:8000" in printed.stdout
    assert "--bind 127.0.0.1:8000 --workers 2" in printed.stdout
    out = tmp_path / "out"
    written = _cli([*config, "manifests", "cluster", "-o", str(out)], cwd=repo_root)
    assert written.returncode == 0, written.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "Dockerfile",
        "deployment.yaml",
        "model-pvc.yaml",
        "service.yaml",
        "train-configmap.yaml",
        "train-job.yaml",
    ]  # + training (k8s)
    assert "replicas: 3" in (out / "deployment.yaml").read_text()


def test_bench_config_errors_name_target_and_key(tmp_path, repo_root) -> None:
    (tmp_path / "bench.toml").write_text(TABLES.replace("replicas = 3", "replica = 3"))
    result = _cli(["--config", str(tmp_path / "bench.toml"), "targets"], cwd=repo_root)
    assert result.returncode == 2
    assert "targets.cluster.replica" in result.stderr and "did you mean 'replicas'" in result.stderr
    result = _cli(["--config", str(tmp_path / "bench.toml"), "serve", "nope"], cwd=repo_root)
    assert result.returncode == 2 and "targets.nope" in result.stderr


def _serve_config(tmp_path: Path, repo_root: Path, trained_model) -> Path:
    """The repo's bench.toml with the artifacts folder made absolute (same model config)."""
    text = (repo_root / "bench.toml").read_text()
    text, n = re.subn(r"(?m)^artifacts_dir = .*$", f'artifacts_dir = "{trained_model.dir}"', text)
    assert n == 1
    path = tmp_path / "bench.toml"
    path.write_text(text)
    return path


def _start_serve(config: Path, repo_root: Path, target: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "--config", str(config), "serve", target],
        cwd=repo_root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_bench_serve_interrupted_leaves_no_process(sig, trained_model, tmp_path, repo_root) -> None:
    import httpx

    config = _serve_config(tmp_path, repo_root, trained_model)
    proc = _start_serve(config, repo_root, "greene-linserv")
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            match = re.search(r"serving at (http://127\.0\.0\.1:\d+)", line)
            url = match.group(1) if match else None
        assert url, f"no URL printed; stderr: {proc.stderr.read() if proc.poll() is not None else ''}"
        children = descendants(proc.pid)
        assert children, "serve started no stand-in process"
        assert all(a.startswith("127.0.0.1:") for a in listening_addresses(children | {proc.pid}))
        assert httpx.get(url + "/healthz", trust_env=False).json()["status"] == "ok"
        proc.send_signal(sig)
        assert proc.wait(timeout=90) == 0  # a bound for a busy machine, not a speed claim
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(0.2)
    alive = [pid for pid in children if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]
    assert alive == [], f"processes left after {sig.name}: {alive}"
    assert "stopped greene-linserv" in proc.stderr.read()


@pytest.mark.slow
def test_bench_serve_interrupted_while_starting_leaves_no_process(trained_model, tmp_path, repo_root) -> None:
    config = _serve_config(tmp_path, repo_root, trained_model)
    proc = _start_serve(config, repo_root, "k8s-ibm")
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            seen |= descendants(proc.pid)
            if len(seen) >= 2:  # the replicas' gunicorn masters exist; they are still booting
                break
            time.sleep(0.01)
        assert seen, "serve started no stand-in process"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) in (0, 130)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(0.2)
    alive = [pid for pid in seen if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]
    assert alive == [], f"processes left: {alive}"


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "Z"
    return stat[stat.rfind(")") + 2 :].split()[0]
