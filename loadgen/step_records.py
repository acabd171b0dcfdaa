"""The records of one step's requests: completed ones classified and decoded, cut-off ones explained.

Why apart from :mod:`loadgen.modes`: the modes decide *when* requests go out and finish;
this module decides *what a request's row says* -- its times relative to the step's start,
its error class and detail, the digit or sample answer and whether it agrees.  A record is
built from a :class:`Done` (what the engine answered, times absolute on its clock) when the
step drains, or from the step's end for a request it cut off (:func:`cut_record`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from loadgen.classify import AnswerOutcome, classify_answer, classify_response
from loadgen.records import RequestRecord
from loadgen.samples import Answer

__all__ = [
    "AnswerCheck",
    "Done",
    "Outcomes",
    "check_outcomes",
    "completed_record",
    "cut_record",
    "digit_outcomes",
    "sample_of",
]

#: ``check(seq, status, body)``: request ``seq``'s 2xx answer checked (raise when malformed).
AnswerCheck = Callable[[int, int, bytes], Answer]
#: ``outcome(seq, status, body)``: a 2xx-or-not answer classified (error, detail, predicted, agree).
Outcomes = Callable[[int, int, bytes], AnswerOutcome]


class Done:
    """A completed request, until the next drain makes it a record (times absolute, on the engine's clock)."""

    __slots__ = ("body", "bytes_in", "bytes_out", "detail", "done", "error", "intended", "sent", "seq", "status")

    def __init__(self, seq: int, intended: float, sent: float, bytes_out: int) -> None:
        self.seq, self.intended, self.sent, self.bytes_out = seq, intended, sent, bytes_out
        self.done = math.nan
        self.status, self.body, self.bytes_in, self.error, self.detail = 0, b"", 0, "", ""


def cut_record(
    seq: int, intended: float, labels: Sequence[int], samples: Sequence[int] | None, detail: str
) -> RequestRecord:
    """A request never sent before the step ended."""
    nan = math.nan
    return RequestRecord(
        seq=seq,
        intended_s=intended,
        sent_s=nan,
        latency_s=nan,
        service_s=nan,
        status=0,
        error="other",
        error_detail=detail,
        bytes_out=0,
        bytes_in=0,
        label=int(labels[seq]),
        predicted=-1,
        sample=sample_of(samples, seq),
        agree=-1,
    )


def sample_of(samples: Sequence[int] | None, seq: int) -> int:
    """The sample number recorded for request ``seq`` (-1 without sample numbers)."""
    return int(samples[seq]) if samples is not None else -1


def completed_record(
    d: Done, t0: float, labels: Sequence[int], samples: Sequence[int] | None, outcome: Outcomes
) -> RequestRecord:
    """A completed request's record: its answer classified and decoded (or its engine error)."""
    intended = d.intended
    predicted, agree = -1, -1
    if d.error:
        error, detail = d.error, d.detail
    else:
        error, detail, predicted, agree = outcome(d.seq, d.status, d.body)
    return RequestRecord(
        seq=d.seq,
        intended_s=float(intended),
        sent_s=float(d.sent - t0),
        latency_s=float(d.done - t0 - intended),
        service_s=float(d.done - d.sent),
        status=int(d.status),
        error=error,
        error_detail=detail,
        bytes_out=d.bytes_out,
        bytes_in=int(d.bytes_in),
        label=int(labels[d.seq]),
        predicted=int(predicted),
        sample=sample_of(samples, d.seq),
        agree=int(agree),
    )


def digit_outcomes(labels: Sequence[int], decode: Callable[[int, bytes], int]) -> Outcomes:
    """Outcomes from a digit decoder (:func:`classify_response`): agree = the digit is ``labels[seq]``."""

    def outcome(seq: int, status: int, body: bytes) -> AnswerOutcome:
        error, detail, predicted = classify_response(status, body, decode)
        agree = -1 if error else int(predicted == int(labels[seq]))
        return AnswerOutcome(error, detail, predicted, agree)

    return outcome


def check_outcomes(check: AnswerCheck) -> Outcomes:
    """Outcomes from a sample check (:func:`classify_answer`)."""

    def outcome(seq: int, status: int, body: bytes) -> AnswerOutcome:
        return classify_answer(status, body, lambda st, b: check(seq, st, b))

    return outcome
