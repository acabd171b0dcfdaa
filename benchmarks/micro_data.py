"""Seeded synthetic inputs for the micro-benchmarks -- built outside the timed part, never a measurement.

Why synthetic: the micro-benchmarks time servebench's own pure-Python work (statistics,
writing records, encoding, decoding, comparing) on inputs of a fixed, known size, so two
machines or two commits time the same work.  Every generator returns the arrays it drew
the records from, so a benchmark can check its function's answer against numpy computed
independently from those arrays -- a benchmark of a broken function fails instead of
timing it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.results import RunWriter
from bench.results.header import SCHEMA_VERSION
from loadgen.records import RequestRecord, StepKey, StepResult
from loadgen.stats import SUMMARY_COLUMNS, summarize

__all__ = [
    "COMPARE_MODES",
    "COMPARE_NS",
    "COMPARE_TARGETS",
    "COMPARE_TRIALS",
    "FAILED_STEP",
    "SLOWDOWN",
    "StepArrays",
    "open_loop_step",
    "write_compare_run",
]

# The 2 x 100 k comparison: 2 targets x 2 modes x N (10 + 40 + 200 + 1,000 + 5,000) x 4 trials
# = 100,000 request records per run, 10 steps per target.
COMPARE_TARGETS: dict[str, float] = {"greene-linserv": 0.010, "kubeflow-gcp": 0.0013}  # median latency, s
COMPARE_MODES: tuple[str, ...] = ("sequential", "concurrent")
COMPARE_NS: tuple[int, ...] = (10, 40, 200, 1_000, 5_000)
COMPARE_TRIALS = 4
# Run B is this much slower on greene-linserv and unchanged on kubeflow-gcp.
SLOWDOWN: dict[str, float] = {"greene-linserv": 1.5, "kubeflow-gcp": 1.0}
# In run B, one request of this step's first trial is refused: compare must call the step failed.
FAILED_STEP: tuple[str, str, int] = ("kubeflow-gcp", "concurrent", 10)


@dataclass(frozen=True)
class StepArrays:
    """What a synthetic step's records were drawn from (for checking answers independently)."""

    rate: float
    intended_s: np.ndarray
    latency_s: np.ndarray
    failed: np.ndarray  # bool per request
    correct: np.ndarray  # bool per request
    bytes_out: np.ndarray
    bytes_in: np.ndarray


def open_loop_step(n: int, *, seed: int, rate: float = 5_000.0, mode: str = "rate") -> tuple[StepResult, StepArrays]:
    """A step of ``n`` requests on a Poisson schedule at ``rate`` req/s that the target keeps up with.

    Send lag ~ 50 us, service time lognormal around 2 ms, 0.1 % HTTP 500s, 2 % wrong digits:
    the shape of a healthy open-loop step of the fast stand-ins. ``mode`` other than ``rate``
    gives the same records under a closed-loop key (no open-loop analysis).
    """
    rng = np.random.default_rng(seed)
    intended = np.cumsum(rng.exponential(1.0 / rate, size=n))
    send_lag = rng.exponential(50e-6, size=n)
    service = 0.002 * rng.lognormal(0.0, 0.3, size=n)
    latency = send_lag + service
    failed = rng.random(n) < 0.001
    labels = rng.integers(0, 10, size=n)
    wrong = rng.random(n) < 0.02
    predicted = np.where(failed, -1, np.where(wrong, (labels + 1) % 10, labels))
    bytes_out = rng.integers(5_000, 6_500, size=n)
    bytes_in = np.where(failed, 60, 22)
    records = tuple(
        RequestRecord(
            seq=i,
            intended_s=float(intended[i]),
            sent_s=float(intended[i] + send_lag[i]),
            latency_s=float(latency[i]),
            service_s=float(service[i]),
            status=500 if failed[i] else 200,
            error="http_5xx" if failed[i] else "",
            error_detail="HTTP 500" if failed[i] else "",
            bytes_out=int(bytes_out[i]),
            bytes_in=int(bytes_in[i]),
            label=int(labels[i]),
            predicted=int(predicted[i]),
        )
        for i in range(n)
    )
    total = float(np.max(intended + latency))
    key = StepKey("kubeflow-gcp", mode, n, 64 if mode == "rate" else n, rate if mode == "rate" else 0.0, 0)
    step = StepResult(key=key, records=records, total_s=total, started_at=1.7e9)
    arrays = StepArrays(
        rate=rate,
        intended_s=intended,
        latency_s=latency,
        failed=failed,
        correct=~failed & (predicted == labels),
        bytes_out=bytes_out,
        bytes_in=bytes_in,
    )
    return step, arrays


def _closed_step(
    target: str, mode: str, n: int, trial: int, median_s: float, rng: np.random.Generator, failures: int
) -> StepResult:
    """A closed-loop step: lognormal latencies around ``median_s`` (x2 when concurrent), ``failures`` refused."""
    latency = median_s * (2.0 if mode == "concurrent" else 1.0) * rng.lognormal(0.0, 0.25, size=n)
    sent = np.concatenate(([0.0], np.cumsum(latency)[:-1])) if mode == "sequential" else np.zeros(n)
    labels = rng.integers(0, 10, size=n)
    records = tuple(
        RequestRecord(
            seq=i,
            intended_s=float(sent[i]),
            sent_s=float(sent[i]),
            latency_s=float(latency[i]),
            service_s=float(latency[i]),
            status=0 if i < failures else 200,
            error="refused" if i < failures else "",
            error_detail="connection refused" if i < failures else "",
            bytes_out=6_100,
            bytes_in=22,
            label=int(labels[i]),
            predicted=-1 if i < failures else int(labels[i]),
        )
        for i in range(n)
    )
    concurrency = 1 if mode == "sequential" else n
    key = StepKey(target, mode, n, concurrency, 0.0, trial)
    return StepResult(key=key, records=records, total_s=float(np.max(sent + latency)), started_at=1.7e9 + trial)


def write_compare_run(
    directory: Path,
    run_id: str,
    *,
    seed: int,
    slowdown: dict[str, float] | None = None,
    failed_step: tuple[str, str, int] | None = None,
) -> Path:
    """A run folder of 100,000 request records written by the real :class:`RunWriter` and ``summarize``.

    Each trial draws its own factor (lognormal, sd 0.03 on the log scale: the trial-to-trial
    spread of a quiet machine) shared by all its steps, as a real sweep pass does.
    """
    slowdown = slowdown or {}
    rng = np.random.default_rng(seed)
    run_dir = Path(directory) / run_id
    with RunWriter(run_dir, run_id, SUMMARY_COLUMNS) as writer:
        for target, median_s in COMPARE_TARGETS.items():
            for trial in range(COMPARE_TRIALS):
                trial_factor = float(np.exp(rng.normal(0.0, 0.03)))
                for mode in COMPARE_MODES:
                    for n in COMPARE_NS:
                        failures = 1 if failed_step == (target, mode, n) and trial == 0 else 0
                        step = _closed_step(
                            target, mode, n, trial, median_s * trial_factor * slowdown.get(target, 1.0), rng, failures
                        )
                        writer.append_summary(summarize(step))
                        writer.append_requests(step.key, step.records)
    # A minimal meta.json (what compare reads from it), as plain JSON: synthetic, so no host facts.
    meta = {
        "schema_version": SCHEMA_VERSION,
        "kind": "serving",
        "run_id": run_id,
        "targets_order": list(COMPARE_TARGETS),
        "complete": True,
        "status": "complete",
        "synthetic": "generated by benchmarks/micro_data.py -- not a measurement",
    }
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return run_dir
