"""The capacity mode's plumbing: probes through the real sweep code path, files, report, compare.

Why through the in-memory engine on virtual time with tiny caps: these tests check what
is written and rendered (every probe's records and summary row, the three capacity
files agreeing with each other, the report and the comparison built from them), so the
"server" is a model -- one worker, 2 ms per request -- that no machine load can change.
The search logic itself is tested exactly with models in test_capacity_search.py; real
stand-ins over real sockets in test_capacity_e2e.py.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.capacity.results import CAPACITY_FILE, CONCURRENCY_FILE, PROBES_FILE, load_capacity
from bench.capacity.run import CapacityEvents, CapacityPhase, capacity_config, split_modes, with_capacity
from bench.compare.capacity import CANNOT_JUDGE
from bench.config import ConfigError, LoadgenConfig, parse_config
from bench.results import RunWriter, load_run, write_meta_file
from bench.results.header import new_meta
from ground.runmeta import RunStatus
from loadgen.engines.memory_engine import MemoryEngine
from loadgen.engines.virtual_time import run_virtual
from loadgen.objective import CapacityConfig
from loadgen.stats import SUMMARY_COLUMNS, step_flags
from loadgen.sweep import SweepPlan, run_sweep
from loadgen.sweep_settings import SweepSettings
from tests.support.loadgen import MEMORY_URL, FakeTarget, SingleWorker, digit_images

LABELS = np.random.default_rng(5).integers(0, 10, size=40)
IMAGES = digit_images(LABELS)
SMALL = CapacityConfig(
    percentile=50.0,
    bound_ms=2000.0,
    min_requests=12,
    min_seconds=0.1,
    min_met_seconds=0.0,  # sub-second probes: the floor of time would leave every rate undecided
    max_seconds=3.0,
    max_probes=5,
    max_concurrency=2,
    closed_loop_seconds=2.0,
    start_rps=40.0,
    repeats=2,
)
CEILING = {"engine": "aiohttp", "rps_by_concurrency": {"1": 900.0, "64": 4000.0}}


def _capacity_run(
    tmp_path: Path, run_id: str, config: CapacityConfig = SMALL, *, plan: SweepPlan | None = None, seed: int = 0
) -> tuple[Path, CapacityPhase, list]:
    """A run folder written by the real phase through the memory engine, with meta.json."""
    run_dir = tmp_path / run_id
    events: list = []

    async def main() -> CapacityPhase:
        target = FakeTarget(MEMORY_URL)
        engines = MemoryEngine.factory(SingleWorker(0.002))  # one model server for the whole run
        writer = RunWriter(run_dir, run_id, SUMMARY_COLUMNS)
        phase = CapacityPhase(
            config,
            sweep=SweepSettings(seed=seed),
            loadgen=LoadgenConfig(),
            writer=writer,
            ceiling=CEILING,
            events=CapacityEvents(
                on_probe=lambda t, r, rec: events.append(("probe", r, rec)),
                on_level=lambda t, rec: events.append(("level", rec)),
                on_search=lambda t, r, res: events.append(("search", r, res)),
            ),
        )
        sweep = with_capacity(run_sweep, phase)(target, engines, plan, IMAGES, LABELS)
        async for step in sweep:
            from loadgen.stats import summarize

            writer.append_summary(summarize(step))
            writer.append_requests(step.key, step.records)
        writer.close()
        meta = new_meta(
            run_id=run_id,
            root=tmp_path,
            config_sha256="0" * 64,
            config_path="test",
            sweep=plan.describe() if plan else {},
            targets=["fake"],
        )
        meta.details.update(client_ceiling=CEILING, capacity=phase.describe())
        meta.finish(RunStatus.COMPLETE)
        write_meta_file(run_dir, meta)
        return phase

    return run_dir, run_virtual(main()), events


@pytest.fixture(scope="module")
def capacity_run(tmp_path_factory) -> tuple[Path, CapacityPhase, list]:
    return _capacity_run(tmp_path_factory.mktemp("cap"), "cap")


def test_every_probe_keeps_its_raw_records_and_summary_row(capacity_run) -> None:
    run_dir, phase, _ = capacity_run
    run = load_run(run_dir)
    probes = pd.read_csv(run_dir / PROBES_FILE)
    open_rows = run.summary[run.summary["mode"] == "capacity"]
    closed_rows = run.summary[run.summary["mode"] == "capacity_closed"]
    results = phase.results["fake"]
    assert len(results) == SMALL.repeats
    assert len(probes) == len(open_rows) == sum(len(r.probes) for r in results)
    assert len(closed_rows) == len(phase.closed["fake"].levels) >= 1
    # summary rows carry the probe's offered rate; trials number the probes 1..n per target
    assert list(open_rows["trial"]) == list(range(1, len(open_rows) + 1)) == list(probes["trial"])
    np.testing.assert_allclose(open_rows["rate"], probes["offered_rps"])
    # summary.csv's offered_rps is the rate the Poisson schedule actually offered (loadgen/saturation.py)
    assert (open_rows["offered_rps"] > 0).all() and np.isfinite(open_rows["offered_rps"]).all()
    assert open_rows["achieved_rps"].notna().all()
    assert (closed_rows["offered_rps"].isna()).all() and (closed_rows["rate"] == 0).all()
    # requests.csv.gz holds every request of every probe and level, under the same keys
    requests = run.requests
    for row in run.summary.itertuples():
        part = requests[
            (requests["mode"] == row.mode)
            & (requests["trial"] == row.trial)
            & (requests["concurrency"] == row.concurrency)
            & (requests["rate"] == row.rate)
        ]
        assert len(part) == row.n_requests
    # a probe's n follows min_requests / min_seconds
    for record in results[0].probes:
        assert record.outcome.n_requests == max(SMALL.min_requests, math.ceil(record.spec.rate * SMALL.min_seconds))


def test_the_capacity_files_agree_with_the_search(capacity_run) -> None:
    run_dir, phase, events = capacity_run
    capacity = pd.read_csv(run_dir / CAPACITY_FILE)
    results = phase.results["fake"]
    assert list(capacity["repeat"]) == [1, 2]
    for row, result in zip(capacity.itertuples(), results, strict=False):
        assert row.verdict == result.verdict and row.probes == len(result.probes)
        assert row.objective == "p50 <= 2000 ms" and row.bound_s == 2.0
        if math.isnan(result.capacity_rps):
            assert math.isnan(row.capacity_rps)
        else:
            assert row.capacity_rps == pytest.approx(result.capacity_rps)
        assert row.client_ceiling_rps == 4000.0
        assert row.client_bound == (not math.isnan(result.capacity_rps) and result.capacity_rps >= 2000.0)
        assert row.seconds == pytest.approx(result.seconds, abs=0.01)
    assert capacity["seed"].nunique() == 2  # each search has its own schedule seed
    probes = pd.read_csv(run_dir / PROBES_FILE)
    for repeat, part in probes.groupby("repeat"):
        result = results[int(repeat) - 1]
        assert list(part["phase"]) == [p.spec.phase for p in result.probes]
        assert list(part["met"]) == [p.met for p in result.probes]
    summary = load_run(run_dir).summary
    flagged = summary[summary["mode"] == "capacity"].apply(lambda r: bool(step_flags(r)), axis=1)
    assert list(flagged) == list(
        probes["violation"].fillna("").map(lambda v: v.startswith(("saturated", "no req")) or "failed" in v)
    )
    closed = pd.read_csv(run_dir / CONCURRENCY_FILE)
    assert list(closed["concurrency"]) == [r.spec.concurrency for r in phase.closed["fake"].levels]
    assert [e[0] for e in events].count("search") == 2
    assert [e[0] for e in events].count("probe") == len(probes)


def test_probe_schedules_are_seeded_and_repeatable(tmp_path: Path) -> None:
    config = dataclasses.replace(SMALL, repeats=1, max_probes=2, max_concurrency=1)
    runs = [_capacity_run(tmp_path, name, config, seed=seed)[0] for name, seed in (("a", 3), ("b", 3), ("c", 4))]

    def intended(run_dir: Path) -> list[float]:
        with gzip.open(run_dir / "requests.csv.gz", "rt") as fh:
            requests = pd.read_csv(fh)
        return list(requests.loc[requests["mode"] == "capacity", "intended_s"])

    assert intended(runs[0]) == intended(runs[1])
    assert intended(runs[0]) != intended(runs[2])


def test_the_ordinary_sweep_runs_first_and_is_untouched(tmp_path: Path) -> None:
    plan = SweepPlan(n_requests=(1, 4), modes=("sequential",), warmup=1)
    config = dataclasses.replace(SMALL, repeats=1, max_probes=2, max_concurrency=1)
    run_dir, _, _ = _capacity_run(tmp_path, "mixed", config, plan=plan)
    summary = load_run(run_dir).summary
    assert list(summary["mode"])[:2] == ["sequential", "sequential"]
    assert set(summary["mode"]) == {"sequential", "capacity", "capacity_closed"}


def test_report_has_a_capacity_table_and_figure_and_regenerates_identically(capacity_run, tmp_path: Path) -> None:
    from bench.report.build import build_report

    run_dir, _, _ = capacity_run
    files = build_report(load_run(run_dir), tmp_path / "report")
    md = files.report_md.read_text()
    assert "## Capacity under p50 <= 2000 ms" in md and "no Table 3" in md
    assert (tmp_path / "report" / "capacity.md").is_file()
    assert (tmp_path / "report" / "figures" / "capacity_fake.png").is_file()
    assert "capacity_fake" in files.report_html.read_text()
    again = build_report(load_run(run_dir), tmp_path / "again")
    assert again.report_md.read_text() == md
    assert (tmp_path / "again" / "capacity.md").read_text() == (tmp_path / "report" / "capacity.md").read_text()


def test_mixed_run_report_puts_capacity_after_table3_and_keeps_it_out_of_table3(tmp_path: Path) -> None:
    from bench.report.build import build_report

    plan = SweepPlan(n_requests=(1, 4), modes=("sequential",), warmup=1)
    config = dataclasses.replace(SMALL, repeats=1, max_probes=2, max_concurrency=1)
    run_dir, _, _ = _capacity_run(tmp_path, "mixed", config, plan=plan)
    files = build_report(load_run(run_dir), tmp_path / "report")
    md = files.report_md.read_text()
    heads = [line for line in md.splitlines() if line.startswith("## ")]
    assert (
        heads.index("## Capacity under p50 <= 2000 ms")
        == heads.index("## Table 3: total time to answer N requests") + 1
    )
    table3 = (tmp_path / "report" / "table3.md").read_text()
    assert "capacity" not in table3 and "| 4 |" in table3


def test_compare_capacity_runs_cli(capacity_run, tmp_path: Path, capsys) -> None:
    from bench.compare.show import compare
    from bench.console import Console

    run_dir, _, _ = capacity_run
    config = parse_config(f'[paths]\nresults_dir = "{run_dir.parent}"\n', tmp_path)
    code = compare(
        config,
        a=str(run_dir),
        b=str(run_dir),
        threshold_pct=5.0,
        alpha=0.05,
        fail_on_regression=True,
        fmt="csv",
        console=Console(),
    )
    out = capsys.readouterr().out
    rows = pd.read_csv(pd.io.common.StringIO(out))
    # the gate never passes blind: a search with no capacity (or a single one) cannot be judged (exit 3)
    assert code == (3 if rows["verdict"].iloc[0] in CANNOT_JUDGE else 0)
    assert list(rows["target"]) == ["fake"] and rows["n_a"].iloc[0] == rows["n_b"].iloc[0]
    if rows["n_a"].iloc[0] >= 2:
        assert rows["ratio"].iloc[0] == pytest.approx(1.0) and rows["verdict"].iloc[0] == "within spread"


def test_split_modes_and_slo() -> None:
    assert split_modes(None) == (None, False)
    assert split_modes(["sequential", "capacity"]) == (["sequential"], True)
    assert split_modes(["capacity"]) == ([], True)
    config = capacity_config(CapacityConfig(), "p99.9=250ms")
    assert config.percentile == 99.9 and config.bound_ms == pytest.approx(250.0)
    assert capacity_config(CapacityConfig(), None) == CapacityConfig()
    with pytest.raises(ValueError, match="pNN=BOUND"):
        capacity_config(CapacityConfig(), "99th under 100ms")


def test_slo_needs_the_search_or_a_rate_step() -> None:
    from bench.capacity.show import plan_capacity, run_objective

    config = parse_config("", Path("/tmp"))
    modes, settings = plan_capacity(config, ["sequential"], "p99=100ms")
    assert modes == ["sequential"] and settings is None
    with pytest.raises(ValueError, match="add --modes capacity"):
        run_objective("p99=100ms", None, ["sequential"])
    # with rate steps and no search, the objective is the line on the timeline: accepted, recorded
    assert run_objective("p99=100ms", None, ["sequential", "rate"]).describe() == "p99 <= 100 ms"
    assert run_objective(None, None, ["rate"]) is None
    with pytest.raises(ValueError, match="pNN=BOUND"):
        plan_capacity(config, ["rate"], "99th=fast")
    modes, settings = plan_capacity(config, ["capacity"], "p95=20ms")
    assert modes == [] and settings.objective.describe() == "p95 <= 20 ms"


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("[capacity]\nbound = 100\n", "capacity.bound", "did you mean 'bound_ms'"),
        ("[capacity]\npercentile = 'p99'\n", "capacity.percentile", "must be a number"),
        ("[capacity]\npercentile = 100\n", "capacity", "percentile must be in (0, 100)"),
        ("[capacity]\nbound_ms = 0\n", "capacity", "bound must be a finite time > 0"),
        ("[capacity]\nprecision = 1.5\n", "capacity", "precision must be in (0, 1)"),
        ("[capacity]\ngrowth = 1\n", "capacity", "growth must be > 1"),
        ("[capacity]\nmax_probes = 1\n", "capacity", "max_probes must be >= 2"),
        ("[capacity]\nrepeats = 0\n", "capacity", "repeats must be >= 1"),
        ("[capacity]\nmin_requests = 2.5\n", "capacity.min_requests", "must be an integer"),
        ("[capacity]\nmax_seconds = -1\n", "capacity", "max_seconds must be > 0"),
        ("[capacity]\nmax_requests = 1\n", "capacity", "max_requests must be >= 2"),
        ("[capacity]\nmax_requests = 'many'\n", "capacity.max_requests", "must be an integer"),
        ("[capacity]\nstart_rps = -5\n", "capacity", "start_rps must be >= 0"),
        ("[capacity]\nmax_concurrency = 0\n", "capacity", "max_concurrency must be >= 1"),
        ("[capcity]\n", "capcity", "unknown table"),
    ],
)
def test_capacity_table_errors_name_the_key(text: str, where: str, problem: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_config(text, Path("/tmp"))
    assert excinfo.value.where == where
    assert problem in str(excinfo.value)


def test_capacity_defaults_are_documented_in_bench_toml(repo_root: Path) -> None:
    """bench.toml's commented [capacity] block shows every key with its real default."""
    import re

    text = (repo_root / "bench.toml").read_text()
    block = text[text.index("# [capacity]") :].split("\n# ---")[0]
    shown = dict(re.findall(r"^# (\w+) = ([^#\n]+?)\s*(?:#|$)", block, flags=re.M))
    defaults = dataclasses.asdict(CapacityConfig())
    assert set(defaults) <= set(shown), set(defaults) - set(shown)
    for key, value in defaults.items():
        assert float(shown[key]) == pytest.approx(float(value)), key


def test_load_capacity_of_a_run_without_a_search(tmp_path: Path) -> None:
    data = load_capacity(tmp_path)
    assert data.empty and data.targets == []


def test_compare_a_capacity_run_with_one_without_a_search(tmp_path: Path, capsys) -> None:
    """Only one side searched: the ordinary steps are still compared (with a warning);
    with no ordinary steps either, it is bad input."""
    from bench.compare.show import compare
    from bench.console import Console

    plan = SweepPlan(n_requests=(1, 4), modes=("sequential",), warmup=1)
    config = dataclasses.replace(SMALL, repeats=1, max_probes=2, max_concurrency=1)
    mixed, _, _ = _capacity_run(tmp_path, "mixed", config, plan=plan)
    plain, _, _ = _capacity_run(tmp_path, "plain", config, plan=plan)
    for name in (CAPACITY_FILE, PROBES_FILE, CONCURRENCY_FILE):
        (plain / name).unlink()
    settings = parse_config(f'[paths]\nresults_dir = "{tmp_path}"\n', tmp_path)
    code = compare(
        settings,
        a=str(plain),
        b=str(mixed),
        threshold_pct=5.0,
        alpha=0.05,
        fail_on_regression=False,
        fmt="csv",
        console=Console(),
    )
    captured = capsys.readouterr()
    assert code == 0 and "capacity not compared" in captured.err
    rows = pd.read_csv(pd.io.common.StringIO(captured.out), comment="#")  # legend/summary as '#' lines
    rows = rows[rows["level"] == "step"]
    assert set(rows["mode"]) == {"sequential"}  # capacity rows never enter the step-by-step comparison
    only_capacity, _, _ = _capacity_run(tmp_path, "only", config)
    code = compare(
        settings,
        a=str(plain),
        b=str(only_capacity),
        threshold_pct=5.0,
        alpha=0.05,
        fail_on_regression=False,
        fmt="table",
        console=Console(),
    )
    assert code == 2 and "only one run has a capacity search" in capsys.readouterr().err


def test_compare_fails_on_a_capacity_regression_beyond_the_spread(capacity_run, tmp_path: Path, capsys) -> None:
    import shutil

    from bench.compare.show import compare
    from bench.console import Console

    run_dir, _, _ = capacity_run
    template = pd.read_csv(run_dir / CAPACITY_FILE).iloc[[0, 0, 0]].reset_index(drop=True)
    for name, capacities in (("ref", [100.0, 104.0, 98.0]), ("new", [60.0, 62.0, 59.0])):
        shutil.copytree(run_dir, tmp_path / name)
        frame = template.assign(repeat=[1, 2, 3], capacity_rps=capacities, verdict="VALID", client_bound=False)
        frame.to_csv(tmp_path / name / CAPACITY_FILE, index=False)
    settings = parse_config(f'[paths]\nresults_dir = "{tmp_path}"\n', tmp_path)
    kwargs = dict(threshold_pct=5.0, alpha=0.05, fmt="md", console=Console())
    assert compare(settings, a="ref", b="new", fail_on_regression=True, **kwargs) == 1
    captured = capsys.readouterr()
    assert "0.60x lower capacity" in captured.out and "regression: lower capacity: fake 0.60x" in captured.err
    assert compare(settings, a="ref", b="new", fail_on_regression=False, **kwargs) == 0
    assert compare(settings, a="new", b="ref", fail_on_regression=True, **kwargs) == 0
    assert "1.67x higher capacity" in capsys.readouterr().out
    single = template.iloc[[0]].assign(repeat=[1], capacity_rps=[100.0], verdict="VALID", client_bound=False)
    single.to_csv(tmp_path / "new" / CAPACITY_FILE, index=False)
    assert compare(settings, a="ref", b="new", fail_on_regression=True, **kwargs) == 3
    assert "the capacity comparison cannot judge fake: single search" in capsys.readouterr().err
    assert compare(settings, a="ref", b="new", fail_on_regression=True, allow_inconclusive=True, **kwargs) == 0
