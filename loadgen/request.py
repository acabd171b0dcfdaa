"""What the load generator sends and how it reads answers: ``Request`` and ``Codec``.

Why here and not in targets/: the load generator is a lower layer than the target
adapters.  It must know nothing about Flask, Kubernetes or KServe -- only that something
turns one 28x28 MNIST image into a request blueprint and a response body back into a
digit.  Target adapters implement :class:`Codec`; the sweep accepts any
:class:`SweepSubject` (a codec with a name and a base URL), so tests and benchmarks can
drive it without a target at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Codec", "DecodeError", "Request", "SweepSubject"]


class DecodeError(ValueError):
    """A response body is not a valid prediction (counted as ``undecodable``)."""


@dataclass(frozen=True)
class Request:
    """An HTTP request blueprint, built once and sent many times (cf. vegeta's Target).

    ``path`` is relative to the target's ``base_url`` and includes any query string.
    ``headers`` never include Content-Length or Host unless a target needs a specific
    Host (Istio ingress routing); engines add Content-Length themselves.
    """

    method: str
    path: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Codec(Protocol):
    """Image -> request, response -> digit: the whole of a target's wire format."""

    def encode(self, image: np.ndarray) -> Request:
        """One uint8 28x28 image (0..255) -> the request that asks for its digit."""
        ...

    def decode(self, status: int, body: bytes) -> int:
        """A 2xx response -> the predicted digit; raise :class:`DecodeError` otherwise."""
        ...


@runtime_checkable
class SweepSubject(Codec, Protocol):
    """What a sweep measures: a codec plus where it answers (a started target)."""

    name: str
    base_url: str

    @property
    def verify_tls(self) -> bool:
        """Whether engines check the endpoint's TLS certificate."""
        ...
