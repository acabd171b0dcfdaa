"""The CLI's console and progress layer: the only place servebench prints.

Why: library code (models, loadgen, targets, report) reports through callbacks; only the
CLI decides how that looks. Progress bars appear on a terminal and disappear when output
is piped or ``--quiet`` is given, so logs stay clean in CI.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console as RichConsole
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

__all__ = ["Console", "ProgressHandle"]


class ProgressHandle:
    """A callback-friendly progress task: ``update(done, total, label)``."""

    def __init__(self, progress: Progress | None, description: str) -> None:
        self._progress = progress
        self._task = progress.add_task(description, total=None) if progress else None

    def update(self, done: int, total: int | None = None, label: str | None = None) -> None:
        if self._progress is None or self._task is None:
            return
        kwargs: dict[str, Any] = {"completed": done}
        if total is not None:
            kwargs["total"] = total
        if label is not None:
            kwargs["description"] = label
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

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(message, markup=False)

    def warn(self, message: str) -> None:
        self.err.print(f"[bold yellow]warning:[/] {_escape(message)}")

    def error(self, message: str) -> None:
        self.err.print(f"[bold red]error:[/] {_escape(message)}")

    def print(self, text: str) -> None:
        """Primary output (tables, URLs, results): always shown, on stdout."""
        self.out.print(text, markup=False)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        table = Table(title=title, show_lines=False)
        for i, column in enumerate(columns):
            table.add_column(column, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*(str(cell) for cell in row))
        self.out.print(table)

    @contextmanager
    def progress(self, description: str) -> Iterator[ProgressHandle]:
        if not self.show_progress:
            yield ProgressHandle(None, description)
            return
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.err,
            transient=False,
        ) as progress:
            yield ProgressHandle(progress, description)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
