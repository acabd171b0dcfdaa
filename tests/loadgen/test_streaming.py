"""Streamed steps: the same records and summary as before streaming, bounded state, a failing sink.

Every step runs on the in-memory engine on virtual time, through the new
:func:`loadgen.modes.run_step` (with and without a sink) and through the pre-streaming copy
(:mod:`tests.support.legacy_modes`), and every record and summary cell is compared.
"""

from __future__ import annotations

import asyncio
import errno
import math
import time

import numpy as np
import pytest

from loadgen import modes as modes_module
from loadgen import record_columns
from loadgen.engine import EngineOptions
from loadgen.engines.memory_engine import MemoryEngine
from loadgen.engines.virtual_time import run_virtual
from loadgen.modes import run_step
from loadgen.pacing import ArraySchedule, as_schedule, schedule
from loadgen.record_columns import BYTES_PER_RECORD, RecordColumns
from loadgen.records import RequestRecord, StepKey, StepResult
from loadgen.request import Request
from loadgen.saturation import analyze_open_loop
from loadgen.stats import FLAG_HISTOGRAM, summarize
from tests.support import legacy_modes
from tests.support.loadgen import MEMORY_URL, FakeTarget, digit_answer


class ListSink:
    """Keeps what it is given, in the order given; can fail after ``fail_after`` records."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.records: list[RequestRecord] = []
        self.writes = 0
        self.closed = False
        self.fail_after = fail_after

    def write(self, records):
        if self.fail_after is not None and len(self.records) + len(records) > self.fail_after:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.records.extend(records)
        self.writes += 1

    def close(self):
        self.closed = True


def _handler(delay: float, every: int = 0, slow: float = 0.0, bad_every: int = 0):
    """Answers after ``delay`` s (``slow`` s for every ``every``-th); a 500 for every ``bad_every``-th."""
    count = 0

    async def handle(request: Request) -> tuple[int, bytes]:
        nonlocal count
        count += 1
        mine = count
        await asyncio.sleep(slow if every and mine % every == 0 else delay)
        if bad_every and mine % bad_every == 0:
            return 500, b"boom"
        return digit_answer(request)

    return handle


def _run(step_fn, handler, mode: str, n: int, concurrency: int, rate: float, max_duration_s: float, **kw):
    async def main() -> StepResult:
        target = FakeTarget(MEMORY_URL)
        labels = [i % 10 for i in range(n)]
        requests = [target.encode(np.full((28, 28), d, dtype=np.uint8)) for d in labels]
        cap = concurrency if mode != "rate" else max(concurrency, 1)
        key = StepKey(target="fake", mode=mode, n_requests=n, concurrency=cap, rate=rate, trial=1)
        offsets = schedule(n, rate, "poisson", seed=3) if mode == "rate" else None
        options = EngineOptions(base_url=target.base_url, max_connections=cap, timeout_s=30.0)
        async with MemoryEngine(options, handler) as engine:
            return await step_fn(
                engine,
                key,
                requests,
                labels,
                target.decode,
                offsets=offsets,
                max_duration_s=max_duration_s,
                samples=list(range(100, 100 + n)),
                **kw,
            )

    return run_virtual(main())


def _same(a: dict, b: dict, rel: float = 0.0) -> None:
    """Every cell equal (floats within ``rel``: see :data:`VIRTUAL_ROUNDING`)."""
    assert list(a) == list(b)
    for name in a:
        if name == "started_at":  # the wall clock when each run started
            continue
        x, y = a[name], b[name]
        if isinstance(x, float) and math.isnan(x):
            assert isinstance(y, float) and math.isnan(y), name
        elif isinstance(x, float) and rel:
            assert y == pytest.approx(x, rel=rel, abs=1e-15), (name, x, y)
        else:
            assert x == y, (name, x, y)


def _same_records(a, b, rel: float = 0.0) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for name, value in vars(x).items():
            other = getattr(y, name)
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(other), (x.seq, name)
            elif isinstance(value, float) and rel:
                assert other == pytest.approx(value, rel=rel, abs=1e-15), (x.seq, name, value, other)
            else:
                assert value == other, (x.seq, name, value, other)


#: A streamed step's drain task wakes the virtual clock at its own instants (every
#: DRAIN_INTERVAL_S), and virtual times computed from those bases round differently in
#: the last bits (2e-16 s seen): the same instants, not a different schedule.
VIRTUAL_ROUNDING = 1e-12

CASES = [
    # mode, n, concurrency, rate, max_duration_s, handler
    ("sequential", 40, 1, 0.0, 60.0, lambda: _handler(0.01, every=7, slow=0.2)),
    ("concurrent", 300, 8, 0.0, 60.0, lambda: _handler(0.02, every=5, slow=0.3, bad_every=11)),
    ("rate", 500, 500, 100.0, 60.0, lambda: _handler(0.02, every=13, slow=0.5)),
    ("rate", 400, 4, 200.0, 60.0, lambda: _handler(0.05)),  # saturated by its connection cap
    ("rate", 600, 50, 100.0, 3.5, lambda: _handler(0.02, every=50, slow=5.0)),  # cut off: timeouts, unsent
    ("concurrent", 400, 4, 0.0, 2.0, lambda: _handler(0.05)),  # cut off: in flight and never sent
]


@pytest.mark.parametrize(("mode", "n", "c", "rate", "bound", "make"), CASES)
def test_streamed_step_has_the_records_and_summary_of_the_old_code(mode, n, c, rate, bound, make):
    old = _run(legacy_modes.run_step, make(), mode, n, c, rate, bound)
    kept = _run(run_step, make(), mode, n, c, rate, bound)
    sink = ListSink()
    streamed = _run(run_step, make(), mode, n, c, rate, bound, sink=sink)

    assert isinstance(kept.records, tuple) and not kept.streamed
    assert isinstance(streamed.records, RecordColumns) and streamed.streamed
    _same_records(old.records, kept.records)
    _same_records(old.records, streamed.records, VIRTUAL_ROUNDING)
    _same_records(streamed.records, sorted(sink.records, key=lambda r: r.seq))
    assert sink.closed
    assert old.total_s == kept.total_s
    assert streamed.total_s == pytest.approx(old.total_s, rel=VIRTUAL_ROUNDING)
    expected = legacy_modes.summarize(old)
    _same(expected, summarize(kept))
    _same(expected, summarize(streamed), VIRTUAL_ROUNDING)
    if bound < 10:
        assert any(r.error for r in old.records)  # the cut-off cases do cut something off


class SlowSink(ListSink):
    """A sink whose writes take real time, as a loaded machine's disk does."""

    def write(self, records):
        time.sleep(0.03)
        super().write(records)


def test_a_slow_sink_changes_no_record_the_cut_off_step_keeps():
    """The CI failure this guards: a write in a thread took real time, the virtual clock jumped
    past the step's deadline meanwhile, and a request cut off at 3.5 s got its full 5 s."""
    mode, n, c, rate, bound, make = CASES[4]
    old = _run(legacy_modes.run_step, make(), mode, n, c, rate, bound)
    sink = SlowSink()
    streamed = _run(run_step, make(), mode, n, c, rate, bound, sink=sink)
    _same_records(old.records, streamed.records, VIRTUAL_ROUNDING)
    _same(legacy_modes.summarize(old), summarize(streamed), VIRTUAL_ROUNDING)


def test_a_long_step_reaches_the_sink_while_it_runs_not_only_at_its_end():
    sink = ListSink()
    seen_during: list[int] = []

    lives = []

    def progress(key, done, total, live):
        seen_during.append(len(sink.records))
        lives.append(live)

    step = _run(run_step, _handler(0.01), "rate", 1000, 100, 100.0, 60.0, sink=sink, on_progress=progress)
    assert len(step.records) == 1000 and len(sink.records) == 1000
    middle = next(live for live in lives if live.elapsed_s >= 6.0)  # the live figures over the last 5 s
    assert middle.window_s == pytest.approx(5.0)
    assert middle.offered_rps == pytest.approx(100.0, rel=0.25)  # Poisson arrivals at 100/s
    assert middle.p50_s == pytest.approx(0.01) and middle.errors == 0
    assert middle.remaining_s == pytest.approx(step.records[-1].intended_s - middle.elapsed_s)
    assert sink.writes > 5  # drained about every DRAIN_INTERVAL_S of a 10 s step, in slices
    assert max(seen_during) >= 800  # records were on the sink before the step ended


def test_a_failing_sink_stops_the_step_and_raises_its_error():
    sink = ListSink(fail_after=300)
    with pytest.raises(OSError) as caught:
        _run(run_step, _handler(0.01), "rate", 2000, 100, 100.0, 60.0, sink=sink)
    assert caught.value.errno == errno.ENOSPC
    assert sink.closed and len(sink.records) <= 300


def test_the_step_holds_only_requests_in_flight_and_not_yet_drained(monkeypatch):
    """The bookkeeping is bounded by what is in flight plus one drain interval, not by the step's length."""
    held: list[int] = []
    original = modes_module._Step.drain

    async def watching(self, *, final=False):
        held.append(len(self.flight) + len(self.finished))
        await original(self, final=final)

    monkeypatch.setattr(modes_module._Step, "drain", watching)
    _run(run_step, _handler(0.05), "rate", 3000, 100, 100.0, 60.0, sink=ListSink())
    # Poisson arrivals at 100/s: ~100 completions per drain interval (bursts above), ~5 in flight; never the 3000
    assert 50 <= max(held) <= 2 * 100 * modes_module.DRAIN_INTERVAL_S


def test_record_columns_give_back_every_record_and_cost_a_fixed_number_of_bytes():
    step = _run(run_step, _handler(0.02, bad_every=3), "concurrent", 200, 4, 0.0, 60.0)
    cols = RecordColumns.of(step.records)
    _same_records(step.records, list(cols))
    assert cols[-1] == step.records[-1]
    assert cols.nbytes == len(cols) * BYTES_PER_RECORD  # the text tables are per distinct value
    assert cols.error_counts() == {"": int(np.count_nonzero(cols.ok())), "http_5xx": 200 - int(cols.ok().sum())}


def test_an_offset_schedule_is_consumed_in_chunks_and_an_array_is_wrapped():
    offsets = schedule(10, 5.0)
    wrapped = as_schedule(offsets)
    assert isinstance(wrapped, ArraySchedule) and len(wrapped) == 10 and wrapped.duration_s == pytest.approx(1.8)
    chunks = list(wrapped.chunks(4))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert np.array_equal(np.concatenate(chunks), offsets)
    with pytest.raises(ValueError, match="non-decreasing"):
        ArraySchedule([0.0, 1.0, 0.5])
    with pytest.raises(TypeError, match="OffsetSchedule"):
        as_schedule("0,1,2")


def test_run_step_takes_any_offset_schedule():
    class Lazy:
        """A schedule that computes its chunks (as a staged one would)."""

        duration_s = 0.99

        def __len__(self) -> int:
            return 100

        def chunks(self, size):
            for start in range(0, 100, size):
                yield np.arange(start, min(start + size, 100)) / 100.0

    async def main() -> StepResult:
        target = FakeTarget(MEMORY_URL)
        labels = [i % 10 for i in range(100)]
        requests = [target.encode(np.full((28, 28), d, dtype=np.uint8)) for d in labels]
        key = StepKey(target="fake", mode="rate", n_requests=100, concurrency=100, rate=100.0, trial=1)
        options = EngineOptions(base_url=target.base_url, max_connections=100)
        async with MemoryEngine(options, _handler(0.01)) as engine:
            return await run_step(engine, key, requests, labels, target.decode, offsets=Lazy())

    step = run_virtual(main())
    assert [r.intended_s for r in step.records] == pytest.approx([i / 100.0 for i in range(100)])
    assert all(r.ok for r in step.records)


@pytest.mark.parametrize(
    ("mode", "n", "c", "rate", "handler"),
    [
        ("rate", 3000, 100, 100.0, lambda: _handler(0.02, every=13, slow=0.5, bad_every=17)),
        ("rate", 2000, 4, 200.0, lambda: _handler(0.05)),  # saturated by its connection cap
        ("concurrent", 2000, 8, 0.0, lambda: _handler(0.01, every=7, slow=0.1)),
    ],
)
def test_a_step_past_the_exact_cap_holds_a_sample_and_summarises_like_the_exact_step(
    monkeypatch, mode, n, c, rate, handler
):
    """Bounded at any length: past EXACT_RECORDS the step keeps one request in ``stride`` and
    an exact tally; its row's counts are exact, its percentiles within 0.1 %, its verdict the same."""
    exact = _run(run_step, handler(), mode, n, c, rate, 600.0, sink=ListSink())
    monkeypatch.setattr(record_columns, "EXACT_RECORDS", 300)
    sink = ListSink()
    thinned = _run(run_step, handler(), mode, n, c, rate, 600.0, sink=sink)

    cols = thinned.records
    stride = 2 ** math.ceil(math.log2(n / 300))  # the smallest doubling that holds <= 300 rows
    assert isinstance(cols, RecordColumns) and cols.stride == stride and cols.tally is not None
    assert 150 < len(cols) <= 300 and cols.n_records == thinned.n_records == n
    assert [r.seq for r in cols] == list(range(0, n, stride))
    assert len(sink.records) == n  # every record still reached the disk
    want, got = summarize(exact), summarize(thinned)
    for name in ("n_ok", "errors", "errors_by_class", "n_correct", "accuracy", "n_agree", "bytes_out", "bytes_in"):
        assert got[name] == want[name] or (np.isnan(got[name]) and np.isnan(want[name])), name
    for name in (c for c in want if c.startswith("lat_")):
        assert got[name] == pytest.approx(want[name], rel=0.0011, nan_ok=True), name
    assert got["saturated"] == want["saturated"]
    assert got["send_lag_max_s"] == pytest.approx(want["send_lag_max_s"], abs=1e-12, nan_ok=True)
    for name in ("offered_rps", "achieved_rps"):
        assert got[name] == pytest.approx(want[name], rel=0.05, nan_ok=True), name
    assert got["flags"].split(";") == [*filter(None, want["flags"].split(";")), FLAG_HISTOGRAM]
    if mode == "rate":
        live = analyze_open_loop(thinned).peak_in_flight
        assert live == analyze_open_loop(exact).peak_in_flight
        cols.tally.peak_in_flight = None  # as a merge or a killed step's partial row: nobody counted it live
        estimated = analyze_open_loop(thinned).peak_in_flight
        assert estimated > 0 and estimated % stride == 0  # the sample's peak x stride
