"""One trial shown as a result: the caution, steps out of order beyond the noise, and the
labels of time and answers (bench/report/trialnoise.py, bench/run_timing.py, bench/run/display.py)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.compare.verdict import DEFAULT_NOISE_FLOOR_PCT
from bench.console import Console
from bench.report.build import build_report
from bench.report.runfacts import meta_rows
from bench.report.tables import step_means
from bench.report.trialnoise import (
    MIN_ORDER_NOTE_PCT,
    ONE_TRIAL_NOISE_PCT,
    min_trials,
    order_notes,
    rerun_command,
    single_trial_caution,
)
from bench.results import load_run, write_json_atomic
from bench.run.display import answers_correct_text, print_table3
from bench.run_timing import RunTiming, timing_text
from tests.support.synthetic_runs import write_synthetic_run

NS = (64, 128, 256, 512)


def _summary(tmp_path, totals: dict[int, list[float]], *, errors_at: int | None = None) -> pd.DataFrame:
    """A one-target sequential summary whose totals (per N, one per trial) are set by hand."""
    trials = len(next(iter(totals.values())))
    run = load_run(
        write_synthetic_run(
            tmp_path, "hand", ns=tuple(totals), modes=("sequential",), trials=trials, targets={"kubeflow-ibm": 0.002}
        ),
        with_requests=False,
    )
    summary = run.summary.copy()
    for i, row in summary.iterrows():
        total = totals[int(row["n_requests"])][int(row["trial"])]
        summary.loc[i, "total_s"] = total
        summary.loc[i, "throughput_rps"] = row["n_ok"] / total
        if errors_at is not None and int(row["n_requests"]) == errors_at:
            summary.loc[i, ["errors", "n_ok", "errors_by_class"]] = [3, row["n_requests"] - 3, "refused:3"]
    return summary


def _notes(summary: pd.DataFrame):
    return order_notes(step_means(summary), summary, ["sequential"])


def test_the_one_trial_noise_is_compares_measured_floor():
    assert ONE_TRIAL_NOISE_PCT == DEFAULT_NOISE_FLOOR_PCT == 25.0


def test_total_that_falls_when_n_doubles_is_noted(tmp_path):
    # kubeflow-ibm as an outside user saw it: N=256 took 0.789 s, N=512 0.585 s (one trial)
    summary = _summary(tmp_path, {64: [0.21], 128: [0.42], 256: [0.789], 512: [0.585]})
    notes = _notes(summary)
    assert [(n.kind, n.n_requests) for n in notes] == [("total_falls", 512)]
    assert (
        "0.585 s, less than the 0.789 s of N=256 although it answered more requests (N=256 took 1.35x as long)"
        in notes[0].text
    )
    assert "beyond the 1.25x (25 %) that one trial can differ by" in notes[0].text
    assert summary.loc[summary["n_requests"] == 512, "total_s"].item() == 0.585  # a note, not a fix


def test_monotone_and_within_noise_steps_are_not_noted(tmp_path):
    assert _notes(_summary(tmp_path / "a", {64: [0.21], 128: [0.42], 256: [0.80], 512: [1.62]})) == []
    # N=512 finished 11 % sooner than N=256: less than one trial's noise
    assert _notes(_summary(tmp_path / "b", {64: [0.21], 128: [0.42], 256: [0.789], 512: [0.70]})) == []


def test_throughput_far_from_both_neighbours_is_noted(tmp_path):
    # totals grow, but N=128's throughput (427 req/s) is 40 % above both neighbours (305)
    notes = _notes(_summary(tmp_path, {64: [0.21], 128: [0.30], 256: [0.84], 512: [1.68]}))
    assert [(n.kind, n.n_requests) for n in notes] == [("throughput_outlier", 128)]
    assert "throughput 427 req/s, 1.40x above the nearer of its neighbours (305 at N=64, 305 at N=256)" in notes[0].text


def test_steps_flagged_for_failures_are_left_to_the_flags(tmp_path):
    summary = _summary(tmp_path, {64: [0.21], 128: [0.42], 256: [0.789], 512: [0.585]}, errors_at=512)
    assert _notes(summary) == []


def test_several_trials_use_their_own_spread(tmp_path):
    # three trials agreeing within ~1 %: an 11 % fall is beyond their noise (floor MIN_ORDER_NOTE_PCT)
    totals = {
        64: [0.21, 0.212, 0.208],
        128: [0.42, 0.424, 0.416],
        256: [0.789, 0.797, 0.781],
        512: [0.70, 0.707, 0.693],
    }
    summary = _summary(tmp_path, totals)
    notes = _notes(summary)
    assert [(n.kind, n.n_requests) for n in notes] == [("total_falls", 512)]
    assert f"1.05x ({MIN_ORDER_NOTE_PCT:.0f} %) that means of 3 trials" in notes[0].text
    assert single_trial_caution(summary) is None and min_trials(summary) == 3


def test_caution_only_for_one_trial_with_its_source_and_command(tmp_path):
    one = load_run(write_synthetic_run(tmp_path, "one", ns=(1, 4), trials=1), with_requests=False)
    three = load_run(write_synthetic_run(tmp_path, "three", ns=(1, 4), trials=3), with_requests=False)
    caution = single_trial_caution(one.summary, "/x/bench/__main__.py run all --requests 1,4 --run-id r1")
    assert caution is not None and "every step of this run was measured once" in caution
    assert "25 %" in caution and "docs/compare.md" in caution
    assert "`python -m bench run all --requests 1,4 --trials 3`" in caution
    assert single_trial_caution(three.summary) is None


def test_rerun_command_sets_trials_and_drops_the_run_id():
    assert (
        rerun_command("/v/bin/bench run k8s-ibm --trials=1 --run-id x --requests 1,4")
        == "python -m bench run k8s-ibm --requests 1,4 --trials 3"
    )
    assert rerun_command(None) == "python -m bench run all --trials 3"
    assert rerun_command("/usr/bin/pytest tests/test_x.py") == "python -m bench run all --trials 3"


def test_report_and_table3_carry_the_caution_for_one_trial_not_for_three(tmp_path):
    for run_id, trials in (("one", 1), ("three", 3)):
        run = load_run(write_synthetic_run(tmp_path / "results", run_id, ns=(1, 4), trials=trials))
        files = build_report(run, tmp_path / "reports" / run_id)
        md, table3_md = files.report_md.read_text(), (files.directory / "table3.md").read_text()
        html = files.report_html.read_text()
        if trials == 1:
            box = md[md.index("Warnings about this run") : md.index("## Run")]
            assert "**One trial per step**" in box
            table3 = md[md.index("## Table 3") : md.index("## Figures")]
            assert "Note: **One trial per step**" in table3  # in Table 3's notes as well, above its tables
            assert table3.index("Note: **One trial per step**") < table3.index("mode `")
            assert table3_md.index("One trial per step") < table3_md.index("## mode:")  # above the tables
            assert "One trial per step" in html
        else:
            assert "One trial per step" not in md + table3_md + html


def test_console_warns_about_one_trial_at_the_end_of_the_tables(tmp_path, capsys):
    one = write_synthetic_run(tmp_path, "one", ns=(1, 4), trials=1)
    print_table3(one, Console(quiet=True))
    captured = capsys.readouterr()
    assert "warning: One trial per step" in captured.err and "--trials 3" in captured.err
    assert "**" not in captured.err  # no Markdown on the terminal
    three = write_synthetic_run(tmp_path, "three", ns=(1, 4), trials=3)
    print_table3(three, Console(quiet=True))
    assert "One trial per step" not in capsys.readouterr().err


def test_console_lists_steps_out_of_order(tmp_path, capsys):
    run_dir = write_synthetic_run(
        tmp_path, "odd", ns=NS, modes=("sequential",), trials=1, targets={"kubeflow-ibm": 0.002}
    )
    summary = pd.read_csv(run_dir / "summary.csv")
    totals = dict(zip(NS, (0.21, 0.42, 0.789, 0.585), strict=False))
    summary["total_s"] = summary["n_requests"].map(totals)
    summary["throughput_rps"] = summary["n_ok"] / summary["total_s"]
    summary.to_csv(run_dir / "summary.csv", index=False)
    print_table3(run_dir, Console(quiet=True))
    out = capsys.readouterr().out
    assert "Steps out of order" in out
    assert "kubeflow-ibm sequential N=512: total time 0.585 s, less than the 0.789 s of N=256" in out


def test_step_line_says_answers_correct_not_accuracy():
    from bench.run.display import _step_line

    row = {
        "target": "k8s-ibm",
        "mode": "sequential",
        "n_requests": 100,
        "trial": 1,
        "total_s": 1.25,
        "lat_p50_s": 0.012,
        "lat_p50_lo_s": 0.011,
        "lat_p50_hi_s": 0.013,
        "n_ok": 100,
        "throughput_rps": 80.0,
        "accuracy": 0.99,
        "errors": 0,
    }
    line = _step_line(row)
    assert "answers correct 99.0 %" in line and "accuracy" not in line
    assert "total 1.2500 s, latency p50 12.00 (11.00-13.00) ms, 80.0 req/s" in line
    assert answers_correct_text(float("nan")) == "answers correct -"
    assert answers_correct_text(None) == "answers correct -"


def test_timing_words_every_part_and_the_rest():
    timing = RunTiming(total_s=277.6, model_s=105.2, calibration_s=20.1, targets_s=151.0).to_json()
    text = timing_text(timing)
    assert text.startswith(
        "277.6 s in all: model (check or training) 105.2 s, client calibration 20.1 s, "
        "targets (start-up, sweep, stop) 151.0 s, other set-up 1.3 s"
    )
    assert timing_text(None) == "" and timing_text({"total_s": "x"}) == ""
    assert math.isclose(sum(v for k, v in timing.items() if k != "total_s") + 1.3, 277.6)


def test_report_run_table_shows_the_time_parts(tmp_path):
    run_dir = write_synthetic_run(tmp_path, "timed", ns=(1,), trials=1)
    import json

    meta = json.loads((run_dir / "meta.json").read_text())
    meta["timing"] = RunTiming(total_s=12.0, model_s=2.0, calibration_s=3.0, targets_s=6.5).to_json()
    write_json_atomic(run_dir / "meta.json", meta)
    rows = dict(meta_rows(load_run(run_dir, with_requests=False).meta))
    assert rows["time taken by bench run"] == (
        "12.0 s in all: model (check or training) 2.0 s, client "
        "calibration 3.0 s, targets (start-up, sweep, stop) 6.5 s, "
        "other set-up 0.5 s"
    )
    old = dict(meta_rows(load_run(write_synthetic_run(tmp_path, "old", ns=(1,), trials=1)).meta))
    assert old["time taken by bench run"].startswith("not recorded")


@pytest.mark.parametrize("accuracy", [0.983])
def test_model_accuracy_reads_as_answers_correct(tmp_path, accuracy):
    import json

    run_dir = write_synthetic_run(tmp_path, "m", ns=(1,), trials=1)
    meta = json.loads((run_dir / "meta.json").read_text())
    meta["model"] = {"dir": "m", "torchscript_sha256": "ab" * 32, "accuracy": {"torch": accuracy}}
    write_json_atomic(run_dir / "meta.json", meta)
    rows = dict(meta_rows(load_run(run_dir, with_requests=False).meta))
    assert "answers correct on the test split 98.3 %" in rows["model"] and "accuracy" not in rows["model"]


def test_report_tables_say_answers_correct_in_percent(tmp_path):
    from bench.report.tables import error_accuracy_table, target_summary_table

    run = load_run(write_synthetic_run(tmp_path, "acc", ns=(4, 16), trials=1), with_requests=False)
    columns, rows = target_summary_table(run.summary, "sequential", run.targets)
    assert "accuracy" not in columns and columns[-1] == "answers correct (%)"
    part = run.summary[(run.summary["mode"] == "sequential")].sort_values(["target", "n_requests"])
    first = part[(part["target"] == rows[0][0]) & (part["n_requests"] == int(rows[0][1]))]
    assert rows[0][-1] == f"{100 * first['accuracy'].item():.1f}"  # summary.csv keeps its fraction
    columns, rows = error_accuracy_table(run.summary, run.targets)
    assert columns[-2:] == ["answers correct (% of sent)", "answers correct (% of answered)"]
    assert all(0.0 <= float(r[-1]) <= 100.0 for r in rows)
    assert "accuracy" in run.summary.columns  # column names of summary.csv are unchanged


def test_target_start_up_time_is_labelled(tmp_path):
    import json

    run_dir = write_synthetic_run(tmp_path / "results", "s", ns=(1,), trials=1)
    meta = json.loads((run_dir / "meta.json").read_text())
    meta["targets"] = {"k8s-ibm": {"name": "k8s-ibm", "adapter": "k8s", "start_s": 9.272}}
    write_json_atomic(run_dir / "meta.json", meta)
    md = build_report(load_run(run_dir), tmp_path / "reports" / "s").report_md.read_text()
    assert "adapter=k8s, start-up took 9.3 s (launch until ready)" in md and "start_s=" not in md
