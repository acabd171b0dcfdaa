"""The ``memory`` engine: answers in-process from a handler, on virtual time, for tests.

Why: the sweep and the three modes decide what is sent, in which order, how it is
recorded and which flags a step earns.  Testing that through sockets makes every such
test depend on how busy the machine is (a loopback server on a shared 2-core box can
stall for 100 ms).  This engine runs the *real* sweep and mode code with no socket and no
wall-clock sleep: each request goes to ``handler(request) -> (status, body)``, takes
``latency`` seconds of **virtual** time (:mod:`loadgen.engines.virtual_time`), and the
step's times come from the same virtual clock -- so a step of 12 requests 4 at a time
with 0.1 s each lasts exactly 0.3 s, every run.

What it models, so that mode logic sees what a network engine would give it:

- the connection cap: at most ``max_connections`` requests are with the handler at once;
  the rest wait for a slot, and the wait counts in ``timeout_s`` (as with aiohttp/httpx);
- ``timeout_s``: a request not answered within it raises ``EngineError("timeout")``;
- failures: a handler raises :class:`~loadgen.engine.EngineError` (``"refused"``,
  ``"reset"``, ...) to stand for a transport failure; any other exception is an engine
  bug, recorded by the modes as ``other``, as for the network engines;
- ``bytes_in`` is the body's length (there are no headers).

A handler may be a plain function or a coroutine function; a coroutine may await
``asyncio.sleep`` (virtual time) to model a server that queues, stalls or dies.
State that must outlive one step (the sweep makes a fresh engine per step) belongs to the
handler, not to the engine.  It is registered as ``memory`` (``engine_class("memory")``)
but is not one of the network engines: ``bench run`` and calibration never use it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from loadgen.engine import Engine, EngineError, EngineOptions, Response
from loadgen.engines.virtual_time import is_virtual
from loadgen.request import Request

__all__ = ["Answer", "Handler", "Latency", "MemoryEngine", "echo"]

Answer = tuple[int, bytes]  # (HTTP status, body)
Handler = Callable[[Request], Answer | Awaitable[Answer]]
Latency = float | Callable[[Request], float]  # seconds of virtual time per request


def echo(request: Request) -> Answer:
    """The default handler: 200 with the request's own body (a server that just answers)."""
    return 200, request.body


class MemoryEngine(Engine):
    """Answers from ``handler`` after ``latency`` seconds of virtual time; see the module docstring.

    ``latency`` is a number or a function of the request; it is added after the handler
    returns (the handler sees the request when it arrives).  Counters for tests:
    ``sent`` (requests handed to :meth:`send`) and ``peak_in_flight`` (most requests with
    the handler at once, never above ``max_connections``).
    """

    name = "memory"

    def __init__(self, options: EngineOptions, handler: Handler = echo, *, latency: Latency = 0.0) -> None:
        super().__init__(options)
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {type(handler).__name__}")
        if not callable(latency) and not (isinstance(latency, int | float) and latency >= 0):
            raise ValueError(f"latency must be seconds >= 0 or a function of the request, got {latency!r}")
        self.handler = handler
        self.latency = latency
        self.sent = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def factory(cls, handler: Handler = echo, *, latency: Latency = 0.0) -> Callable[[EngineOptions], MemoryEngine]:
        """An engine factory for :func:`loadgen.sweep.run_sweep`: one engine per step, one handler."""

        def make(options: EngineOptions) -> MemoryEngine:
            return cls(options, handler, latency=latency)

        return make

    @classmethod
    def version(cls) -> str:
        return "in-process (no sockets, virtual time)"

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        if not is_virtual(loop):
            raise RuntimeError(
                "the memory engine runs on virtual time only (it never sleeps against the wall "
                "clock): run the coroutine with loadgen.engines.virtual_time.run_virtual()"
            )
        self._loop = loop
        self._slots = asyncio.Semaphore(self.options.max_connections)

    async def close(self) -> None:
        self._loop = None
        self._slots = None

    def clock(self) -> float:
        """The virtual loop's time: the modes time requests on the clock the latencies advance."""
        loop = self._loop or asyncio.get_running_loop()
        return loop.time()

    async def send(self, request: Request) -> Response:
        slots = self._slots
        if slots is None:
            raise RuntimeError("MemoryEngine.send() called before open() or after close()")
        self.sent += 1
        timeout_s = self.options.timeout_s
        deadline = asyncio.timeout(timeout_s)  # waiting for a slot counts, as in a real pool
        try:
            async with deadline:
                async with slots:
                    status, body = await self._answer(request)
        except TimeoutError as exc:
            if not deadline.expired():
                raise  # the handler's own TimeoutError: an engine bug, not the request's timeout
            raise EngineError("timeout", f"no complete response within timeout_s={timeout_s:g} s") from exc
        return Response(status=int(status), body=bytes(body), bytes_in=len(body))

    async def _answer(self, request: Request) -> Answer:
        """The handler's answer after the request's latency, counting requests in flight."""
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            answer = self.handler(request)
            if inspect.isawaitable(answer):
                answer = await answer
            delay = self.latency(request) if callable(self.latency) else self.latency
            if delay > 0:
                await asyncio.sleep(delay)
            return answer
        finally:
            self.in_flight -= 1
