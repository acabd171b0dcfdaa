"""`bench merge`: shard runs into one run whose statistics are exactly those of the union.

The shard runs are real: K sharded sweeps against a loopback server in this process
(tests/support/shard.py), written as `bench run --shard` writes them.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.results import read_requests
from bench.shard.merge import MergeError, combined_ceiling, merge_runs
from bench.shard_run import sharding_warnings
from loadgen.stats import LATENCY_PERCENTILES, percentile
from loadgen.sweep import SweepPlan
from tests.support.shard import write_shard_runs

PLAN = SweepPlan(n_requests=(9, 20), modes=("concurrent", "rate"), rate_rps=300.0, warmup=2, trials=2)


@pytest.fixture(scope="module")
def shard_dirs(tmp_path_factory) -> list[Path]:
    return write_shard_runs(tmp_path_factory.mktemp("shards"), PLAN, 3)


def _copy(shard_dirs: list[Path], tmp_path: Path) -> list[Path]:
    out = []
    for path in shard_dirs:
        shutil.copytree(path, tmp_path / path.name)
        out.append(tmp_path / path.name)
    return out


def _edit_meta(path: Path, edit) -> None:
    meta = json.loads((path / "meta.json").read_text())
    edit(meta)
    (path / "meta.json").write_text(json.dumps(meta))


def test_merged_percentiles_equal_those_of_the_union(shard_dirs: list[Path], tmp_path: Path) -> None:
    result = merge_runs(shard_dirs, tmp_path / "merged")
    summary = pd.read_csv(tmp_path / "merged" / "summary.csv", float_precision="round_trip")
    shards = pd.concat([read_requests(p / "requests.csv.gz") for p in shard_dirs])
    assert len(summary) == len(PLAN.steps("fake")) == 8
    for _, row in summary.iterrows():
        part = shards[
            (shards["mode"] == row["mode"])
            & (shards["n_requests"] == row["n_requests"])
            & (shards["trial"] == row["trial"])
        ]
        ok = part[part["error"] == ""]["latency_s"].to_numpy(dtype=float)
        assert len(part) == row["n_requests"] and row["n_ok"] == len(ok) > 0
        for q, suffix in LATENCY_PERCENTILES:  # exactly, not approximately
            assert row[f"lat_{suffix}_s"] == percentile(ok, q) == np.percentile(ok, q)
        assert row["lat_mean_s"] == np.mean(ok) and row["lat_max_s"] == ok.max()
        # the merged step is the plan's: its whole N and in-flight count / connection cap
        assert row["concurrency"] == PLAN.concurrency_for(row["mode"], row["n_requests"])
    assert [s.key for s in result.steps] == PLAN.steps("fake")


def test_merged_records_keep_the_shard_and_one_time_line(shard_dirs: list[Path], tmp_path: Path) -> None:
    result = merge_runs(shard_dirs, tmp_path / "merged")
    requests = read_requests(tmp_path / "merged" / "requests.csv.gz")
    assert "shard" in requests.columns and set(requests["shard"]) == {0, 1, 2}
    assert len(requests) == sum(k.n_requests for k in PLAN.steps("fake"))
    for step in result.steps:
        key = step.key
        rows = requests[
            (requests["mode"] == key.mode)
            & (requests["n_requests"] == key.n_requests)
            & (requests["trial"] == key.trial)
        ]
        assert rows["seq"].tolist() == list(range(key.n_requests)) and step.requests == key.n_requests
        assert rows["shard"].tolist() == sorted(rows["shard"])  # contiguous blocks per shard
        offsets = {s["index"]: s["start_offset_s"] for s in step.shards}
        assert min(offsets.values()) == 0.0 and step.start_skew_s == max(offsets.values())
        ends = [s["start_offset_s"] + s["total_s"] for s in step.shards]
        assert step.row["total_s"] == max(ends)  # earliest start to latest answer
        assert step.row["started_at"] == min(s["started_at"] for s in step.shards)
    with gzip.open(tmp_path / "merged" / "requests.csv.gz", "rt") as fh:
        assert fh.readline().rstrip().endswith(",shard")


def test_merged_meta_keeps_every_shard(shard_dirs: list[Path], tmp_path: Path) -> None:
    meta = merge_runs(shard_dirs, tmp_path / "merged").meta.to_json()
    written = json.loads((tmp_path / "merged" / "meta.json").read_text())
    assert written["status"] == "complete" and written["run_id"] == "merged"
    assert [s["index"] for s in written["shards"]] == [0, 1, 2]
    for shard in written["shards"]:
        assert shard["host"]["hostname"] and shard["clock"]["source"] and shard["client_ceiling"]
        assert len(shard["steps"]) == 8 and all(s["late_s"] >= 0 for s in shard["steps"])  # never early
    assert len(written["sharding"]["steps"]) == 8
    assert all(s["start_skew_s"] >= 0 for s in written["sharding"]["steps"])
    assert written["outcomes"]["fake"]["requests"] == sum(k.n_requests for k in PLAN.steps("fake"))
    # three clients' ceilings add up at three times the per-shard concurrency
    assert meta["client_ceiling"]["rps_by_concurrency"] == {"3": 6000.0, "192": 24000.0}
    assert "start_s" not in written["targets"]["fake"]


def test_report_and_compare_accept_the_merged_run(shard_dirs: list[Path], tmp_path: Path) -> None:
    merge_runs(shard_dirs, tmp_path / "results" / "merged")
    config = tmp_path / "bench.toml"
    config.write_text('[paths]\nresults_dir = "results"\nreports_dir = "reports"\n')
    assert main(["--config", str(config), "-q", "report", "merged"]) == 0
    report = (tmp_path / "reports" / "merged" / "report.md").read_text()
    assert "3 shards merged" in report
    assert main(["--config", str(config), "-q", "compare", "merged", "merged", "--format", "csv"]) == 0


def test_cli_merge_prints_each_shard_and_refuses_an_existing_output(
    shard_dirs: list[Path], tmp_path: Path, capsys
) -> None:
    config = tmp_path / "bench.toml"
    config.write_text('[paths]\nresults_dir = "results"\n')
    args = ["--config", str(config), "merge", *map(str, shard_dirs), "-o", "m1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "merged" in out and "offered req/s" in out
    assert main(args) == 2
    assert "already holds a run" in capsys.readouterr().err


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda m: m["config"].update(sha256="d" * 64), "disagree on the configuration"),
        (lambda m: m["model"].update(torchscript_sha256="x" * 64), "disagree on the model: "),
        (lambda m: m["targets"]["fake"].update(base_url="http://127.0.0.1:1"), "described.fake.base_url"),
        (lambda m: m.update(targets_order=["other"]), "disagree on the target"),
        (lambda m: m["sweep"].update(rate_rps=99.0), "disagree on the plan: shard 0"),
        (lambda m: m["shard"]["schedule"].update(start_at=1.0), "disagree on the start schedule"),
        (lambda m: m.update(status="interrupted"), "did not complete (status: interrupted)"),
    ],
)
def test_disagreeing_shards_are_refused_naming_the_difference(shard_dirs, tmp_path, edit, words) -> None:
    copies = _copy(shard_dirs, tmp_path)
    _edit_meta(copies[2], edit)
    with pytest.raises(MergeError) as info:
        merge_runs(copies, tmp_path / "merged")
    assert words in str(info.value)
    if "disagree" in words:
        assert "shard 2" in str(info.value)
    assert not (tmp_path / "merged").exists()  # nothing written


def test_duplicate_missing_and_foreign_runs_are_refused(shard_dirs, tmp_path) -> None:
    with pytest.raises(MergeError, match="shard 1 of 3 is given twice"):
        merge_runs([shard_dirs[0], shard_dirs[1], shard_dirs[1]], tmp_path / "m")
    with pytest.raises(MergeError, match=r"shard\(s\) 2 of 3 missing"):
        merge_runs(shard_dirs[:2], tmp_path / "m")
    copies = _copy(shard_dirs, tmp_path)
    _edit_meta(copies[1], lambda m: m["shard"].update(count=4))
    with pytest.raises(MergeError, match="shards of different splits"):
        merge_runs(copies, tmp_path / "m")
    _edit_meta(copies[1], lambda m: m.pop("shard"))
    with pytest.raises(MergeError, match="is not a shard run"):
        merge_runs(copies, tmp_path / "m")


def test_a_shard_missing_records_is_refused(shard_dirs, tmp_path) -> None:
    copies = _copy(shard_dirs, tmp_path)
    whole = read_requests(copies[0] / "requests.csv.gz")
    for frame in (whole.iloc[1:], whole.iloc[:-1]):  # one request of the first, then of the last step lost
        with gzip.open(copies[0] / "requests.csv.gz", "wt", newline="") as fh:
            frame.to_csv(fh, index=False)
        with pytest.raises(MergeError, match="not its share"):
            merge_runs(copies, tmp_path / "m")
        assert not (tmp_path / "m").exists()  # the last step fails after 7 were written: none is left


def test_combined_ceiling_counts_shards_on_one_cpu_once() -> None:
    one = {"engine": "fast", "rps_by_concurrency": {"1": 1000.0, "64": 4000.0}}
    assert combined_ceiling([one, one])["rps_by_concurrency"] == {"2": 2000.0, "128": 8000.0}
    shared = combined_ceiling([one, one], cpu_groups=[[0, 1]])["rps_by_concurrency"]
    # one client at concurrency 2, interpolated in log-log between c=1 (1000) and c=64 (4000)
    assert shared["2"] == pytest.approx(1000.0 * 4 ** (1 / 6), rel=1e-9)
    assert shared["128"] == 4000.0  # one CPU: one client's ceiling, at the combined concurrency
    assert combined_ceiling([one, None]) is None


def test_skew_warnings_name_the_step() -> None:
    meta = {
        "sharding": {
            "steps": [
                {
                    "mode": "rate",
                    "n_requests": 100,
                    "trial": 1,
                    "start_skew_s": 0.2,
                    "shards": [{"total_s": 1.0}, {"total_s": 1.1}],
                },
                {"mode": "rate", "n_requests": 200, "trial": 1, "start_skew_s": 0.01, "shards": [{"total_s": 1.0}]},
            ]
        }
    }
    warnings = sharding_warnings(meta)
    assert len(warnings) == 1 and "rate N=100 trial 1" in warnings[0] and "200 ms apart" in warnings[0]
    assert sharding_warnings({}) == []
