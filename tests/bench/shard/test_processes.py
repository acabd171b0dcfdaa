"""`bench run --shard` / `--clients`: CPU placement, the shard command line, refusals, and one
end-to-end `--clients 2` run against a real stand-in (slow)."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli import main, parse_args
from bench.shard.processes import place_clients, shard_argv
from bench.shard_run import check_schedule_flags
from loadgen.barrier import StartSchedule
from loadgen.shard import SHARD_INDEX_ENV, ShardSpec
from loadgen.stages import parse_stages_text
from loadgen.stats import LATENCY_PERCENTILES
from tests.support.e2e import REPO, e2e_config, run_bench

# --- placement ----------------------------------------------------------------------------


def test_each_client_gets_a_cpu_of_its_own_where_there_are_enough() -> None:
    placed = place_clients(2, "auto", range(4), local_target=True)
    assert placed.clients == ((2,), (3,)) and placed.standins == (0, 1)
    assert placed.cpu_groups() == [[0], [1]]


def test_on_two_cpus_clients_share_one_and_the_stand_in_keeps_the_other() -> None:
    placed = place_clients(2, "auto", (0, 1), local_target=True)
    assert placed.clients == ((1,), (1,)) and placed.standins == (0,)
    assert placed.cpu_groups() == [[0, 1]] and "share CPU 1" in placed.note


def test_remote_targets_spread_clients_over_every_cpu_and_none_or_one_cpu_pins_nothing() -> None:
    assert place_clients(3, "auto", (0, 1), local_target=False).clients == ((0,), (1,), (0,))
    for placed in (
        place_clients(2, "none", range(4), local_target=True),
        place_clients(2, "auto", (0,), local_target=True),
    ):
        assert placed.clients == ((), ()) and placed.standins == ()
        assert placed.cpu_groups() == [[0], [1]]  # unpinned: each counted as its own client


def test_a_cpu_list_is_used_round_robin() -> None:
    placed = place_clients(3, [2, 3], range(4), local_target=True)
    assert placed.clients == ((2,), (3,), (2,)) and placed.standins == (0, 1)
    with pytest.raises(ValueError, match="CPUs \\[7\\]"):
        place_clients(2, [7], range(4), local_target=True)


# --- the command line (the one documented for Kubernetes pods) ----------------------------


def test_shard_argv_is_the_documented_run_command_and_parses(tmp_path: Path) -> None:
    argv = shard_argv(
        config_path=tmp_path / "bench.toml",
        target="kubeflow-gcp",
        spec=ShardSpec(1, 3),
        schedule=StartSchedule(1767225600.5, 12.0),
        out=tmp_path / "out",
        run_id="r1",
        endpoint="http://127.0.0.1:9",
        engine="fast",
        overrides={"modes": ["rate"], "rate_rps": 200.0, "duration_s": 5.0, "n_requests": None},
    )
    assert argv[1:3] == ["-m", "bench"]
    args = parse_args(argv[3:])
    assert args.command == "run" and args.targets == ["kubeflow-gcp"]
    assert args.shard[0] == ShardSpec(1, 3) and args.start_at == 1767225600.5 and args.step_interval == 12.0
    assert args.out == tmp_path / "out" and args.run_id == "r1" and args.endpoint == "http://127.0.0.1:9"
    assert (args.modes, args.rate, args.duration, args.requests) == (["rate"], 200.0, 5.0, None)


def test_shard_argv_with_a_gate_has_no_start_time_and_parses(tmp_path: Path) -> None:
    argv = shard_argv(
        config_path=tmp_path / "bench.toml",
        target="kubeflow-gcp",
        spec=ShardSpec(0, 2),
        schedule=StartSchedule(),
        out=tmp_path / "out",
        run_id="r1",
        endpoint="http://127.0.0.1:9",
        engine="fast",
        overrides={"modes": ["concurrent"], "n_requests": [64, 256]},
        gate=tmp_path / "gate",
    )
    assert "--start-at" not in argv and "--step-interval" not in argv
    args = parse_args(argv[3:])
    assert args.step_gate == tmp_path / "gate" and args.start_at is None and args.requests == [64, 256]


def test_shard_argv_passes_the_stages_not_the_duration_they_imply(tmp_path: Path) -> None:
    """A staged run's overrides carry duration_s 0.0 (the stages size the step): the shard
    gets --stages, never '--duration 0.0' (which its parser refuses)."""
    stages = parse_stages_text("10s:0-20,10s:20")
    argv = shard_argv(
        config_path=tmp_path / "bench.toml",
        target="greene-linserv",
        spec=ShardSpec(0, 2),
        schedule=StartSchedule(),
        out=tmp_path / "out",
        run_id="r1",
        endpoint=None,
        engine=None,
        overrides={"modes": ["rate"], "duration_s": 0.0, "stages": stages, "concurrency": 8},
        gate=tmp_path / "gate",
    )
    assert "--duration" not in argv
    args = parse_args(argv[3:])
    assert args.stages == stages and args.duration is None and args.concurrency == 8


def test_shard_auto_reads_the_indexed_job_variable(monkeypatch) -> None:
    monkeypatch.setenv(SHARD_INDEX_ENV, "2")
    args = parse_args(["run", "t", "--shard", "auto/4", "--start-at", "2026-01-01T00:00:00Z"])
    assert args.shard == (ShardSpec(2, 4), True) and args.start_at == 1767225600.0
    monkeypatch.delenv(SHARD_INDEX_ENV)
    with pytest.raises(SystemExit):
        parse_args(["run", "t", "--shard", "auto/4"])


# --- refusals before anything starts (no servers, no training) ----------------------------


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    text = (REPO / "bench.toml").read_text() + '\n[paths]\nresults_dir = "results"\nreports_dir = "reports"\n'
    path = tmp_path / "bench.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "args, words",
    [
        (
            ["run", "all", "--shard", "0/2", "--rate", "10", "--duration", "2"],
            "a sharded run measures one target, got 4",
        ),
        (["run", "kubeflow-gcp", "--shard", "0/2", "--modes", "sequential"], "sequential mode cannot be sharded"),
        (["run", "kubeflow-gcp", "--shard", "0/2", "--modes", "capacity"], "capacity search cannot be sharded"),
        (
            ["run", "kubeflow-gcp", "--shard", "0/2", "--requests", "1,4", "--modes", "concurrent"],
            "N=1 cannot be split over 2 shards",
        ),
        (
            ["run", "kubeflow-gcp", "--rate", "10", "--duration", "2", "--start-at", "1767225600"],
            "give --shard I/N too",
        ),
        (
            ["run", "kubeflow-gcp", "--shard", "0/2", "--rate", "10", "--duration", "2", "--step-interval", "5"],
            "give --start-at too",
        ),
        (
            [
                "run",
                "kubeflow-gcp",
                "--shard",
                "0/2",
                "--requests",
                "4,8",
                "--modes",
                "concurrent",
                "--start-at",
                "1767225600",
            ],
            "this plan has 2 steps: with --start-at, give --step-interval",
        ),
        (
            ["run", "kubeflow-gcp", "--shard", "0/2", "--rate", "10", "--duration", "2"],
            "a local stand-in that each shard would start",
        ),
        (["run", "kubeflow-gcp", "--clients", "2", "--shard", "0/2", "--rate", "10", "--duration", "2"], "not both"),
        (["run", "kubeflow-gcp", "--clients", "2", "--modes", "sequential"], "sequential mode cannot be sharded"),
        (
            [
                "run",
                "kubeflow-gcp",
                "--clients",
                "2",
                "--requests",
                "4,8",
                "--modes",
                "concurrent",
                "--start-at",
                "1767225600",
            ],
            "give --step-interval",
        ),  # an explicit wall-clock start keeps the schedule's rule
        (["run", "kubeflow-gcp", "--step-gate", "g", "--rate", "10", "--duration", "2"], "goes with --shard I/N"),
        (
            [
                "run",
                "kubeflow-gcp",
                "--shard",
                "0/2",
                "--step-gate",
                "g",
                "--start-at",
                "1767225600",
                "--rate",
                "10",
                "--duration",
                "2",
            ],
            "give one",
        ),
        (
            ["run", "kubeflow-gcp", "--clients", "2", "--rate", "10", "--duration", "2", "--engine", "warp"],
            "unknown engine 'warp'",
        ),
    ],
)
def test_sharded_runs_refuse_with_a_reason(config: Path, args: list[str], words: str, capsys) -> None:
    assert main(["--config", str(config), *args]) == 2
    assert words in capsys.readouterr().err.replace("\n", " ")
    assert not (config.parent / "results").exists() or not any((config.parent / "results").iterdir())


def test_schedule_flags_go_with_shards() -> None:
    check_schedule_flags(None, 5.0, shard=False, clients=True)  # --clients picks the start itself
    check_schedule_flags(1767225600.0, 5.0, shard=True, clients=False)
    with pytest.raises(ValueError, match="give --start-at too and --shard"):
        check_schedule_flags(None, 5.0, shard=False, clients=False)
    with pytest.raises(ValueError, match="give --shard I/N too"):
        check_schedule_flags(1767225600.0, None, shard=False, clients=False)


# --- end to end ---------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_clients_2_against_a_stand_in_merges_into_an_ordinary_run(tmp_path: Path, trained_model) -> None:
    config = e2e_config(tmp_path, trained_model)
    proc = run_bench(
        config,
        "run",
        "greene-linserv",
        "--clients",
        "2",
        "--rate",
        "20",
        "--duration",
        "2",
        "--run-id",
        "c2",
        timeout=600,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    run_dir = tmp_path / "results" / "c2"
    summary = pd.read_csv(run_dir / "summary.csv", float_precision="round_trip")
    assert len(summary) == 1 and summary.loc[0, "n_requests"] == 40 and summary.loc[0, "rate"] == 20.0
    with gzip.open(run_dir / "requests.csv.gz", "rt") as fh:
        merged = pd.read_csv(fh)
    assert sorted(merged["seq"]) == list(range(40)) and merged["shard"].value_counts().to_dict() == {0: 20, 1: 20}
    shard_rows = []
    for i in (0, 1):
        with gzip.open(run_dir / "shards" / f"c2-shard{i}of2" / "requests.csv.gz", "rt") as fh:
            shard_rows.append(pd.read_csv(fh, float_precision="round_trip"))
    union = pd.concat(shard_rows)
    ok = union[union["error"].isna()]["latency_s"].to_numpy(dtype=float)
    assert summary.loc[0, "n_ok"] == ok.size == 40
    for q, suffix in LATENCY_PERCENTILES:
        assert summary.loc[0, f"lat_{suffix}_s"] == np.percentile(ok, q)  # exactly the union's
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "complete" and len(meta["shards"]) == 2
    assert meta["targets"]["greene-linserv"]["mode"] == "local"  # the one stand-in the parent started
    step = meta["sharding"]["steps"][0]
    assert step["start_skew_s"] >= 0 and [s["n"] for s in step["shards"]] == [20, 20]
    assert all(s["late_s"] >= 0 for s in step["shards"])  # a barrier never starts a step early
    assert meta["clients"]["count"] == 2 and meta["host_noise"]["targets"]["greene-linserv"]["load_after"]
    deadline = time.monotonic() + 15  # every shard and the stand-in stopped
    pids = [s["writer"]["pid"] for s in meta["shards"]]
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in pids)
    assert (tmp_path / "reports" / "c2" / "report.html").is_file()
    assert run_bench(config, "compare", "c2", "c2", "--format", "csv", timeout=300).returncode == 0


@pytest.mark.slow
def test_clients_runs_a_multi_step_plan_with_no_schedule_flags(tmp_path: Path, trained_model) -> None:
    """The issue's case: `--clients 2` on a plan of several steps, without --step-interval: the parent
    starts each step on both shards when both are ready (one go instant per step, recorded)."""
    config = e2e_config(tmp_path, trained_model)
    proc = run_bench(
        config,
        "run",
        "greene-linserv",
        "--clients",
        "2",
        "--modes",
        "concurrent",
        "--requests",
        "8,16",
        "--run-id",
        "g2",
        "--no-report",
        timeout=600,
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-4000:]}"
    run_dir = tmp_path / "results" / "g2"
    summary = pd.read_csv(run_dir / "summary.csv")
    assert sorted(summary["n_requests"]) == [8, 16] and (summary["n_ok"] == summary["n_requests"]).all()
    meta = json.loads((run_dir / "meta.json").read_text())
    assert "step gate" in meta["clients"]["steps_started_by"] and meta["clients"]["start_at"] is None
    shard_steps = [
        json.loads((run_dir / "shards" / f"g2-shard{i}of2" / "meta.json").read_text())["shard"] for i in (0, 1)
    ]
    assert all("released by the --clients parent" in s["step_gate"] for s in shard_steps)
    for index in (0, 1):
        due = {s["steps"][index]["scheduled_at"] for s in shard_steps}
        assert len(due) == 1 and None not in due, shard_steps  # both shards were given the same instant
        assert all(s["steps"][index]["late_s"] >= 0 for s in shard_steps)  # and neither started before it
    assert all(step["start_skew_s"] >= 0 for step in meta["sharding"]["steps"])
    gate = run_dir / "shards" / "gate"
    assert sorted(p.name for p in gate.iterdir()) == [
        "go-0",
        "go-1",
        "ready-0-0",
        "ready-0-1",
        "ready-1-0",
        "ready-1-1",
    ]
