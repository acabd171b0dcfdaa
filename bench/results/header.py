"""A new run's meta.json: its header filled with the facts of this machine and checkout.

Why: a latency figure means little without the machine, versions, engine, client ceiling and
exact config behind it (pyperf stores such metadata with every result). Everything here is
collected from the environment and from objects' own ``describe()``; nothing reads a secret,
and :func:`scrub` drops keys that look like one as a second line of defence. The record
itself -- fields, status vocabulary, ``finish`` -- is :class:`ground.runmeta.RunMeta`;
this module fills a new one (:func:`run_header` for every kind of run, :func:`new_meta` for
a load run) with the facts of this machine and checkout.
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

from bench.hostnoise import run_start_load
from bench.results.schema import SCHEMA_VERSION
from bench.results.status import writer_facts
from ground.clock import utc_iso
from ground.hostfacts import host_facts
from ground.runmeta import KIND_SERVING, RunMeta, RunStatus
from loadgen.stats import PERCENTILE_CONFIDENCE

# SCHEMA_VERSION, RunMeta and RunStatus are re-exported for the callers that import them
# from here (the header records the schema version); they are defined in bench.results.schema
# and ground.runmeta.
__all__ = [
    "SCHEMA_VERSION",
    "RunMeta",
    "RunStatus",
    "git_commit",
    "new_meta",
    "package_versions",
    "run_header",
    "scrub",
]

_PACKAGES = (
    "servebench",
    "numpy",
    "pandas",
    "scipy",
    "torch",
    "tensorflow-cpu",
    "keras",
    "kserve",
    "flask",
    "gunicorn",
    "httpx",
    "aiohttp",
    "uvloop",
    "httptools",
    "matplotlib",
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
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
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


def run_header(*, kind: str, run_id: str, root: Path, extra_packages: tuple[str, ...] = (), **details: Any) -> RunMeta:
    """A new run's metadata (status ``running``): the header every kind of run shares, plus ``details``.

    Why shared: load runs (``kind = "serving"``), tuning runs (``"hpo"``) and pipeline runs
    are read by the same tools (``bench report``, ``latest_run``, :mod:`bench.results.status`),
    which rely on these fields; each run ends it with :meth:`ground.runmeta.RunMeta.finish`.
    """
    now = time.time()
    return RunMeta(
        kind=kind,
        run_id=run_id,
        status=RunStatus.RUNNING,
        schema_version=SCHEMA_VERSION,
        started_at=now,
        started_utc=utc_iso(now),
        host=host_facts(),
        writer=writer_facts(),  # so a reader can tell a live run from an abandoned one
        versions=package_versions(tuple(dict.fromkeys(_PACKAGES + extra_packages))),
        git=git_commit(root),
        details=dict(details),
    )


def new_meta(
    *,
    run_id: str,
    root: Path,
    config_sha256: str,
    config_path: str,
    sweep: Mapping[str, Any],
    targets: list[str],
    load_at_start: Mapping[str, Any] | None = None,
) -> RunMeta:
    """A load run's metadata at its start (status ``running`` until :func:`bench.run.runner.finish_meta`).

    ``load_at_start`` is :func:`bench.hostnoise.run_start_load` taken before the run did any
    work (training, calibration); sampled here when not given.
    """
    return run_header(
        kind=KIND_SERVING,
        run_id=run_id,
        root=root,
        config={"path": config_path, "sha256": config_sha256},
        sweep=dict(sweep),
        targets_order=list(targets),
        targets={},
        target_errors={},
        model={},
        engine={},
        calibration=None,
        client_ceiling=None,
        client_ceilings={},
        cpu_plan={},
        host_noise={"at_start": dict(load_at_start or run_start_load()), "targets": {}},
        execution="targets run one at a time (start, sweep, stop) so they never compete for CPU",
        percentile_bounds={
            "columns": "summary.csv lat_pXX_lo_s / lat_pXX_hi_s",
            "confidence": PERCENTILE_CONFIDENCE,
            "method": "distribution-free binomial order statistics (loadgen.quantile_bounds); "
            "empty where no bound exists at that number of answers",
        },
        command=" ".join(sys.argv),
    )
