"""Katib semantics of the local search: declared space, grid order, seeds, goal, failures.

The objectives here are plain functions of the parameters (no training), so these tests
check the search loop itself in milliseconds; real trials are covered in test_hpo_trial.py
and test_hpo_e2e.py.
"""

from __future__ import annotations

import math
import sys
import threading
import time

import pytest

from models.hpo.runner import ProcessTrialRunner, parse_metrics, trial_command
from models.hpo.search import ALGORITHMS, TrialFailed, TrialOutcome, derive_seed, run_study
from models.hpo.space import SearchSpace, TrialParams

SPACE = SearchSpace()


def bowl(params: TrialParams) -> TrialOutcome:
    """A smooth objective with its minimum inside the space (lr 0.035, batch 92)."""
    return TrialOutcome(loss=0.1 + (params.lr - 0.035) ** 2 * 100 + ((params.batch_size - 92) / 20) ** 2, accuracy=0.9)


def params_of(study):
    return [(t.lr, t.batch_size) for t in study.trials]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_samplers_see_declared_space_only(algorithm: str) -> None:
    seen: list[TrialParams] = []
    lock = threading.Lock()

    def objective(params: TrialParams) -> TrialOutcome:
        with lock:
            seen.append(params)
        return bowl(params)

    n = 7 if algorithm == "bayesian" else 15  # a GP suggestion costs ~1-3 s on 2 busy cores
    study = run_study(algorithm, objective, space=SPACE, max_trials=n, parallel=3, seed=7, bayesian_initial_points=4)
    assert len(seen) == len(study.trials) == n
    grid = SPACE.grid_values()
    for p in seen:
        assert SPACE.contains(p), p
        assert isinstance(p.batch_size, int) and isinstance(p.lr, float)
        if algorithm == "grid":
            assert p.lr in grid["lr"] and p.batch_size in grid["batch_size"]
    assert all(t.state == "COMPLETE" for t in study.trials)
    assert study.stop_reason == "max_trials"


def test_grid_values_follow_katib_steps() -> None:
    assert SPACE.grid_values() == {"lr": [0.01, 0.02, 0.03, 0.04, 0.05], "batch_size": [80, 85, 90, 95, 100]}
    assert len(SPACE.grid_points()) == 25


def test_grid_covers_its_points_in_order() -> None:
    study = run_study("grid", bowl, space=SPACE, max_trials=25, parallel=3, seed=0)
    expected = [(p["lr"], p["batch_size"]) for p in SPACE.grid_points()]
    assert params_of(study) == expected
    assert [t.number for t in study.trials] == list(range(25))


def test_grid_stops_when_exhausted_and_shuffled_order_covers_all_points() -> None:
    study = run_study("grid", bowl, space=SPACE, max_trials=40, parallel=2, seed=0)
    assert len(study.trials) == 25 and study.stop_reason == "grid_exhausted"
    shuffled = run_study("grid", bowl, space=SPACE, max_trials=25, parallel=1, seed=3, grid_order="shuffled")
    points = params_of(shuffled)
    assert sorted(points) == sorted((p["lr"], p["batch_size"]) for p in SPACE.grid_points())
    assert len(set(points)) == 25
    assert points != [(p["lr"], p["batch_size"]) for p in SPACE.grid_points()]  # Optuna's own seeded order


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_seeded_run_is_reproducible(algorithm: str) -> None:
    runs = [
        run_study(algorithm, bowl, space=SPACE, max_trials=6, parallel=1, seed=seed, bayesian_initial_points=3)
        for seed in (11, 11, 12)
    ]
    assert params_of(runs[0]) == params_of(runs[1])
    assert [t.loss for t in runs[0].trials] == [t.loss for t in runs[1].trials]
    if algorithm != "grid":  # the sequential grid does not depend on the seed
        assert params_of(runs[0]) != params_of(runs[2])


def test_random_is_reproducible_with_parallel_trials() -> None:
    """Suggestions are asked in trial order on one thread, so completion order does not matter."""

    def jittery(params: TrialParams) -> TrialOutcome:
        time.sleep((params.number * 7919 % 5) / 1000)
        return bowl(params)

    a = run_study("random", jittery, space=SPACE, max_trials=9, parallel=3, seed=5)
    b = run_study("random", bowl, space=SPACE, max_trials=9, parallel=3, seed=5)
    assert params_of(a) == params_of(b)


def test_bayesian_uses_its_model_after_the_initial_points() -> None:
    """After the random start the GP concentrates near the bowl's minimum more than random does."""
    bayes = run_study("bayesian", bowl, space=SPACE, max_trials=14, parallel=1, seed=1, bayesian_initial_points=4)
    rand = run_study("random", bowl, space=SPACE, max_trials=14, parallel=1, seed=1)
    assert params_of(bayes)[:4] == params_of(rand)[:4]  # same seeded random start
    assert bayes.best.loss <= rand.best.loss


def test_goal_stops_the_study_early() -> None:
    def objective(params: TrialParams) -> TrialOutcome:
        return TrialOutcome(loss=0.0005 if params.number == 4 else 0.5)

    study = run_study("random", objective, space=SPACE, max_trials=15, parallel=1, seed=0, goal=0.001)
    assert study.stop_reason == "goal"
    assert len(study.trials) == 5
    assert study.best.number == 4
    parallel = run_study("random", objective, space=SPACE, max_trials=15, parallel=3, seed=0, goal=0.001)
    assert parallel.stop_reason == "goal" and len(parallel.trials) < 15  # running trials finish, no new ones


def test_failed_trial_is_recorded_and_the_study_goes_on() -> None:
    def objective(params: TrialParams) -> TrialOutcome:
        if params.number == 1:
            raise RuntimeError("out of memory (simulated)")
        if params.number == 3:
            return TrialOutcome(loss=float("nan"))
        return bowl(params)

    study = run_study("random", objective, space=SPACE, max_trials=6, parallel=2, seed=0)
    assert len(study.trials) == 6 and study.stop_reason == "max_trials"
    states = {t.number: t.state for t in study.trials}
    assert states[1] == "FAILED" and states[3] == "FAILED"
    assert sum(s == "COMPLETE" for s in states.values()) == 4
    failed = {t.number: t for t in study.trials if t.state == "FAILED"}
    assert "RuntimeError: out of memory (simulated)" in failed[1].error
    assert "non-finite loss" in failed[3].error and math.isnan(failed[1].loss)
    assert study.n_failed == 2 and study.best.state == "COMPLETE"


def test_too_many_failures_stop_the_study() -> None:
    def always_fails(params: TrialParams) -> TrialOutcome:
        raise TrialFailed("no 'loss=<number>' line in the trial's output")

    study = run_study("grid", always_fails, space=SPACE, max_trials=15, parallel=1, max_failed=3)
    assert study.stop_reason == "max_failed"
    assert len(study.trials) == 4  # Katib stops when failures exceed maxFailedTrialCount
    assert study.best is None


def test_on_trial_sees_every_trial_and_bad_arguments_are_rejected() -> None:
    seen = []
    study = run_study("random", bowl, space=SPACE, max_trials=5, parallel=2, seed=0, on_trial=seen.append)
    assert sorted(r.number for r in seen) == [0, 1, 2, 3, 4] == [t.number for t in study.trials]
    assert all(0 <= t.start_s <= t.end_s <= study.wall_s + 1e-6 for t in study.trials)
    with pytest.raises(ValueError, match="unknown algorithm"):
        run_study("tpe", bowl, space=SPACE, max_trials=3)
    with pytest.raises(ValueError):
        run_study("random", bowl, space=SPACE, max_trials=0)


def test_derive_seed_is_stable_and_distinct() -> None:
    assert derive_seed(0, "random", 0) == derive_seed(0, "random", 0)
    assert len({derive_seed(0, a, r) for a in ALGORITHMS for r in range(3)}) == 9


def test_parse_metrics_reads_katib_stdout_format() -> None:
    text = "trial: lr 0.05, batch size 80\nepoch 1: loss=0.9\nloss=0.1234\naccuracy=0.95\nnoise x= y\n"
    assert parse_metrics(text) == {"loss": 0.1234, "accuracy": 0.95}
    assert parse_metrics("loss = 1e-3") == {"loss": 0.001}
    assert parse_metrics("nothing here") == {}


def test_trial_command_matches_the_entry_point() -> None:
    from models.trial import _parser

    argv = trial_command(TrialParams(0, 0.0325, 91), epochs=2, momentum=0.5, config_path="x.toml")
    assert argv[:3] == [sys.executable, "-m", "models.trial"]
    args = _parser().parse_args(argv[3:])
    assert (args.lr, args.batch_size, args.epochs, args.config, args.threads) == (0.0325, 91, 2, "x.toml", 1)


def test_process_runner_reports_a_failing_trial_process() -> None:
    runner = ProcessTrialRunner(epochs=1, timeout_s=60)
    with pytest.raises(TrialFailed, match="exited with 2.*must be a positive number"):
        runner(TrialParams(0, -1.0, 80))


class _SleepRunner(ProcessTrialRunner):
    def command(self, params: TrialParams) -> list[str]:
        return [sys.executable, "-c", "import time; time.sleep(60)"]


def test_process_runner_timeout_and_cancel_stop_the_process() -> None:
    runner = _SleepRunner(epochs=1, timeout_s=0.5)
    t0 = time.monotonic()
    with pytest.raises(TrialFailed, match="timed out"):
        runner(TrialParams(0, 0.01, 80))
    assert time.monotonic() - t0 < 10

    runner = _SleepRunner(epochs=1, timeout_s=60)
    errors: list[BaseException] = []
    thread = threading.Thread(
        target=lambda: errors.append(pytest.raises(TrialFailed, runner, TrialParams(0, 0.01, 80)).value)
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not runner._live and time.monotonic() < deadline:
        time.sleep(0.02)
    (proc,) = list(runner._live)
    runner.cancel_all()
    thread.join(10)
    assert not thread.is_alive() and proc.poll() is not None
    assert "exited with -15" in str(errors[0])
    with pytest.raises(TrialFailed, match="cancelled"):
        runner(TrialParams(1, 0.01, 80))
