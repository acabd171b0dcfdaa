"""The study's training baselines as manifests: a Slurm script (greene-linserv), a Job into a PVC (k8s-ibm).

The Slurm script is checked with ``bash -n`` and by parsing its ``#SBATCH`` directives
against the sbatch options they use (each known, each value in the form sbatch's manual
gives); the Kubernetes documents with ``kubernetes_validate`` (Kubernetes 1.30, strict),
and the Deployment's model copy by running its init container's command locally.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from bench.config import parse_config, target_context
from models.artifacts import recorded_config
from models.training_manifests import TRAIN_MODEL_DIR
from targets.manifests import training_manifests
from targets.registry import build_target

K8S_VERSION = "1.30.0"

CONFIG = """
[model]
epochs = 3
torch_threads = 4
learning_rate = 0.003

[targets.greene-linserv]
adapter = "flask"
hpc_dir = "$SCRATCH/projects/servebench"
slurm_time = "0-02:30"
slurm_mem = "12G"
slurm_partition = "cs"
slurm_account = "pr_123_general"
slurm_modules = ["python/intel/3.11.4", "cuda/12.1"]

[targets.linserv-defaults]
adapter = "flask"

[targets.k8s-ibm]
adapter = "k8s"
namespace = "bench"
model_claim = "mnist-model"
train_image = "reg.example.com/servebench:0.2"
image = "reg.example.com/mnist-app:0.2"
"""


def _files(tmp_path: Path, name: str, source: str = CONFIG) -> dict[str, str]:
    config = parse_config(source, tmp_path)
    target = build_target(config.targets[name], target_context(config))
    return {
        **target.manifests(),
        **training_manifests(
            target, model_table=tomllib.loads(source).get("model", {}), train_threads=config.model.torch_threads
        ),
    }


# --- Slurm ---------------------------------------------------------------------------------------


def _int_at_least_1(value: str) -> bool:
    return value.isdigit() and int(value) >= 1


def _slurm_time(value: str) -> bool:
    """sbatch --time: "minutes", "minutes:seconds", "hours:minutes:seconds", "days-hours",
    "days-hours:minutes" and "days-hours:minutes:seconds" (sbatch(1))."""
    days, dash, rest = value.partition("-")
    parts = rest.split(":") if dash else value.split(":")
    if dash and not days.isdigit():
        return False
    if not all(p.isdigit() for p in parts) or not 1 <= len(parts) <= (3 if dash else 3):
        return False
    return all(int(p) < 60 for p in parts[1:]) and (not dash or int(parts[0]) < 24)


def _filename_pattern(value: str) -> bool:
    """--output: a path whose % escapes are sbatch's filename patterns (%j job id, %x name, ...)."""
    return bool(value) and " " not in value and all(c in "%AaJjNnsStuUx" for c in re.findall(r"%(.)", value))


SBATCH_OPTIONS = {
    "job-name": lambda v: bool(re.fullmatch(r"[A-Za-z0-9_.-]+", v)),
    "time": _slurm_time,
    "nodes": _int_at_least_1,
    "ntasks": _int_at_least_1,
    "cpus-per-task": _int_at_least_1,
    "mem": lambda v: bool(re.fullmatch(r"[1-9][0-9]*[KMGT]?", v)),
    "output": _filename_pattern,
    "error": _filename_pattern,
    "partition": lambda v: bool(re.fullmatch(r"[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*", v)),
    "account": lambda v: bool(re.fullmatch(r"[A-Za-z0-9_.-]+", v)),
}


def _directives(script: str) -> dict[str, str]:
    """``#SBATCH --opt=value`` lines, which sbatch reads only before the first command."""
    found: dict[str, str] = {}
    seen_command = False
    for line in script.splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#SBATCH"):
            assert not seen_command, f"#SBATCH after the first command is ignored by sbatch: {line!r}"
            match = re.fullmatch(r"#SBATCH --([a-z-]+)=(\S+)", stripped)
            assert match, f"directive not in --option=value form: {line!r}"
            option, value = match.groups()
            assert option not in found, f"--{option} given twice"
            found[option] = value
        elif stripped and not stripped.startswith("#"):
            seen_command = True
    return found


@pytest.mark.parametrize("name", ["greene-linserv", "linserv-defaults"])
def test_slurm_script_passes_bash_n_and_its_directives_are_valid(tmp_path, name) -> None:
    script = _files(tmp_path, name)["slurm-train.sbatch"]
    path = tmp_path / "slurm-train.sbatch"
    path.write_text(script)
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert script.startswith("#!/bin/bash\n")
    directives = _directives(script)
    for option, value in directives.items():
        assert option in SBATCH_OPTIONS, f"unknown sbatch option --{option}"
        assert SBATCH_OPTIONS[option](value), f"--{option}={value} is not a valid value"
    assert {"job-name", "time", "cpus-per-task", "mem", "output"} <= set(directives)
    assert directives["cpus-per-task"] == "4"  # [model] torch_threads: the threads training uses
    assert "{{" not in script


def test_slurm_script_carries_the_settings_and_the_path_to_the_linserv_host(tmp_path) -> None:
    files = _files(tmp_path, "greene-linserv")
    script = files["slurm-train.sbatch"]
    directives = _directives(script)
    assert (directives["time"], directives["mem"]) == ("0-02:30", "12G")
    assert (directives["partition"], directives["account"]) == ("cs", "pr_123_general")
    assert "module load python/intel/3.11.4\nmodule load cuda/12.1\n" in script
    assert 'PROJECT_DIR="$SCRATCH/projects/servebench"' in script
    assert ".venv/bin/python -m bench train\n" in script
    # The copy step lands where the systemd unit rendered beside it reads the model.
    unit = files["servebench-greene-linserv.service"]
    served = re.search(r"SERVEBENCH_ARTIFACTS_DIR=(\S+)", unit).group(1)
    assert f"LINSERV:{served}/" in script
    defaults = _directives(_files(tmp_path, "linserv-defaults")["slurm-train.sbatch"])
    assert "partition" not in defaults and "account" not in defaults


def test_the_script_really_runs_bench_train_in_the_project_folder(tmp_path) -> None:
    """Run the script with bash (no sbatch): a fake project whose .venv/bin/python records its arguments."""
    project = tmp_path / "project"
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / "artifacts" / "model").mkdir(parents=True)
    fake = project / ".venv" / "bin" / "python"
    fake.write_text('#!/bin/sh\necho "$PWD $*" > "$PROJECT_LOG"\n')
    fake.chmod(0o755)
    source = CONFIG.replace('slurm_modules = ["python/intel/3.11.4", "cuda/12.1"]', "")
    script = _files(tmp_path, "greene-linserv", source)["slurm-train.sbatch"]
    (tmp_path / "job.sh").write_text(script)
    env = {
        "PATH": "/usr/bin:/bin",
        "SCRATCH": str(tmp_path / "scratch"),
        "PROJECT_LOG": str(tmp_path / "log"),
        "SLURM_CPUS_PER_TASK": "4",
    }
    (tmp_path / "scratch" / "projects").mkdir(parents=True)
    (tmp_path / "scratch" / "projects" / "servebench").symlink_to(project)
    result = subprocess.run(["bash", str(tmp_path / "job.sh")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "log").read_text().split()[1:] == ["-m", "bench", "train"]
    assert "with 4 CPU(s)" in result.stdout


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("slurm_time", "1h"),
        ("slurm_time", "1:2:3:4"),
        ("slurm_mem", "8 GB"),
        ("slurm_mem", "0G"),
        ("slurm_partition", "a b"),
        ("slurm_account", "x;rm"),
        ("hpc_dir", "~/servebench"),
        ("hpc_dir", "/path with space"),
        ("hpc_dir", '/x"y'),
        ("hpc_dir", "$(whoami)"),
    ],
)
def test_bad_slurm_settings_fail_naming_the_key(tmp_path, key, value) -> None:
    from bench.config import ConfigError

    source = f'[targets.linserv]\nadapter = "flask"\n{key} = {tomllib_quote(value)}\n'
    config = parse_config(source, tmp_path)
    with pytest.raises(ConfigError, match=key):
        build_target(config.targets["linserv"], target_context(config))


def tomllib_quote(value: str) -> str:
    from ground.toml_write import toml_value

    return toml_value(value)


# --- Kubernetes ------------------------------------------------------------------------------------


def test_k8s_training_documents_validate_strictly(tmp_path) -> None:
    files = _files(tmp_path, "k8s-ibm")
    assert {"train-job.yaml", "train-configmap.yaml", "model-pvc.yaml", "deployment.yaml"} <= set(files)
    for name in ("train-job.yaml", "train-configmap.yaml", "model-pvc.yaml", "deployment.yaml", "service.yaml"):
        kubernetes_validate.validate(yaml.safe_load(files[name]), K8S_VERSION, strict=True)


def test_the_job_trains_into_the_claim_the_deployment_serves_from(tmp_path) -> None:
    files = _files(tmp_path, "k8s-ibm")
    job = yaml.safe_load(files["train-job.yaml"])
    pvc = yaml.safe_load(files["model-pvc.yaml"])
    deployment = yaml.safe_load(files["deployment.yaml"])
    assert pvc["metadata"]["name"] == "mnist-model" and pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    pod = job["spec"]["template"]["spec"]
    (train,) = pod["containers"]
    assert train["image"] == "reg.example.com/servebench:0.2"
    assert train["command"][-1] == "train" and train["command"][:3] == ["python", "-m", "bench"]
    claim_mount = {m["name"]: m["mountPath"] for m in train["volumeMounts"]}
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
    }
    (claim_volume,) = claims
    assert claims[claim_volume] == "mnist-model"
    subfolder = Path(TRAIN_MODEL_DIR).relative_to(claim_mount[claim_volume])  # model/ inside the claim
    # The training Job's bench.toml is the user's [model]: same weights recipe, model written into the claim.
    config_map = yaml.safe_load(files["train-configmap.yaml"])
    assert config_map["metadata"]["name"] == next(v for v in pod["volumes"] if "configMap" in v)["configMap"]["name"]
    trained = parse_config(config_map["data"]["bench.toml"], tmp_path)
    assert trained.model.artifacts_dir == TRAIN_MODEL_DIR
    assert recorded_config(trained.model) == recorded_config(parse_config(CONFIG, tmp_path).model)
    assert pod["containers"][0]["resources"]["requests"]["cpu"] == "4"
    # The Deployment mounts the same claim read-only and copies model/ into the pod.
    spec = deployment["spec"]["template"]["spec"]
    dep_claims = {v["name"]: v["persistentVolumeClaim"] for v in spec["volumes"] if "persistentVolumeClaim" in v}
    assert list(dep_claims.values()) == [{"claimName": "mnist-model", "readOnly": True}]
    (init,) = spec["initContainers"]
    (ro_mount,) = [m for m in init["volumeMounts"] if m["name"] in dep_claims]
    assert ro_mount["readOnly"] is True
    assert f"{ro_mount['mountPath']}/{subfolder}/torchscript/model.pt" in init["command"][2]
    app = spec["containers"][0]
    env = {e["name"]: e.get("value") for e in app["env"]}
    app_mounts = {m["mountPath"]: m for m in app["volumeMounts"]}
    assert app_mounts[env["SERVEBENCH_ARTIFACTS_DIR"]]["readOnly"] is True


def _init_command(tmp_path: Path) -> tuple[str, str, str]:
    """The init container's shell command, its claim mount and its model folder."""
    spec = yaml.safe_load(_files(tmp_path, "k8s-ibm")["deployment.yaml"])["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
    return init["command"][2], mounts["trained-model"], mounts["model"]


def test_init_container_copies_the_model_or_says_what_is_missing(tmp_path) -> None:
    """The init command, run by sh with its two mount paths mapped to temporary folders
    (the model files are stand-ins: the command only checks for them and copies them)."""
    command, claim_mount, model_mount = _init_command(tmp_path)
    claim, model = tmp_path / "claim", tmp_path / "emptydir"
    claim.mkdir()
    model.mkdir()
    local = command.replace(claim_mount, str(claim)).replace(model_mount, str(model))
    empty = subprocess.run(["sh", "-c", local], capture_output=True, text=True)
    assert empty.returncode == 1 and "run train-job.yaml first" in empty.stderr
    (claim / "model" / "torchscript").mkdir(parents=True)
    (claim / "model" / "torchscript" / "model.pt").write_bytes(b"weights")
    (claim / "model" / "model.json").write_text("{}")
    filled = subprocess.run(["sh", "-c", local], capture_output=True, text=True)
    assert filled.returncode == 0, filled.stderr
    assert (model / "torchscript" / "model.pt").read_bytes() == b"weights"
    assert (model / "model.json").read_text() == "{}"


def test_other_adapters_get_no_training_files(tmp_path) -> None:
    source = '[targets.kubeflow-gcp]\nadapter = "kserve"\n'
    assert not any(
        name.startswith(("train", "slurm", "model-pvc")) for name in _files(tmp_path, "kubeflow-gcp", source)
    )
