"""The code passes ruff's lint rules and is ruff-formatted (pyproject.toml [tool.ruff]).

Why a test: the README's test command is what CI runs, so lint and format are enforced
there with no second entry point to forget. ruff is a test dependency (pyproject [test]).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    exe = shutil.which("ruff")
    if exe is None:
        pytest.fail("ruff is not installed: pip install -e '.[test]' installs it")
    return [exe]


def test_ruff_lint_passes() -> None:
    proc = subprocess.run([*_ruff(), "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, (
        f"ruff check found problems (fix with `ruff check --fix .`):\n{proc.stdout}{proc.stderr}"
    )


def test_ruff_format_is_clean() -> None:
    proc = subprocess.run([*_ruff(), "format", "--no-cache", "--check", "."], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, f"files not ruff-formatted (run `ruff format .`):\n{proc.stdout}{proc.stderr}"


def test_no_type_ignore_comments() -> None:
    """No type checker runs on this code, so a ``type: ignore`` comment would silence nothing checked."""
    marker = "# type" + ": ignore"  # split so this file does not match itself
    found = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sorted(REPO.rglob("*.py"))
        if not {".git", "artifacts", "results", "reports"} & set(path.relative_to(REPO).parts)
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if marker in line
    ]
    assert not found, "type-ignore comments with no type checker to obey them: " + ", ".join(found)
