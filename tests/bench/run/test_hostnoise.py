"""Host noise: /proc parsing, CPU-time shares, the "busy" rules and where warnings appear.

The rules are pure functions of numbers, so they are tested on numbers; one test samples
this machine for real (only shapes and bounds are asserted: the machine is shared).
"""

from __future__ import annotations

import json
import os
import time

import pytest

from bench.console import Console
from bench.hostnoise import (
    LOAD1_BUSY_FRACTION,
    OTHERS_BUSY_SHARE,
    STEAL_BUSY_SHARE,
    CpuTimes,
    TargetNoiseProbe,
    load_busy,
    noise_warnings,
    others_busy,
    parse_pid_cpu_ticks,
    parse_proc_stat,
    steal_busy,
    window_shares,
)
from bench.results.header import new_meta
from ground.runmeta import RunMeta, RunStatus

PROC_STAT = """cpu  32235 10 5825 1688875 790 3 189 68 0 0
cpu0 16000 5 2900 844000 400 1 90 30 0 0
cpu1 16235 5 2925 844875 390 2 99 38 0 0
intr 123 0 0
ctxt 456
"""


def _sample(**ticks: int) -> dict[str, int]:
    base = dict(user=0, nice=0, system=0, idle=0, iowait=0, irq=0, softirq=0, steal=0, own=0)
    return {**base, **ticks}


def test_parse_proc_stat_reads_the_aggregate_line_and_counts_cpus() -> None:
    times, n = parse_proc_stat(PROC_STAT)
    assert n == 2
    assert times == CpuTimes(32235, 10, 5825, 1688875, 790, 3, 189, 68)
    assert times.total == 32235 + 10 + 5825 + 1688875 + 790 + 3 + 189 + 68
    assert times.busy == times.total - 1688875 - 790
    with pytest.raises(ValueError, match="no aggregate 'cpu' line"):
        parse_proc_stat("intr 1\n")


def test_parse_pid_cpu_ticks_handles_spaces_and_parens_in_the_name() -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
    stat = "4242 (gunicorn: a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 700 50 30 20 20 0 3 0 12345 0"
    assert parse_pid_cpu_ticks(stat) == 700 + 50 + 30 + 20


def test_window_shares_splits_busy_time_into_ours_and_others() -> None:
    before = _sample(user=1000, idle=1000, own=400)
    # 1000 ticks pass: 600 busy user, 50 steal, 50 iowait, 300 idle; servebench used 400 of them.
    after = _sample(user=1600, idle=1300, iowait=50, steal=50, own=800)
    shares = window_shares(before, after)
    assert shares == {
        "steal_share": 0.05,
        "iowait_share": 0.05,
        "busy_share": 0.65,
        "servebench_share": 0.4,
        "others_share": 0.25,
    }
    assert window_shares(before, before) is None  # no time passed: nothing to say


def test_window_shares_never_reports_negative_others() -> None:
    # Our ticks sampled a moment later than /proc/stat can exceed the host's busy ticks.
    shares = window_shares(_sample(user=0, idle=0), _sample(user=100, idle=100, own=150))
    assert shares is not None and shares["others_share"] == 0.0 and shares["servebench_share"] == 0.5


@pytest.mark.parametrize(
    ("load1", "cpus", "busy"),
    [
        (1.0, 2, False),  # exactly half: not above
        (1.01, 2, True),
        (3.9, 8, False),
        (4.5, 8, True),
        (None, 2, False),  # no load average on this OS
    ],
)
def test_load_rule_is_above_half_the_cpus(load1, cpus, busy) -> None:
    assert LOAD1_BUSY_FRACTION == 0.5
    assert load_busy(load1, cpus) is busy


def test_steal_and_others_rules_at_their_thresholds() -> None:
    assert not steal_busy(STEAL_BUSY_SHARE) and steal_busy(STEAL_BUSY_SHARE + 0.001) and not steal_busy(None)
    assert not others_busy(OTHERS_BUSY_SHARE) and others_busy(OTHERS_BUSY_SHARE + 0.001)


def _meta(load1: float, targets: dict[str, dict]) -> RunMeta:
    return RunMeta.from_json(
        {
            "run_id": "r1",
            "host": {"cpu_count": 2},
            "host_noise": {"at_start": {"load": [load1, 1.0, 1.0], "n_cpus": 2}, "targets": targets},
        }
    )


def test_noise_warnings_name_the_run_and_the_target() -> None:
    quiet = {"steal_share": 0.0, "others_share": 0.02, "load_before": [3.0, 2.0, 1.0]}
    noisy = {"steal_share": 0.08, "others_share": 0.42}
    warnings = noise_warnings(_meta(2.4, {"greene-linserv": quiet, "kubeflow-gcp": noisy}))
    assert len(warnings) == 3
    assert warnings[0].startswith("run r1: the host was busy when the run started: load average 2.40")
    assert "above 1" in warnings[0]
    steal, others = warnings[1:]
    assert steal.startswith("run r1, target kubeflow-gcp:") and "8.0% of the CPU time was stolen" in steal
    assert others.startswith("run r1, target kubeflow-gcp:") and "other processes used 42.0%" in others
    assert "0.84 of 2 CPUs" in others
    # The per-target load average (ours included) is recorded but never judged.
    assert not any("greene-linserv" in w for w in warnings)


def test_quiet_run_and_old_runs_have_no_warnings() -> None:
    assert noise_warnings(_meta(0.3, {"t": {"steal_share": 0.0, "others_share": 0.01}})) == []
    assert noise_warnings(RunMeta.from_json({"run_id": "old"})) == []  # written before host_noise existed


def test_probe_samples_this_machine(tmp_path) -> None:
    """Real /proc sampling around a busy loop: shapes and bounds only (the host is shared)."""
    probe = TargetNoiseProbe()
    probe.before_start()
    probe.window_start([])
    cpu0 = time.thread_time()
    while time.thread_time() < cpu0 + 0.1:  # 0.1 s of CPU in this thread (so >= 0.1 s of wall time): ours
        pass
    probe.window_end([])
    probe.after_stop()
    facts = probe.facts()
    assert len(facts["load_before"]) == 3 and len(facts["load_after"]) == 3
    assert facts["sweep_s"] >= 0.1
    for key in ("steal_share", "iowait_share", "busy_share", "servebench_share", "others_share"):
        assert 0.0 <= facts[key] <= 1.0, key
    assert facts["servebench_share"] > 0.0  # the loop above was ours
    assert facts["servebench_share"] + facts["others_share"] == pytest.approx(facts["busy_share"], abs=2e-4)
    assert facts["cpus"]["client"] == sorted(os.sched_getaffinity(0)) and facts["cpus"]["standins"] == []
    json.dumps(facts)  # goes into meta.json as is


def test_new_meta_records_the_load_at_start(tmp_path) -> None:
    meta = new_meta(
        run_id="m",
        root=tmp_path,
        config_sha256="0",
        config_path="c",
        sweep={},
        targets=["a"],
        load_at_start={"load": [0.1, 0.2, 0.3], "n_cpus": 4, "at": 1.0},
    )
    assert meta.details["host_noise"] == {"at_start": {"load": [0.1, 0.2, 0.3], "n_cpus": 4, "at": 1.0}, "targets": {}}
    sampled = new_meta(run_id="m", root=tmp_path, config_sha256="0", config_path="c", sweep={}, targets=[])
    assert sampled.details["host_noise"]["at_start"]["n_cpus"] >= 1


def test_report_and_compare_show_the_warnings(tmp_path, capsys) -> None:
    """The report gets a Warnings section; `bench compare` prints both runs' warnings."""
    from bench.compare.show import compare
    from bench.config import load_config
    from bench.report.build import build_report
    from bench.results import load_run, write_json_atomic
    from tests.support.synthetic_runs import write_synthetic_run

    runs = {}
    for run_id, others in (("calm", 0.01), ("noisy", 0.37)):
        run_dir = write_synthetic_run(tmp_path / "results", run_id, ns=(4,), modes=("sequential",), trials=1)
        meta = json.loads((run_dir / "meta.json").read_text())
        meta["host_noise"] = {
            "at_start": {"load": [0.2, 0.2, 0.2], "n_cpus": 2},
            "targets": {"k8s-ibm": {"steal_share": 0.0, "others_share": others}},
        }
        write_json_atomic(run_dir / "meta.json", meta)
        runs[run_id] = run_dir

    files = build_report(load_run(runs["noisy"]), tmp_path / "reports" / "noisy")
    md = files.report_md.read_text()
    assert "Warnings about this run" in md
    assert "run noisy, target k8s-ibm: during its sweep other processes used 37.0%" in md
    assert md.index("Warnings about this run") < md.index("## Run")
    calm_md = build_report(load_run(runs["calm"]), tmp_path / "reports" / "calm").report_md.read_text()
    assert "other processes used" not in calm_md  # its only warning is the one-trial caution

    (tmp_path / "bench.toml").write_text('[paths]\nresults_dir = "results"\n')
    config = load_config(tmp_path / "bench.toml")
    capsys.readouterr()
    code = compare(
        config,
        a="calm",
        b="noisy",
        threshold_pct=5.0,
        alpha=0.05,
        fail_on_regression=False,
        fmt="csv",
        console=Console(quiet=False),
    )
    out, err = capsys.readouterr()
    assert code == 0
    # CSV: the legend, warnings and summary are '#' comment lines before the table (docs/compare.md)
    warning_lines = [line for line in out.splitlines() if "run noisy, target k8s-ibm" in line]
    assert warning_lines and all(line.startswith("#") for line in warning_lines)
    assert "run calm" not in out


def test_runner_records_the_running_target_and_its_noise(tmp_path) -> None:
    """meta.json names the target being measured while it runs, and gets its host-noise facts after."""
    import asyncio

    import numpy as np

    from bench.results import RunWriter
    from bench.run.runner import RunEvents, TargetOutcome, finish_meta, sweep_targets
    from loadgen.stats import SUMMARY_COLUMNS

    seen_on_disk: list[dict] = []
    run_dir = tmp_path / "r"

    class FakeTarget:
        def __init__(self, name: str) -> None:
            self.name = name

        async def start(self) -> None:
            pass

        async def stop(self) -> None:
            pass

        def describe(self) -> dict:
            return {"name": self.name, "base_url": "http://127.0.0.1:9"}

    async def run_sweep(target, engine_factory, plan, images, labels, on_progress=None, record_sink=None):
        seen_on_disk.append(json.loads((run_dir / "meta.json").read_text()))
        return
        yield  # an async generator that measures nothing

    writer = RunWriter(run_dir, "r", SUMMARY_COLUMNS)
    meta = new_meta(run_id="r", root=tmp_path, config_sha256="0", config_path="c", sweep={}, targets=["a", "b"])
    writer.write_meta(meta)
    outcomes = [TargetOutcome("a"), TargetOutcome("b")]
    asyncio.run(
        sweep_targets(
            [FakeTarget("a"), FakeTarget("b")],
            outcomes,
            run_sweep=run_sweep,
            engine_factory=None,
            plan=None,
            images=np.zeros((1, 28, 28)),
            labels=np.zeros(1),
            writer=writer,
            meta=meta,
            events=RunEvents(),
        )
    )
    writer.close()
    first, second = seen_on_disk
    assert first["outcomes"]["a"]["status"] == "running" and first["outcomes"]["b"]["status"] == "pending"
    assert first["target_errors"] == {}  # running is not a problem
    assert second["outcomes"]["a"]["status"] == "ok" and second["outcomes"]["b"]["status"] == "running"
    assert "a" in second["host_noise"]["targets"] and "b" not in second["host_noise"]["targets"]
    facts = meta.details["host_noise"]["targets"]["b"]
    assert len(facts["load_before"]) == 3 and len(facts["load_after"]) == 3 and facts["sweep_s"] >= 0
    assert facts["cpus"]["standins"] == []  # a target without local processes
    final = finish_meta(meta, outcomes, RunStatus.COMPLETE).to_json()
    assert final["status"] == "complete" and final["target_errors"] == {}
