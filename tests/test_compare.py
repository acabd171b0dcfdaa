"""`bench compare`: statistics (pure) and the command's verdicts and exit codes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from synthetic_runs import copy_run, scale_run, write_synthetic_run

from bench.cmd_compare import compare
from bench.compare import CompareError, compare_runs, compare_samples
from bench.config import parse_config
from bench.console import Console
from bench.results import load_run


def _config(tmp_path):
    return parse_config("", tmp_path)


def _cmp(config, a, b, capsys, **kw):
    args = dict(threshold_pct=5.0, alpha=0.05, fail_on_regression=False, fmt="csv")
    args.update(kw)
    console = Console(quiet=True)
    console.out.width = 250  # captured output is not a terminal: avoid rich's 80-column folding
    code = compare(config, a=str(a), b=str(b), console=console, **args)
    out = capsys.readouterr().out
    return code, out


def test_samples_mann_whitney_detects_shift_and_ignores_noise():
    rng = np.random.default_rng(0)
    a = rng.lognormal(0, 0.2, 200)
    metric, test, av, bv, ratio, p, sig, beyond, verdict = compare_samples(
        a, a * 1.5, kind="latency", alpha=0.05, threshold_pct=5)
    assert (metric, test, verdict) == ("median latency", "mann-whitney", "slower")
    assert ratio == pytest.approx(1.5) and p < 1e-6
    *_, verdict = compare_samples(a, rng.permutation(a), kind="latency", alpha=0.05, threshold_pct=5)
    assert verdict == "not significant"
    # significant but tiny: below threshold
    *_, verdict = compare_samples(a, a * 1.02, kind="latency", alpha=0.05, threshold_pct=5)
    assert verdict in ("below threshold", "not significant")
    *_, verdict = compare_samples(a, a / 1.3, kind="latency", alpha=0.05, threshold_pct=5)
    assert verdict == "faster"


def test_samples_welch_needs_two_trials():
    out = compare_samples(np.array([1.0, 1.1, 0.9]), np.array([2.0, 2.1, 1.9]), kind="trials", alpha=0.05,
                          threshold_pct=5)
    assert out[1] == "welch" and out[-1] == "slower" and out[0] == "mean total_s"
    out = compare_samples(np.array([1.0]), np.array([2.0]), kind="trials", alpha=0.05, threshold_pct=5)
    assert out[1] == "no test" and out[-1] == "no test" and out[4] == pytest.approx(2.0)


def test_run_vs_itself_no_change_exit_0(tmp_path, capsys):
    config = _config(tmp_path)
    a = write_synthetic_run(tmp_path, "a", ns=(1, 4, 8), trials=2)
    b = copy_run(a, tmp_path / "b")
    code, out = _cmp(config, a, b, capsys, fail_on_regression=True)
    assert code == 0
    rows = pd.read_csv(pd.io.common.StringIO(out))
    assert len(rows) == 4 * 2 * 3
    assert set(rows["verdict"]) == {"not significant"}
    assert (rows["ratio"] == 1.0).all()
    # N=1 steps have one latency per side: Mann-Whitney still applies (2 trials x 1 request)
    assert set(rows["test"]) == {"mann-whitney"}


def test_scaled_copy_is_slower_and_fails_ci(tmp_path, capsys):
    config = _config(tmp_path)
    a = write_synthetic_run(tmp_path, "a", ns=(4, 8, 16), trials=2)
    b = scale_run(a, tmp_path / "b", 1.5)
    code, out = _cmp(config, a, b, capsys)
    assert code == 0  # without --fail-on-regression
    rows = pd.read_csv(pd.io.common.StringIO(out))
    assert (rows["ratio"].round(6) == 1.5).all()
    assert (rows["verdict"] == "slower").all() and rows["verdict_text"].str.fullmatch(r"1\.50x slower").all()
    code, _ = _cmp(config, a, b, capsys, fail_on_regression=True)
    assert code == 1
    code, _ = _cmp(config, b, a, capsys, fail_on_regression=True)  # B faster: no regression
    assert code == 0
    code, _ = _cmp(config, a, b, capsys, fail_on_regression=True, threshold_pct=60.0)  # effect 50 % < 60 %
    assert code == 0


def test_summary_only_uses_welch_over_trials(tmp_path, capsys):
    config = _config(tmp_path)
    a = write_synthetic_run(tmp_path, "a", ns=(4, 8), trials=3)
    b = scale_run(a, tmp_path / "b", 1.5)
    code, out = _cmp(config, a / "summary.csv", b / "summary.csv", capsys, fail_on_regression=True)
    rows = pd.read_csv(pd.io.common.StringIO(out))
    assert set(rows["test"]) == {"welch"} and set(rows["metric"]) == {"mean total_s"}
    assert code == 1
    one = write_synthetic_run(tmp_path, "one", ns=(4,), trials=1)
    code, out = _cmp(config, one / "summary.csv", one / "summary.csv", capsys, fail_on_regression=True)
    rows = pd.read_csv(pd.io.common.StringIO(out))
    assert set(rows["test"]) == {"no test"} and code == 0


def test_table_and_md_formats(tmp_path, capsys):
    config = _config(tmp_path)
    a = write_synthetic_run(tmp_path, "a", ns=(4,), trials=1)
    b = scale_run(a, tmp_path / "b", 1.5)
    code, out = _cmp(config, a, b, capsys, fmt="md")
    assert code == 0 and "| target | mode | N |" in out and "1.50x slower" in out
    code, out = _cmp(config, a, b, capsys, fmt="table")
    assert code == 0 and "1.50x slower" in out


def test_schema_mismatch_and_no_overlap_are_clear_errors(tmp_path, capsys):
    config = _config(tmp_path)
    a = write_synthetic_run(tmp_path, "a", ns=(4,), trials=1, targets={"x": 0.01})
    b = copy_run(a, tmp_path / "b")
    meta = json.loads((b / "meta.json").read_text())
    meta["schema_version"] = 999
    (b / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CompareError, match="schema versions differ"):
        compare_runs(load_run(a), load_run(b))
    code, _ = _cmp(config, a, b, capsys)
    assert code == 2
    other = write_synthetic_run(tmp_path, "other", ns=(4,), trials=1, targets={"y": 0.01})
    with pytest.raises(CompareError, match="share no target"):
        compare_runs(load_run(a), load_run(other))
    rate = write_synthetic_run(tmp_path, "rate", ns=(4,), trials=1, targets={"x": 0.01}, modes=("rate",))
    with pytest.raises(CompareError, match="share no mode"):
        compare_runs(load_run(a), load_run(rate))
    code, _ = _cmp(config, a, tmp_path / "nowhere", capsys)
    assert code == 2
