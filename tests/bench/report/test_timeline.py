"""The report's timeline: windows, per-window rates and percentiles, outages, drift, and when the section shows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.report.build import build_report
from bench.report.document import Document, to_markdown
from bench.report.drift import DriftBatches, DriftVerdict
from bench.report.timeline_hist import N_BINS, RELATIVE_ERROR, bin_index, hist_quantiles, min_count_for
from bench.report.timeline_section import (
    add_timeline_section,
    make_timeline,
    run_slo,
    timeline_warnings,
    wants_timeline,
)
from bench.report.timeline_stats import StepSpan, TimelineAccumulator, window_seconds
from bench.results import RunWriter, load_run
from loadgen.quantile_bounds import quantile_ci_ranks
from loadgen.records import RequestRecord, StepKey, StepResult
from loadgen.stats import SUMMARY_COLUMNS, summarize

T0 = 1.79e9


def _frame(intended, latency, error, key=("t", "rate", 0, 64, 100.0, 1)) -> pd.DataFrame:
    n = len(intended)
    target, mode, _, c, rate, trial = key
    return pd.DataFrame(
        {
            "target": target,
            "mode": mode,
            "n_requests": key[2] or n,
            "concurrency": c,
            "rate": rate,
            "trial": trial,
            "intended_s": np.asarray(intended, float),
            "latency_s": np.asarray(latency, float),
            "error": np.asarray(error, object),
        }
    )


def _accumulate(frame: pd.DataFrame, total_s: float, chunk: int = 997, drift_min_s: float | None = None):
    key = tuple(frame.iloc[0][["target", "mode", "n_requests", "concurrency", "rate", "trial"]])
    acc = TimelineAccumulator([StepSpan(key, T0, total_s)], drift_min_s=drift_min_s)
    for start in range(0, len(frame), chunk):
        acc.add(frame.iloc[start : start + chunk])
    (timeline,) = acc.finish()
    return timeline


def test_window_width_follows_the_run_length():
    assert window_seconds(40) == 1.0
    assert window_seconds(60) == 1.0
    assert window_seconds(3600) == 10.0
    assert window_seconds(24 * 3600) == 300.0
    assert 3600 / window_seconds(3600) <= 400 and 86400 / window_seconds(86400) <= 400


def test_histogram_percentile_is_within_its_stated_error_of_the_exact_order_statistic():
    rng = np.random.default_rng(3)
    values = rng.lognormal(np.log(0.02), 1.0, 5000)
    counts = np.bincount(bin_index(values), minlength=N_BINS)[None, :]
    ordered = np.sort(values)
    for q in (0.5, 0.9, 0.99):
        exact = ordered[int(np.ceil(q * values.size)) - 1]
        got = hist_quantiles(counts, q)[0]
        assert abs(got / exact - 1) <= RELATIVE_ERROR + 1e-12, q


def test_minimum_counts_are_where_the_bounds_rule_first_gives_both_bounds():
    for q in (0.5, 0.99):
        n = min_count_for(q)
        assert None not in quantile_ci_ranks(n, q)
        assert None in quantile_ci_ranks(n - 1, q)
    assert min_count_for(0.99) == 368
    counts = np.zeros((2, N_BINS), np.int64)
    counts[0, 100] = 367
    counts[1, 100] = 368
    p99 = hist_quantiles(counts, 0.99, min_count_for(0.99))
    assert np.isnan(p99[0]) and np.isfinite(p99[1])  # no p99 from 367 requests


def test_rates_errors_and_latency_per_window():
    n = 6000  # 60 s at 100 req/s, latency 10 ms, every 10th request a 5xx
    intended = np.arange(n) / 100.0
    error = np.where(np.arange(n) % 10 == 0, "http_5xx", "")
    tl = _accumulate(_frame(intended, np.full(n, 0.01), error), total_s=60.01)
    assert tl.window_s == 1.0
    offered = tl.per_second(tl.offered)
    assert np.allclose(offered[:60], 100.0)
    assert np.allclose(tl.per_second(tl.achieved)[1:59], 90.0)
    assert np.allclose(tl.per_second(tl.errors["http_5xx"])[1:59], 10.0)
    p50 = hist_quantiles(tl.hist[:60], 0.5, min_count_for(0.5))
    assert np.all(np.abs(p50 / 0.01 - 1) <= RELATIVE_ERROR)
    assert np.isnan(hist_quantiles(tl.hist[:60], 0.99, min_count_for(0.99))).all()  # 90 a window: no p99
    assert tl.outages == []  # 5xx is an answer, not an outage
    assert tl.scatter is not None and tl.scatter[0].size == n


def test_an_outage_is_found_across_chunks_with_its_start_and_length():
    n = 6000
    intended = np.arange(n) / 100.0
    down = (intended >= 20.0) & (intended < 28.5)
    error = np.where(down, np.where(np.arange(n) % 2, "refused", "reset"), "")
    error[[100, 101]] = "timeout"  # two lone timeouts: too few to be an outage
    latency = np.where(down, 0.001, 0.01)
    tl = _accumulate(_frame(intended, latency, error), total_s=60.01, chunk=333)
    assert len(tl.outages) == 1
    outage = tl.outages[0]
    assert outage.start - T0 == pytest.approx(20.0)
    assert outage.length_s == pytest.approx(8.5)
    assert outage.requests == int(down.sum())
    assert outage.classes == ("refused", "reset") and not outage.until_step_end


def test_an_outage_that_lasts_to_the_step_end_says_so():
    n = 3000
    intended = np.arange(n) / 100.0
    error = np.where(intended >= 25.0, "refused", "")
    tl = _accumulate(_frame(intended, np.full(n, 0.002), error), total_s=30.0)
    assert [o.until_step_end for o in tl.outages] == [True]


def _drift_batches(multiplier: np.ndarray, seed: int = 0, rate: float = 200.0) -> DriftBatches:
    duration = multiplier.size / rate
    rng = np.random.default_rng(seed)
    intended = np.arange(multiplier.size) / rate
    batches = DriftBatches(duration)
    batches.add(intended, 0.01 * rng.lognormal(0, 0.4, multiplier.size) * multiplier, np.ones(multiplier.size, bool))
    return batches


def test_drift_steady_run_is_steady_and_a_drifting_one_is_flagged():
    n = 200 * 300  # 5 min at 200 req/s
    steady = _drift_batches(np.ones(n)).results()
    assert [r.verdict for r in steady] == [DriftVerdict.STEADY, DriftVerdict.STEADY]
    assert all(r.low < 1 < r.high for r in steady)
    drifting = _drift_batches(1 + 0.9 * np.arange(n) / n).results()
    assert [r.verdict for r in drifting] == [DriftVerdict.SLOWER, DriftVerdict.SLOWER]
    assert all(r.low > 1.1 for r in drifting) and "slower x" in drifting[0].describe()


def test_drift_is_not_compared_on_a_ramp_or_with_too_few_requests():
    rate = 200.0
    n = int(rate * 300)
    ramp = np.sort(np.random.default_rng(1).uniform(0, 300, n) ** 1.3 / 300**0.3)  # sends thicken over time
    batches = DriftBatches(300.0)
    batches.add(ramp, np.full(n, 0.01), np.ones(n, bool))
    assert {r.verdict for r in batches.results()} == {DriftVerdict.NOT_COMPARED}
    assert "offered rate changed" in batches.results()[0].reason
    sparse = _drift_batches(np.ones(3000), rate=10.0).results()  # 13 s batches at 10 req/s: no p99
    assert sparse[0].verdict != DriftVerdict.NOT_COMPARED  # 130 a batch is enough for p50
    assert sparse[1].verdict == DriftVerdict.NOT_COMPARED and "needs 368" in sparse[1].reason


def test_the_rule_keeps_short_closed_loop_sweeps_without_a_timeline():
    short = pd.DataFrame(
        {"mode": ["sequential", "concurrent"], "total_s": [30.0, 4.0], "errors_by_class": ["", "timeout:1"]}
    )
    assert not wants_timeline(short)
    assert wants_timeline(short.assign(mode="rate"))  # an open-loop step of 30 s
    assert wants_timeline(short.assign(total_s=[130.0, 4.0]))
    assert wants_timeline(short.assign(errors_by_class=["refused:12", ""]))


def _write_run(root, n=4000, rate=100.0, outage=(15.0, 19.0)):
    key = StepKey("greene-linserv", "rate", n, 64, rate, 1)
    records = []
    for i in range(n):
        t = i / rate
        down = outage[0] <= t < outage[1]
        lat = 0.001 if down else 0.01 + 0.002 * ((i * 7919) % 13)
        records.append(RequestRecord(i, t, t, lat, lat, 0 if down else 200, "refused" if down else "", "", 10, 0, 1, 1))
    step = StepResult(key, tuple(records), total_s=n / rate + 0.02, started_at=T0)
    with RunWriter(root / "tl", "tl", SUMMARY_COLUMNS) as writer:
        writer.append_summary(summarize(step))
        writer.append_requests(key, records)
    return root / "tl"


def test_timeline_section_lists_the_outage_and_draws_both_figures(tmp_path):
    run = load_run(_write_run(tmp_path))
    part = make_timeline(run, tmp_path / "figures")
    assert part is not None
    assert {p.name for p in part.made} >= {"timeline_greene-linserv.png", "scatter_greene-linserv.png"}
    doc = Document("r")
    add_timeline_section(doc, part)
    md = to_markdown(doc, "figures")
    assert "## Timeline" in md
    assert "no answer from" in md and "for 4.0 s: 400 requests failed (refused)" in md
    assert any("no answer from" in line for line in timeline_warnings(part))


def test_a_short_open_loop_step_gets_no_timeline(tmp_path):
    run = load_run(_write_run(tmp_path, n=500, outage=(0.0, 0.0)))  # a 5 s open-loop step
    assert make_timeline(run, tmp_path / "figures") is None
    assert not (tmp_path / "figures").exists()


@pytest.mark.slow
def test_report_puts_the_timeline_after_the_figures(tmp_path):
    files = build_report(load_run(_write_run(tmp_path)), tmp_path / "out")
    md = files.report_md.read_text()
    assert md.index("## Figures") < md.index("## Timeline") < md.index("## Per-target summary")
    assert "no answer from" in md.split("## Run")[0]  # the outage is among the warnings on top


def test_a_restart_on_the_memory_engine_is_marked_as_one_outage(tmp_path):
    """The real open-loop step code on virtual time: the target refuses connections from 10 s to
    14 s of a 30 s step at 50 req/s, then answers again; the report's timeline finds that gap."""
    import asyncio

    from loadgen.engine import EngineError, EngineOptions
    from loadgen.engines.memory_engine import MemoryEngine
    from loadgen.engines.virtual_time import run_virtual
    from loadgen.modes import run_step
    from loadgen.pacing import schedule
    from loadgen.request import Request

    n, rate = 1500, 50.0
    key = StepKey("memory", "rate", n, 16, rate, 1)
    start: list[float] = []

    def handler(request):
        now = asyncio.get_running_loop().time() - start[0]
        if 10.0 <= now < 14.0:
            raise EngineError("refused", "connection refused (restarting)")
        return 200, b'{"predictions": [7]}'

    async def main() -> StepResult:
        start.append(asyncio.get_running_loop().time())
        options = EngineOptions(base_url="http://memory.invalid", max_connections=16, timeout_s=5.0)
        async with MemoryEngine(options, handler, latency=0.005) as engine:
            return await run_step(
                engine,
                key,
                [Request("POST", "/predict", b"x", {})] * n,
                [7] * n,
                lambda status, body: 7,
                offsets=schedule(n, rate),
                max_duration_s=60.0,
            )

    step = run_virtual(main())
    with RunWriter(tmp_path / "mem", "mem", SUMMARY_COLUMNS) as writer:
        writer.append_summary(summarize(step))
        writer.append_requests(step.key, step.records)
    run = load_run(tmp_path / "mem")
    part = make_timeline(run, tmp_path / "figures")
    assert part is not None  # a 30 s open-loop step
    (timeline,) = part.timelines
    (outage,) = timeline.outages
    assert outage.classes == ("refused",) and not outage.until_step_end
    assert outage.length_s == pytest.approx(4.0, abs=0.2)
    assert outage.start - timeline.t0 == pytest.approx(10.0, abs=0.2)
    refused = sum(r.error == "refused" for r in step.records)
    assert outage.requests == refused


def test_windows_widen_for_a_p99_when_enough_windows_remain() -> None:
    """A 33-minute soak at 50 req/s gets windows that hold a p99's 368 requests; a short run keeps 1 s."""
    from bench.report.timeline_stats import P99_MIN_COUNT, window_seconds

    assert window_seconds(1993.0) == 5.0  # by length alone: 250 requests a window, no p99
    soak = window_seconds(1993.0, rate_rps=50.0)
    assert soak == 10.0 and 50.0 * soak >= P99_MIN_COUNT and 1993.0 / soak >= 60
    assert window_seconds(40.0, rate_rps=30.0) == 1.0  # a p99 window would leave 3 windows
    assert window_seconds(3600.0, rate_rps=1000.0) == 10.0  # already 10,000 a window


def test_the_runs_objective_is_drawn_on_its_timeline(tmp_path, monkeypatch):
    """meta.json's ``slo`` (bench run --slo, or the capacity search's) becomes the dashed line of the latency panel."""
    from bench.report import timeline_section
    from bench.report.figures_timeline import fig_timeline

    assert run_slo({"slo": {"percentile": 99.0, "bound_s": 0.015, "label": "p99 <= 15 ms"}}) == (0.99, 0.015)
    for bad in ({}, {"slo": None}, {"slo": {"percentile": 99}}, {"slo": {"percentile": 100, "bound_s": 1}}):
        assert run_slo(bad) is None
    run = load_run(_write_run(tmp_path))
    run.meta.details["slo"] = {"percentile": 99.0, "bound_s": 0.015, "label": "p99 <= 15 ms"}
    drawn = []

    def spy(tl, color=None, slo=None):
        figure = fig_timeline(tl, color, slo)
        drawn.append([line.get_label() for ax in figure.axes for line in ax.get_lines()])
        return figure

    monkeypatch.setattr(timeline_section, "fig_timeline", spy)
    assert make_timeline(run, tmp_path / "figures") is not None
    assert drawn and "SLO p99" in drawn[0]
    del run.meta.details["slo"]
    drawn.clear()
    make_timeline(run, tmp_path / "figures2")
    assert drawn and "SLO p99" not in drawn[0]


def test_the_timeline_and_the_latency_digest_share_one_read_of_the_requests_file(tmp_path, monkeypatch):
    """A long run's requests.csv.gz is decompressed once for the report: the timeline's pass
    also builds the digest the latency CDF reads, and that digest is the one a separate read gives."""
    import bench.results.load as load_module
    from bench.results.digest import digest_requests

    run_dir = _write_run(tmp_path)
    expected = digest_requests(run_dir / "requests.csv.gz")
    reads: list[tuple[str, ...]] = []
    real = load_module.iter_request_frames

    def counting(path, columns, *args, **kwargs):
        reads.append(tuple(columns))
        return real(path, columns, *args, **kwargs)

    monkeypatch.setattr(load_module, "iter_request_frames", counting)
    monkeypatch.setattr(load_module, "digest_requests", lambda *a, **k: pytest.fail("a second read of the file"))
    run = load_run(run_dir)
    part = make_timeline(run, tmp_path / "figures")
    assert part is not None and len(reads) == 1
    got = run.latencies()
    assert got is not None and got.keys() == expected.keys()
    for key, step in expected.items():
        assert got[key].sent == step.sent
        np.testing.assert_array_equal(got[key].ok, step.ok)
    assert len(reads) == 1
