"""pytest set-up of the micro-benchmarks (``benchmarks/test_micro_*.py``).

Why here and not in pyproject.toml: the default test run (``python -m pytest``) collects
``tests/`` only and passes ``--benchmark-disable``; the micro-benchmarks run only when
``benchmarks/`` is named on the command line, timed only with ``--benchmark-enable``
(without it every benchmark body runs once, as a correctness check).  See
benchmarks/README.md for the commands.

- The saved baseline lives in ``benchmarks/.benchmarks`` (committed), so that folder is
  the default ``--benchmark-storage`` when none is given, whatever the working directory.
- Each benchmark records ``/proc/loadavg`` before and after it in its ``extra_info`` (saved
  in the JSON): on a shared machine a figure means little without the load it ran under.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

STORAGE = Path(__file__).resolve().parent / ".benchmarks"
_DEFAULT_STORAGE = "file://./.benchmarks"  # pytest-benchmark's own default


def pytest_configure(config: pytest.Config) -> None:
    """Point pytest-benchmark at benchmarks/.benchmarks unless --benchmark-storage was given.

    Runs before pytest-benchmark's own (``trylast``) configure, which opens the storage.
    """
    if getattr(config.option, "benchmark_storage", None) == _DEFAULT_STORAGE:
        config.option.benchmark_storage = f"file://{STORAGE}"


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text(encoding="ascii").strip()
    except OSError:
        return "unknown"


@pytest.fixture(autouse=True)
def _record_load(request: pytest.FixtureRequest) -> Iterator[None]:
    """Save the load average around each benchmark with its figures."""
    if "benchmark" not in request.fixturenames:
        yield
        return
    benchmark = request.getfixturevalue("benchmark")
    benchmark.extra_info["loadavg_before"] = _loadavg()
    yield
    benchmark.extra_info["loadavg_after"] = _loadavg()
