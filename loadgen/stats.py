"""Summary statistics of one step, computed from its raw records. Pure: no I/O, no printing.

Why from raw data: percentiles are exact order statistics of every latency of the step
(numpy's default ``linear`` method, i.e. Hyndman & Fan type 7: the value at rank
``q/100 * (n - 1)``, interpolated linearly between neighbours) -- no histogram buckets
that round to two significant digits (locust's flaw).  Latency statistics use successful
requests only (a refused connection is fast and says nothing about serving time) and are
NaN when there are none; errors and accuracy are reported next to them, so a fast target
that answers wrongly never looks good.

Definitions (one row per step, columns :data:`SUMMARY_COLUMNS`):

- ``total_s``: the step's wall time, first intended send to last completion.
- ``throughput_rps``: successful requests per second of ``total_s`` (vegeta's
  throughput; failures do not count as served).
- ``accuracy``: correct / n_requests (an error is never correct); ``accuracy_ok``:
  correct / n_ok (the model's accuracy on the answers that came back).
- ``bytes_out``/``bytes_in``: sums over the step's requests.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from loadgen.records import ERROR_CLASSES, RequestRecord, StepResult

__all__ = [
    "LATENCY_PERCENTILES",
    "SUMMARY_COLUMNS",
    "error_counts",
    "format_error_counts",
    "latency_stats",
    "parse_error_counts",
    "percentile",
    "summarize",
]

# percentile -> column suffix
LATENCY_PERCENTILES: tuple[tuple[float, str], ...] = (
    (50.0, "p50"),
    (90.0, "p90"),
    (95.0, "p95"),
    (99.0, "p99"),
    (99.9, "p999"),
)

SUMMARY_COLUMNS: tuple[str, ...] = (
    "target",
    "mode",
    "n_requests",
    "concurrency",
    "rate",
    "trial",
    "started_at",
    "total_s",
    "throughput_rps",
    "n_ok",
    "errors",
    "errors_by_class",
    "lat_mean_s",
    "lat_min_s",
    *(f"lat_{suffix}_s" for _, suffix in LATENCY_PERCENTILES),
    "lat_max_s",
    "n_correct",
    "accuracy",
    "accuracy_ok",
    "bytes_out",
    "bytes_in",
)


def percentile(values: Sequence[float] | np.ndarray, q: float | Sequence[float]) -> float | np.ndarray:
    """Exact percentile(s) ``q`` (0..100) of ``values`` by numpy's ``linear`` method; NaN if empty."""
    data = np.asarray(values, dtype=np.float64)
    qs = np.asarray(q, dtype=np.float64)
    if np.any((qs < 0) | (qs > 100)) or np.any(np.isnan(qs)):
        raise ValueError(f"percentiles must be within 0..100, got {q!r}")
    if data.size == 0:
        return float("nan") if qs.ndim == 0 else np.full(qs.shape, np.nan)
    if np.any(np.isnan(data)):
        raise ValueError("values contain NaN")
    result = np.percentile(data, qs, method="linear")
    return float(result) if qs.ndim == 0 else result


def latency_stats(latencies: Sequence[float] | np.ndarray) -> dict[str, float]:
    """``lat_mean_s, lat_min_s, lat_pXX_s..., lat_max_s`` of the given latencies (NaN if none)."""
    data = np.asarray(latencies, dtype=np.float64)
    stats: dict[str, float] = {}
    if data.size == 0:
        stats["lat_mean_s"] = stats["lat_min_s"] = float("nan")
        for _, suffix in LATENCY_PERCENTILES:
            stats[f"lat_{suffix}_s"] = float("nan")
        stats["lat_max_s"] = float("nan")
        return stats
    stats["lat_mean_s"] = float(np.mean(data))
    stats["lat_min_s"] = float(np.min(data))
    values = percentile(data, [p for p, _ in LATENCY_PERCENTILES])
    for (_, suffix), value in zip(LATENCY_PERCENTILES, values, strict=True):
        stats[f"lat_{suffix}_s"] = float(value)
    stats["lat_max_s"] = float(np.max(data))
    return stats


def error_counts(records: Iterable[RequestRecord]) -> dict[str, int]:
    """Error class -> count, failures only, in :data:`ERROR_CLASSES` order (unknown last)."""
    counts = Counter(r.error for r in records if r.error)
    ordered = {name: counts.pop(name) for name in ERROR_CLASSES if name in counts}
    ordered.update(sorted(counts.items()))
    return ordered


def format_error_counts(counts: Mapping[str, int]) -> str:
    """``{"timeout": 3, "refused": 2}`` -> ``"timeout:3;refused:2"`` (``""`` when none)."""
    return ";".join(f"{name}:{count}" for name, count in counts.items() if count)


def parse_error_counts(text: str) -> dict[str, int]:
    """Inverse of :func:`format_error_counts` (for readers of summary CSVs)."""
    counts: dict[str, int] = {}
    if not isinstance(text, str) or not text.strip():
        return counts
    for part in text.split(";"):
        name, sep, count = part.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"bad errors_by_class entry {part!r} in {text!r}")
        counts[name.strip()] = int(count)
    return counts


def summarize(step: StepResult) -> dict[str, Any]:
    """One summary row (keys :data:`SUMMARY_COLUMNS`, in that order) for a step."""
    records = step.records
    n = len(records)
    ok_latencies = np.array([r.latency_s for r in records if r.ok], dtype=np.float64)
    n_ok = int(ok_latencies.size)
    n_correct = sum(1 for r in records if r.correct)
    counts = error_counts(records)
    key = step.key
    row: dict[str, Any] = {
        "target": key.target,
        "mode": key.mode,
        "n_requests": key.n_requests,
        "concurrency": key.concurrency,
        "rate": key.rate,
        "trial": key.trial,
        "started_at": step.started_at,
        "total_s": step.total_s,
        "throughput_rps": n_ok / step.total_s if step.total_s > 0 else float("nan"),
        "n_ok": n_ok,
        "errors": n - n_ok,
        "errors_by_class": format_error_counts(counts),
        **latency_stats(ok_latencies),
        "n_correct": n_correct,
        "accuracy": n_correct / n if n else float("nan"),
        "accuracy_ok": n_correct / n_ok if n_ok else float("nan"),
        "bytes_out": sum(r.bytes_out for r in records),
        "bytes_in": sum(r.bytes_in for r in records),
    }
    assert tuple(row) == SUMMARY_COLUMNS, "summary row and SUMMARY_COLUMNS drifted apart"
    return row
