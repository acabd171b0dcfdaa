"""Stop on Ctrl-C or SIGTERM: signal handlers in the running event loop, for the length of a block.

The one way `serve`, `ui`, a run's sweep and `run --clients` react to SIGINT/SIGTERM
(Kubernetes and CI stop a process with SIGTERM; a user with Ctrl-C): each says what
stopping means to it -- set an event, cancel the main task -- and gets its handlers
removed and the previous ones (e.g. :mod:`targets.process`'s safety net) restored however
the block ends.  Code without an event loop (the tuning study's trials) gets SIGTERM as a
KeyboardInterrupt instead (:func:`sigterm_as_interrupt`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Sequence

__all__ = ["STOP_SIGNALS", "cancel_on_sigterm", "on_signals", "sigterm_as_interrupt"]

#: The signals that ask servebench to stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def on_signals(
    handler: Callable[[signal.Signals], None], signals: Sequence[signal.Signals] = STOP_SIGNALS
) -> Iterator[None]:
    """Call ``handler(sig)`` in the running event loop when one of ``signals`` arrives, until the block ends.

    Where the loop cannot take signal handlers (not the main thread, another platform),
    nothing is installed and the block runs as it would without them.
    """
    loop = asyncio.get_running_loop()
    installed: dict[signal.Signals, object] = {}
    for sig in signals:
        previous = signal.getsignal(sig)
        try:
            loop.add_signal_handler(sig, handler, sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
            continue
        installed[sig] = previous
    try:
        yield
    finally:
        for sig, previous in installed.items():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, TypeError):
                loop.remove_signal_handler(sig)
                signal.signal(sig, previous)  # getsignal's value, given back


def cancel_on_sigterm() -> contextlib.AbstractContextManager[None]:
    """SIGTERM cancels the current task (as Ctrl-C interrupts it), so its cleanup runs; for the block's length."""
    task = asyncio.current_task()

    def cancel(_sig: signal.Signals) -> None:
        if task is not None:
            task.cancel()

    return on_signals(cancel, (signal.SIGTERM,))


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the main thread for the block's length (no event loop needed),
    so what the block started is stopped as on Ctrl-C, not orphaned; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
