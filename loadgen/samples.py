"""Samples: what a sweep sends (a ready request each) and how each answer is checked.

Why: the sweep used to know one thing to send, an MNIST image, and one answer, a digit.
A *sample* generalises both: a ready :class:`~loadgen.request.Request` plus what its
answer is checked against (the MNIST digit, expected output tensors, the model's declared
output shapes and dtypes, or nothing).  A :class:`SampleSet` is the sweep's whole supply:
requests cycle through it in the seeded per-trial order the images had
(:meth:`loadgen.sweep_settings.SweepSettings.image_order`), and every record says which
sample it sent (``sample``) and whether its answer agreed (``agree``).

* :class:`MnistSamples`: the study's test split through a target's ``encode``/``decode``
  (``label``/``predicted``/accuracy exactly as before; ``agree`` = the digit was right).
* :class:`ReadySamples`: any prepared requests with one check function (input-data files,
  synthesised inputs, request bodies from JSON lines; built in :mod:`loadgen.inference`
  and by ``bench run``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from loadgen.request import Codec, DecodeError, Request

__all__ = [
    "AGREE",
    "DISAGREE",
    "NOT_CHECKED",
    "Answer",
    "MnistSamples",
    "ReadySamples",
    "SampleSet",
    "checked_digit",
]

AGREE, DISAGREE, NOT_CHECKED = 1, 0, -1


@dataclass(frozen=True)
class Answer:
    """What one 2xx answer said: its digit or class (-1: none) and whether it agreed.

    ``agree``: 1 agreed with the expected answer, 0 did not, -1 nothing to check it against
    (a failed request is never checked).  A check that finds an answer *malformed* (not
    the declared shape or dtype, not a digit) raises instead: that request is
    ``undecodable``, not a disagreement.
    """

    predicted: int = -1
    agree: int = NOT_CHECKED


class SampleSet:
    """The samples a sweep cycles through: ``len`` of them, each a request, a label, a check.

    Subclasses implement :meth:`request` and :meth:`check`; ``label`` is the MNIST digit (-1
    for every other kind of sample, so ``accuracy`` stays the digit's alone).
    ``description`` says where the samples come from, for meta.json and the console.
    """

    description: str = ""

    def __len__(self) -> int:
        raise NotImplementedError

    def request(self, index: int) -> Request:
        """The ready request of sample ``index`` (built once, re-sent)."""
        raise NotImplementedError

    def label(self, index: int) -> int:
        """Sample ``index``'s MNIST digit, -1 when it is not an MNIST image."""
        return -1

    def check(self, index: int, status: int, body: bytes) -> Answer:
        """Check a 2xx answer to sample ``index``; raise (any exception) when it is malformed."""
        raise NotImplementedError


def checked_digit(value: object) -> int:
    """A decoder's digit as an int 0..9; DecodeError for anything else (bools, 3.5, 12)."""
    if isinstance(value, bool):
        raise DecodeError(f"decode returned {value!r}, not a digit 0..9")
    try:
        as_int = int(value)  # numpy integers are fine
    except (TypeError, ValueError):
        raise DecodeError(f"decode returned {value!r}, not a digit 0..9") from None
    if as_int != value or not 0 <= as_int <= 9:
        raise DecodeError(f"decode returned {value!r}, not a digit 0..9")
    return as_int


class MnistSamples(SampleSet):
    """MNIST images through a codec: request = ``encode(image)``, answer = ``decode`` -> digit.

    ``encode`` runs once per image actually sent (lazily, cached), as the sweep always did.
    """

    def __init__(self, codec: Codec, images: np.ndarray, labels: Sequence[int] | np.ndarray) -> None:
        labels_arr = np.asarray(labels)
        if len(images) == 0 or len(images) != len(labels_arr):
            raise ValueError(
                f"need a non-empty test split with one label per image, got {len(images)} images "
                f"and {len(labels_arr)} labels"
            )
        self.codec = codec
        self.images = images
        self.labels = labels_arr
        self._requests: dict[int, Request] = {}
        self.description = f"MNIST test split ({len(images)} images)"

    def __len__(self) -> int:
        return len(self.images)

    def request(self, index: int) -> Request:
        request = self._requests.get(index)
        if request is None:
            request = self._requests[index] = self.codec.encode(self.images[index])
        return request

    def label(self, index: int) -> int:
        return int(self.labels[index])

    def check(self, index: int, status: int, body: bytes) -> Answer:
        digit = checked_digit(self.codec.decode(status, body))
        return Answer(predicted=digit, agree=int(digit == self.label(index)))


class ReadySamples(SampleSet):
    """Prepared requests and one check function ``check(index, status, body) -> Answer``."""

    def __init__(
        self,
        requests: Sequence[Request],
        check: Callable[[int, int, bytes], Answer],
        description: str,
    ) -> None:
        if not requests:
            raise ValueError(f"{description}: no samples")
        self.requests = tuple(requests)
        self._check = check
        self.description = description

    def __len__(self) -> int:
        return len(self.requests)

    def request(self, index: int) -> Request:
        return self.requests[index]

    def check(self, index: int, status: int, body: bytes) -> Answer:
        return self._check(index, status, body)
