"""Micro-benchmarks: ``bench compare`` on two runs of 100,000 request records each.

Why three: what ``python -m bench compare A B`` does before rendering is read both run
folders (``load_run``: summary.csv, meta.json and the gzip members of requests.csv.gz
through pandas) and then compare them (``compare_runs``: per-trial values from the
summaries, Welch + Holm per step, a 4,000-resample bootstrap per target, and a
Mann-Whitney detail per step over the pooled per-request latencies).  The first benchmark
times both together, the second ``compare_runs`` alone on runs already in memory, the
third the one per-request statistic alone on 2 x 100 k pooled latencies.

The runs are written by the real writer (``micro_data.write_compare_run``) with a known
truth: B is 1.5x slower on greene-linserv, unchanged on kubeflow-gcp, and one step of B
has a refused request.  The benchmarks assert that compare finds exactly that.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from micro_data import (
    COMPARE_MODES,
    COMPARE_NS,
    COMPARE_TARGETS,
    COMPARE_TRIALS,
    FAILED_STEP,
    SLOWDOWN,
    write_compare_run,
)
from scipy import stats

from bench.compare.stats import mannwhitney_p
from bench.compare.verdict import CompareResult, compare_runs
from bench.results import RunData, load_run

N_PER_RUN = len(COMPARE_TARGETS) * len(COMPARE_MODES) * sum(COMPARE_NS) * COMPARE_TRIALS


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("compare")
    a = write_compare_run(folder, "run-a", seed=1)
    b = write_compare_run(folder, "run-b", seed=2, slowdown=SLOWDOWN, failed_step=FAILED_STEP)
    return a, b


@pytest.fixture(scope="module")
def runs(run_dirs: tuple[Path, Path]) -> tuple[RunData, RunData]:
    a, b = (load_run(d) for d in run_dirs)
    assert a.requests is not None and b.requests is not None
    assert len(a.requests) == len(b.requests) == N_PER_RUN == 100_000
    return a, b


def check_result(result: CompareResult) -> None:
    """Compare found what the runs were built with."""
    steps_per_target = len(COMPARE_MODES) * len(COMPARE_NS)
    assert len(result.steps) == len(COMPARE_TARGETS) * steps_per_target
    assert not result.only_in_a and not result.only_in_b
    verdicts = {t.target: t for t in result.targets}
    slow, same = verdicts["greene-linserv"], verdicts["kubeflow-gcp"]
    assert slow.verdict == "slower" and slow.ratio == pytest.approx(SLOWDOWN["greene-linserv"], rel=0.1)
    assert same.verdict != "slower" and same.ratio == pytest.approx(1.0, rel=0.1)
    failed = [s for s in result.steps if s.verdict == "failed"]
    assert [(s.target, s.mode, s.n_requests) for s in failed] == [FAILED_STEP]
    assert same.steps == steps_per_target - 1 and same.excluded == 1
    # Every step that has clean trials on both sides carries the per-request detail p-value.
    assert all(not math.isnan(s.p_requests) for s in result.steps)


def test_load_and_compare_2x100k(benchmark, run_dirs: tuple[Path, Path]) -> None:
    """What `bench compare A B` computes: read both folders, compare (rendering excluded)."""

    def load_and_compare() -> CompareResult:
        return compare_runs(load_run(run_dirs[0]), load_run(run_dirs[1]))

    check_result(benchmark(load_and_compare))


def test_compare_runs_in_memory_2x100k(benchmark, runs: tuple[RunData, RunData]) -> None:
    """The statistics alone, on runs already read."""
    check_result(benchmark(compare_runs, *runs))


def test_mannwhitney_2x100k(benchmark) -> None:
    """The per-request detail test on 2 x 100 k pooled latencies (B 2 % slower: clearly detected)."""
    rng = np.random.default_rng(5)
    a = 0.002 * rng.lognormal(0.0, 0.25, size=100_000)
    b = 0.002 * 1.02 * rng.lognormal(0.0, 0.25, size=100_000)
    p = benchmark(mannwhitney_p, a, b)
    assert p == pytest.approx(float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue), rel=1e-9)
    assert p < 1e-6
