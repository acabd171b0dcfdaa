"""`bench manifests loadgen TARGET --clients N`: the shards' ConfigMap, Indexed Job and helper pod.

Checked offline: every document against the Kubernetes 1.30 OpenAPI schemas with
``kubernetes_validate`` (strict: unknown fields are errors), the shards' bench.toml by
servebench's own parser and the target's adapter, the shard script by ``sh -n``.  The
local execution of the pods' command lines is tests/bench/shard/test_job_e2e.py.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from bench.config import parse_config
from bench.shard.job import loadgen_job
from bench.shard.job_render import CREDENTIALS_SECRET, WORKDIR, render_loadgen_manifests, shard_bench_toml
from targets.base import TargetContext
from targets.registry import build_target
from tests.support.paths import REPO

K8S_VERSION = "1.30.0"
START = 1_800_000_000  # 2027-01-15 08:00:00 UTC

CONFIG = """
[model]
epochs = 3
seed = 7

[loadgen]
engine = "fast"
max_rps = 100.0

[sweep]
n_requests = [8, 16]
modes = ["sequential", "concurrent", "rate"]
rate_rps = 40.0
warmup = 2

[targets.kubeflow-ibm]
adapter = "kserve"
model_name = "digits"
namespace = "team-a"
workers = 2
endpoint = "https://kubeflow.example.com"
host_header = "digits.team-a.example.com"
cookie_env = "KF_SESSION"
kfp_endpoint = "https://kubeflow.example.com/pipeline"
kfp_token_env = "KFP_TOKEN"

[targets.kubeflow-raw]
adapter = "kserve"
raw_deployment = true
bearer_token_env = "MODEL_TOKEN"

[targets.k8s-ibm]
adapter = "k8s"
namespace = "bench"
service_port = 8080

[targets.greene-linserv]
adapter = "flask"

[targets.linserv-remote]
adapter = "flask"
endpoint = "https://linserv.example.org"
"""


def _config(tmp_path: Path, source: str = CONFIG):
    return parse_config(source, tmp_path)


def _render(tmp_path: Path, target: str, clients: int = 3, **kwargs):
    kwargs.setdefault("step_interval_s", 30.0)
    job = loadgen_job(_config(tmp_path), target, clients=clients, start_at=START, **kwargs)
    return job, {name: yaml.safe_load(text) for name, text in render_loadgen_manifests(job).items()}


@pytest.mark.parametrize("target", ["kubeflow-ibm", "kubeflow-raw", "k8s-ibm", "linserv-remote"])
def test_every_document_validates_strictly(tmp_path, target) -> None:
    _, docs = _render(tmp_path, target)
    assert set(docs) == {"loadgen-configmap.yaml", "loadgen-job.yaml", "loadgen-helper.yaml"}
    for doc in docs.values():
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_strict_validation_has_teeth(tmp_path) -> None:
    _, docs = _render(tmp_path, "k8s-ibm")
    job = docs["loadgen-job.yaml"]
    job["spec"]["completionMod"] = job["spec"].pop("completionMode")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, K8S_VERSION, strict=True)


def test_indexed_job_runs_n_shards_against_the_cluster_url(tmp_path) -> None:
    job, docs = _render(tmp_path, "kubeflow-ibm", clients=4, pvc="shard-runs", image="reg.example.com/sb:1")
    spec = docs["loadgen-job.yaml"]["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 4)
    assert spec["backoffLimit"] == 0
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "reg.example.com/sb:1" and container["workingDir"] == WORKDIR
    assert container["command"][:2] == ["sh", "-c"]
    script = container["command"][2]
    assert "--shard auto/4 " in script and f"--start-at {START} --step-interval 30 " in script
    assert f"--run-id {job.run_id} " in script and "run kubeflow-ibm " in script
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
    }
    assert claims == {"data": "shard-runs"}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["work"]["mountPath"] == WORKDIR
    assert (mounts["config"]["mountPath"], mounts["config"]["subPath"]) == (f"{WORKDIR}/bench.toml", "bench.toml")
    assert mounts["data"]["mountPath"] == f"{WORKDIR}/data"
    assert "limits" not in container["resources"] or "cpu" not in container["resources"]["limits"]
    assert pod["restartPolicy"] == "Never"
    assert spec["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == "false"
    # The Job, its ConfigMap and the pods all live in the target's namespace by default.
    names = {d["metadata"]["namespace"] for d in docs.values()}
    assert names == {"team-a"}
    config_volume = next(v for v in pod["volumes"] if "configMap" in v)
    assert config_volume["configMap"]["name"] == docs["loadgen-configmap.yaml"]["metadata"]["name"]
    helper = docs["loadgen-helper.yaml"]["spec"]
    assert helper["volumes"][0]["persistentVolumeClaim"] == {"claimName": "shard-runs"}


def test_the_shard_script_is_valid_posix_shell(tmp_path) -> None:
    _, docs = _render(tmp_path, "k8s-ibm")
    script = docs["loadgen-job.yaml"]["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert subprocess.run(["sh", "-n", "-c", script], capture_output=True).returncode == 0


@pytest.mark.parametrize(
    ("target", "url", "host"),
    [
        ("kubeflow-ibm", "http://digits.team-a.svc.cluster.local", None),
        ("kubeflow-raw", "http://mnist-predictor.kubeflow-user-example-com.svc.cluster.local", None),
        ("k8s-ibm", "http://k8s-ibm.bench.svc.cluster.local:8080", None),
        ("linserv-remote", "https://linserv.example.org", None),
    ],
)
def test_shard_config_is_one_remote_target_at_its_cluster_url(tmp_path, target, url, host) -> None:
    job, docs = _render(tmp_path, target)
    text = docs["loadgen-configmap.yaml"]["data"]["bench.toml"]
    assert text == shard_bench_toml(job)
    shard = parse_config(text, tmp_path / "pod")  # servebench's own parser: every key checked
    assert list(shard.targets) == [target]
    spec = shard.targets[target]
    assert spec.settings["endpoint"] == url and spec.settings.get("host_header") == host
    built = build_target(spec, TargetContext(artifacts_dir=tmp_path, log_dir=tmp_path))  # the adapter accepts it
    assert built.is_remote
    user = tomllib.loads(CONFIG)
    assert shard.model.artifacts_dir == "data/model" and shard.results_dir == (tmp_path / "pod" / "results")
    assert {k: v for k, v in tomllib.loads(text)["model"].items() if k != "artifacts_dir"} == user["model"]
    assert list(shard.sweep.modes) == ["concurrent", "rate"]  # sequential is not shardable
    assert list(shard.sweep.n_requests) == [8, 16] and shard.sweep.rate_rps == 40.0 and shard.sweep.warmup == 2
    assert shard.loadgen.cpus == "none" and shard.loadgen.engine == "fast"
    assert shard.loadgen.max_rps == pytest.approx(100.0 / 3)  # the cap is the whole run's


def test_credentials_stay_variable_names_filled_from_a_secret(tmp_path, monkeypatch) -> None:
    canaries = {"KF_SESSION": "authservice_session=CANARY-cookie-0123456789", "KFP_TOKEN": "CANARY-kfp-token-9876"}
    for name, value in canaries.items():
        monkeypatch.setenv(name, value)
    job = loadgen_job(_config(tmp_path), "kubeflow-ibm", clients=2, start_at=START, step_interval_s=30.0)
    files = render_loadgen_manifests(job)
    assert not any("CANARY" in text for text in files.values())
    shard = tomllib.loads(yaml.safe_load(files["loadgen-configmap.yaml"])["data"]["bench.toml"])
    table = shard["targets"]["kubeflow-ibm"]
    assert table["cookie_env"] == "KF_SESSION"
    assert not any(key.startswith("kfp_") for key in table)  # the pipeline API is no shard's business
    container = yaml.safe_load(files["loadgen-job.yaml"])["spec"]["template"]["spec"]["containers"][0]
    from_secret = [e for e in container["env"] if "valueFrom" in e]
    assert from_secret == [
        {"name": "KF_SESSION", "valueFrom": {"secretKeyRef": {"name": CREDENTIALS_SECRET, "key": "KF_SESSION"}}}
    ]
    assert f"kubectl create secret generic {CREDENTIALS_SECRET}" in files["loadgen-job.yaml"]


def test_names_fit_kubernetes_limits_for_long_target_names(tmp_path) -> None:
    long_name = "a-very-long-target-name-that-goes-on-and-on-and-on-for-ever"
    source = (
        CONFIG.replace("n_requests = [8, 16]", "n_requests = [16, 32]") + f'\n[targets.{long_name}]\nadapter = "k8s"\n'
    )
    job = loadgen_job(_config(tmp_path, source), long_name, clients=12, start_at=START, step_interval_s=30.0)
    assert len(f"{job.job_name}-11") <= 63 and len(job.job_name) <= 56  # an Indexed pod's host name
    for doc in render_loadgen_manifests(job).values():
        kubernetes_validate.validate(yaml.safe_load(doc), K8S_VERSION, strict=True)


@pytest.mark.parametrize(
    ("target", "kwargs", "message"),
    [
        ("greene-linserv", {}, "does not run on Kubernetes and has no endpoint"),
        ("k8s-ibm", {"clients": 0}, "--clients"),
        ("k8s-ibm", {"pvc": "Bad_Claim"}, "--pvc"),
        ("k8s-ibm", {"namespace": "Team A"}, "--namespace"),
        ("k8s-ibm", {"image": "has space:1"}, "--image"),
    ],
)
def test_what_cannot_become_a_working_job_is_refused_naming_it(tmp_path, target, kwargs, message) -> None:
    kwargs = {"clients": 2, "step_interval_s": 30.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        loadgen_job(_config(tmp_path), target, start_at=START, **kwargs)


def test_a_step_smaller_than_the_shard_count_is_refused_when_rendering(tmp_path) -> None:
    with pytest.raises(ValueError, match="N=8 cannot be split over 10 shards"):
        loadgen_job(_config(tmp_path), "k8s-ibm", clients=10, start_at=START, step_interval_s=30.0)


def test_a_sequential_only_plan_is_refused(tmp_path) -> None:
    source = CONFIG.replace('modes = ["sequential", "concurrent", "rate"]', 'modes = ["sequential"]')
    with pytest.raises(ValueError, match="none can be sharded"):
        loadgen_job(_config(tmp_path, source), "k8s-ibm", clients=2, start_at=START, step_interval_s=30.0)


def test_a_plan_of_several_steps_gets_two_request_timeouts_between_steps_and_says_so(tmp_path) -> None:
    job = loadgen_job(_config(tmp_path), "k8s-ibm", clients=2, start_at=START)
    timeout_s = _config(tmp_path).loadgen.timeout_s
    assert job.step_interval_s == 2 * timeout_s
    assert any(f"steps {2 * timeout_s:g} s apart" in note and "--step-interval" in note for note in job.notes)
    files = render_loadgen_manifests(job)
    script = yaml.safe_load(files["loadgen-job.yaml"])["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert f"--start-at {START} --step-interval {2 * timeout_s:g} " in script
    assert all(f"steps {2 * timeout_s:g} s apart" in text for text in files.values())  # every header says it
    configmap = yaml.safe_load(files["loadgen-configmap.yaml"])
    assert f"steps {2 * timeout_s:g} s apart" in configmap["data"]["bench.toml"]  # and the shards' bench.toml


def test_a_single_step_plan_needs_no_interval(tmp_path) -> None:
    source = CONFIG.replace("n_requests = [8, 16]", "n_requests = [8]").replace(
        'modes = ["sequential", "concurrent", "rate"]', 'modes = ["rate"]'
    )
    job = loadgen_job(_config(tmp_path, source), "k8s-ibm", clients=2, start_at=START)
    script = yaml.safe_load(render_loadgen_manifests(job)["loadgen-job.yaml"])["spec"]["template"]["spec"][
        "containers"
    ][0]["command"][2]
    assert "--step-interval" not in script and f"--start-at {START} " in script


def _cli(tmp_path: Path, *args: str, source: str = CONFIG) -> subprocess.CompletedProcess:
    (tmp_path / "bench.toml").write_text(source)
    return subprocess.run(
        [sys.executable, "-m", "bench", "--config", str(tmp_path / "bench.toml"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )


def test_steps_too_small_for_the_shards_are_left_out_with_a_note(tmp_path) -> None:
    """The shipped bench.toml has N=1 steps: `--clients 4` renders without them and says so."""
    out = tmp_path / "out"
    source = CONFIG.replace("n_requests = [8, 16]", "n_requests = [1, 4, 16]")
    result = _cli(tmp_path, "manifests", "loadgen", "k8s-ibm", "--clients", "4", "-o", str(out), source=source)
    assert result.returncode == 0, result.stderr
    assert "n_requests 1 left out: fewer requests than the 4 shards" in result.stderr
    configmap = yaml.safe_load((out / "loadgen-configmap.yaml").read_text())
    shard_toml = configmap["data"]["bench.toml"]
    assert tomllib.loads(shard_toml)["sweep"]["n_requests"] == [4, 16]
    assert "n_requests 1 left out" in shard_toml and "n_requests 1 left out" in (out / "loadgen-job.yaml").read_text()


def test_shipped_config_renders_for_4_clients(tmp_path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "manifests",
            "loadgen",
            "kubeflow-gcp",
            "--clients",
            "4",
            "-o",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "n_requests 1 left out" in result.stderr and "sequential left out" in result.stderr
    assert "s apart (2 x [loadgen] timeout_s)" in result.stderr


def test_cli_writes_the_three_files(tmp_path) -> None:
    out = tmp_path / "out"
    result = _cli(
        tmp_path,
        "manifests",
        "loadgen",
        "k8s-ibm",
        "--clients",
        "2",
        "--step-interval",
        "20",
        "--pvc",
        "my-claim",
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "loadgen-configmap.yaml",
        "loadgen-helper.yaml",
        "loadgen-job.yaml",
    ]
    assert "sequential left out" in result.stderr
    job = yaml.safe_load((out / "loadgen-job.yaml").read_text())
    assert job["spec"]["template"]["spec"]["volumes"][2]["persistentVolumeClaim"]["claimName"] == "my-claim"


def test_cli_plan_flags_replace_the_shards_sweep_and_are_validated(tmp_path) -> None:
    """`--rate/--duration/--trials/--requests` set the shards' [sweep] (as on `bench run`), so
    a bench.toml whose own sweep cannot be sharded (N=1, sequential) still renders a Job."""
    unshardable = CONFIG.replace("n_requests = [8, 16]", "n_requests = [1, 16]")
    too_small = CONFIG.replace("n_requests = [8, 16]", "n_requests = [1]")
    refused = _cli(
        tmp_path, "manifests", "loadgen", "k8s-ibm", "--clients", "2", "--step-interval", "20", source=too_small
    )  # nothing left to split: refused, naming the step
    assert refused.returncode == 2 and "N=1 cannot be split over 2 shards" in refused.stderr, refused.stderr
    out = tmp_path / "out"
    result = _cli(
        tmp_path,
        "manifests",
        "loadgen",
        "k8s-ibm",
        "--clients",
        "2",
        "--rate",
        "200",
        "--duration",
        "10",
        "--trials",
        "3",
        "--step-interval",
        "30",
        "-o",
        str(out),
        source=unshardable,
    )
    assert result.returncode == 0, result.stderr
    docs = [yaml.safe_load(f.read_text()) for f in sorted(out.iterdir())]
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    configmap = next(doc for doc in docs if doc["kind"] == "ConfigMap")
    sweep = tomllib.loads(configmap["data"]["bench.toml"])["sweep"]
    assert (sweep["modes"], sweep["rate_rps"], sweep["duration_s"], sweep["trials"]) == (["rate"], 200.0, 10.0, 3)
    bad = _cli(
        tmp_path,
        "manifests",
        "loadgen",
        "k8s-ibm",
        "--clients",
        "2",
        "--modes",
        "concurrent,bogus",
        "--step-interval",
        "20",
        source=unshardable,
    )
    assert bad.returncode == 2 and "bogus" in bad.stderr, bad.stderr


def test_cli_stages_flag_sets_the_shards_stages_and_rate_mode(tmp_path) -> None:
    """`manifests loadgen --stages` as `bench run --stages`: the shards' bench.toml carries the
    stages (which size the rate step, so duration_s 0) and rate mode; a malformed value exits 2."""
    out = tmp_path / "out"
    result = _cli(
        tmp_path,
        "manifests",
        "loadgen",
        "k8s-ibm",
        "--clients",
        "2",
        "--stages",
        "10s:0-20,30s:20",
        "--step-interval",
        "60",
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    configmap = yaml.safe_load((out / "loadgen-configmap.yaml").read_text())
    sweep = tomllib.loads(configmap["data"]["bench.toml"])["sweep"]
    assert sweep["modes"] == ["rate"] and sweep["duration_s"] == 0.0
    assert [(s["duration"], s.get("start_rate"), s["rate"]) for s in sweep["stages"]] == [
        ("10s", 0.0, 20.0),
        ("30s", None, 20.0),
    ]
    bad = _cli(tmp_path, "manifests", "loadgen", "k8s-ibm", "--clients", "2", "--stages", "10s")
    assert bad.returncode == 2 and "--stages" in bad.stderr, bad.stderr
    elsewhere = _cli(tmp_path, "manifests", "k8s-ibm", "--stages", "10s:5")
    assert elsewhere.returncode == 2 and "--stages" in elsewhere.stderr, elsewhere.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["manifests", "loadgen", "k8s-ibm"], "needs --clients"),
        (["manifests", "loadgen", "--clients", "2"], "usage: manifests loadgen TARGET"),
        (["manifests", "k8s-ibm", "--clients", "2"], "belong to `manifests loadgen TARGET`"),
        (["manifests", "k8s-ibm", "kubeflow-ibm"], "takes one name"),
        (["manifests", "loadgen", "nope", "--clients", "2"], "no such target"),
    ],
)
def test_cli_misuse_exits_2_naming_the_problem(tmp_path, args, message) -> None:
    result = _cli(tmp_path, *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
