"""Train the shared model when it is missing or stale, its progress shown on the console.

The one way every command gets the model (`train`, `serve`, `ui`, `check-target`, `run`
and `run --clients`): :func:`models.artifacts.ensure_model` with a progress bar; only the
bar's title and label differ between them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.config import BenchConfig
from bench.console import Console

__all__ = ["ensure_model_shown"]

#: ``(epoch, epochs, loss, accuracy) -> label`` of the progress bar (None: the title stays).
EpochLabel = Callable[[int, int, float, float], str]


def ensure_model_shown(
    config: BenchConfig,
    console: Console,
    *,
    title: str = "training the model (once)",
    label: EpochLabel | None = None,
    force: bool = False,
) -> Any:
    """The trained model's artifacts (:class:`models.artifacts.Artifacts`), training it first when missing
    (or when ``force``), each epoch shown on a progress bar called ``title``."""
    from models.artifacts import ensure_model  # lazy: torch

    with console.progress(title) as progress:

        def on_progress(epoch: int, epochs: int, loss: float, acc: float) -> None:
            if label is None:
                progress.update(epoch, epochs)
            else:
                progress.update(epoch, epochs, label(epoch, epochs, loss, acc))

        return ensure_model(
            config.model,
            config.artifacts_dir,
            force=force,
            on_progress=on_progress,
            on_stage=console.info,
            root=config.root,
        )
