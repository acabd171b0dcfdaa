"""End to end: open-loop saturation against a real stand-in on loopback.

greene-linserv (gunicorn, one sync worker, Flask, the TorchScript model reloaded on every
request) answers ~80-150 req/s on a 2-core machine. Offered ten times its measured
capacity it must be flagged ``saturated`` (answers fall behind, sends on time); offered a
fifth of it, not. Both rates are derived from a sequential probe of the running stand-in,
so the verdicts keep their margins (x10, x1/5) however loaded the machine is; nothing is
asserted about how long anything took. Every step is bounded (``max_duration_s``) and
sent to 127.0.0.1 only. Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.run.runner import run_coroutine
from loadgen.engines import engine_class
from loadgen.records import StepResult
from loadgen.saturation import FLAG_CONNECTION_CAP, FLAG_TARGET_BEHIND, analyze_open_loop
from loadgen.stats import FLAG_SATURATED, step_flags, summarize
from loadgen.sweep import SweepPlan, run_sweep
from targets.base import Target, TargetContext
from targets.registry import build_target
from targets.spec import TargetSpec
from tests.support.e2e import copy_calibration
from tests.support.paths import REPO

# timing: the calm step must not be flagged client_behind, which a CPU-starved client is (run serially)
pytestmark = [pytest.mark.slow, pytest.mark.timing]

GREENE = {"model_loading": "per-request", "workers": 1}


@pytest.fixture(scope="module")
def greene(trained_model, tmp_path_factory) -> Iterator[Target]:
    context = TargetContext(
        artifacts_dir=trained_model.dir, log_dir=tmp_path_factory.mktemp("logs-greene"), ready_timeout_s=180.0
    )
    target = build_target(TargetSpec("greene-linserv", "flask", GREENE), context)
    asyncio.run(target.start())
    try:
        yield target
    finally:
        asyncio.run(target.stop())


def _one_step(target: Target, plan: SweepPlan, images: np.ndarray, labels: np.ndarray) -> StepResult:
    async def main() -> StepResult:
        steps = [step async for step in run_sweep(target, engine_class("fast"), plan, images, labels)]
        assert len(steps) == 1
        return steps[0]

    return run_coroutine(main())


def _figures(name: str, step: StepResult) -> str:
    row = summarize(step)
    verdict = analyze_open_loop(step)
    assert verdict is not None
    return (
        f"{name}: N={row['n_requests']} conc={row['concurrency']} offered {row['offered_rps']:.1f} req/s, "
        f"achieved {row['achieved_rps']:.1f} req/s, send lag p50 {row['send_lag_p50_s'] * 1e3:.2f} ms "
        f"max {row['send_lag_max_s'] * 1e3:.1f} ms growth {row['lag_growth_s'] * 1e3:.1f} ms, "
        f"answer-lag growth {verdict.answer_lag_growth_s * 1e3:.0f} ms, service growth "
        f"{verdict.service_growth_s * 1e3:.0f} ms (tolerance {verdict.tolerance_s * 1e3:.0f} ms), "
        f"p50 {row['lat_p50_s'] * 1e3:.1f} ms, errors {row['errors']}, flags {row['flags']!r}"
    )


def test_overloaded_rate_step_is_saturated_and_a_sustainable_one_is_not(greene, mnist) -> None:
    images, labels = mnist
    probe = _one_step(greene, SweepPlan(n_requests=(30,), modes=("sequential",), warmup=3), images, labels)
    assert all(r.ok for r in probe.records)
    capacity = summarize(probe)["throughput_rps"]  # one sync worker, one request at a time: its ceiling

    calm_rate = min(20.0, capacity / 5)
    calm = _one_step(
        greene,
        SweepPlan(
            n_requests=(1,), modes=("rate",), rate_rps=calm_rate, duration_s=3.0, warmup=3, timeout_s=10.0, seed=1
        ),
        images,
        labels,
    )
    over_rate = max(1000.0, 10 * capacity)
    over = _one_step(
        greene,
        SweepPlan(
            n_requests=(1,),
            modes=("rate",),
            rate_rps=over_rate,
            duration_s=2.0,
            concurrency=32,
            max_duration_s=5.0,
            timeout_s=10.0,
            warmup=3,
            seed=1,
        ),
        images,
        labels,
    )
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"\nloadavg {' '.join(load)}; sequential capacity {capacity:.1f} req/s")
    print(_figures(f"sustainable {calm_rate:g} req/s x 3 s", calm))
    print(_figures(f"overloaded {over_rate:g} req/s x 2 s", over))

    calm_row = summarize(calm)
    assert calm_row["errors"] == 0 and calm_row["saturated"] is False, _figures("calm", calm)
    assert step_flags(calm_row) == frozenset()
    assert calm_row["achieved_rps"] == pytest.approx(calm_row["offered_rps"], rel=0.05)

    over_row = summarize(over)
    flags = step_flags(over_row)
    assert over_row["saturated"] is True, _figures("over", over)
    assert {FLAG_SATURATED, FLAG_TARGET_BEHIND, FLAG_CONNECTION_CAP} <= flags, _figures("over", over)
    assert over_row["offered_rps"] == pytest.approx(over_rate, rel=0.1)
    assert over_row["achieved_rps"] < 0.5 * over_row["offered_rps"]


def test_bench_run_rate_flags_flag_and_say_saturated(tmp_path, trained_model) -> None:
    """`bench run greene-linserv --rate 1000 --duration 1 --concurrency 16`: the step is
    recorded as asked, flagged in summary.csv, and the console says so."""
    text = (REPO / "bench.toml").read_text()
    text = text.replace('artifacts_dir = "artifacts/model"', f'artifacts_dir = "{trained_model.dir}"')
    text = text.replace("[sweep]\n", "[sweep]\nmax_duration_s = 4.0\n")
    (tmp_path / "bench.toml").write_text(text + '\n[paths]\nresults_dir = "results"\nreports_dir = "reports"\n')
    copy_calibration(tmp_path / "results")  # the session's, measured at most once
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--config",
            str(tmp_path / "bench.toml"),
            "run",
            "greene-linserv",
            "--rate",
            "1000",
            "--duration",
            "1",
            "--concurrency",
            "16",
            "--engine",
            "fast",
            "--no-report",
            "--run-id",
            "over",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    print(proc.stderr[-3000:])
    assert proc.returncode in (0, 1), proc.stderr  # 1 when the 4-s bound cut requests off
    rows = pd.read_csv(tmp_path / "results" / "over" / "summary.csv")
    assert len(rows) == 1
    row = rows.iloc[0].to_dict()
    assert (row["mode"], row["n_requests"], row["concurrency"], row["rate"]) == ("rate", 1000, 16, 1000.0)
    assert {FLAG_SATURATED, FLAG_TARGET_BEHIND} <= step_flags(row)
    assert "offered " in proc.stderr and "achieved " in proc.stderr
    assert "is SATURATED" in proc.stderr and "answers fell behind" in proc.stderr
