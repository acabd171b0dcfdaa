"""The engine interface: the HTTP client under the load generator, kept tiny on purpose.

Why an interface: the HTTP client can be the thing measured (DESIGN.md §4: httpx costs
~100x wrk's CPU per request). Engines are swappable and calibrated against each other, and
the one in use is recorded with every run.

The life of an engine, and why it is shaped so:

- **Options at construction** (:class:`EngineOptions`: base URL, connection cap, timeouts,
  TLS verification). An engine serves one endpoint with one set of limits for its whole
  life, so nothing per call can drift from what the run recorded; bad options fail when
  the engine is made, before anything is opened.  Any ``Callable[[EngineOptions], Engine]``
  -- an engine class, or :meth:`MemoryEngine.factory <loadgen.engines.memory_engine.MemoryEngine.factory>`
  -- is an engine factory for the sweep.
- **``async with engine:``** opens its resources (connection pools, timers) and closes
  them however the block ends -- normally, on an exception, or on cancellation (Ctrl-C,
  a step's ``max_duration_s``).  ``open()``/``close()`` are the two halves for code that
  cannot use a block; ``close()`` is idempotent.
- **``prepare(requests)``** turns blueprints into whatever the engine sends (request
  bytes, client request objects) *before* a step's clock starts, so that work is never
  inside a measured latency.  The default does nothing (an engine with nothing to
  pre-build is correct without it); the sweep calls it on every engine.
- **``clock()``** is the clock a step's times are read from.  Network engines use
  ``time.perf_counter``; the in-memory test engine uses its loop's virtual time, so the
  real mode and sweep code produce exact, repeatable times under it.
"""

from __future__ import annotations

import abc
import math
import numbers
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

from loadgen.request import Request

__all__ = ["Engine", "EngineError", "EngineOptions", "Response"]

E = TypeVar("E", bound="Engine")


@dataclass(frozen=True)
class EngineOptions:
    """Explicit limits: no library defaults silently cap connections or time out.

    ``base_url`` is where every request's path is appended (``http(s)://host[:port][/prefix]``
    for the network engines; each engine checks the form it needs).  ``max_connections``
    caps the connections (requests in flight) of the engine; ``timeout_s`` bounds one whole
    request, waiting for a free connection included; ``connect_timeout_s`` bounds opening a
    connection.
    """

    base_url: str
    max_connections: int
    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    verify_tls: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.base_url, str) or not self.base_url:
            raise ValueError(f"base_url must be a non-empty URL, got {self.base_url!r}")
        cap = self.max_connections
        if isinstance(cap, bool) or not isinstance(cap, numbers.Integral) or cap < 1:
            raise ValueError(f"max_connections must be an integer >= 1, got {self.max_connections!r}")
        for name in ("timeout_s", "connect_timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


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
    """Sends pre-built :class:`Request` blueprints over kept-alive connections.

    Subclasses take ``options`` (and any engine-specific keywords) in ``__init__``, call
    ``super().__init__(options)``, and implement :meth:`version`, :meth:`open`,
    :meth:`send` and :meth:`close`; :meth:`prepare` and :meth:`clock` have defaults.
    """

    name: str = ""

    def __init__(self, options: EngineOptions) -> None:
        if not isinstance(options, EngineOptions):
            raise TypeError(f"{type(self).__name__} takes an EngineOptions, got {type(options).__name__}")
        self.options = options

    @classmethod
    @abc.abstractmethod
    def version(cls) -> str:
        """Version of the underlying client library, for meta.json."""

    # -- lifecycle ------------------------------------------------------------------------
    @abc.abstractmethod
    async def open(self) -> None:
        """Create the connection pool and helpers (lazy connects are fine)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every connection and helper; a no-op when nothing is open (idempotent)."""

    async def __aenter__(self: E) -> E:
        try:
            await self.open()
        except BaseException:  # a half-opened engine (or a cancelled open) still gives back what it took
            await self.close()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- sending --------------------------------------------------------------------------
    def prepare(self, requests: Iterable[Request]) -> None:  # noqa: B027 - a no-op default, optional to override
        """Pre-build what :meth:`send` needs for ``requests``, outside any timing.

        Default: nothing (correct for an engine whose per-request work is its client
        library's own).  Engines that encode requests override it; it may be called
        before or after :meth:`open`, any number of times.
        """

    @abc.abstractmethod
    async def send(self, request: Request) -> Response:
        """Send one request; return any HTTP response, raise EngineError otherwise."""

    def clock(self) -> float:
        """Seconds on the clock that times this engine's requests (``time.perf_counter``)."""
        return time.perf_counter()
