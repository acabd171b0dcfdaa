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
