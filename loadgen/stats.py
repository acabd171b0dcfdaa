"""Summary statistics of one step, computed from its raw records. Pure: no I/O, no printing.

Why from raw data: percentiles are exact order statistics of every latency of the step
(numpy's default ``linear`` method, i.e. Hyndman & Fan type 7: the value at rank
``q/100 * (n - 1)``, interpolated linearly between neighbours) -- no histogram buckets
that round to two significant digits (locust's flaw).  Latency statistics use successful
requests only (a refused connection is fast and says nothing about serving time) and are
NaN when there are none; errors and accuracy are reported next to them, so a fast target
that answers wrongly never looks good.

Definitions (one row per step, columns :data:`SUMMARY_COLUMNS`, the fields of its typed form
:class:`StepSummary`):

- ``lat_pXX_lo_s``/``lat_pXX_hi_s`` (p50, p90, p95, p99, p999): distribution-free bounds of
  the true percentile at :data:`PERCENTILE_CONFIDENCE` (95 %, two-sided): the order
  statistics whose ranks come from the binomial (:mod:`loadgen.quantile_bounds`), over the
  same successful latencies as the percentile. NaN where no order statistic achieves that
  side at this n: p99 of 64 requests has no upper bound (the true p99 may be above the
  slowest of them), p50 of fewer than 6 requests has neither.
- ``total_s``: the step's wall time, first intended send to last completion.
- ``throughput_rps``: successful requests per second of ``total_s`` (vegeta's
  throughput; failures do not count as served).
- ``accuracy``: correct / n_requests (an error is never correct); ``accuracy_ok``:
  correct / n_ok (the model's accuracy on the answers that came back).  Only MNIST
  samples have a digit: a step with none has NaN accuracy.
- ``n_agree``/``agreement``: answers that agreed with what was expected (the digit for
  MNIST, so ``agreement == accuracy`` there; the expected output tensors for an
  input-data file with ``validation_data``) and their share of n_requests (an error never
  agrees); NaN when no answer of the step was checked (nothing to compare with, or every
  request failed).  Summaries of schema < 4 read ``agreement`` as their ``accuracy``.
- ``bytes_out``/``bytes_in``: sums over the step's requests.
- Open loop (``rate`` mode; NaN in closed-loop modes), defined in :mod:`loadgen.saturation`:
  ``offered_rps`` (requests per second the schedule actually offered -- a short Poisson
  schedule differs from ``rate`` by chance), ``achieved_rps`` (successful answers per
  second, measured like the offered rate, so a target that keeps up achieves it however
  slow each answer), ``send_lag_p50_s``/``send_lag_max_s`` (actual minus intended send
  time: the client's own delay), ``lag_growth_s`` (median send lag of the last quarter of
  the schedule minus that of the first quarter: a growing send lag means the client fell
  behind; ``inf`` when most of the last quarter was never sent before the step ended).
- ``saturated``: the open loop did not keep up -- the answers or the sends fell behind
  the schedule by more than ``max(50 ms, 5.3 %)`` of the step (answers at < 95 % of the
  offered rate); always False in closed-loop modes.
- ``flags``: why the row must not be read as a plain result, ``;``-joined from
  :data:`STEP_FLAGS` (``""`` for a clean step), and next to ``saturated`` who fell behind
  (:data:`loadgen.saturation.SATURATION_DETAILS`: ``client_behind``, ``target_behind``,
  ``connection_cap``); :func:`step_flags` reads it back.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from loadgen.cells import cell_count, cell_true
from loadgen.log_histogram import LogHistogram
from loadgen.record_columns import RecordColumns
from loadgen.records import ERROR_CLASSES, RequestRecord, StepKey, StepResult
from loadgen.saturation import SATURATION_DETAILS, analyze_open_loop

__all__ = [
    "BOUND_COLUMNS",
    "PERCENTILE_CONFIDENCE",
    "LATENCY_PERCENTILES",
    "FLAG_ALL_FAILED",
    "FLAG_ERRORS",
    "FLAG_SATURATED",
    "STEP_FLAGS",
    "FLAG_HISTOGRAM",
    "histogram_latency_stats",
    "SUMMARY_COLUMNS",
    "StepSummary",
    "error_counts",
    "open_loop_stats",
    "step_flags",
    "format_error_counts",
    "format_flags",
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

#: Confidence of the ``lat_pXX_lo_s``/``lat_pXX_hi_s`` bounds (two-sided, each side <= 2.5 %).
PERCENTILE_CONFIDENCE = 0.95

#: percentile column -> (lower bound column, upper bound column)
BOUND_COLUMNS: dict[str, tuple[str, str]] = {
    f"lat_{suffix}_s": (f"lat_{suffix}_lo_s", f"lat_{suffix}_hi_s") for _, suffix in LATENCY_PERCENTILES
}


# Why a step is flagged: a flagged row is never shown, compared or plotted as a plain result.
FLAG_ERRORS = "errors"  # some requests failed: latency statistics describe the survivors only
FLAG_ALL_FAILED = "all_failed"  # no request succeeded: there is no result, only a failure
FLAG_SATURATED = "saturated"  # open loop: the offered rate was not sustained
#: Not a fault: the step outgrew EXACT_RECORDS, its percentiles come from a histogram (within 0.1 %).
FLAG_HISTOGRAM = "histogram"
STEP_FLAGS: tuple[str, ...] = (FLAG_ERRORS, FLAG_ALL_FAILED, FLAG_SATURATED)


@dataclass(frozen=True)
class StepSummary:
    """One summary.csv row, typed: the statistics of one step of one trial.

    Its fields, after the step key, are the summary columns: :data:`SUMMARY_COLUMNS` is
    derived from them, so the file's header, :func:`summarize`'s row and this record are one
    list. :meth:`from_row` reads a row of any schema version (older files lack columns;
    what is missing becomes ``None`` or is derived, once, here).
    """

    key: StepKey
    started_at: float | None
    total_s: float | None
    throughput_rps: float | None
    n_ok: int
    errors: int
    errors_by_class: Mapping[str, int]
    lat_mean_s: float | None
    lat_min_s: float | None
    lat_p50_s: float | None
    lat_p90_s: float | None
    lat_p95_s: float | None
    lat_p99_s: float | None
    lat_p999_s: float | None
    lat_max_s: float | None
    lat_p50_lo_s: float | None
    lat_p50_hi_s: float | None
    lat_p90_lo_s: float | None
    lat_p90_hi_s: float | None
    lat_p95_lo_s: float | None
    lat_p95_hi_s: float | None
    lat_p99_lo_s: float | None
    lat_p99_hi_s: float | None
    lat_p999_lo_s: float | None
    lat_p999_hi_s: float | None
    n_correct: int | None
    accuracy: float | None
    accuracy_ok: float | None
    n_agree: int | None
    agreement: float | None
    bytes_out: int | None
    bytes_in: int | None
    offered_rps: float | None
    achieved_rps: float | None
    send_lag_p50_s: float | None
    send_lag_max_s: float | None
    lag_growth_s: float | None
    saturated: bool
    flags: frozenset[str]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StepSummary:
        """The typed row of a summary.csv line (or a :func:`summarize` dict), of any schema.

        Raises ValueError naming the row when a key column or ``errors_by_class`` is unreadable.
        """
        missing = [c for c in ("target", "mode", "n_requests", "trial") if _blank(row.get(c))]
        if missing:
            raise ValueError(f"summary row lacks {', '.join(missing)}: {dict(row)}")
        mode, n = str(row["mode"]), _cell_int(row["n_requests"])
        if n is None:
            raise ValueError(f"summary row has n_requests {row['n_requests']!r}, not a count")
        try:
            classes = parse_error_counts(
                row.get("errors_by_class") if isinstance(row.get("errors_by_class"), str) else ""
            )
        except ValueError as exc:
            raise ValueError(f"summary row {row.get('target')}/{mode}/N={n}: {exc}") from None
        errors, n_ok = _cell_int(row.get("errors")), _cell_int(row.get("n_ok"))
        if errors is None:
            errors = n - n_ok if n_ok is not None else sum(classes.values())
        if n_ok is None:
            n_ok = n - errors
        concurrency, trial = _cell_int(row.get("concurrency")), _cell_int(row["trial"])
        if trial is None:
            raise ValueError(f"summary row {row.get('target')}/{mode}/N={n} has trial {row['trial']!r}, not a number")
        if concurrency is None:
            concurrency = 1 if mode == "sequential" else n
        key = StepKey(str(row["target"]), mode, n, concurrency, _cell_float(row.get("rate")) or 0.0, trial)
        accuracy = _cell_float(row.get("accuracy"))
        n_correct = _cell_int(row.get("n_correct"))
        if n_correct is None and accuracy is not None:
            n_correct = int(round(accuracy * n))
        flags = step_flags({**row, "errors": errors, "n_ok": n_ok, "n_requests": n})
        stats = {name: _cell_float(row.get(name)) for name in _FLOAT_FIELDS}
        n_agree = _cell_int(row.get("n_agree"))
        if "agreement" not in row:  # schema < 4: MNIST only, where agreeing is the right digit
            stats["agreement"], n_agree = accuracy, n_correct
        return cls(
            key=key,
            n_ok=n_ok,
            errors=errors,
            errors_by_class=classes,
            n_correct=n_correct,
            n_agree=n_agree,
            bytes_out=_cell_int(row.get("bytes_out")),
            bytes_in=_cell_int(row.get("bytes_in")),
            saturated=FLAG_SATURATED in flags,
            flags=flags,
            **stats,
        )

    def as_row(self) -> dict[str, Any]:
        """The summary row (keys :data:`SUMMARY_COLUMNS`), ``None`` as NaN."""
        key = self.key
        row: dict[str, Any] = {
            "target": key.target,
            "mode": key.mode,
            "n_requests": key.n_requests,
            "concurrency": key.concurrency,
            "rate": key.rate,
            "trial": key.trial,
        }
        for name in SUMMARY_COLUMNS[len(row) :]:
            value = getattr(self, name)
            if name == "errors_by_class":
                value = format_error_counts(value)
            elif name == "flags":
                value = format_flags(value)
            elif name != "saturated":
                value = _nan(value)
            row[name] = value
        return row


#: summary.csv's columns, in order: the step key's fields, then :class:`StepSummary`'s.
SUMMARY_COLUMNS: tuple[str, ...] = (*(f.name for f in fields(StepKey)), *(f.name for f in fields(StepSummary)[1:]))
_FLOAT_FIELDS = tuple(f.name for f in fields(StepSummary) if f.type == "float | None")


def _cell_float(value: Any) -> float | None:
    """A number from a CSV cell or a row value; None for empty, NaN and unreadable cells."""
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _cell_int(value: Any) -> int | None:
    number = _cell_float(value)
    return None if number is None or math.isinf(number) else int(round(number))


def _nan(value: float | int | None) -> float | int:
    return math.nan if value is None else value


def _blank(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, float) and math.isnan(value))
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
    """``lat_mean_s, lat_min_s, lat_pXX_s..., lat_max_s`` and the bounds ``lat_pXX_lo_s``,
    ``lat_pXX_hi_s`` of the given latencies (NaN if none; a bound NaN where none exists).

    The latencies are sorted once: the percentiles are then read from the sorted array
    (the same values numpy computes from the unsorted one) and every bound is one order
    statistic at the rank :func:`loadgen.quantile_bounds.quantile_ci_ranks` gives.
    """
    # Imported here: quantile_bounds needs scipy, which commands that only read settings
    # (`bench targets`) must not pay for; loadgen.stats is imported by them for its columns.
    from loadgen.quantile_bounds import quantile_ci_ranks

    raw = np.asarray(latencies, dtype=np.float64)
    data = np.sort(raw)
    stats: dict[str, float] = {}
    nan = float("nan")
    if data.size == 0:
        stats["lat_mean_s"] = stats["lat_min_s"] = nan
        for _, suffix in LATENCY_PERCENTILES:
            stats[f"lat_{suffix}_s"] = nan
        stats["lat_max_s"] = nan
        stats.update(dict.fromkeys((c for pair in BOUND_COLUMNS.values() for c in pair), nan))
        return stats
    stats["lat_mean_s"] = float(np.mean(raw))  # in record order: the same sum, to the last bit, as before sorting
    stats["lat_min_s"] = float(data[0])
    values = percentile(data, [p for p, _ in LATENCY_PERCENTILES])
    for (_, suffix), value in zip(LATENCY_PERCENTILES, values, strict=True):
        stats[f"lat_{suffix}_s"] = float(value)
    stats["lat_max_s"] = float(data[-1])
    for p, suffix in LATENCY_PERCENTILES:
        lower, upper = quantile_ci_ranks(int(data.size), p / 100.0, 1.0 - PERCENTILE_CONFIDENCE)
        stats[f"lat_{suffix}_lo_s"] = float(data[lower - 1]) if lower is not None else nan
        stats[f"lat_{suffix}_hi_s"] = float(data[upper - 1]) if upper is not None else nan
    return stats


def histogram_latency_stats(histogram: LogHistogram) -> dict[str, float]:
    """The columns of :func:`latency_stats` from a :class:`~loadgen.log_histogram.LogHistogram`.

    The same percentiles (numpy's ``linear`` rule) and the same bound ranks as from the
    sorted latencies; each order statistic read back within 0.1 % (min and max exact).
    """
    from loadgen.quantile_bounds import quantile_ci_ranks  # scipy: see latency_stats

    n = len(histogram)
    if n == 0:
        return latency_stats(np.zeros(0))
    stats: dict[str, float] = {"lat_mean_s": histogram.total / n, "lat_min_s": histogram.minimum}
    values = histogram.percentiles(np.array([p for p, _ in LATENCY_PERCENTILES], dtype=np.float64))
    for (_, suffix), value in zip(LATENCY_PERCENTILES, values, strict=True):
        stats[f"lat_{suffix}_s"] = float(value)
    stats["lat_max_s"] = histogram.maximum
    nan = float("nan")
    for p, suffix in LATENCY_PERCENTILES:
        lower, upper = quantile_ci_ranks(n, p / 100.0, 1.0 - PERCENTILE_CONFIDENCE)
        stats[f"lat_{suffix}_lo_s"] = float(histogram.value_at_ranks(np.array([lower]))[0]) if lower else nan
        stats[f"lat_{suffix}_hi_s"] = float(histogram.value_at_ranks(np.array([upper]))[0]) if upper else nan
    return stats


def error_counts(records: Iterable[RequestRecord]) -> dict[str, int]:
    """Error class -> count, failures only, in :data:`ERROR_CLASSES` order (unknown last)."""
    return _ordered_counts(Counter(r.error for r in records if r.error))


def _ordered_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """Error class -> count in :data:`ERROR_CLASSES` order, unknown classes last (sorted)."""
    rest = dict(counts)
    ordered = {name: rest.pop(name) for name in ERROR_CLASSES if name in rest}
    ordered.update(sorted(rest.items()))
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


def step_flags(row: Mapping[str, Any]) -> frozenset[str]:
    """The flags of one summary row, from any schema version.

    Errors are derived from the counts (``errors``, ``n_ok``) so rows written before the
    ``flags`` column existed are flagged the same way; ``saturated`` comes from its column
    or from ``flags``.
    """
    flags: set[str] = set()
    text = row.get("flags")
    if isinstance(text, str) and text.strip():
        flags.update(part.strip() for part in text.split(";") if part.strip())
    errors = cell_count(row.get("errors"))
    n_ok = cell_count(row.get("n_ok"))
    n_requests = cell_count(row.get("n_requests"))
    if errors:
        flags.add(FLAG_ERRORS)
    if n_requests and n_ok == 0:
        flags.update((FLAG_ERRORS, FLAG_ALL_FAILED))
    if cell_true(row.get("saturated")):
        flags.add(FLAG_SATURATED)
    return frozenset(flags)


def format_flags(flags: Iterable[str]) -> str:
    """Flags in :data:`STEP_FLAGS` order, then the saturation details, ``;``-joined (the ``flags`` column)."""
    present = set(flags)
    known = STEP_FLAGS + SATURATION_DETAILS
    return ";".join([f for f in known if f in present] + sorted(present - set(known)))


def open_loop_stats(step: StepResult) -> dict[str, Any]:
    """The open-loop columns of a step, plus its saturation details as ``flags`` text.

    ``rate`` steps get offered and achieved rate, send lag and the ``saturated`` verdict of
    :func:`loadgen.saturation.analyze_open_loop` (the criterion is documented there);
    ``flags`` then holds ``saturated`` and who fell behind (``client_behind``,
    ``target_behind``, ``connection_cap``). Closed-loop modes offer no rate: NaN columns,
    ``saturated`` False, no flags.
    """
    verdict = analyze_open_loop(step)
    if verdict is None:
        nan = float("nan")
        return {
            "offered_rps": nan,
            "achieved_rps": nan,
            "send_lag_p50_s": nan,
            "send_lag_max_s": nan,
            "lag_growth_s": nan,
            "saturated": False,
            "flags": "",
        }
    flags = ((FLAG_SATURATED,) if verdict.saturated else ()) + verdict.details
    return {**verdict.columns(), "flags": format_flags(flags)}


def summarize(step: StepResult) -> dict[str, Any]:
    """One summary row (keys :data:`SUMMARY_COLUMNS`, in that order) for a step.

    A step thinned past :data:`loadgen.record_columns.EXACT_RECORDS` requests (its columns hold
    one request in ``stride``) takes its counts from the exact tally and its latency
    statistics from the tally's histogram (values within 0.1 %, ranks exact), and is flagged
    :data:`FLAG_HISTOGRAM` so nobody reads its percentiles as exact order statistics.
    """
    cols = RecordColumns.of(step.records)  # a streamed step's columns, or a small step's records as columns
    key = step.key
    if cols.tally is not None:
        facts = _tally_facts(cols)
    else:
        facts = _column_facts(cols)
    n, n_ok = facts["n"], facts["n_ok"]
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
        "errors_by_class": format_error_counts(facts["counts"]),
        **facts["latency"],
        "n_correct": facts["n_correct"],
        "accuracy": facts["n_correct"] / n if n and facts["labelled"] else float("nan"),
        "accuracy_ok": facts["n_correct"] / n_ok if n_ok and facts["labelled"] else float("nan"),
        "n_agree": facts["n_agree"],
        "agreement": facts["n_agree"] / n if facts["n_checked"] else float("nan"),
        "bytes_out": facts["bytes_out"],
        "bytes_in": facts["bytes_in"],
        **open_loop_stats(step),
    }
    flags = step_flags(row) | ({FLAG_HISTOGRAM} if cols.tally is not None else set())
    row["flags"] = format_flags(flags)
    assert tuple(row) == SUMMARY_COLUMNS, "summary row and SUMMARY_COLUMNS drifted apart"
    return row


def _column_facts(cols: RecordColumns) -> dict[str, Any]:
    """The counts and latency statistics of a step from every one of its rows (exact)."""
    ok = cols.ok()
    ok_latencies = cols.column("latency_s")[ok]
    label, predicted, agree = cols.column("label"), cols.column("predicted"), cols.column("agree")
    return {
        "n": len(cols),
        "n_ok": int(ok_latencies.size),
        "counts": _ordered_counts({e: c for e, c in cols.error_counts().items() if e}),
        "latency": latency_stats(ok_latencies),
        "n_correct": int(np.count_nonzero(ok & (label >= 0) & (predicted == label))),
        "labelled": bool(np.any(label >= 0)),
        "n_checked": int(np.count_nonzero(agree >= 0)),
        "n_agree": int(np.count_nonzero(agree == 1)),
        "bytes_out": int(np.sum(cols.column("bytes_out"))),
        "bytes_in": int(np.sum(cols.column("bytes_in"))),
    }


def _tally_facts(cols: RecordColumns) -> dict[str, Any]:
    """The same facts from a thinned step's exact tally (latencies from its histogram)."""
    tally = cols.tally
    assert tally is not None
    return {
        "n": tally.n,
        "n_ok": len(tally.ok_latency),
        "counts": _ordered_counts({e: c for e, c in tally.error_counts.items() if e}),
        "latency": histogram_latency_stats(tally.ok_latency),
        "n_correct": tally.n_correct,
        "labelled": tally.labelled,
        "n_checked": tally.n_checked,
        "n_agree": tally.n_agree,
        "bytes_out": tally.bytes_out,
        "bytes_in": tally.bytes_in,
    }
