"""The command line: one parser per command, choice values in --help, clear errors, flags reach plain values.

Why these tests: `bench run --help` used to list the tuning and pipeline flags too, and a
tuning flag given to a load run was silently ignored. Each command now owns its parser
(``bench.cmd_*`` exports a ``Command``, registered in ``bench/cli.py``); these tests pin
what a user sees and that every flag still arrives where it did.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.capacity.run import CAPACITY_MODE
from bench.cli import COMMANDS, build_parser, main, parse_args
from bench.commands.common import Command
from bench.commands.manifests import SPECIAL
from bench.commands.train import MODEL_CHOICES
from bench.compare.verdict import GATES
from loadgen.engines import ENGINE_NAMES, PROTOCOL_ENGINE_NAMES
from loadgen.modes import MODES
from models.hpo.search import ALGORITHMS
from models.pipeline.registry import PIPELINES

TUNING_FLAGS = ("--algorithms", "--max-trials", "--parallel", "--epochs", "--repeats")
PIPELINE_FLAGS = ("--pipeline", "--target", "--timeout")
LOAD_FLAGS = ("--requests", "--modes", "--trials", "--rate", "--duration", "--concurrency", "--engine", "--slo")

# Every command's choice-valued flags and their values (from where the values are defined).
# A command without any is listed with {}: a new command must be considered here.
CHOICES: dict[tuple[str, ...], dict[str, tuple[str, ...]]] = {
    ("train",): {"--model": MODEL_CHOICES},
    ("targets",): {},
    ("serve",): {},
    ("manifests",): {"target": ("TARGET", *SPECIAL)},
    ("ui",): {},
    ("check-target",): {},
    ("calibrate",): {"--engines": ENGINE_NAMES + PROTOCOL_ENGINE_NAMES},
    ("run",): {
        "--modes": (*MODES, CAPACITY_MODE),
        "--engine": ("auto", *ENGINE_NAMES),
        "--synthetic": ("random", "zero"),
    },
    ("hpo",): {"--algorithms": ALGORITHMS},
    ("pipeline",): {"action": ("run", "compile")},
    ("pipeline", "run"): {"--pipeline": PIPELINES},
    ("pipeline", "compile"): {"--pipeline": PIPELINES},
    ("merge",): {},
    ("report",): {},
    ("compare",): {
        "--metric": ("median", "mean", "p90", "p99", "total"),
        "--correction": ("holm", "bh"),
        "--gate": GATES,
        "--format": ("table", "md", "csv"),
    },
}


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as excinfo:
        parse_args([*argv, "--help"])
    assert excinfo.value.code == 0
    return capsys.readouterr().out


def _usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as excinfo:
        parse_args(list(argv))
    assert excinfo.value.code == 2
    return capsys.readouterr().err


def _flags_in(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", text))


def test_run_help_shows_load_flags_only(capsys) -> None:
    text = _help(capsys, "run")
    flags = _flags_in(text)
    assert set(LOAD_FLAGS) <= flags
    assert not flags & {*TUNING_FLAGS, *PIPELINE_FLAGS}, flags & {*TUNING_FLAGS, *PIPELINE_FLAGS}
    words = " ".join(text.split())  # argparse wraps the description
    assert "python -m bench hpo" in words and "python -m bench pipeline run" in words  # where those flags went


@pytest.mark.parametrize(
    ("argv", "own", "foreign"),
    [
        (("hpo",), TUNING_FLAGS, (*LOAD_FLAGS, *PIPELINE_FLAGS)),
        (("run", "hpo"), TUNING_FLAGS, (*LOAD_FLAGS, *PIPELINE_FLAGS)),  # the old spelling, the same parser
        (("pipeline", "run"), PIPELINE_FLAGS, (*LOAD_FLAGS, *TUNING_FLAGS)),
        (("run", "pipeline"), PIPELINE_FLAGS, (*LOAD_FLAGS, *TUNING_FLAGS)),
    ],
)
def test_tuning_and_pipeline_help_show_their_own_flags(capsys, argv: tuple[str, ...], own, foreign) -> None:
    flags = _flags_in(_help(capsys, *argv))
    assert set(own) <= flags and not flags & set(foreign), flags


def test_every_command_is_in_the_choice_table_and_loads() -> None:
    assert {r.name for r in COMMANDS} == {argv[0] for argv in CHOICES}
    for registration in COMMANDS:
        assert isinstance(registration.load(), Command), registration
    text = build_parser().format_help()  # every command's flags together: no clash between them
    assert all(r.name in text for r in COMMANDS)


@pytest.mark.parametrize("argv", list(CHOICES), ids=" ".join)
def test_each_help_lists_the_values_of_its_choice_flags(capsys, argv: tuple[str, ...]) -> None:
    text = _help(capsys, *argv)
    for flag, values in CHOICES[argv].items():
        listed = "{" + ",".join(values) + "}"
        assert listed in text, f"`{' '.join(argv)} --help` does not list {flag}'s values {listed}:\n{text}"


@pytest.mark.parametrize(
    ("argv", "parser", "unknown", "hint"),
    [
        (("run", "all", "--algorithms", "grid"), "python -m bench run", "--algorithms grid", "python -m bench hpo"),
        (("run", "all", "--pipeline", "custom"), "python -m bench run", "--pipeline custom", "pipeline run"),
        (("run", "hpo", "--trials", "3"), "python -m bench hpo", "--trials 3", "python -m bench hpo --help"),
        (("hpo", "--rate", "5"), "python -m bench hpo", "--rate 5", "python -m bench hpo --help"),
        (
            ("pipeline", "run", "--requests", "3"),
            "python -m bench pipeline run",
            "--requests 3",
            "python -m bench pipeline run --help",
        ),
        (("pipeline", "compile", "--target", "x"), "python -m bench pipeline compile", "--target x", "compile --help"),
        (("compare", "a", "b", "--gates", "step"), "python -m bench compare", "--gates step", "compare --help"),
    ],
)
def test_unknown_flags_are_usage_errors_of_the_command(capsys, argv, parser: str, unknown: str, hint: str) -> None:
    err = _usage_error(capsys, *argv)
    assert f"{parser}: error: unrecognized arguments: {unknown}" in err, err
    assert hint in err and f"usage: {parser} " in err, err


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        ((), "the following arguments are required: COMMAND"),
        (("nope",), "argument COMMAND: invalid choice: 'nope'"),
        (("--config",), "argument --config: expected one argument"),
        (("run",), "python -m bench run: error: the following arguments are required: targets"),
        (("pipeline",), "python -m bench pipeline: error: the following arguments are required: {run,compile}"),
        (("compare", "a", "b", "--metric", "p50"), "argument --metric: invalid choice: 'p50'"),
    ],
)
def test_top_level_and_missing_argument_errors(capsys, argv: tuple[str, ...], problem: str) -> None:
    assert problem in _usage_error(capsys, *argv)


def test_old_spellings_parse_to_the_new_commands() -> None:
    args = parse_args(["--config", "x.toml", "-q", "run", "hpo", "--epochs", "1", "--algorithms", "random"])
    assert (args.command, args.epochs, args.algorithms, args.config, args.quiet) == (
        "hpo",
        1,
        ["random"],
        "x.toml",
        True,
    )
    args = parse_args(["run", "pipeline", "--target", "kf", "--timeout", "30", "--run-id", "r"])
    assert (args.command, args.action, args.target, args.timeout, args.run_id) == ("pipeline", "run", "kf", 30.0, "r")
    assert parse_args(["run", "all", "hpo"]).targets == ["all", "hpo"]  # not right after `run`: target names
    assert parse_args(["run", "all"]).command == "run"


# --- what each command calls, with which plain values ---


@pytest.fixture()
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "bench.toml"
    path.write_text("[targets.x]\nadapter = 'flask'\n")
    return path


def _recorder(calls: list[dict[str, Any]], code: int = 0) -> Any:
    def record(config: Any, *args: Any, **kwargs: Any) -> int:
        fields = {k: v for a in args if dataclasses.is_dataclass(a) for k, v in vars(a).items()}  # a RunRequest
        calls.append({"args": args, **fields, **kwargs})
        return code

    return record


@pytest.mark.parametrize(
    ("argv", "module", "function", "expected"),
    [
        (
            [
                "run",
                "all",
                "--requests",
                "1,4",
                "--modes",
                "sequential,capacity",
                "--trials",
                "2",
                "--engine",
                "httpx",
                "--run-id",
                "r1",
                "--no-report",
                "--slo",
                "p99=50ms",
            ],
            "bench.run.session",
            "run",
            {
                "targets": ("all",),
                "n_requests": (1, 4),
                "modes": ("sequential", "capacity"),
                "trials": 2,
                "engine": "httpx",
                "run_id": "r1",
                "write_report": False,
                "slo": "p99=50ms",
                "rate_rps": None,
                "duration_s": None,
                "concurrency": None,
            },
        ),
        (
            ["run", "x", "--rate", "20", "--duration", "1.5", "--concurrency", "0"],
            "bench.run.session",
            "run",
            {"targets": ("x",), "rate_rps": 20.0, "duration_s": 1.5, "concurrency": 0, "write_report": True},
        ),
        (
            [
                "run",
                "hpo",
                "--algorithms",
                "grid,random",
                "--max-trials",
                "5,10",
                "--parallel",
                "2",
                "--epochs",
                "1",
                "--repeats",
                "3",
                "--run-id",
                "h",
                "--no-report",
            ],
            "bench.hpo.run",
            "run_hpo",
            {
                "algorithms": ["grid", "random"],
                "max_trials": [5, 10],
                "parallel": 2,
                "epochs": 1,
                "repeats": 3,
                "run_id": "h",
                "write_report": False,
            },
        ),
        (
            ["hpo"],
            "bench.hpo.run",
            "run_hpo",
            {
                "algorithms": None,
                "max_trials": None,
                "parallel": None,
                "epochs": None,
                "repeats": None,
                "run_id": None,
                "write_report": True,
            },
        ),
        (
            ["run", "pipeline", "--pipeline", "custom", "--run-id", "p", "--no-report"],
            "bench.pipeline.local_run",
            "run_pipeline",
            {"pipeline": "custom", "run_id": "p", "write_report": False},
        ),
        (
            ["pipeline", "run", "--target", "kf", "--timeout", "30"],
            "bench.pipeline.remote_run",
            "run_remote_pipeline",
            {"target": "kf", "pipeline": "servebench", "run_id": None, "timeout_s": 30.0},
        ),
        (
            ["calibrate", "--engines", "fast", "--duration", "1", "--concurrency", "1,8"],
            "bench.commands.calibrate",
            "calibrate",
            {"engines": ["fast"], "duration_s": 1.0, "concurrencies": [1, 8], "output": None},
        ),
        (
            ["report", "a", "b", "--no-study-overlay"],
            "bench.report.write",
            "report",
            {"runs": ["a", "b"], "study_overlay": False},
        ),
        (
            [
                "compare",
                "a",
                "b",
                "--metric",
                "p99",
                "--threshold",
                "3",
                "--alpha",
                "0.01",
                "--correction",
                "bh",
                "--fail-on-regression",
                "--gate",
                "step",
                "--seed",
                "7",
                "--format",
                "csv",
            ],
            "bench.compare.show",
            "compare",
            {
                "a": "a",
                "b": "b",
                "metric": "p99",
                "threshold_pct": 3.0,
                "alpha": 0.01,
                "correction": "bh",
                "fail_on_regression": True,
                "gate": "step",
                "seed": 7,
                "fmt": "csv",
            },
        ),
        (["train", "--force"], "bench.commands.train", "train", {"force": True}),
        (["train", "--model", "wine"], "bench.commands.train", "train_tabular", {"args": ("wine",), "force": False}),
        (
            ["manifests", "x", "-o", "out"],
            "bench.commands.manifests",
            "write_manifests",
            {"args": ("x",), "output": Path("out")},
        ),
        (["manifests", "hpo"], "bench.commands.manifests", "write_hpo_manifests", {"output": None}),
        (
            ["manifests", "pipeline", "-o", "o"],
            "bench.commands.manifests",
            "write_pipeline_manifests",
            {"output": Path("o")},
        ),
        (
            ["manifests", "ui", "--predict-url", "http://m"],
            "bench.commands.manifests",
            "write_ui_manifests",
            {"output": None, "predict_url": "http://m"},
        ),
        (
            [
                "manifests",
                "loadgen",
                "x",
                "--clients",
                "3",
                "--step-interval",
                "45",
                "--pvc",
                "c",
                "--namespace",
                "ns",
                "--image",
                "img:1",
                "--start-in",
                "60",
                "-o",
                "o",
            ],
            "bench.commands.manifests",
            "write_loadgen_manifests",
            {
                "targets": ("x",),
                "clients": 3,
                "step_interval_s": 45.0,
                "pvc": "c",
                "namespace": "ns",
                "image": "img:1",
                "start_in_s": 60.0,
                "output": Path("o"),
            },
        ),
    ],
)
def test_flags_reach_the_command_as_plain_values(
    monkeypatch, config_file: Path, argv: list[str], module: str, function: str, expected: dict[str, Any]
) -> None:
    import importlib

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(importlib.import_module(module), function, _recorder(calls, code=3))
    assert main(["--config", str(config_file), *argv]) == 3
    assert len(calls) == 1
    assert {key: calls[0].get(key) for key in expected} == expected


def test_run_pipeline_checks_and_misplaced_words(config_file: Path, capsys) -> None:
    assert main(["--config", str(config_file), "pipeline", "run", "--timeout", "30"]) == 2
    assert "--timeout is the wait for a remote run: give --target NAME too" in capsys.readouterr().err
    assert main(["--config", str(config_file), "manifests", "x", "--predict-url", "http://m"]) == 2
    assert "--predict-url belongs to `manifests ui`" in capsys.readouterr().err
    # `hpo` after a flag is a target name to argparse; it is not a configured target here
    assert main(["--config", str(config_file), "run", "--run-id", "r", "hpo"]) == 2
    assert "'hpo' is not a target: write `python -m bench run hpo ...`" in capsys.readouterr().err
    assert not (config_file.parent / "results").exists()


def test_parsing_imports_only_the_chosen_command(repo_root: Path) -> None:
    """`bench targets` must not pay for pandas/scipy (compare) or the load generator (run)."""
    code = (
        "import sys; from bench.cli import parse_args; parse_args(['targets']); "
        "print(sorted(m for m in ('bench.compare.show', 'bench.run.session', 'bench.hpo.run', 'pandas', 'scipy') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_root, timeout=120, check=True
    ).stdout
    assert out.strip() == "[]", out


# --- global options (--config, -q) before or after the command word, for every command ---

# The smallest valid command line of every command and nested action (its required words).
MINIMAL_ARGV: dict[tuple[str, ...], tuple[str, ...]] = {
    ("train",): (),
    ("targets",): (),
    ("serve",): ("x",),
    ("manifests",): ("x",),
    ("ui",): (),
    ("check-target",): ("x",),
    ("calibrate",): (),
    ("run",): ("all",),
    ("hpo",): (),
    ("pipeline", "run"): (),
    ("pipeline", "compile"): (),
    ("merge",): ("a", "-o", "m"),
    ("report",): (),
    ("compare",): ("a", "b"),
}


def test_every_command_has_a_minimal_command_line() -> None:
    assert {argv[0] for argv in MINIMAL_ARGV} == {r.name for r in COMMANDS}


@pytest.mark.parametrize("words", list(MINIMAL_ARGV), ids=" ".join)
def test_global_options_go_before_or_after_the_command(words: tuple[str, ...]) -> None:
    base = [*words, *MINIMAL_ARGV[words]]
    before = parse_args(["--config", "b.toml", "-q", *base])
    after = parse_args([*base, "--config", "a.toml", "-q"])
    between = parse_args([*words, "--config", "m.toml", *MINIMAL_ARGV[words]])
    neither = parse_args(base)
    assert (before.config, before.quiet) == ("b.toml", True)
    assert (after.config, after.quiet) == ("a.toml", True)
    assert (between.config, between.quiet) == ("m.toml", False)
    assert (neither.config, neither.quiet) == ("bench.toml", False)
    assert parse_args(["--config", "first.toml", *base, "--config", "later.toml"]).config == "later.toml"
    assert before.command == after.command == words[0]


def test_old_spellings_take_global_options_after_the_command_too() -> None:
    args = parse_args(["run", "hpo", "--config", "x.toml", "--epochs", "1", "-q"])
    assert (args.command, args.epochs, args.config, args.quiet) == ("hpo", 1, "x.toml", True)
    args = parse_args(["run", "pipeline", "-q", "--pipeline", "custom"])
    assert (args.command, args.action, args.pipeline, args.quiet) == ("pipeline", "run", "custom", True)


def test_config_after_the_command_reaches_the_command(monkeypatch, config_file: Path) -> None:
    import importlib

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(importlib.import_module("bench.run.session"), "run", _recorder(calls, code=3))
    assert main(["run", "--config", str(config_file), "all", "-q"]) == 3  # the spelling
    assert len(calls) == 1 and calls[0]["targets"] == ("all",)


@pytest.mark.parametrize(
    ("argv", "prog", "flag", "owners"),
    [
        (("run", "all", "--bogus"), "python -m bench run", "--bogus", ()),
        (("run", "all", "--algorithms", "grid"), "python -m bench run", "--algorithms", ("python -m bench hpo",)),
        (("hpo", "--slo", "p99=5ms"), "python -m bench hpo", "--slo", ("python -m bench run",)),
        (("report", "--format", "md"), "python -m bench report", "--format", ("python -m bench compare",)),
        (
            ("targets", "--clients", "2"),
            "python -m bench targets",
            "--clients",
            ("python -m bench manifests", "python -m bench run"),
        ),
    ],
)
def test_unknown_flag_names_where_it_belongs_only_when_it_does(capsys, argv, prog: str, flag: str, owners) -> None:
    err = _usage_error(capsys, *argv)
    assert f"{flag} is not an option of `{prog}`" in err, err
    if owners:
        assert "belongs to " + ", ".join(f"`{o}`" for o in owners) in err, err
    else:
        assert "nor of any other command" in err and "belongs" not in err, err
    assert "tuning flags" not in err  # the old blanket hint, true of no flag but the tuning ones


def test_global_options_are_never_reported_as_unknown(capsys) -> None:
    for words, minimal in MINIMAL_ARGV.items():
        parse_args([*words, *minimal, "--config", "c.toml"])  # no SystemExit
    assert "unrecognized" not in capsys.readouterr().err
