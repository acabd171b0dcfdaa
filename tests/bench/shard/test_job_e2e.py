"""The rendered load-generator Job, executed here: its pods' command lines as N local processes, then merged.

What is the same as on a cluster: the container's command line exactly as rendered, run
in a folder laid out as the pod spec mounts it (the working directory is the emptyDir;
bench.toml from the ConfigMap at its subPath; the "claim" -- one folder shared by every
pod -- at ``data/``), with the environment the pod spec sets plus ``JOB_COMPLETION_INDEX``
(which the Job controller sets), and the ConfigMap's bench.toml changed in one line only:
the target's cluster-local URL becomes a local stand-in's 127.0.0.1 address.  What stands
in for the image: this interpreter on PATH as ``python`` and this checkout on PYTHONPATH.
The model is copied into the "claim" as docs/loadgen-in-cluster.md tells users to do.
Then ``bench merge`` combines the shard runs the pods copied to the claim.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.config import load_config
from bench.results import load_run
from bench.shard.job import loadgen_job
from bench.shard.job_render import render_loadgen_manifests
from ground.toml_write import dumps as toml_dumps
from targets.base import TargetContext
from targets.registry import build_target
from tests.support.paths import REPO

pytestmark = pytest.mark.slow

CLIENTS = 2
N = 8
#: Seconds from rendering to the shards' common start: the processes import, check the model,
#: load the test split and calibrate their client first. A shard that is not ready by then
#: starts late, never early, and its lateness is recorded (the merge prints the skew), so a
#: slow machine makes this test slower, not wrong.
START_IN_S = 25
STEP_INTERVAL_S = 8.0


def _user_config(tmp_path: Path) -> Path:
    """A user's bench.toml: the shipped [model] (the session's trained model), a small 2-step sweep."""
    shipped = tomllib.loads((REPO / "bench.toml").read_text())
    tables = {
        "model": shipped["model"],
        "loadgen": {"engine": "fast"},
        "sweep": {"n_requests": [N], "modes": ["concurrent", "rate"], "rate_rps": 20.0, "warmup": 1, "trials": 1},
        "targets": {"k8s-ibm": {"adapter": "k8s", "replicas": 1, "model_loading": "startup", "namespace": "bench"}},
        "paths": {"results_dir": "results", "reports_dir": "reports"},
    }
    path = tmp_path / "user" / "bench.toml"
    path.parent.mkdir()
    path.write_text(toml_dumps(tables))
    return path


def _lay_out_pod(
    pod_dir: Path, pod_spec: dict[str, Any], configmap: dict[str, Any], claim: Path, old_url: str, new_url: str
) -> None:
    """Create ``pod_dir`` as the pod's working directory with every volume mounted where the spec says."""
    (container,) = pod_spec["containers"]
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    pod_dir.mkdir(parents=True)
    for mount in container["volumeMounts"]:
        rel = Path(mount["mountPath"]).relative_to(container["workingDir"])
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            assert rel == Path("."), "the working directory is the emptyDir"
        elif "configMap" in volume:
            assert volume["configMap"]["name"] == configmap["metadata"]["name"]
            text = configmap["data"][mount["subPath"]]
            local = text.replace(f'endpoint = "{old_url}"', f'endpoint = "{new_url}"')
            changed = [(a, b) for a, b in zip(text.splitlines(), local.splitlines(), strict=True) if a != b]
            assert len(changed) == 1, "only the target's URL is adjusted"
            (pod_dir / rel).write_text(local)
        elif "persistentVolumeClaim" in volume:
            (pod_dir / rel).symlink_to(claim, target_is_directory=True)
        else:
            raise AssertionError(f"volume kind not emulated: {volume}")


def _pod_env(container: dict[str, Any], index: int, home: Path) -> dict[str, str]:
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "PYTHONPATH": str(REPO),
        "HOME": str(home),
        "JOB_COMPLETION_INDEX": str(index),
    }
    for var in ("MPLCONFIGDIR", "KERAS_HOME", "TORCH_HOME", "XDG_CACHE_HOME"):  # tests keep caches out of $HOME
        if var in os.environ:
            env[var] = os.environ[var]
    for item in container["env"]:
        assert "value" in item, f"this target names no credential, so nothing comes from a Secret: {item}"
        env[item["name"]] = item["value"]
    return env


async def _run_pods(commands: list[tuple[list[str], Path, dict[str, str]]], timeout_s: float) -> list[tuple[int, str]]:
    procs = [
        await asyncio.create_subprocess_exec(*argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for argv, cwd, env in commands
    ]
    try:
        outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), timeout_s)
    except TimeoutError:
        for p in procs:
            if p.returncode is None:
                p.kill()
        await asyncio.gather(*(p.wait() for p in procs))
        raise
    return [(p.returncode, out.decode(errors="replace")) for p, (out, _) in zip(procs, outputs, strict=True)]


def test_rendered_pods_run_locally_and_their_shards_merge(tmp_path, trained_model) -> None:
    user_toml = _user_config(tmp_path)
    config = load_config(user_toml)
    claim = tmp_path / "claim"
    claim.mkdir()
    shutil.copytree(trained_model.dir, claim / "model")  # "copy artifacts/model to the claim"
    rendered: dict[str, Any] = {}

    async def scenario() -> list[tuple[int, str]]:
        ctx = TargetContext(artifacts_dir=trained_model.dir, log_dir=tmp_path / "standin-logs", ready_timeout_s=180.0)
        spec = config.targets["k8s-ibm"]
        async with build_target(spec, ctx) as standin:
            # Rendered once the stand-in answers, as a user applies the Job to a running
            # InferenceService: START_IN_S then only covers the pods' own start-up.
            job = rendered["job"] = loadgen_job(
                config,
                "k8s-ibm",
                clients=CLIENTS,
                pvc="shard-runs",
                image="servebench:test",
                start_at=math.ceil(time.time() + START_IN_S),
                step_interval_s=STEP_INTERVAL_S,
            )
            docs = {name: yaml.safe_load(text) for name, text in render_loadgen_manifests(job).items()}
            job_doc, configmap = docs["loadgen-job.yaml"], docs["loadgen-configmap.yaml"]
            assert (job_doc["spec"]["completions"], job_doc["spec"]["parallelism"]) == (CLIENTS, CLIENTS)
            pod_spec = job_doc["spec"]["template"]["spec"]
            (container,) = pod_spec["containers"]
            commands = []
            for i in range(CLIENTS):
                pod_dir = tmp_path / "pods" / f"pod-{i}"
                _lay_out_pod(pod_dir, pod_spec, configmap, claim, job.endpoint.url, standin.base_url)
                (tmp_path / "home").mkdir(exist_ok=True)
                commands.append((container["command"], pod_dir, _pod_env(container, i, tmp_path / "home")))
            return await _run_pods(commands, timeout_s=START_IN_S + 600)

    results = asyncio.run(scenario())
    job = rendered["job"]
    for i, (code, output) in enumerate(results):
        assert code == 0, f"pod {i} exited {code}:\n{output[-4000:]}"
        assert f"servebench shard {i} of {CLIENTS}: bench run exited 0" in output, output[-4000:]

    runs = claim / "runs" / job.run_id
    shard_dirs = sorted(p for p in runs.iterdir() if p.is_dir())
    assert [p.name for p in shard_dirs] == [f"{job.run_id}-shard{i}of{CLIENTS}" for i in range(CLIENTS)]
    assert sorted(p.name for p in runs.glob("*.exit")) == [f"shard-{i}.exit" for i in range(CLIENTS)]
    assert all(p.read_text().strip() == "0" for p in runs.glob("*.exit"))

    merged_dir = tmp_path / "merged" / job.run_id
    merged = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--config",
            str(user_toml),
            "merge",
            *map(str, shard_dirs),
            "-o",
            str(merged_dir),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert merged.returncode == 0, merged.stdout + merged.stderr
    print(merged.stdout)  # the per-shard table: offered/achieved rate per shard, start skew

    shards = [load_run(d) for d in shard_dirs]
    run = load_run(merged_dir)
    assert len(run.requests) == sum(len(s.requests) for s in shards) == 2 * N  # 2 steps of N requests
    assert sorted(run.requests["shard"].unique().tolist()) == list(range(CLIENTS))
    assert sorted(run.summary["mode"]) == ["concurrent", "rate"]
    assert (run.summary["n_ok"] + run.summary["errors"]).tolist() == [N, N]
    assert run.summary["errors"].sum() == 0
    for shard in shards:
        assert shard.meta.details["shard"]["index_from"] == "$JOB_COMPLETION_INDEX"
        assert shard.meta.details["shard"]["schedule"]["start_at"] == job.start_at
