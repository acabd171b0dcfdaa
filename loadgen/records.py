"""Raw per-request records and the step they belong to: the data everything else derives from.

Why: statistics, reports and comparisons are computed *afterwards* from raw records
(vegeta, pyperf), so nothing is lost to early aggregation and any figure can be
recomputed. Times are seconds relative to the start of the step, from a monotonic clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

__all__ = [
    "ERROR_CLASSES",
    "RECORD_COLUMNS",
    "ErrorClass",
    "RequestRecord",
    "StepKey",
    "StepResult",
]

# Why each failure is classified: "the target is down" (refused), "the target is slow"
# (timeout) and "the target is wrong" (http_5xx, undecodable) call for different actions.
ErrorClass = Literal[
    "",  # success: a 2xx response whose body decoded (to a digit, or to the declared outputs)
    "refused",  # TCP connection refused (nothing listening)
    "reset",  # connection reset or closed by the peer before a full response
    "timeout",  # no complete response within the timeout
    "http_4xx",
    "http_5xx",
    "http_other",  # 1xx/3xx final status
    "protocol",  # malformed HTTP response
    "undecodable",  # 2xx whose body could not be decoded into a digit or the declared outputs
    "other",
]
ERROR_CLASSES: tuple[str, ...] = (
    "refused",
    "reset",
    "timeout",
    "http_4xx",
    "http_5xx",
    "http_other",
    "protocol",
    "undecodable",
    "other",
)


@dataclass(frozen=True)
class StepKey:
    """One measured step of a sweep: target x mode x request count x trial."""

    target: str
    mode: str
    n_requests: int
    concurrency: int  # in-flight limit (1 for sequential; for rate mode the connection cap)
    rate: float  # req/s for rate mode, 0 otherwise
    trial: int

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> StepKey:
        """The key named by a requests.csv row or a meta.json ``step`` object; KeyError,
        TypeError or ValueError when a field is missing or unreadable."""
        return cls(
            target=str(row["target"]),
            mode=str(row["mode"]),
            n_requests=int(row["n_requests"]),
            concurrency=int(row["concurrency"]),
            rate=float(row["rate"]),
            trial=int(row["trial"]),
        )


@dataclass(frozen=True)
class RequestRecord:
    """One request as it happened.

    ``intended_s``: when the schedule wanted it sent (== ``sent_s`` in closed-loop modes).
    ``latency_s``: completion minus *intended* time, so open-loop latencies include time a
    request waited behind a stalled server (no coordinated omission).
    ``service_s``: completion minus actual send time.
    ``predicted`` is -1 when no digit (or class) was decoded; ``label`` is -1 when the
    sample is not an MNIST image.  ``sample``: which sample of the sweep's
    :class:`~loadgen.samples.SampleSet` was sent (-1 in records of schema < 4);
    ``agree``: 1 the answer agreed with what was expected (the digit, the expected
    tensors), 0 it did not, -1 not checked (a failure, or nothing to compare with).
    """

    seq: int
    intended_s: float
    sent_s: float
    latency_s: float
    service_s: float
    status: int  # HTTP status, 0 when no response
    error: str  # an ErrorClass
    error_detail: str
    bytes_out: int
    bytes_in: int
    label: int
    predicted: int
    sample: int = -1
    agree: int = -1

    @property
    def ok(self) -> bool:
        return self.error == ""

    @property
    def correct(self) -> bool:
        return self.error == "" and self.label >= 0 and self.predicted == self.label


RECORD_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RequestRecord))


@dataclass(frozen=True)
class StepResult:
    """The records of one step plus its wall time (first intended send to last completion).

    ``records``: a tuple of every record, or for a step streamed to disk as it ran
    (``streamed``: its records are already in the results file) their compact columns
    (:class:`loadgen.record_columns.RecordColumns`, a ``Sequence`` of the same records -- or,
    for a step longer than ``EXACT_RECORDS``, of a one-in-``stride`` sample of them).
    """

    key: StepKey
    records: Sequence[RequestRecord]
    total_s: float
    started_at: float  # wall-clock epoch seconds, for meta and plots over time
    streamed: bool = False

    @property
    def n_records(self) -> int:
        """Requests in the step: ``len(records)``, or every request of a thinned step."""
        return int(getattr(self.records, "n_records", len(self.records)))
