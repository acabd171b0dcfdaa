"""The CLI's console and progress layer: the only place servebench prints.

Why: library code (models, loadgen, targets, report) reports through callbacks; only the
CLI decides how that looks. Progress bars appear on a terminal and disappear when output
is piped or ``--quiet`` is given, so logs stay clean in CI.

Every message, table cell and progress label passes through the console's
:class:`ground.redactor.Redactor` (set by :func:`bench.redact_secrets.redactor_for` from the
configuration), so a secret an endpoint echoed into an error never reaches the terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console as RichConsole
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ground.redactor import Redactor
from loadgen.cells import cell_number
from loadgen.saturation import FLAG_CLIENT_BEHIND, FLAG_CONNECTION_CAP, FLAG_TARGET_BEHIND, SATURATION_DETAILS
from loadgen.stats import FLAG_SATURATED, step_flags

__all__ = ["Console", "ProgressHandle", "open_loop_text", "saturation_warning", "step_label"]


class ProgressHandle:
    """A callback-friendly progress task: ``update(done, total, label)``."""

    def __init__(self, progress: Progress | None, description: str, redactor: Redactor | None = None) -> None:
        self._progress = progress
        self._redactor = redactor or Redactor()
        self._task = progress.add_task(self._redactor.redact(description), total=None) if progress else None

    def update(self, done: int, total: int | None = None, label: str | None = None) -> None:
        if self._progress is None or self._task is None:
            return
        kwargs: dict[str, Any] = {"completed": done}
        if total is not None:
            kwargs["total"] = total
        if label is not None:
            kwargs["description"] = self._redactor.redact(label)
        self._progress.update(self._task, **kwargs)


class Console:
    """Messages to stderr-friendly rich output; tables and results to stdout."""

    def __init__(self, quiet: bool = False, file: Any = None) -> None:
        self.out = RichConsole(file=file or sys.stdout, highlight=False, soft_wrap=True)
        if not self.out.is_terminal:  # piped output: wide enough that tables do not fold
            self.out.width = max(self.out.width, 160)
        self.err = RichConsole(file=sys.stderr, highlight=False, soft_wrap=True)
        self.quiet = quiet
        self.show_progress = not quiet and self.err.is_terminal
        #: applied to everything printed; :func:`bench.redact_secrets.redactor_for` extends it
        self.redactor = Redactor()

    def _r(self, text: Any) -> str:
        return self.redactor.redact(str(text))

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(self._r(message), markup=False)

    def warn(self, message: str) -> None:
        self.err.print(f"[bold yellow]warning:[/] {_escape(self._r(message))}")

    def error(self, message: str) -> None:
        self.err.print(f"[bold red]error:[/] {_escape(self._r(message))}")

    def print(self, text: str) -> None:
        """Primary output (tables, URLs, results): always shown, on stdout."""
        self.out.print(self._r(text), markup=False)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        table = Table(title=self._r(title), show_lines=False)
        for i, column in enumerate(columns):
            table.add_column(self._r(column), justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*(self._r(cell) for cell in row))
        self.out.print(table)

    @contextmanager
    def progress(self, description: str) -> Iterator[ProgressHandle]:
        if not self.show_progress:
            yield ProgressHandle(None, description, self.redactor)
            return
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.err,
            transient=False,
        ) as progress:
            yield ProgressHandle(progress, description, self.redactor)


def step_label(key: Any) -> str:
    """The progress bar's label for a step (a StepKey); rate steps show their offered rate."""
    rate = f" @ {key.rate:g} req/s" if key.mode == "rate" else ""
    return f"{key.target} {key.mode} N={key.n_requests}{rate} trial {key.trial}"


def open_loop_text(row: Mapping[str, Any]) -> str:
    """``, offered 1500.0 req/s, achieved 680.6 req/s, send lag p50 0.21 ms`` for a rate row, else ``""``."""
    if row.get("mode") != "rate":
        return ""
    offered, achieved = cell_number(row.get("offered_rps")), cell_number(row.get("achieved_rps"))
    lag = cell_number(row.get("send_lag_p50_s"))
    parts = [f"offered {offered:.1f} req/s" if offered is not None else f"rate {row.get('rate')} req/s"]
    if achieved is not None:
        parts.append(f"achieved {achieved:.1f} req/s")
    if lag is not None:
        parts.append(f"send lag p50 {lag * 1000:.2f} ms")
    return ", " + ", ".join(parts)


_CAUSES = {
    FLAG_CLIENT_BEHIND: "the sends fell behind the schedule (send lag grew by {growth}): the load generator "
    "could not send this rate here, so the step measured the client, not the target",
    FLAG_TARGET_BEHIND: "requests were sent on time but the answers fell behind: the target did not sustain this rate",
    FLAG_CONNECTION_CAP: "more than {concurrency} requests were in flight, so some waited for one of the step's "
    "{concurrency} connections (--concurrency)",
}


def saturation_warning(row: Mapping[str, Any]) -> str:
    """A sentence for a ``saturated`` rate row (``""`` otherwise): what was offered and who fell behind."""
    flags = step_flags(row)
    if FLAG_SATURATED not in flags:
        return ""
    offered, achieved, growth = (cell_number(row.get(c)) for c in ("offered_rps", "achieved_rps", "lag_growth_s"))
    rates = (
        f"achieved {achieved:.1f} of {offered:.1f} req/s offered"
        if offered is not None and achieved is not None
        else "the offered rate was not sustained"
    )
    values = {"growth": f"{growth * 1000:.0f} ms" if growth is not None else "?", "concurrency": row.get("concurrency")}
    causes = [_CAUSES[f].format(**values) for f in SATURATION_DETAILS if f in flags]
    return (
        f"{row.get('target')} rate N={row.get('n_requests')} trial {row.get('trial')} is SATURATED: {rates}; "
        + ("; ".join(causes) or "the open loop did not keep up")
        + ". Its latencies describe a growing queue, not the service."
    )


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
