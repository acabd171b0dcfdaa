"""The CLI's console and progress layer: the only place servebench prints.

Why: library code (models, loadgen, targets, report) reports through callbacks; only the
CLI decides how that looks. Progress bars appear on a terminal and disappear when output
is piped or ``--quiet`` is given, so logs stay clean in CI.

Every message, table cell and progress label passes through the console's
:class:`loadgen.redact.Redactor` (set by :func:`bench.redaction.redactor_for` from the
configuration), so a secret an endpoint echoed into an error never reaches the terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console as RichConsole
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from loadgen.redact import Redactor

__all__ = ["Console", "ProgressHandle"]


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
        #: applied to everything printed; :func:`bench.redaction.redactor_for` extends it
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


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
