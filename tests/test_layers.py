"""The one-way layers: the import-linter contracts hold, no module cycle exists, and the check can fail.

Why a test and not only ``lint-imports``: the test command is what CI runs, so a future
backward import fails CI without anyone remembering a second tool.  Three things:

1. the real contracts in pyproject.toml, run by import-linter on this checkout, are kept;
2. no two modules import each other, directly or around a longer loop (grimp's graph);
3. the check is not vacuous: a tiny package set with the same layers and acyclic contracts (the names
   prefixed) passes, then fails naming the one backward import added to it -- and a cycle
   added to it fails the acyclic contract.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

from tests.support.paths import REPO as REPO_ROOT

#: High -> low, as docs/architecture.md draws them; "loadgen | models" are independent.
LAYERS = ["bench", "webui", "targets", "loadgen | models", "ground"]
PACKAGES = ["bench", "webui", "targets", "loadgen", "models", "ground"]


def _importlinter_table() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]


def _lint_imports(cwd: Path, config: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter as ``lint-imports`` does, on the packages importable from ``cwd`` only."""
    code = (
        "import sys; from importlinter.cli import lint_imports; "
        f"sys.exit(lint_imports(config_filename={str(config)!r}, no_cache=True, no_logo=True))"
    )
    env = {**os.environ, "PYTHONPATH": str(cwd), "COLUMNS": "200"}  # wide: one line per contract
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


# -- 1. the real contracts --------------------------------------------------------------------
def test_the_contracts_are_the_documented_layers() -> None:
    table = _importlinter_table()
    assert table["root_packages"] == PACKAGES
    contracts = {c["id"]: c for c in table["contracts"]}
    assert contracts["layers"]["type"] == "layers" and contracts["layers"]["layers"] == LAYERS
    assert not contracts["layers"].get("ignore_imports"), "the layers contract must not carve out exceptions"
    assert contracts["acyclic"]["type"] == "acyclic_siblings"
    assert sorted(contracts["acyclic"]["ancestors"]) == sorted(PACKAGES)


def test_the_real_contracts_are_kept_on_this_checkout() -> None:
    result = _lint_imports(REPO_ROOT, REPO_ROOT / "pyproject.toml")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    contracts = _importlinter_table()["contracts"]
    for contract in contracts:
        assert f"{contract['name']} KEPT" in output, output
    assert f"Contracts: {len(contracts)} kept, 0 broken." in output


def test_every_command_module_is_in_the_independence_contract() -> None:
    """A new module in bench/commands/ joins the contract that keeps command modules from importing each other."""
    contracts = {c["id"]: c for c in _importlinter_table()["contracts"]}
    folder = REPO_ROOT / "bench" / "commands"
    modules = {f"bench.commands.{p.stem}" for p in folder.glob("*.py") if p.stem not in ("__init__", "common")}
    assert set(contracts["commands-independent"]["modules"]) == modules
    assert contracts["features-below-commands"]["forbidden_modules"] == ["bench.cli", "bench.commands"]


# -- 2. no module imports itself around a loop ------------------------------------------------
def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_between_modules() -> None:
    import importlib.util

    for package in PACKAGES:  # grimp reads the files of the importable packages: this checkout's
        origin = importlib.util.find_spec(package).origin
        assert Path(origin).resolve().is_relative_to(REPO_ROOT), f"{package} imports from {origin}"
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert "bench.cli" in graph.modules and "ground.tables" in graph.modules
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for name in ("p", "p.a", "p.b", "p.c", "p.d"):
        graph.add_module(name)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    graph.add_import(importer="p.c", imported="p.a")
    graph.add_import(importer="p.d", imported="p.a")
    assert _cycles(graph) == [["p.a", "p.b", "p.c"]]


# -- 3. the check can fail ----------------------------------------------------------------------
PREFIX = "lt_"


def _write_package_set(root: Path) -> None:
    """Six packages named like ours (prefixed), each importing only the layer below it."""
    below = {
        "bench": ["webui"],
        "webui": ["targets"],
        "targets": ["loadgen", "models"],
        "loadgen": ["ground"],
        "models": ["ground"],
        "ground": [],
    }
    for package, lower in below.items():
        folder = root / f"{PREFIX}{package}"
        folder.mkdir()
        (folder / "__init__.py").write_text("")
        imports = "".join(f"import {PREFIX}{name}.core\n" for name in lower)
        (folder / "core.py").write_text(f'"""{package} core."""\n{imports}')
        (folder / "cli.py" if package == "bench" else folder / "stats.py").write_text(
            f"from {PREFIX}{package} import core\n"
        )


def _write_config(root: Path) -> Path:
    """pyproject.toml with the real layers and acyclic contracts, every package name prefixed (the contracts
    inside bench/ name modules the tiny package set does not have)."""
    table = _importlinter_table()

    def rename(text: str) -> str:
        return " | ".join(f"{PREFIX}{part.strip()}" for part in text.split("|"))

    def toml_list(items: list[str]) -> str:
        return "[" + ", ".join(f'"{item}"' for item in items) + "]"

    lines = ["[tool.importlinter]", f"root_packages = {toml_list([rename(p) for p in table['root_packages']])}"]
    # The two contracts between the top-level packages; the ones inside a package (targets/,
    # bench/) name subpackages this miniature set does not have.
    for contract in (c for c in table["contracts"] if c["id"] in ("layers", "acyclic")):
        lines += ["", "[[tool.importlinter.contracts]]"]
        for key, value in contract.items():
            if key == "ignore_imports":
                continue
            if key in ("layers", "ancestors"):
                lines.append(f"{key} = {toml_list([rename(v) for v in value])}")
            else:
                lines.append(f'{key} = "{value}"')
    config = root / "pyproject.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def test_a_backward_import_fails_the_check_naming_it(tmp_path: Path) -> None:
    _write_package_set(tmp_path)
    config = _write_config(tmp_path)
    clean = _lint_imports(tmp_path, config)
    assert clean.returncode == 0, clean.stdout + clean.stderr  # the same shape, no backward import: kept

    stats = tmp_path / f"{PREFIX}loadgen" / "stats.py"
    stats.write_text(stats.read_text() + f"import {PREFIX}bench.cli  # the backward import\n")
    broken = _lint_imports(tmp_path, config)
    output = broken.stdout + broken.stderr
    assert broken.returncode == 1, output
    assert f"{PREFIX}loadgen is not allowed to import {PREFIX}bench" in output
    assert f"{PREFIX}loadgen.stats -> {PREFIX}bench.cli (l.2)" in output
    assert "Contracts: 1 kept, 1 broken." in output


@pytest.mark.parametrize(("importer", "imported"), [("loadgen", "models"), ("models", "loadgen")])
def test_the_independent_pair_may_not_import_each_other(tmp_path: Path, importer: str, imported: str) -> None:
    _write_package_set(tmp_path)
    config = _write_config(tmp_path)
    core = tmp_path / f"{PREFIX}{importer}" / "core.py"
    core.write_text(core.read_text() + f"import {PREFIX}{imported}.core\n")
    result = _lint_imports(tmp_path, config)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"{PREFIX}{importer} is not allowed to import {PREFIX}{imported}" in output


def test_a_module_cycle_fails_the_acyclic_contract(tmp_path: Path) -> None:
    _write_package_set(tmp_path)
    config = _write_config(tmp_path)
    targets = tmp_path / f"{PREFIX}targets"
    (targets / "server.py").write_text(f"from {PREFIX}targets import model\n")
    (targets / "model.py").write_text(f"from {PREFIX}targets import server\n")
    result = _lint_imports(tmp_path, config)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"No cycles are allowed in {PREFIX}targets" in output
    assert "Contracts: 1 kept, 1 broken." in output
