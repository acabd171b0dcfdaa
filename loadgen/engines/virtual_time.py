"""Virtual time for the in-memory engine: an asyncio loop whose clock jumps instead of waiting.

Why: the sweep and the modes are timing code (``asyncio.sleep`` for the open loop's
schedule, ``asyncio.timeout`` for ``max_duration_s``, latencies from the engine's clock).
Tests of *what* they record -- counts, order, labels, flags -- should not depend on how
busy the machine is, and tests of *when* should be exact.  On a
:class:`VirtualTimeLoop`, ``loop.time()`` starts at 0 and only moves when every task is
waiting for a timer: it then jumps straight to the earliest one.  So ``await
asyncio.sleep(0.2)`` takes 0.2 s of loop time and no wall time, and a run gives the same
times on a quiet laptop and on a loaded 2-core CI box.

How: an ordinary selector loop with ``time()`` overridden and its selector wrapped.  When
the loop would block until its next timer, the wrapper polls real I/O without waiting and,
if there is none, advances the clock by that timeout instead of sleeping.  With no timer
pending it waits for real I/O as usual (e.g. a thread handing back a result), so the
loop never spins.  While a thread started through ``run_in_executor`` (``asyncio.to_thread``:
the streamed step's sink writes) is running, the clock stands still and the loop waits for
the thread: otherwise a loaded machine, whose threads take longer, would see timers fire
"during" a write that a quiet one does not (a CI run saw a step's deadline skipped).

Limits (by design, not bugs): code that reads another clock (``time.monotonic``,
``time.perf_counter``) sees real time -- the modes read the engine's :meth:`clock`
for that reason, but asyncio-throttle's politeness cap (``max_rps``) reads
``time.monotonic`` and so needs a real loop; real sockets on this loop would see their
timeouts fire at once, so it is for in-process engines only.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

__all__ = ["VirtualTimeLoop", "is_virtual", "run_virtual"]

T = TypeVar("T")


class _JumpingSelector(selectors.BaseSelector):
    """A real selector that, instead of blocking until a timer, moves the loop's clock."""

    def __init__(self, clock: VirtualTimeLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._clock = clock

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:  # no timer pending: only real I/O (a thread, a signal) can wake the loop
            return self._real.select(None)
        if timeout > 0 and self._clock.threads_busy:  # a thread's result is due: wait for it
            return self._real.select(None)
        ready = self._real.select(0)
        if not ready and timeout > 0:
            self._clock.advance(timeout)
        return ready

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on virtual time (see the module docstring); ``time()`` starts at ``start``."""

    def __init__(self, start: float = 0.0) -> None:
        self._virtual_now = float(start)
        self.threads_busy = 0
        super().__init__(_JumpingSelector(self))

    def run_in_executor(self, executor: Any, func: Any, *args: Any) -> asyncio.Future[Any]:
        """Run ``func`` in a thread; the clock stands still until it is done.

        Why: a thread (``asyncio.to_thread``: the step's sink writes) takes real time, and
        if the clock jumped to the next timer meanwhile, a slow machine would see timers
        fire "during" the write that a fast one does not -- the virtual times would depend
        on the machine's load, which is what this loop exists to prevent.
        """
        future = super().run_in_executor(executor, func, *args)
        self.threads_busy += 1

        def done(_: asyncio.Future[Any]) -> None:
            self.threads_busy -= 1

        future.add_done_callback(done)
        return future

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (the loop does this itself when idle)."""
        if not seconds >= 0:
            raise ValueError(f"virtual time only moves forward, got {seconds!r} s")
        self._virtual_now += seconds


def is_virtual(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` runs on virtual time."""
    return isinstance(loop, VirtualTimeLoop)


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on a fresh :class:`VirtualTimeLoop`: how tests run the in-memory engine."""
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(coro)
