"""Peak memory of a step's run path against its record count: flat when records stream, growing when kept.

Why: issue 25 wants a run of any length to hold no more than a bounded window of records.
What is measured is the run path itself -- :func:`loadgen.modes.run_step` sending every
request, draining records into :meth:`bench.results.RunWriter.step_sink` (gzip members of
requests.csv.gz on disk, meta-free), then :func:`loadgen.stats.summarize` of the step --
on the in-memory engine on virtual time (:mod:`loadgen.engines.memory_engine`): no socket,
no stand-in, so the figure is the client's own memory, not a server's.  Each point is a
fresh Python process; ``peak_rss_step_mb`` is its RSS high-water mark
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) when the step has ended, before its
statistics; ``peak_rss_mb`` at the end, after ``summarize`` (whose numpy temporaries over
every request's columns come on top).

``--path kept`` runs the same step through the pre-streaming code
(:mod:`tests.support.legacy_modes`: every Request prebuilt, every record kept, written after
the step) for contrast.

    python benchmarks/bench_run_memory.py --records 10000,100000,1000000,3000000
    python benchmarks/bench_run_memory.py --records 10000,100000,1000000 --path kept
    python benchmarks/bench_run_memory.py --records 3000000 --trace 100000 [--exact-records 1000000]

``--trace K`` samples the process's *current* RSS (``VmRSS``) every K completed requests
while the step runs (the curve against the record count: growing until the step holds
``EXACT_RECORDS`` rows, flat after); ``--exact-records`` lowers that cap to show the same
shape on a shorter step.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RATE = 1000.0  # req/s of the step's uniform schedule (virtual time)
SERVICE_S = 0.005  # virtual seconds each answer takes
CONNECTIONS = 64


class UniformSchedule:
    """``n`` offsets at ``RATE``, computed a chunk at a time (an OffsetSchedule)."""

    def __init__(self, n: int) -> None:
        self.n, self.duration_s = n, (n - 1) / RATE

    def __len__(self) -> int:
        return self.n

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        for start in range(0, self.n, size):
            yield np.arange(start, min(start + size, self.n), dtype=np.float64) / RATE


class Cyclic(Sequence):
    """``values[i % len(values)]`` for ``n`` items, nothing per item stored."""

    def __init__(self, values: Sequence, n: int) -> None:
        self.values, self.n = values, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        return self.values[i % len(self.values)]


def current_rss_mb() -> float:
    """The process's resident memory now (``VmRSS``), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one(n: int, path: str, folder: Path, trace_every: int = 0, exact_records: int = 0) -> dict:
    """Run one step of ``n`` requests; return its figures (called in a fresh process)."""
    from bench.results import RunWriter
    from loadgen import record_columns
    from loadgen.engine import EngineOptions
    from loadgen.engines.memory_engine import MemoryEngine
    from loadgen.engines.virtual_time import run_virtual
    from loadgen.modes import run_step
    from loadgen.records import StepKey
    from loadgen.stats import SUMMARY_COLUMNS, summarize
    from tests.support.loadgen import MEMORY_URL, FakeTarget, digit_answer

    target = FakeTarget(MEMORY_URL)
    blueprints = [target.encode(np.full((28, 28), d, dtype=np.uint8)) for d in range(10)]
    labels = Cyclic(list(range(10)), n)
    key = StepKey(target="fake", mode="rate", n_requests=n, concurrency=CONNECTIONS, rate=RATE, trial=1)
    writer = RunWriter(folder / "run", "run", SUMMARY_COLUMNS)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if exact_records:
        record_columns.EXACT_RECORDS = exact_records
    trace: list[tuple[int, float]] = []

    def progress(key, done, total, live):
        if trace_every and (not trace or done - trace[-1][0] >= trace_every):
            trace.append((done, round(current_rss_mb(), 1)))

    async def main():
        options = EngineOptions(base_url=target.base_url, max_connections=CONNECTIONS, timeout_s=30.0)
        async with MemoryEngine(options, digit_answer, latency=SERVICE_S) as engine:
            if path == "stream":
                return await run_step(
                    engine,
                    key,
                    Cyclic(blueprints, n),
                    labels,
                    target.decode,
                    offsets=UniformSchedule(n),
                    max_duration_s=n / RATE + 60,
                    sink=writer.step_sink(key),
                    on_progress=progress,
                )
            from tests.support import legacy_modes

            requests = [blueprints[i % 10] for i in range(n)]  # what the sweep built before
            return await legacy_modes.run_step(
                engine,
                key,
                requests,
                [i % 10 for i in range(n)],
                target.decode,
                offsets=np.arange(n, dtype=np.float64) / RATE,
                max_duration_s=n / RATE + 60,
            )

    started = time.perf_counter()
    step = run_virtual(main())
    after_step = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the step itself, before its statistics
    row = summarize(step)
    writer.append_summary(row)
    if not step.streamed:
        writer.append_requests(step.key, step.records)
    writer.close()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert row["n_ok"] == n, row["errors_by_class"]
    return {
        "path": path,
        "records": n,
        "peak_rss_mb": round(peak / 1024, 1),
        "rss_before_step_mb": round(rss_before / 1024, 1),
        "peak_rss_step_mb": round(after_step / 1024, 1),
        "seconds": round(seconds, 1),
        "file_mb": round(writer.requests_path.stat().st_size / 2**20, 1),
        "held_mb": round(getattr(step.records, "nbytes", 0) / 2**20, 1),
        "stride": getattr(step.records, "stride", 1),
        "exact_records": record_columns.EXACT_RECORDS,
        "trace": trace,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", default="10000,100000,1000000")
    parser.add_argument("--path", choices=("stream", "kept"), default="stream")
    parser.add_argument("--trace", type=int, default=0, help="sample the current RSS every K requests")
    parser.add_argument("--exact-records", type=int, default=0, help="lower EXACT_RECORDS for this run")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        with tempfile.TemporaryDirectory(prefix="servebench-runmem-") as tmp:
            print(json.dumps(one(args.one, args.path, Path(tmp), args.trace, args.exact_records)))
        return
    print(f"load average before: {os.getloadavg()}")
    for n in (int(x) for x in args.records.split(",")):
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(n), "--path", args.path]
            + ["--trace", str(args.trace), "--exact-records", str(args.exact_records)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
        print(out.stdout.strip().splitlines()[-1], flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
