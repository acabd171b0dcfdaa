"""The TFJob's training entrypoint: train with the best parameters, export for serving.

Why a module of its own: in the study a TFJob trained the model with the parameters Katib
found and saved it where the KServe InferenceService reads it (a PVC).  ``python -m
models.trial`` trains and *reports* (a Katib trial); this one trains the same way (SGD with
momentum, the recipe the search tuned -- see :mod:`models.trial`) and *exports*, exactly
like the pipeline's ``train`` + ``export`` components::

    python -m models.pipeline.train_job --lr 0.03 --batch-size 90 --epochs 3 --output /mnt/models

writes ``/mnt/models/savedmodel/<name>/1/`` (what the InferenceService's ``storageUri``
``pvc://<claim>/savedmodel/<name>`` points at), the TorchScript and state_dict exports,
and ``model.json`` with the TorchScript/SavedModel parity report.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from models.trial import _positive_float, _positive_int

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m models.pipeline.train_job",
        description="Train the shared MNIST LeNet with given hyperparameters and export it for serving.",
    )
    p.add_argument("--lr", type=_positive_float, required=True, help="SGD learning rate (the search's best)")
    p.add_argument("--batch-size", type=_positive_int, required=True)
    p.add_argument("--epochs", type=_positive_int, default=3)
    p.add_argument("--momentum", type=float, default=0.5)
    p.add_argument("--output", required=True, help="folder to export into (the PVC mount)")
    p.add_argument("--model-name", default="mnist")
    p.add_argument("--threads", type=_positive_int, default=1, help="torch threads (default: %(default)s)")
    p.add_argument("--config", default=None, help="bench.toml whose [model] table gives data, split and seed")
    p.add_argument("--train-size", type=_positive_int, default=None, help="override [model] train_size")
    p.add_argument("--test-size", type=_positive_int, default=None, help="override [model] test_size")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 after exporting; 2 on bad arguments or data.  Progress goes to stderr."""
    args = parser().parse_args(argv)
    from ground.tables import ConfigError
    from models.config import ModelConfig, read_model_config
    from models.data import DataError, load_dataset
    from models.export import export_all
    from models.trial import train_sgd

    try:
        cfg = read_model_config(args.config) if args.config else ModelConfig()
        sizes = {k: v for k, v in (("train_size", args.train_size), ("test_size", args.test_size)) if v is not None}
        cfg = replace(cfg, **sizes)
        split = load_dataset(cfg)
    except (ConfigError, DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"train_job: lr {args.lr:g}, batch size {args.batch_size}, epochs {args.epochs}, "
        f"{len(split.train_y)} training images",
        file=sys.stderr,
    )
    net, result = train_sgd(
        split,
        cfg,
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        momentum=args.momentum,
        threads=args.threads,
    )
    net.eval()
    out = Path(args.output)
    report = export_all(net, out, args.model_name, split.test_x, split.test_y)
    (out / "model.json").write_text(
        json.dumps(
            {
                "name": args.model_name,
                "lr": args.lr,
                "batch_size": args.batch_size,
                "epochs": args.epochs,
                "accuracy": result.final.accuracy,
                "parity": report.as_dict(),
            },
            indent=2,
        )
    )
    print(f"train_job: accuracy {result.final.accuracy:.4f}, exported to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
