"""meta.json: the facts that make a run's numbers interpretable and comparable later.

Why: a latency figure means little without the machine, versions, engine, client ceiling and
exact config behind it (pyperf stores such metadata with every result). Everything here is
collected from the environment and from objects' own ``describe()``; nothing reads a secret,
and :func:`scrub` drops keys that look like one as a second line of defence.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.hostload import run_start_load
from bench.runstate import writer_facts
from ground.clock import utc_iso
from ground.hostfacts import host_facts

__all__ = [
    "SCHEMA_VERSION",
    "git_commit",
    "new_meta",
    "package_versions",
    "run_header",
    "scrub",
]

# Bump when summary.csv / requests.csv.gz columns or their meaning change. Readers accept
# older versions where the data allows (`loadgen.stats.step_flags` derives flags from the
# counts; `bench compare` compares schema 1 with 2) and refuse only newer ones.
SCHEMA_VERSION = 2  # 2: summary.csv gained the open-loop columns, `saturated` and `flags`

_PACKAGES = (
    "servebench", "numpy", "pandas", "scipy", "torch", "tensorflow-cpu", "keras", "kserve",
    "flask", "gunicorn", "httpx", "aiohttp", "uvloop", "httptools", "matplotlib",
)
_SECRETISH = re.compile(r"(secret|password|passwd|token|cookie|authorization|api[_-]?key)", re.I)
_SECRET_NAME_OK = re.compile(r"_env$")  # names of env vars holding secrets are fine to record


def package_versions(names: tuple[str, ...] = _PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape the numbers ('' when absent)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = ""
    return versions


def git_commit(root: Path) -> dict[str, Any]:
    """The checkout's commit and whether the tree has local changes ({} when not a git repo)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"commit": commit, "dirty": bool(dirty)}


def scrub(value: Any) -> Any:
    """Recursively drop mapping keys that look like secrets (except ``*_env`` variable names)."""
    if isinstance(value, Mapping):
        return {
            str(k): scrub(v)
            for k, v in value.items()
            if not (_SECRETISH.search(str(k)) and not _SECRET_NAME_OK.search(str(k)))
        }
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def run_header(
    *, kind: str, run_id: str, root: Path, extra_packages: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The fields every run's meta.json starts with, whatever the kind of run.

    Why shared: load runs (``kind = "serving"``) and tuning runs (``"hpo"``) are read by the
    same tools (``bench report``, ``latest_run``), which rely on these keys.
    """
    now = time.time()
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "run_id": run_id,
        "complete": False,
        "status": "running",
        "started_at": now,
        "started_utc": utc_iso(now),
        "finished_at": None,
        "finished_utc": None,
        "host": host_facts(),
        "writer": writer_facts(),  # so a reader can tell a live run from an abandoned one
        "versions": package_versions(tuple(dict.fromkeys(_PACKAGES + extra_packages))),
        "git": git_commit(root),
    }


def new_meta(
    *,
    run_id: str,
    root: Path,
    config_sha256: str,
    config_path: str,
    sweep: Mapping[str, Any],
    targets: list[str],
    load_at_start: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The meta.json written at the start of a run (``complete: false`` until the end).

    ``load_at_start`` is :func:`bench.hostload.run_start_load` taken before the run did any
    work (training, calibration); sampled here when not given.
    """
    return {
        **run_header(kind="serving", run_id=run_id, root=root),
        "config": {"path": config_path, "sha256": config_sha256},
        "sweep": dict(sweep),
        "targets_order": list(targets),
        "targets": {},
        "target_errors": {},
        "model": {},
        "engine": {},
        "calibration": None,
        "client_ceiling": None,
        "cpu_plan": {},
        "host_noise": {"at_start": dict(load_at_start or run_start_load()), "targets": {}},
        "execution": "targets run one at a time (start, sweep, stop) so they never compete for CPU",
        "command": " ".join(sys.argv),
    }
