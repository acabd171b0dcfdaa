"""targets.registry: adapters by name, import path and entry point; errors name target and key."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bench.config import parse_config
from ground.tables import ConfigError
from targets.base import TargetContext
from targets.flask.k8s import K8sTarget
from targets.flask.target import FlaskTarget
from targets.registry import ENTRY_POINT_GROUP, build_target, build_targets, resolve_adapter
from targets.spec import TargetSpec
from tests.support.target_cases import EXAMPLE_ADAPTER, EXAMPLE_DIR

CTX = TargetContext(artifacts_dir=Path("/nonexistent"), log_dir=Path("/tmp"))


def _spec(table: dict, name: str = "my-target", adapter: str = "flask") -> TargetSpec:
    return TargetSpec(name=name, adapter=adapter, settings=table)


def test_builtin_names_resolve() -> None:
    assert resolve_adapter(_spec({}, adapter="flask")) is FlaskTarget
    assert resolve_adapter(_spec({}, adapter="k8s")) is K8sTarget


def test_defaults_follow_the_study() -> None:
    flask = build_target(_spec({}), CTX)
    assert flask.settings.model_loading == "per-request" and flask.settings.workers == 1
    k8s = build_target(_spec({}, adapter="k8s"), CTX)
    assert k8s.settings.replicas == 2 and k8s.settings.model_loading == "per-request"
    assert not flask.is_remote and flask.describe()["mode"] == "local"


def test_unknown_adapter_names_target_and_key() -> None:
    with pytest.raises(ConfigError) as info:
        build_target(_spec({}, adapter="flsk"), CTX)
    assert info.value.where == "targets.my-target.adapter"
    assert "unknown adapter 'flsk'" in str(info.value) and "flask" in str(info.value)


def test_misspelt_key_names_target_key_and_suggestion() -> None:
    with pytest.raises(ConfigError) as info:
        build_target(_spec({"model_loadng": "startup"}), CTX)
    assert info.value.where == "targets.my-target.model_loadng"
    assert "did you mean 'model_loading'" in str(info.value)


def test_wrong_type_names_target_and_key() -> None:
    with pytest.raises(ConfigError) as info:
        build_target(_spec({"replicas": "two"}, adapter="k8s"), CTX)
    assert info.value.where == "targets.my-target.replicas"
    assert "integer" in str(info.value)


def test_bad_literal_and_bad_value() -> None:
    with pytest.raises(ConfigError, match=r"targets\.my-target\.model_loading: must be one of"):
        build_target(_spec({"model_loading": "lazy"}), CTX)
    with pytest.raises(ConfigError, match=r"targets\.my-target: workers"):
        build_target(_spec({"workers": 0}), CTX)
    with pytest.raises(ConfigError, match="endpoint must be an http"):
        build_target(_spec({"endpoint": "ftp://x"}), CTX)
    with pytest.raises(ConfigError, match="environment variable NAME"):
        build_target(_spec({"endpoint": "http://x", "bearer_token_env": "Bearer abc.def"}), CTX)


def test_import_path_errors_name_the_key() -> None:
    for ref, expected in [
        ("no_such_module_xyz:Thing", "cannot import module 'no_such_module_xyz'"),
        ("targets.flask.target:NoSuchClass", "has no attribute 'NoSuchClass'"),
        ("targets.flask.target:decode_predictions", "not a subclass of targets.base.Target"),
    ]:
        with pytest.raises(ConfigError) as info:
            resolve_adapter(_spec({}, adapter=ref))
        assert info.value.where == "targets.my-target.adapter"
        assert expected in str(info.value)


def test_import_path_adapter(monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE_DIR))
    cls = resolve_adapter(_spec({}, adapter=EXAMPLE_ADAPTER))
    assert cls.__name__ == "AiohttpTarget"
    with pytest.raises(ConfigError, match=r"targets\.my-target\.workers: unknown key"):
        build_target(_spec({"workers": 2}, adapter=EXAMPLE_ADAPTER), CTX)


def test_entry_point_adapter(tmp_path, monkeypatch) -> None:
    """A real entry point: a dist-info folder on sys.path, as `pip install` would leave."""
    site = tmp_path / "site"
    dist = site / "servebench_aiohttp_example-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: servebench-aiohttp-example\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\naiohttp-example = {EXAMPLE_ADAPTER}\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(EXAMPLE_DIR))
    target = build_target(_spec({}, adapter="aiohttp-example"), CTX)
    assert type(target).__name__ == "AiohttpTarget" and target.adapter == "aiohttp-example"
    # And an entry point whose object is broken still names the key.
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nbroken = no_such_pkg_xyz.mod:Cls\n")
    with pytest.raises(ConfigError) as info:
        build_target(_spec({}, adapter="broken"), CTX)
    assert info.value.where == "targets.my-target.adapter" and "failed to load" in str(info.value)


def test_build_targets_validates_all_before_starting(tmp_path) -> None:
    source = """
[targets.a]
adapter = "flask"
[targets.b]
adapter = "k8s"
replicas = 3
"""
    config = parse_config(source, tmp_path)
    built = build_targets(config.targets, ["all"], lambda name: CTX)
    assert [t.name for t in built] == ["a", "b"] and built[1].settings.replicas == 3
    with pytest.raises(ConfigError, match=r"targets\.nope: no such target"):
        build_targets(config.targets, ["a", "nope"], lambda name: CTX)
    bad = parse_config(source + "workerz = 2\n", tmp_path)
    with pytest.raises(ConfigError, match=r"targets\.b\.workerz"):
        build_targets(bad.targets, ["all"], lambda name: CTX)


def test_registry_import_is_light() -> None:
    """Resolving flask/k8s must not import torch or tensorflow (`bench targets` stays fast)."""
    import subprocess

    code = (
        "import sys; from targets.registry import resolve_adapter; from targets.spec import TargetSpec;"
        "resolve_adapter(TargetSpec('a','flask',{})); resolve_adapter(TargetSpec('b','k8s',{}));"
        "print(sorted(m for m in ('torch','tensorflow','flask') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- the public surface: ``from targets import ...`` -------------------------------------------
def test_public_surface_names_resolve_to_their_modules() -> None:
    import importlib

    import targets

    assert sorted(targets.__all__) == sorted(targets._SURFACE)
    for name, module in targets._SURFACE.items():
        assert getattr(targets, name) is getattr(importlib.import_module(module), name), name
    with pytest.raises(AttributeError, match="no_such_name"):
        targets.no_such_name  # noqa: B018 - the attribute access is the test


def test_importing_targets_imports_nothing_else() -> None:
    """A stand-in's image copies ``targets/__init__.py`` and its own files only: the package must not pull more."""
    import subprocess

    code = (
        "import sys, targets; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('targets', 'models', 'loadgen', 'ground', 'bench', 'numpy', 'torch')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == "['targets']"
