"""`bench check-target`'s load checks against three real servers: broken twice, then fixed.

Why: a target around Python's ``http.server`` passed every functional check and then lost
requests at concurrent N=128 and 512 (listen backlog 5) and took a flat 44 ms per
sequential request (Nagle + delayed ACK).  The example server
(examples/http_server_target) has both defaults as settings; here it runs through
``python -m bench check-target`` exactly as a user would: backlog 5 must fail ``burst:128``
naming the listen backlog, Nagle must fail ``latency`` naming TCP_NODELAY and the delayed
ACK, and the fixed server must pass every check.  The fast tests pin the pure parts
(the retransmission counter, the backlog read from ``ss``) on real loopback sockets.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from targets.contract.load import total_retransmits
from targets.contract.tools import listening_backlogs
from tests.support.paths import REPO

EXAMPLE_DIR = REPO / "examples" / "http_server_target"
ADAPTER = "servebench_http_server_example.target:HttpServerTarget"


def test_listening_backlog_is_read_from_ss() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(7)
        assert 7 in listening_backlogs({os.getpid()})
    assert listening_backlogs({2**22 + 12345}) == []  # no such process: nothing, not an error


def test_retransmissions_are_zero_on_a_healthy_loopback_connection() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        client.sendall(b"x" * 1000)
        assert peer.recv(1000)
        assert total_retransmits(client) == 0
        client.close()
        peer.close()
    assert total_retransmits(None) is None


def _start_check(project: Path, name: str) -> subprocess.Popen[str]:
    """`python -m bench check-target NAME` from ``project``, started (the three run side by side)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXAMPLE_DIR), str(REPO)]), "COLUMNS": "400"}
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "check-target", name, "--images", "5", "--burst", "128"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _outcome(proc: subprocess.Popen[str]) -> tuple[int, dict[str, str], dict[str, str], str]:
    """The check's exit code, status and detail by check name, and everything it printed."""
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()  # a no-op once it has exited
    status, detail = {}, {}
    for line in stdout.splitlines():
        if m := re.match(r"^(PASS|FAIL|SKIP)\s+(\S+)\s+(.*)$", line):
            status[m[2]], detail[m[2]] = m[1], m[3]
    return proc.returncode, status, detail, stdout + stderr


@pytest.mark.slow
@pytest.mark.timing  # latency and retransmission checks: run after the parallel pass
def test_backlog_and_nagle_servers_fail_and_the_fixed_one_passes(tmp_path, trained_model) -> None:
    project = tmp_path / "project"
    project.mkdir()
    tables = "".join(
        f"""
        [targets.{name}]
        adapter = "{ADAPTER}"
        backlog = {backlog}
        nodelay = {str(nodelay).lower()}
        """
        for name, backlog, nodelay in (("backlog5", 5, True), ("nagle", 1024, False), ("fixed", 1024, True))
    )
    # a shorter request deadline than the benchmark's 30 s: the backlog-5 run ends sooner (it fails on the
    # retransmissions, not on the deadline), and still generous for 128 answers on a busy host
    (project / "bench.toml").write_text(
        f'[loadgen]\ntimeout_s = 15.0\n\n[model]\nartifacts_dir = "{trained_model.dir}"\n' + textwrap.dedent(tables)
    )

    procs = {name: _start_check(project, name) for name in ("backlog5", "nagle", "fixed")}
    outcomes = {name: _outcome(proc) for name, proc in procs.items()}

    code, status, detail, out = outcomes["fixed"]
    assert code == 0, out
    assert set(status.values()) == {"PASS"} and {"keep-alive", "latency", "burst:128"} <= set(status), out
    assert "no retransmission" in detail["burst:128"], out

    code, status, detail, out = outcomes["backlog5"]
    assert code == 1 and status["burst:128"] == "FAIL", out
    assert "backlog of 5" in detail["burst:128"] and "listen queue" in detail["burst:128"], out
    assert status["latency"] == status["keep-alive"] == status["real-images"] == "PASS", out
    assert "burst:128" in out.split("does not meet the target contract")[1], out

    code, status, detail, out = outcomes["nagle"]
    assert code == 1 and status["latency"] == "FAIL", out
    assert "TCP_NODELAY" in detail["latency"] and "delayed ACK" in detail["latency"], out
    assert status["keep-alive"] == "PASS", out  # (its burst is not asserted: Nagle is not what it checks)
