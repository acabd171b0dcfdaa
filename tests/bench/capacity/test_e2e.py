"""End to end: `bench run greene-linserv --modes capacity` against the real Flask stand-in.

Small caps keep it bounded (a few probes of tens of requests, all on loopback); the
assertions are about what the command writes and how it ends -- never about the rate
found, which depends on how loaded the machine is (the search logic is tested exactly in
tests/loadgen/test_capacity_search.py).  The refusals of a misplaced ``--slo`` happen before
anything starts, so they are checked in-process (fast).
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from loadgen.capacity import VERDICTS
from tests.support.e2e import e2e_config, run_bench
from tests.support.paths import REPO

# p90 at 60 % confidence with one look: a probe can show "met" from 9 requests on, so
# min_requests (20) sets its size; no floor of time for "met" (sub-second probes). The start
# rate is half the closed loop's throughput at concurrency 1, which a busy host (CI under
# -n 2) can push to a few req/s: a first look plus the confirmation's reserve (2 x 20
# requests) must still fit the cap there -- with 8 s and 30 requests it did not at < 7.5
# req/s, and the search ran no probe at all (seen once in CI, 2026-12-07).
CAPS = """
[capacity]
min_requests = 20
min_seconds = 0.3
min_met_seconds = 0.0
max_seconds = 20.0
max_probes = 5
confidence = 0.6
max_looks = 1
max_concurrency = 2
closed_loop_seconds = 2.0
"""


def _config(tmp_path: Path, trained_model) -> Path:
    return e2e_config(tmp_path, trained_model, CAPS)


def _bench(config: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return run_bench(config, *args, timeout=timeout)


@pytest.mark.slow
def test_capacity_mode_end_to_end(tmp_path, trained_model):
    config = _config(tmp_path, trained_model)
    proc = _bench(config, "run", "greene-linserv", "--modes", "capacity", "--slo", "p90=2s", "--run-id", "cap")
    assert proc.returncode == 0, f"exit {proc.returncode}\nSTDOUT:\n{proc.stdout}\nSTDERR:\n{proc.stderr[-5000:]}"
    run_dir = tmp_path / "results" / "cap"
    capacity = pd.read_csv(run_dir / "capacity.csv")
    assert list(capacity["target"]) == ["greene-linserv"] and capacity["verdict"].iloc[0] in VERDICTS
    assert capacity["objective"].iloc[0] == "p90 <= 2000 ms"
    assert 1 <= capacity["probes"].iloc[0] <= 5  # the probe cap, confirmation included
    probes = pd.read_csv(run_dir / "capacity_probes.csv")
    summary = pd.read_csv(run_dir / "summary.csv")
    open_rows = summary[summary["mode"] == "capacity"]
    assert len(open_rows) == len(probes) == capacity["probes"].iloc[0]
    # `rate` is the probe's configured rate; offered_rps what its Poisson schedule actually offered
    assert (open_rows["rate"] > 0).all() and (open_rows["offered_rps"] > 0).all()
    assert set(summary["mode"]) <= {"capacity", "capacity_closed"}
    closed = pd.read_csv(run_dir / "capacity_concurrency.csv")
    assert list(closed["concurrency"])[0] == 1 and len(closed) == (summary["mode"] == "capacity_closed").sum()
    with gzip.open(run_dir / "requests.csv.gz", "rt") as fh:
        requests = pd.read_csv(fh)
    assert len(requests) == summary["n_requests"].sum()
    assert (requests.loc[requests["error"].isna(), "status"] == 200).all()
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "complete" and meta["capacity"]["objective"] == "p90 <= 2000 ms"
    assert meta["capacity"]["max_probes"] == 5
    assert "Capacity under p90 <= 2000 ms" in proc.stdout  # the table printed at the end

    report_dir = tmp_path / "reports" / "cap"
    for name in ("report.md", "report.html", "capacity.md", "figures/capacity_greene-linserv.png"):
        assert (report_dir / name).is_file(), name
    first = (report_dir / "capacity.md").read_text()
    shutil.rmtree(report_dir)
    again = _bench(config, "report", "cap", timeout=300)
    assert again.returncode == 0, again.stderr
    assert (report_dir / "capacity.md").read_text() == first

    same = _bench(config, "compare", "cap", "cap", "--fail-on-regression", "--format", "csv", timeout=300)
    # one search (or none that found a capacity) cannot be judged: the gate says so and exits 3
    assert same.returncode == 3, same.stderr
    assert "the capacity comparison cannot judge greene-linserv" in same.stderr
    rows = pd.read_csv(pd.io.common.StringIO(same.stdout))
    assert list(rows["target"]) == ["greene-linserv"]
    assert rows["verdict"].iloc[0] in ("single search", "no capacity")


def test_slo_without_capacity_mode_is_bad_input(tmp_path, capsys):
    config = tmp_path / "bench.toml"
    config.write_text(
        (REPO / "bench.toml").read_text() + '\n[paths]\nresults_dir = "results"\nreports_dir = "reports"\n'
    )
    assert main(["--config", str(config), "run", "greene-linserv", "--modes", "sequential", "--slo", "p99=100ms"]) == 2
    assert "add --modes capacity" in capsys.readouterr().err
    assert main(["--config", str(config), "run", "greene-linserv", "--modes", "capacity", "--slo", "99th=fast"]) == 2
    assert "pNN=BOUND" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()  # refused before anything was measured or written
