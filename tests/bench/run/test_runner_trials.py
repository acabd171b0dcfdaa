"""bench.run.runner.sweep_targets with independent trials: a fresh start per trial, shuffled order,
rows written as measured, a once-per-target phase run once, remote targets within-run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.capacity.run import with_capacity
from bench.results import RunWriter
from bench.results.header import new_meta
from bench.run.runner import RunEvents, TargetOutcome, sweep_targets
from bench.run.trial_design import RESTART, WITHIN_RUN
from loadgen.engines.memory_engine import MemoryEngine
from loadgen.engines.virtual_time import run_virtual
from loadgen.stats import SUMMARY_COLUMNS
from loadgen.sweep import SweepPlan, run_sweep
from tests.support.loadgen import MEMORY_URL, FakeTarget, SingleWorker, digit_images

LABELS = np.random.default_rng(3).integers(0, 10, size=20)
IMAGES = digit_images(LABELS)


class LocalFake(FakeTarget):
    """A local stand-in double: counts its starts and gets a new port each time."""

    def __init__(self, name: str, log: list[tuple[str, str]], remote: bool = False) -> None:
        super().__init__("", name)
        self.log, self.remote, self.starts = log, remote, 0

    async def start(self) -> None:
        self.starts += 1
        self.base_url = f"{MEMORY_URL}:{1000 + self.starts}" if not self.remote else MEMORY_URL
        self.log.append(("start", self.name))

    async def stop(self) -> None:
        self.log.append(("stop", self.name))

    @property
    def is_remote(self) -> bool:
        return self.remote


class CountingPhase:
    """Stands for the capacity phase: records which target it ran for and when."""

    def __init__(self, log: list[tuple[str, str]]) -> None:
        self.log = log

    async def run(self, target, engine_factory, images, labels) -> None:
        self.log.append(("phase", target.name))


def _run(tmp_path: Path, targets: list[LocalFake], trials: int, design: str, log: list) -> tuple[Path, dict, list]:
    run_dir = tmp_path / "r"
    plan = SweepPlan(n_requests=(1, 3), modes=("sequential",), trials=trials, warmup=0, seed=11)
    writer = RunWriter(run_dir, "r", SUMMARY_COLUMNS)
    meta = new_meta(
        run_id="r",
        root=tmp_path,
        config_sha256="0",
        config_path="c",
        sweep=plan.describe(),
        targets=[t.name for t in targets],
    )
    outcomes = [TargetOutcome(t.name) for t in targets]
    engines = MemoryEngine.factory(SingleWorker(0.001))
    sweep = with_capacity(run_sweep, CountingPhase(log))
    run_virtual(
        sweep_targets(
            targets,
            outcomes,
            run_sweep=sweep,
            engine_factory=engines,
            plan=plan,
            images=IMAGES,
            labels=LABELS,
            writer=writer,
            meta=meta,
            events=RunEvents(),
            trial_design=design,
        )
    )
    writer.close()
    return run_dir, meta.details, outcomes


def test_restart_design_starts_each_local_target_once_per_trial(tmp_path) -> None:
    log: list[tuple[str, str]] = []
    targets = [LocalFake(n, log) for n in ("a", "b", "c")]
    run_dir, details, outcomes = _run(tmp_path, targets, 4, RESTART, log)
    assert [t.starts for t in targets] == [4, 4, 4]
    assert [o.status for o in outcomes] == ["ok", "ok", "ok"] and all(o.steps == 8 for o in outcomes)
    # the once-per-target phase ran once per target, on its last visit, while it was up
    assert sorted(e for e in log if e[0] == "phase") == [("phase", "a"), ("phase", "b"), ("phase", "c")]
    for name in "abc":
        phase_at = log.index(("phase", name))
        assert log[phase_at - 1] == ("start", name) and log[phase_at + 1] == ("stop", name)
        assert sum(1 for e in log[phase_at:] if e == ("start", name)) == 0  # no visit of it after the phase
    # rows are written in the order measured: per round, each target's one trial
    summary = pd.read_csv(run_dir / "summary.csv")
    rounds = [list(dict.fromkeys(summary[summary["trial"] == t]["target"])) for t in range(1, 5)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1  # shuffled per trial
    assert list(summary["trial"]) == sorted(summary["trial"])
    design = details["trial_design"]
    assert design["design"] == "restart" and set(design["per_target"].values()) == {"restart"}
    assert [v["target"] for v in design["visits"]] == [n for r in rounds for n in r]
    starts = details["trial_design"]["starts"]["a"]
    assert [s["trials"] for s in starts] == [[1], [2], [3], [4]]
    assert len({s["base_url"] for s in starts}) == 4  # a fresh port per trial
    assert len(details["host_noise"]["targets"]["a"]["visits"]) == 4


def test_remote_target_runs_its_trials_in_one_visit(tmp_path) -> None:
    log: list[tuple[str, str]] = []
    targets = [LocalFake("local", log), LocalFake("far", log, remote=True)]
    run_dir, details, outcomes = _run(tmp_path, targets, 3, RESTART, log)
    assert [t.starts for t in targets] == [3, 1]
    assert details["trial_design"]["per_target"] == {"local": "restart", "far": "within-run"}
    assert details["trial_design"]["remote_within_run"] == ["far"]
    summary = pd.read_csv(run_dir / "summary.csv")
    assert sorted(summary[summary["target"] == "far"]["trial"]) == [1, 1, 2, 2, 3, 3]
    assert [o.status for o in outcomes] == ["ok", "ok"]


def test_within_run_design_is_the_old_loop(tmp_path) -> None:
    log: list[tuple[str, str]] = []
    targets = [LocalFake("a", log), LocalFake("b", log)]
    run_dir, details, _ = _run(tmp_path, targets, 3, WITHIN_RUN, log)
    assert [t.starts for t in targets] == [1, 1]
    summary = pd.read_csv(run_dir / "summary.csv")
    assert list(summary["target"]) == ["a"] * 6 + ["b"] * 6
    assert details["trial_design"]["per_target"] == {"a": "within-run", "b": "within-run"}


def test_a_failed_start_skips_the_targets_remaining_trials_only(tmp_path) -> None:
    log: list[tuple[str, str]] = []

    class Flaky(LocalFake):
        async def start(self) -> None:
            await super().start()
            if self.starts == 2:
                raise RuntimeError("port in use")

    targets = [Flaky("flaky", log), LocalFake("fine", log)]
    _, details, outcomes = _run(tmp_path, targets, 3, RESTART, log)
    assert targets[0].starts == 2 and targets[1].starts == 3
    assert outcomes[0].status == "start_failed" and "trial 2/3" in outcomes[0].message
    assert "remaining trials skipped" in outcomes[0].message and outcomes[0].steps == 2
    assert outcomes[1].status == "ok" and outcomes[1].steps == 6
    assert ("phase", "flaky") not in log and ("phase", "fine") in log
