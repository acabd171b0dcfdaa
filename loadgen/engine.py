"""The engine interface: the HTTP client under the load generator, kept tiny on purpose.

Why an interface: the HTTP client can be the thing measured (DESIGN.md §4: httpx costs
~100x wrk's CPU per request). Engines are swappable and calibrated against each other, and
the one in use is recorded with every run.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from loadgen.request import Request

__all__ = ["Engine", "EngineError", "EngineOptions", "Response"]


@dataclass(frozen=True)
class EngineOptions:
    """Explicit limits: no library defaults silently cap connections or time out."""

    base_url: str
    max_connections: int
    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    verify_tls: bool = True


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    bytes_in: int  # bytes of the whole response as received, headers included where known


class EngineError(Exception):
    """A request failed without a usable HTTP response; ``error`` is an ErrorClass."""

    def __init__(self, error: str, detail: str) -> None:
        self.error = error
        self.detail = detail
        super().__init__(f"{error}: {detail}")


class Engine(abc.ABC):
    """Sends pre-built :class:`Request` blueprints over kept-alive connections."""

    name: str = ""

    @classmethod
    @abc.abstractmethod
    def version(cls) -> str:
        """Version of the underlying client library, for meta.json."""

    @abc.abstractmethod
    async def open(self, options: EngineOptions) -> None:
        """Prepare the connection pool (lazy connects are fine)."""

    @abc.abstractmethod
    async def send(self, request: Request) -> Response:
        """Send one request; return any HTTP response, raise EngineError otherwise."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every connection."""
