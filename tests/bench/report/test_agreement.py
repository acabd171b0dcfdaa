"""The tables show 'answers agreeing' only for steps checked without a digit; MNIST tables are unchanged."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from bench.report.tables import error_accuracy_table, shows_agreement, target_summary_table
from bench.run.display import _step_line
from loadgen.records import StepResult
from loadgen.stats import summarize
from tests.support.synthetic_runs import make_step


def _own_model_step(agree_every: int) -> StepResult:
    """A step of non-MNIST samples: no label; every ``agree_every``-th answer disagrees."""
    step = make_step("own", "sequential", 8, 1, 0.01, np.random.default_rng(2))
    records = tuple(
        replace(r, label=-1, predicted=-1, sample=i % 3, agree=-1 if not r.ok else int(i % agree_every != 0))
        for i, r in enumerate(step.records)
    )
    return replace(step, records=records)


def _mnist_step() -> StepResult:
    """A synthetic MNIST step whose records say, as a sweep's do, whether each digit agreed."""
    step = make_step("mnist", "sequential", 8, 1, 0.01, np.random.default_rng(1))
    return replace(step, records=tuple(replace(r, agree=int(r.correct) if r.ok else -1) for r in step.records))


def test_agreement_column_only_when_a_step_was_checked_without_a_digit() -> None:
    mnist = summarize(_mnist_step())
    own = summarize(_own_model_step(4))
    assert own["agreement"] == 6 / 8 and np.isnan(own["accuracy"]) and own["n_agree"] == 6
    assert mnist["agreement"] == mnist["accuracy"]

    only_mnist = pd.DataFrame([mnist])
    assert not shows_agreement(only_mnist)
    columns, _ = target_summary_table(only_mnist, "sequential", ["mnist"])
    assert "answers agreeing (%)" not in columns

    both = pd.DataFrame([mnist, own])
    assert shows_agreement(both)
    columns, rows = target_summary_table(both, "sequential", ["mnist", "own"])
    cell = columns.index("answers agreeing (%)")
    own_row = next(r for r in rows if r[0] == "own")
    assert own_row[cell] == "75.0" and own_row[columns.index("answers correct (%)")] == "-"
    columns, rows = error_accuracy_table(both, ["mnist", "own"])
    own_row = next(r for r in rows if r[0] == "own")
    assert own_row[-1] == "75.00" and own_row[columns.index("answers correct (% of sent)")] == "-"


def test_the_step_line_says_agreeing_for_other_samples_and_correct_for_mnist() -> None:
    own = summarize(_own_model_step(4))
    assert "answers agreeing 75.0 %" in _step_line(own)
    assert "answers correct" in _step_line(summarize(_mnist_step()))


def test_the_reports_run_table_says_what_was_sent() -> None:
    from bench.report.runfacts import meta_rows
    from ground.runmeta import RunMeta

    meta = RunMeta(kind="serving", run_id="x")
    assert not [r for r in meta_rows(meta) if r[0].startswith("samples")]  # MNIST: unchanged
    meta.details["samples"] = {"targets": {"toy": {"description": "3 samples from toy.json"}}, "check": "exact"}
    (row,) = [r for r in meta_rows(meta) if r[0].startswith("samples")]
    assert row[1] == "toy: 3 samples from toy.json (exact)"
