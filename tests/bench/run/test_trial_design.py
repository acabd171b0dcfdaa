"""bench.run.trial_design: which target is measured when (restart per trial, shuffled order)."""

from __future__ import annotations

import pytest

from bench.run.trial_design import RESTART, WITHIN_RUN, describe_design, visit_schedule
from loadgen.sweep import SweepPlan


def test_restart_visits_every_local_target_once_per_trial_in_a_seeded_shuffle() -> None:
    visits = visit_schedule([False] * 4, 5, design=RESTART, seed=7)
    assert len(visits) == 20
    rounds = [visits[i * 4 : (i + 1) * 4] for i in range(5)]
    for trial, rnd in enumerate(rounds, start=1):
        assert sorted(v.index for v in rnd) == [0, 1, 2, 3]
        assert all(v.trials == (trial,) for v in rnd)
    orders = {tuple(v.index for v in rnd) for rnd in rounds}
    assert len(orders) > 1  # shuffled, not the list order every time
    assert visit_schedule([False] * 4, 5, design=RESTART, seed=7) == visits  # seeded: repeatable
    assert visit_schedule([False] * 4, 5, design=RESTART, seed=8) != visits
    # the last visit of each target is marked (the capacity phase runs there, once)
    assert sorted(v.index for v in visits if v.last) == [0, 1, 2, 3]
    assert all(v.trials == (5,) for v in visits if v.last)


def test_remote_targets_are_visited_once_for_all_trials() -> None:
    visits = visit_schedule([False, True], 3, design=RESTART, seed=0)
    remote = [v for v in visits if v.index == 1]
    assert remote == [remote[0]] and remote[0].trials == () and remote[0].last
    assert [v.trials for v in visits if v.index == 0] == [(1,), (2,), (3,)]
    facts = describe_design(["local", "far"], [False, True], 3, design=RESTART, seed=0)
    assert facts["per_target"] == {"local": "restart", "far": "within-run"}
    assert facts["remote_within_run"] == ["far"]


@pytest.mark.parametrize(
    ("design", "trials", "has_plan"), [(WITHIN_RUN, 3, True), (RESTART, 1, True), (RESTART, 3, False)]
)
def test_one_visit_per_target_when_nothing_is_restarted(design: str, trials: int, has_plan: bool) -> None:
    visits = visit_schedule([False, False], trials, design=design, has_plan=has_plan)
    assert [(v.index, v.trials, v.last) for v in visits] == [(0, (), True), (1, (), True)]
    facts = describe_design(["a", "b"], [False, False], trials, design=design, seed=0, has_plan=has_plan)
    assert set(facts["per_target"].values()) == {WITHIN_RUN}


def test_bad_design_and_trials_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown trial design 'x'"):
        visit_schedule([False], 2, design="x")
    with pytest.raises(ValueError, match="trials must be >= 1"):
        visit_schedule([False], 0)


def test_plan_slice_keeps_trial_numbers_and_marks_the_last() -> None:
    plan = SweepPlan(n_requests=(1, 4), modes=("sequential",), trials=3)
    part = SweepPlan(n_requests=(1, 4), modes=("sequential",), trials=3, only_trials=(2,))
    assert [k.trial for k in part.steps("t")] == [2, 2]
    assert [k for k in plan.steps("t") if k.trial == 2] == part.steps("t")
    assert not part.last_slice and plan.last_slice
    assert SweepPlan(n_requests=(1,), trials=3, only_trials=(3,)).last_slice
    with pytest.raises(ValueError, match=r"only_trials \[4\] outside the plan's trials 1..3"):
        SweepPlan(n_requests=(1,), trials=3, only_trials=(4,))
