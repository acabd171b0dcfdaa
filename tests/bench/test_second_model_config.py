"""Issue 24's second model stays out of the study: `bench run all` sees the same four targets.

The tabular stand-in is defined only in examples/tabular/bench.toml; these check that the
study's bench.toml is unchanged in what `run all` measures, and that the example's file
parses into a valid kserve target serving the tabular model.
"""

from __future__ import annotations

from pathlib import Path

from bench.config import load_config
from bench.run.request import RunRequest
from targets.base import TargetContext
from targets.registry import build_targets

STUDY_TARGETS = ["greene-linserv", "k8s-ibm", "kubeflow-gcp", "kubeflow-ibm"]


def test_run_all_measures_the_studys_four_mnist_targets(repo_root: Path) -> None:
    config = load_config(repo_root / "bench.toml")
    assert RunRequest(targets=("all",)).target_names(config) == STUDY_TARGETS
    for name in STUDY_TARGETS:
        assert config.targets[name].settings.get("model", "mnist") == "mnist", name


def test_the_tabular_example_defines_one_kserve_target(repo_root: Path, tmp_path: Path) -> None:
    config = load_config(repo_root / "examples" / "tabular" / "bench.toml")
    assert list(config.targets) == ["breast-cancer"]
    assert config.artifacts_dir == (repo_root / "artifacts" / "model").resolve()
    (target,) = build_targets(
        config.targets, ["all"], lambda n: TargetContext(artifacts_dir=tmp_path, log_dir=tmp_path)
    )
    assert (target.adapter, target.settings.model, target.settings.protocol) == ("kserve", "breast-cancer", "v2")
