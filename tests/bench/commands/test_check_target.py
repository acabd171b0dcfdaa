"""`bench check-target NAME`: the contract suite for any configured adapter, run as a user would.

The end-to-end tests run from a folder OUTSIDE the repository with a bench.toml of its own
naming an adapter by ``module:Class``: the FastAPI example must pass every check (exit 0),
and a deliberately broken adapter written in the test's folder must fail with each failing
check named (exit 1).  The fast tests cover the refusals (unknown or remote target, a bad
``--min-agreement``) that happen before anything starts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.paths import REPO
from tests.support.target_cases import FASTAPI_ADAPTER, FASTAPI_DIR


def _check_target(cwd: Path, *args: str, python_path: tuple[Path, ...] = ()) -> subprocess.CompletedProcess[str]:
    """``python -m bench check-target ARGS`` from ``cwd``, with ``python_path`` put on PYTHONPATH."""
    paths = [str(p) for p in python_path] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "bench", "check-target", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _outside_config(tmp_path: Path, model_dir: Path | str, tables: str) -> Path:
    """A project folder of its own: bench.toml with only ``tables`` and the given model folder."""
    project = tmp_path / "my-project"
    project.mkdir()
    (project / "bench.toml").write_text(f'[model]\nartifacts_dir = "{model_dir}"\n\n{textwrap.dedent(tables)}')
    return project


def test_unknown_and_remote_targets_are_refused_before_anything_starts(tmp_path) -> None:
    project = _outside_config(
        tmp_path,
        tmp_path / "no-model",
        """
        [targets.far]
        adapter = "flask"
        endpoint = "http://203.0.113.7:80"
    """,
    )
    unknown = _check_target(project, "nope")
    assert unknown.returncode == 2 and "targets.nope" in unknown.stderr and "far" in unknown.stderr
    remote = _check_target(project, "far")
    assert remote.returncode == 2 and "'far' is remote" in remote.stderr and "endpoint" in remote.stderr
    share = _check_target(project, "far", "--min-agreement", "1.5")
    assert share.returncode == 2 and "--min-agreement" in share.stderr
    burst = _check_target(project, "far", "--burst", "128,")
    assert burst.returncode == 2 and "argument --burst" in burst.stderr
    assert not (tmp_path / "no-model").exists()  # refused before the model was trained


def test_config_flag_is_accepted_after_the_target(tmp_path) -> None:
    project = _outside_config(
        tmp_path, tmp_path / "no-model", '[targets.far]\nadapter = "k8s"\nendpoint = "http://x:1"\n'
    )
    result = _check_target(tmp_path, "far", "--config", str(project / "bench.toml"))
    assert result.returncode == 2 and "'far' is remote" in result.stderr


def test_help_names_the_command() -> None:
    result = subprocess.run([sys.executable, "-m", "bench", "--help"], capture_output=True, text=True, cwd=REPO)
    assert "check-target" in result.stdout


@pytest.mark.slow
def test_fastapi_example_passes_from_outside_the_repo(tmp_path, trained_model) -> None:
    project = _outside_config(
        tmp_path,
        trained_model.dir,
        f"""
        [targets.my-fastapi]
        adapter = "{FASTAPI_ADAPTER}"
    """,
    )
    result = _check_target(project, "my-fastapi", python_path=(FASTAPI_DIR,))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if re.match(r"^(PASS|FAIL|SKIP) ", line)]
    names = [line.split()[1] for line in lines]
    assert names[:3] == ["start", "loopback-only", "real-images"] and names[-2:] == ["page-protocol", "stop"]
    assert names[3:7] == ["keep-alive", "latency", "burst:128", "burst:512"]  # the load checks, default sizes
    assert len([n for n in names if n.startswith("bad-input:")]) == 7
    assert all(line.startswith("PASS") for line in lines), result.stdout
    assert "kserve-v1" in result.stdout and "my-fastapi: 16 passed, 0 failed, 0 skipped" in result.stdout


BROKEN_ADAPTER = '''
"""An adapter whose "server" is Python's static file server: it starts, but predicts nothing."""
import sys

from targets.base import Request
from targets.local_server import LocalServerTarget
from targets.wire import decode_v1_logits, instances_body


class StaticFiles(LocalServerTarget):
    adapter = "static-files"
    health_path = "/"
    page_protocol = "kserve-v1"  # a claim the contract suite must catch

    def command(self, host, port):
        folder = str(self.context.path("empty"))  # relative to bench.toml's folder
        return [sys.executable, "-m", "http.server", "--bind", host, "--directory", folder, str(port)]

    def encode(self, image):
        return Request("POST", "/predict", instances_body(image), self.request_headers())

    def decode(self, status, body):
        return decode_v1_logits(status, body)
'''


@pytest.mark.slow
def test_broken_adapter_fails_naming_each_failed_check(tmp_path, trained_model) -> None:
    project = _outside_config(
        tmp_path,
        trained_model.dir,
        """
        [targets.broken]
        adapter = "my_adapters:StaticFiles"
    """,
    )
    (project / "my_adapters.py").write_text(BROKEN_ADAPTER)
    (project / "empty").mkdir()  # the folder it serves, relative to bench.toml (TargetContext.path)
    result = _check_target(project, "broken", "--images", "5", "--burst", "8", python_path=(project,))
    assert result.returncode == 1, result.stdout + result.stderr
    status = {
        line.split()[1]: line.split()[0] for line in result.stdout.splitlines() if re.match(r"^(PASS|FAIL|SKIP) ", line)
    }
    assert status["start"] == status["loopback-only"] == status["stop"] == "PASS"
    assert status["real-images"] == status["page-protocol"] == status["bad-input:nan"] == "FAIL"
    assert status["keep-alive"] == status["burst:8"] == "FAIL"  # answers, but no predictions
    assert "DecodeError" in result.stdout  # what the server answered instead of a prediction
    assert "does not meet the target contract" in result.stderr and "real-images" in result.stderr
