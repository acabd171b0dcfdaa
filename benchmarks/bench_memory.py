"""Peak memory and wall time of ``bench report`` and ``bench compare`` on synthetic runs of millions of records.

Why: issue 25 wants a run of any length reported and compared in bounded memory (target:
10 M request records under 1 GB). This script measures it the way a user meets it: each
command is a separate ``python -m bench`` process measured by ``benchmarks/child_rss.py``
(its peak resident set size -- the kernel's high-water mark from ``os.wait4``, the number
``/usr/bin/time`` reported for the figures measured before that helper -- and its wall time).

The runs are synthetic but in the project's own format, written by the real writer
(:class:`bench.results.RunWriter`, summary rows from :func:`loadgen.stats.summarize`): 4
targets x 2 modes (concurrent, rate) x 3 request counts x 2 trials, plus one very long rate
step holding 40 % of the records (a soak). Latencies are seeded lognormal, 1 % of the
requests time out. Never a measurement of a server.

    python benchmarks/bench_memory.py generate --records 1000000 --dir /tmp/servebench-mem
    python benchmarks/bench_memory.py scale --records 1000000 --dir /tmp/servebench-mem
    python benchmarks/bench_memory.py measure --records 1000000 --dir /tmp/servebench-mem --label after
    python benchmarks/bench_memory.py run --records 10000,30000,100000,300000 --label after

``generate`` writes ``DIR/r<records>/`` (the run) and ``DIR/r<records>-copy/`` (a byte copy,
the "B" of compare); ``scale`` writes ``DIR/r<records>-slower/`` (every latency x 1.05, a B
that differs). ``measure`` runs ``bench report`` on the run and ``bench compare`` of the run
against its copy (and against the slower one when it exists), prints one line per command and appends it to
``benchmarks/out/bench_memory.jsonl`` (git-ignored) with the load average before and after.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import RunWriter
from bench.results.header import new_meta
from benchmarks.child_rss import run_measured
from benchmarks.study_common import OUT_DIR, Scratch, loadavg
from ground.runmeta import RunStatus
from loadgen.records import RequestRecord, StepKey, StepResult
from loadgen.stats import SUMMARY_COLUMNS, summarize

TARGETS = {"greene-linserv": 0.030, "k8s-ibm": 0.010, "kubeflow-gcp": 0.004, "kubeflow-ibm": 0.002}
LONG_SHARE = 0.4  # of all records, in one rate step of the last target: the soak
QUIET_HOST = {"load": [0.0, 0.0, 0.0], "n_cpus": 2, "at": 0.0}
_DEFAULTS = {int: 0, float: 0.0, str: ""}


def _records(n: int, base_s: float, rate: float, rng: np.random.Generator) -> Iterator[RequestRecord]:
    """``n`` synthetic records of one step, made lazily (a long step never exists as one list here)."""
    names = [f.name for f in fields(RequestRecord)]
    chunk = 200_000
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        seq = np.arange(start, start + size)
        lat = base_s * rng.lognormal(0.0, 0.3, size=size)
        intended = seq / rate if rate > 0 else seq * base_s
        lag = rng.exponential(0.0002, size=size)
        failed = rng.random(size) < 0.01
        labels = rng.integers(0, 10, size=size)
        for i in range(size):
            bad = bool(failed[i])
            values: dict[str, Any] = {
                "seq": int(seq[i]),
                "intended_s": float(intended[i]),
                "sent_s": float(intended[i] + lag[i]),
                "latency_s": 30.0 if bad else float(lat[i] + lag[i]),
                "service_s": 30.0 if bad else float(lat[i]),
                "status": 0 if bad else 200,
                "error": "timeout" if bad else "",
                "error_detail": "no complete response within 30 s" if bad else "",
                "bytes_out": 6163,
                "bytes_in": 31,
                "label": int(labels[i]),
                "predicted": -1 if bad else int(labels[i]) if i % 50 else int(labels[i] + 1) % 10,
                "sample": int(seq[i]) % 1000,
                "agree": -1 if bad else int(i % 50 != 0),
            }
            # columns other versions add (not known here) get their type's empty value
            yield RequestRecord(**{k: values.get(k, _DEFAULTS.get(type(values.get(k)), "")) for k in names})


def _plan(records: int) -> list[tuple[StepKey, float]]:
    """The steps and each one's base latency: a sweep of 48 steps plus one long soak step."""
    long_n = int(records * LONG_SHARE)
    unit = (records - long_n) // (len(TARGETS) * 2 * 2 * 6)  # targets x modes x trials x (1+2+3)
    steps = []
    for target, base in TARGETS.items():
        for mode in ("concurrent", "rate"):
            for k in (1, 2, 3):
                for trial in (1, 2):
                    n = unit * k
                    rate = 500.0 if mode == "rate" else 0.0
                    steps.append((StepKey(target, mode, n, 64, rate, trial), base))
    soak = StepKey(
        "kubeflow-ibm", "rate", long_n + (records - long_n - sum(k.n_requests for k, _ in steps)), 64, 1000.0, 3
    )
    steps.append((soak, TARGETS["kubeflow-ibm"]))
    return steps


def generate(records: int, directory: Path, seed: int = 0) -> Path:
    """Write run ``r<records>`` and its copy under ``directory``; returns the run folder."""
    run_id = f"r{records}"
    run_dir = directory / run_id
    if run_dir.exists():
        shutil.rmtree(run_dir)
    rng = np.random.default_rng(seed)
    writer = RunWriter(run_dir, run_id, SUMMARY_COLUMNS)
    meta = new_meta(
        run_id=run_id,
        root=directory,
        config_sha256="0" * 64,
        config_path="synthetic",
        sweep={"n_requests": [1, 2, 3], "modes": ["concurrent", "rate"], "trials": 2},
        targets=list(TARGETS),
        load_at_start=QUIET_HOST,
    )
    meta.details.update(synthetic="generated by benchmarks/bench_memory.py -- not a measurement")
    writer.write_meta(meta)
    for key, base in _plan(records):
        step_records = tuple(_records(key.n_requests, base, key.rate, rng))
        ends = [r.intended_s + r.latency_s for r in step_records]
        step = StepResult(key=key, records=step_records, total_s=max(ends), started_at=1.77e9)
        writer.append_summary(summarize(step))
        writer.append_requests(key, step_records)
        del step, step_records, ends
    writer.close()
    meta.finish(RunStatus.COMPLETE, now=1.77e9 + 3600)
    writer.write_meta(meta)
    copy = directory / f"{run_id}-copy"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(run_dir, copy)
    return run_dir


def scaled_copy(records: int, directory: Path, factor: float = 1.05) -> Path:
    """``r<records>-slower``: the run with every latency and service time multiplied by ``factor``
    (totals too, throughput divided), rewritten chunk by chunk -- a B that differs, for compare."""
    import gzip

    import pandas as pd

    from bench.results.chunks import iter_request_frames

    src, dst = directory / f"r{records}", directory / f"r{records}-slower"
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir()
    summary = pd.read_csv(src / "summary.csv", float_precision="round_trip")
    for col in [c for c in summary.columns if c.startswith("lat_")] + ["total_s"]:
        summary[col] = summary[col] * factor
    summary["throughput_rps"] = summary["throughput_rps"] / factor
    summary.to_csv(dst / "summary.csv", index=False)
    with gzip.open(dst / "requests.csv.gz", "wt", newline="", compresslevel=6) as out:
        for i, frame in enumerate(iter_request_frames(src / "requests.csv.gz")):
            for col in ("latency_s", "service_s"):
                frame[col] = frame[col] * factor
            frame.to_csv(out, index=False, header=i == 0)
    meta = json.loads((src / "meta.json").read_text())
    meta["run_id"] = dst.name
    (dst / "meta.json").write_text(json.dumps(meta, indent=2))
    return dst


def measure(
    records: int, directory: Path, label: str, tree: Path = ROOT, only: frozenset[str] | None = None
) -> list[dict[str, Any]]:
    """``bench report`` and ``bench compare`` on ``r<records>`` by the code in ``tree``; one row per command.

    ``tree``: a checkout of servebench (default: this one) -- e.g. ``git archive`` of an
    older commit, for the before figures (its code runs: the cwd is first on sys.path).
    """
    run_dir, copy = directory / f"r{records}", directory / f"r{records}-copy"
    if not run_dir.is_dir() or not copy.is_dir():
        raise SystemExit(f"{run_dir} (and its -copy) not found: run `generate --records {records}` first")
    size_mb = (run_dir / "requests.csv.gz").stat().st_size / 1e6
    scratch = Scratch(directory=Path(tempfile.mkdtemp(prefix="servebench-mem-")))
    config = scratch.write_config("bench")
    base = [sys.executable, "-m", "bench", "--config", str(config), "-q"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True)
    rows = []
    try:
        slower = directory / f"r{records}-slower"
        commands = [("report", ["report", str(run_dir)]), ("compare", ["compare", str(run_dir), str(copy)])]
        if slower.is_dir():  # made by `scale`: a B that differs, so compare's per-request test runs too
            commands.append(("compare-slower", ["compare", str(run_dir), str(slower)]))
        for name, args in commands:
            if only and name not in only:
                continue
            before = loadavg()
            result = run_measured([*base, *args], tree, scratch.directory / f"{name}.log")
            row = {
                "label": label,
                "command": name,
                "records": records,
                "requests_gz_mb": round(size_mb, 1),
                **result,
                "commit": commit.stdout.strip() or str(tree),
                "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "load_before": before,
                "load_after": loadavg(),
            }
            if result["exit"] != 0:
                row["log_tail"] = (scratch.directory / f"{name}.log").read_text()[-2000:]
            rows.append(row)
            print(
                f"{label:8} {name:8} {records:>10,} records  {row['wall_s']:7.1f} s  {row['peak_mb']:7.0f} MB"
                f"  exit {row['exit']}  load {before.split()[0]} -> {row['load_after'].split()[0]}",
                flush=True,
            )
    finally:
        shutil.rmtree(scratch.directory, ignore_errors=True)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with (OUT_DIR / "bench_memory.jsonl").open("a") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return rows


def run_one_step(records: int, directory: Path) -> dict[str, Any]:
    """One open-loop step of ``records`` requests at 1,000 req/s on the in-memory engine (virtual
    time, 2 ms per answer), summarised and written as ``bench run`` does; this process's peak RSS."""
    import resource

    from loadgen.engine import EngineOptions
    from loadgen.engines.memory_engine import MemoryEngine
    from loadgen.engines.virtual_time import run_virtual
    from loadgen.modes import run_step
    from loadgen.pacing import schedule
    from loadgen.request import Request

    request = Request("POST", "/predict", b"x" * 6000, {"Content-Type": "application/json"})
    key = StepKey("memory", "rate", records, 64, 1000.0, 1)
    options = EngineOptions(base_url="http://memory.invalid", max_connections=64, timeout_s=30.0)

    async def main(n: int) -> StepResult:
        async with MemoryEngine(options, lambda r: (200, b'{"predictions": [7]}'), latency=0.002) as engine:
            return await run_step(
                engine,
                dataclasses.replace(key, n_requests=n),
                [request] * n,
                [7] * n,
                lambda status, body: 7,
                offsets=schedule(n, 1000.0),
                max_duration_s=n / 1000.0 + 60.0,
            )

    def run_and_write(n: int) -> StepResult:
        step = run_virtual(main(n))
        run_dir = directory / f"run-{n}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        with RunWriter(run_dir, run_dir.name, SUMMARY_COLUMNS) as writer:
            writer.append_summary(summarize(step))
            writer.append_requests(step.key, step.records)
        return step

    run_and_write(10)  # everything imported and warmed up: the baseline
    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.monotonic()
    step = run_and_write(records)
    return {
        "records": records,
        "baseline_mb": round(baseline_mb, 1),  # after a 10-record step: imports, loop, writer
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "wall_s": round(time.monotonic() - started, 1),
        "written": len(step.records),
    }


def measure_run(counts: list[int], directory: Path, label: str) -> None:
    """:func:`run_one_step` in a fresh process per record count; one printed line each."""
    for records in counts:
        before = loadavg()
        proc = subprocess.run(
            [sys.executable, __file__, "run-one", "--records", str(records), "--dir", str(directory)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise SystemExit(f"run-one {records} failed:\n{proc.stderr[-2000:]}")
        row = {"label": label, "command": "run-step", **json.loads(proc.stdout.strip().splitlines()[-1])}
        row.update(utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), load_before=before, load_after=loadavg())
        per_record = (row["peak_mb"] - row["baseline_mb"]) * 1024 * 1024 / records
        print(
            f"{label:8} run-step {records:>10,} records  {row['wall_s']:7.1f} s  peak {row['peak_mb']:7.0f} MB"
            f"  (10-record step {row['baseline_mb']:.0f} MB; {per_record:,.0f} bytes/record above it)"
            f"  load {before.split()[0]} -> {row['load_after'].split()[0]}",
            flush=True,
        )
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        with (OUT_DIR / "bench_memory.jsonl").open("a") as handle:
            handle.write(json.dumps(row) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("generate", "scale", "measure", "run", "run-one"))
    parser.add_argument("--records", required=True, help="a count; for run, comma-separated counts")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "servebench-mem")
    parser.add_argument("--label", default="now", help="measure: what code this is (before, after, ...)")
    parser.add_argument("--tree", type=Path, default=ROOT, help="measure: the checkout whose code runs")
    parser.add_argument("--only", default="", help="measure: only these commands (comma-separated: report, compare)")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    counts = [int(c) for c in str(args.records).split(",")]
    if args.action == "run":
        measure_run(counts, args.dir, args.label)
        return 0
    if args.action == "run-one":
        print(json.dumps(run_one_step(counts[0], args.dir)))
        return 0
    records = counts[0]
    if args.action == "scale":
        print(f"wrote {scaled_copy(records, args.dir)}")
        return 0
    if args.action == "generate":
        started = time.monotonic()
        run_dir = generate(records, args.dir)
        size = (run_dir / "requests.csv.gz").stat().st_size / 1e6
        print(f"wrote {run_dir} ({size:.0f} MB requests.csv.gz) in {time.monotonic() - started:.0f} s")
    else:
        measure(records, args.dir, args.label, args.tree.resolve(), frozenset(filter(None, args.only.split(","))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
