"""`bench compare`: verdicts over trials on synthetic runs with known noise, and the command's output.

The runs come from tests/support/compare_synth.py (in memory, a noise model with run, trial and
step effects) or tests/support/synthetic_runs.py (real files written by RunWriter).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from bench.compare.show import compare
from bench.compare.stats import holm_adjust
from bench.compare.verdict import DEFAULT_NOISE_FLOOR_PCT, CompareError, CompareSettings, compare_runs, regressions
from bench.config import parse_config
from bench.console import Console
from bench.results.header import SCHEMA_VERSION
from tests.support.compare_synth import synthetic_run
from tests.support.synthetic_runs import copy_run, scale_run, write_synthetic_run


def _config(tmp_path):
    return parse_config("", tmp_path)


def _cmp(config, a, b, capsys, **kw):
    args = dict(threshold_pct=5.0, alpha=0.05, fail_on_regression=False, fmt="csv")
    args.update(kw)
    console = Console(quiet=False)
    console.out.width = 250  # captured output is not a terminal: avoid rich's 80-column folding
    code = compare(config, a=str(a), b=str(b), console=console, **args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _read_csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), comment="#")


# --- verdicts on the noise model -------------------------------------------------------------


def test_identical_distribution_with_trial_noise_is_no_regression():
    rng = np.random.default_rng(11)
    a, b = synthetic_run("a", rng, trials=3), synthetic_run("b", rng, trials=3)
    result = compare_runs(a, b)
    assert {t.verdict for t in result.targets} <= {"within threshold", "not slower", "inconclusive"}
    assert not regressions(result, "target") and not regressions(result, "step")
    assert all(t.ci_low < t.ratio < t.ci_high for t in result.targets)
    # trials inside one start (no trial design recorded): the floor is at least the between-run default
    assert all(
        s.floor_source in ("trials", "default") and s.threshold_pct >= DEFAULT_NOISE_FLOOR_PCT for s in result.steps
    )


def test_thirty_percent_slowdown_with_five_trials_is_slower():
    rng = np.random.default_rng(12)
    a = synthetic_run("a", rng, trials=5)
    b = synthetic_run("b", rng, trials=5, slowdown=1.3)
    result = compare_runs(a, b)
    assert [t.verdict for t in result.targets] == ["slower", "slower"]
    assert all(
        1.3 / 1.1 < t.ratio < 1.3 * 1.1 and t.ci_low > 1 and t.ratio > 1 + t.threshold_pct / 100 for t in result.targets
    )
    assert regressions(result) == ["greene-linserv", "kubeflow-gcp"]
    assert {s.verdict for s in result.steps} == {"slower"}
    back = compare_runs(b, a)  # the same change seen from the other side
    assert [t.verdict for t in back.targets] == ["faster", "faster"] and not regressions(back)


def test_one_trial_runs_are_too_few_trials_with_the_ratio_shown():
    rng = np.random.default_rng(13)
    a = synthetic_run("a", rng, trials=1)
    b = synthetic_run("b", rng, trials=1, slowdown=1.5)
    result = compare_runs(a, b)
    assert {s.verdict for s in result.steps} == {"too few trials"}
    assert {t.verdict for t in result.targets} == {"too few trials"}
    assert all(math.isnan(s.p_value) and s.ratio > 1.2 for s in result.steps)
    assert all(t.floor_source == "default" and t.threshold_pct == DEFAULT_NOISE_FLOOR_PCT for t in result.targets)
    assert not regressions(result, "target") and not regressions(result, "step")
    # one side with trials is not enough either
    mixed = compare_runs(a, synthetic_run("c", rng, trials=3))
    assert {t.verdict for t in mixed.targets} == {"too few trials"}


def test_only_in_a_and_b_are_listed():
    rng = np.random.default_rng(14)
    a = synthetic_run("a", rng, trials=3, targets={"x": 0.01, "y": 0.02}, ns=(1, 4, 8))
    b = synthetic_run("b", rng, trials=3, targets={"x": 0.01, "z": 0.03}, ns=(4, 8, 16))
    result = compare_runs(a, b)
    assert result.only_in_a == ["target y (6 steps)", "x/sequential/N=1", "x/concurrent/N=1"]
    assert result.only_in_b == ["target z (6 steps)", "x/sequential/N=16", "x/concurrent/N=16"]
    verdicts = {t.target: t.verdict for t in result.targets}
    assert verdicts["y"] == "only in A" and verdicts["z"] == "only in B"
    assert verdicts["x"] in ("within threshold", "inconclusive")
    x = next(t for t in result.targets if t.target == "x")
    assert (x.steps, x.excluded) == (4, 4)


def test_failed_and_saturated_steps_are_never_faster_or_slower():
    rng = np.random.default_rng(15)
    a = synthetic_run("a", rng, trials=3, saturated={("kubeflow-gcp", "concurrent", 64)})
    b = synthetic_run(
        "b",
        rng,
        trials=3,
        slowdown=1.5,
        errors={("greene-linserv", "concurrent", 16): 5, ("greene-linserv", "sequential", 1): 1},
    )
    result = compare_runs(a, b)
    by_label = {s.label: s for s in result.steps}
    failed = by_label["greene-linserv/concurrent/N=16"]
    assert failed.verdict == "failed" and failed.detail == "failed in B (5/48 requests failed in 1 of 3 trials)"
    assert by_label["greene-linserv/sequential/N=1"].detail == "failed in B (1/3 requests failed in 1 of 3 trials)"
    sat = by_label["kubeflow-gcp/concurrent/N=64"]
    assert sat.verdict == "saturated" and sat.detail == "saturated in A (1 of 3 trials)"
    assert all(math.isnan(s.p_value) for s in (failed, sat))
    greene = next(t for t in result.targets if t.target == "greene-linserv")
    assert (greene.steps, greene.excluded) == (8, 2) and greene.verdict == "slower"
    # a failure in both runs names both
    both = {s.label: s for s in compare_runs(b, b).steps}[failed.label]
    assert both.verdict == "failed" and both.detail == (
        "failed in A (5/48 requests failed in 1 of 3 trials); failed in B (5/48 requests failed in 1 of 3 trials)"
    )


def test_schema_1_against_schema_2_compares():
    rng = np.random.default_rng(16)
    old = synthetic_run("old", rng, trials=3, schema=1)
    new = synthetic_run("new", rng, trials=3, errors={("kubeflow-gcp", "concurrent", 8): 2})
    assert "flags" not in old.columns  # the file had no flags column; the reader derived them
    result = compare_runs(old, new)
    assert result.notes and "schema 1" in result.notes[0]
    assert next(s for s in result.steps if s.label == "kubeflow-gcp/concurrent/N=8").verdict == "failed"
    # schema-1 failures come from the counts (no flags column)
    old_failing = synthetic_run("old2", rng, trials=3, schema=1, errors={("kubeflow-gcp", "sequential", 4): 1})
    result = compare_runs(old_failing, new)
    assert next(s for s in result.steps if s.label == "kubeflow-gcp/sequential/N=4").detail.startswith("failed in A")


def test_refuses_only_what_cannot_be_compared():
    rng = np.random.default_rng(17)
    a = synthetic_run("a", rng, targets={"x": 0.01})
    future = synthetic_run("f", rng, targets={"x": 0.01})
    future.meta.schema_version = 999
    with pytest.raises(CompareError, match="newer than this servebench"):
        compare_runs(a, future)
    with pytest.raises(CompareError, match="share no target"):
        compare_runs(a, synthetic_run("y", rng, targets={"y": 0.01}))
    with pytest.raises(CompareError, match="no step"):
        compare_runs(a, synthetic_run("r", rng, targets={"x": 0.01}, modes=("rate",)))
    with pytest.raises(CompareError, match="no 'lat_p50_s' column"):
        compare_runs(a, replace(a, steps=tuple(replace(s, lat_p50_s=None) for s in a.steps)))
    with pytest.raises(CompareError, match="alpha"):
        CompareSettings(alpha=1.5)


def test_step_gate_sees_one_slow_step_the_target_mean_does_not():
    rng = np.random.default_rng(18)
    a = synthetic_run("a", rng, trials=5, sd_run=0.0)
    b = synthetic_run("b", rng, trials=5, sd_run=0.0, slowdown={("kubeflow-gcp", "concurrent", 64): 1.8})
    result = compare_runs(a, b)
    assert regressions(result, "step") == ["kubeflow-gcp/concurrent/N=64"]
    assert regressions(result, "target") == []  # 1.8 ** (1/10) = 1.06: inside the floor and CI


def test_adjusted_p_values_are_holm_over_the_tested_steps():
    rng = np.random.default_rng(19)
    a, b = synthetic_run("a", rng, trials=3), synthetic_run("b", rng, trials=3, slowdown=1.1)
    result = compare_runs(a, b)
    raw = [s.p_value for s in result.steps]
    assert [s.p_adjusted for s in result.steps] == pytest.approx(holm_adjust(raw))
    bh = compare_runs(a, b, CompareSettings(correction="bh"))
    assert all(h.p_adjusted >= q.p_adjusted - 1e-12 for h, q in zip(result.steps, bh.steps, strict=True))


def test_target_interval_is_welch_t_over_per_trial_scores():
    """With every step in every trial, the interval is scipy's Welch t interval of the trials' mean logs."""
    from scipy import stats

    rng = np.random.default_rng(20)
    a = synthetic_run("a", rng, trials=4, design="restart")
    b = synthetic_run("b", rng, trials=3, slowdown=1.05, design="restart")
    result = compare_runs(a, b)
    assert all(t.ci_level == pytest.approx(1 - 0.05 / 2) for t in result.targets)  # alpha split over 2 targets
    for t in result.targets:
        score = {}
        for name, run in (("a", a), ("b", b)):
            rows = pd.DataFrame(
                [
                    {"trial": s.key.trial, "v": math.log(s.lat_p50_s), "mode": s.key.mode, "n": s.key.n_requests}
                    for s in run.steps
                    if s.key.target == t.target
                ]
            )
            score[name] = rows.groupby("trial")["v"].mean().to_numpy()
        test = stats.ttest_ind(score["b"], score["a"], equal_var=False)
        low, high = test.confidence_interval(confidence_level=t.ci_level)
        assert (t.ci_low, t.ci_high) == (pytest.approx(math.exp(low)), pytest.approx(math.exp(high)))
        assert t.ratio == pytest.approx(math.exp(score["b"].mean() - score["a"].mean()))
        assert t.independent and math.isnan(t.noise_floor_pct) and t.threshold_pct == 5.0
        assert t.detectable_pct > 5.0 and t.dof == pytest.approx(test.df)


def test_restart_trials_have_no_floor_and_within_run_trials_keep_it():
    rng = np.random.default_rng(21)
    restart = compare_runs(
        synthetic_run("a", rng, trials=3, design="restart"), synthetic_run("b", rng, trials=3, design="restart")
    )
    assert all(t.independent and t.floor_source == "" for t in restart.targets)
    assert all(s.independent and math.isnan(s.noise_floor_pct) for s in restart.steps)
    mixed = compare_runs(synthetic_run("a", rng, trials=3, design="restart"), synthetic_run("b", rng, trials=3))
    assert all(
        not t.independent and t.floor_source in ("trials", "default") and t.threshold_pct >= DEFAULT_NOISE_FLOOR_PCT
        for t in mixed.targets
    )


def test_detect_names_the_trials_needed():
    rng = np.random.default_rng(22)
    a = synthetic_run("a", rng, trials=5, design="restart", sd_run=0.05)
    b = synthetic_run("b", rng, trials=5, design="restart", sd_run=0.05)
    for detect, expect_none in ((20.0, False), (5.0, True), (3.0, True)):
        result = compare_runs(a, b, CompareSettings(detect_pct=detect))
        for t in result.targets:
            assert (t.trials_needed is None) == expect_none, (detect, t)
    needed = compare_runs(a, b, CompareSettings(detect_pct=20.0)).targets[0].trials_needed
    fewer = compare_runs(a, b, CompareSettings(detect_pct=40.0)).targets[0].trials_needed
    assert needed is not None and fewer is not None and 2 <= fewer <= needed
    with pytest.raises(CompareError, match="--detect must be a slow-down > 0 %"):
        CompareSettings(detect_pct=0.0)


def test_aa_false_alarms_stay_rare():
    """200 simulated A/A pairs (3 trials, run-to-run noise as large as trial-to-trial): <= 5 % alarms.

    The run effect (one shift of a whole target per run) is invisible from one run's trials;
    the noise floor is what keeps it from reading as a regression. Where run-to-run noise is
    larger than this, only an A/A study on the real machine tells (benchmarks/aa_study.py).
    """
    rng = np.random.default_rng(2024)
    pairs = 200
    target_alarms = step_alarms = 0
    for _ in range(pairs):
        a = synthetic_run("a", rng, trials=3, sd_run=0.03, sd_trial=0.03, sd_step=0.03)
        b = synthetic_run("b", rng, trials=3, sd_run=0.03, sd_trial=0.03, sd_step=0.03)
        result = compare_runs(a, b, CompareSettings(resamples=1000))
        target_alarms += bool(regressions(result, "target"))
        step_alarms += bool(regressions(result, "step"))
    assert target_alarms <= 0.05 * pairs and step_alarms <= 0.05 * pairs, (target_alarms, step_alarms)


# --- the command: files, formats, exit codes -----------------------------------------------


def test_run_vs_itself_exit_0_and_csv_has_legend_summary_and_adjusted_p(tmp_path, capsys):
    config = _config(tmp_path)
    a = write_synthetic_run(tmp_path, "a", ns=(32, 64), trials=3, design="restart")
    b = copy_run(a, tmp_path / "b")
    code, out, err = _cmp(config, a, b, capsys, fail_on_regression=True, threshold_pct=20.0)
    assert code == 0, out + err
    comments = [line for line in out.splitlines() if line.startswith("#")]
    assert any("metric: the per-trial median" in c for c in comments)
    assert any(c.startswith("# greene-linserv: geometric mean B/A 1.000") for c in comments)
    assert comments[-1] == "# no regression (target gate)"
    rows = _read_csv(out)
    steps, targets = rows[rows["level"] == "step"], rows[rows["level"] == "target"]
    assert len(steps) == 4 * 2 * 2 and len(targets) == 4
    assert (steps["ratio"] == 1.0).all() and set(steps["verdict"]) == {"not significant"}
    assert (steps["p_adjusted"] >= steps["p_value"]).all() and (steps["p_requests"] == 1.0).all()
    assert set(targets["verdict"]) == {"within threshold"} and (targets["ratio"] == 1.0).all()
    assert targets["independent"].all() and (targets["detectable_pct"] > 20.0).all()


def test_within_run_trials_whose_floor_hides_the_threshold_exit_3(tmp_path, capsys):
    """Issue 21's busy-host case: the floor raised the threshold, so 'within' must not pass the gate."""
    config = _config(tmp_path)
    a = write_synthetic_run(tmp_path, "a", ns=(1, 4), trials=3)  # no trial design recorded: within one start
    b = copy_run(a, tmp_path / "b")
    code, out, err = _cmp(config, a, b, capsys, fail_on_regression=True)
    targets = _read_csv(out).query("level == 'target'")
    assert (targets["noise_floor_pct"] > 5.0).all() and not targets["independent"].any()
    assert code == 3 and "noise floor" in err and "cannot be tested" in err
    code, _, err = _cmp(config, a, b, capsys, fail_on_regression=True, allow_inconclusive=True)
    assert code == 0 and "passing anyway" in err


def test_scaled_copy_fails_the_gate_and_the_reverse_does_not(tmp_path, capsys):
    config = _config(tmp_path)
    # N >= 32: a trial's median over fewer requests of this synthetic lognormal varies so much
    # that its noise floor alone exceeds 30 % (rightly: 3 trials of N=4 cannot show 1.5x)
    a = write_synthetic_run(tmp_path, "a", ns=(32, 64), trials=3)
    b = scale_run(a, tmp_path / "b", 1.5)
    code, out, _ = _cmp(config, a, b, capsys)
    assert code == 0  # without --fail-on-regression
    targets = _read_csv(out).query("level == 'target'")
    assert (targets["ratio"].round(6) == 1.5).all() and set(targets["verdict_text"]) == {"1.50x slower"}
    code, _, err = _cmp(config, a, b, capsys, fail_on_regression=True)
    assert code == 1 and "regression (target gate): greene-linserv, k8s-ibm, kubeflow-gcp, kubeflow-ibm" in err
    code, _, _ = _cmp(config, a, b, capsys, fail_on_regression=True, gate="step")
    assert code == 1
    code, _, _ = _cmp(config, b, a, capsys, fail_on_regression=True)  # B faster: no regression
    assert code == 0
    code, out, err = _cmp(config, a, b, capsys, fail_on_regression=True, threshold_pct=60.0)  # 50 % < 60 %
    # not a regression beyond 60 %, but 3 trials of these runs cannot show that it is below 60 % either
    targets = _read_csv(out).query("level == 'target'")
    assert code == (0 if (targets["ci_high"] <= 1.6).all() else 3), out + err
    assert set(targets["verdict"]) <= {"not slower", "within threshold", "inconclusive"}
    code, _, _ = _cmp(config, a, b, capsys, fail_on_regression=True, threshold_pct=60.0, allow_inconclusive=True)
    assert code == 0


def test_summary_csv_only_and_metric_total(tmp_path, capsys):
    config = _config(tmp_path)
    a = write_synthetic_run(tmp_path, "a", ns=(4, 8), trials=3)
    b = scale_run(a, tmp_path / "b", 1.5)
    code, out, _ = _cmp(config, a / "summary.csv", b / "summary.csv", capsys, fail_on_regression=True, metric="total")
    rows = _read_csv(out)
    assert code == 1 and set(rows["metric"]) == {"total", "geomean total"}
    assert rows.query("level == 'step'")["p_requests"].isna().all()  # no requests.csv.gz: no detail column


def test_one_trial_gate_exits_3_naming_why(tmp_path, capsys):
    config = _config(tmp_path)
    a = write_synthetic_run(tmp_path, "a", ns=(4,), trials=1)
    b = scale_run(a, tmp_path / "b", 1.5)
    code, out, err = _cmp(config, a, b, capsys, fail_on_regression=True)
    assert code == 3  # a one-trial CI job no longer passes a 1.5x slow-down
    for target in ("greene-linserv", "k8s-ibm", "kubeflow-gcp", "kubeflow-ibm"):
        assert f"# warning: the target gate cannot judge {target}: 1 trial(s) on a side" in out
    assert "exit 3: cannot judge" in err
    code, _, _ = _cmp(config, a, b, capsys, fail_on_regression=False)
    assert code == 0  # without the gate, no exit code is decided
    assert set(_read_csv(out).query("level == 'step'")["verdict_text"]) == {"too few trials (n=1): 1.50x slower"}


def test_table_and_md_formats_carry_legend_and_summary(tmp_path, capsys):
    config = _config(tmp_path)
    a = write_synthetic_run(tmp_path, "a", ns=(4,), trials=2)
    b = scale_run(a, tmp_path / "b", 1.5)
    code, out, _ = _cmp(config, a, b, capsys, fmt="md")
    assert code == 0 and "| target | mode | N |" in out and "1.50x slower" in out
    assert "- steps: Welch's t-test" in out and "| target | steps | trials A/B |" in out
    assert "- greene-linserv: geometric mean B/A 1.500" in out
    code, out, _ = _cmp(config, a, b, capsys, fmt="table")
    assert code == 0 and "1.50x slower" in out and "MWU p (requests)" in out and "per target" in out


def test_bad_input_exits_2(tmp_path, capsys):
    config = _config(tmp_path)
    a = write_synthetic_run(tmp_path, "a", ns=(4,), trials=1, targets={"x": 0.01})
    b = copy_run(a, tmp_path / "b")
    meta = json.loads((b / "meta.json").read_text())
    meta["schema_version"] = 999
    (b / "meta.json").write_text(json.dumps(meta))
    assert _cmp(config, a, b, capsys)[0] == 2
    assert _cmp(config, a, tmp_path / "nowhere", capsys)[0] == 2
    assert _cmp(config, a, a, capsys, alpha=2.0)[0] == 2
    # a schema-1 folder (older servebench) against a current one compares, naming what each schema added
    old = copy_run(a, tmp_path / "old")
    meta = json.loads((old / "meta.json").read_text())
    meta["schema_version"] = 1
    (old / "meta.json").write_text(json.dumps(meta))
    summary = pd.read_csv(old / "summary.csv")
    summary.drop(
        columns=[
            "offered_rps",
            "achieved_rps",
            "send_lag_p50_s",
            "send_lag_max_s",
            "lag_growth_s",
            "saturated",
            "flags",
        ]
    ).to_csv(old / "summary.csv", index=False)
    code, out, _ = _cmp(config, old, a, capsys)
    assert code == 0 and f"# warning: A has schema 1, B schema {SCHEMA_VERSION}" in out
    assert "open-loop rates, saturated, flags; percentile bounds" in out


def test_cli_wires_the_compare_options(tmp_path, capsys):
    from bench.cli import main

    (tmp_path / "bench.toml").write_text("", encoding="utf-8")
    a = write_synthetic_run(tmp_path, "a", ns=(32, 64), trials=3)
    b = scale_run(a, tmp_path / "b", 1.5)
    base = ["--config", str(tmp_path / "bench.toml"), "compare", str(a), str(b), "--format", "csv"]
    assert (
        main(
            base + ["--fail-on-regression", "--gate", "step", "--correction", "bh", "--metric", "total", "--seed", "3"]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "Benjamini-Hochberg" in out and "# regression (step gate)" in out
    assert set(_read_csv(out)["metric"]) == {"total", "geomean total"}
    assert main(base + ["--fail-on-regression", "--threshold", "80"]) == 0  # 1.5x is inside an 80 % threshold
    with pytest.raises(SystemExit):
        main(base + ["--gate", "everything"])


def test_cli_detect_and_allow_inconclusive(tmp_path, capsys):
    from bench.cli import main

    (tmp_path / "bench.toml").write_text("", encoding="utf-8")
    a = write_synthetic_run(tmp_path, "a", ns=(32, 64), trials=3, design="restart")
    b = copy_run(a, tmp_path / "b")
    base = ["--config", str(tmp_path / "bench.toml"), "compare", str(a), str(b)]
    assert main(base + ["--detect", "40%"]) == 0
    out = capsys.readouterr().out
    assert "spread between restarts: sd" in out and "to detect 40 % with 80 % power:" in out
    assert "fresh starts" in out and "detectable" in out
    assert "whole-trial shifts between restarts sd" in out and "step noise within a trial sd" in out
    assert main(base + ["--detect", "3", "--threshold", "5"]) == 0
    assert "to detect 3 %: not reachable (it is not beyond the threshold)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(base + ["--detect", "ten"])
    assert exc.value.code == 2 and "--detect takes a percentage" in capsys.readouterr().err
    code = main(base + ["--fail-on-regression", "--threshold", "0.1"])  # 0.1 % cannot be shown with 3 trials
    assert code == 3
    assert main(base + ["--fail-on-regression", "--threshold", "0.1", "--allow-inconclusive"]) == 0
