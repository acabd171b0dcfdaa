"""`python -m bench train [--model NAME] [--force]`: train the shared model once and export both formats.

``--model NAME`` trains a second, tabular model instead (issue 24: ``breast-cancer`` or
``wine``, :mod:`models.tabular`) into ``artifacts/NAME/``: its weights as ``.npz``, its
test split as a perf_analyzer input-data file, and model.json.  The MNIST model stays the
default and is not touched.

Why a thin command: the work (and the decision to skip it) lives in
:func:`models.artifacts.ensure_model`, which servers and tests call too; this module only
shows progress and the summary a user needs to trust the artifacts (accuracy of each
exported file, parity figures, time, where they are).
"""

from __future__ import annotations

import argparse
import math
import os
import time

from bench.commands.common import Command
from bench.config import BenchConfig
from bench.console import Console
from bench.training import ensure_model_shown
from models.tabular.datasets import TABULAR_MODELS

__all__ = ["TRAIN", "train", "train_tabular"]


def train(config: BenchConfig, *, force: bool, console: Console) -> int:
    """Ensure the artifacts for ``config.model`` exist (retrain if ``force``); 0 on success."""
    # OpenMP threads that spin while waiting turn a 10 s training into minutes when another
    # process shares the cores (measured here, 2 torch threads at load ~6: 129 s spinning,
    # 34 s passive; identical weights).  Must be set before torch loads OpenMP.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from models.artifacts import ArtifactsError  # lazy: torch
    from models.data import DataError
    from models.export import ParityError

    cfg = config.model
    start = time.perf_counter()

    def label(epoch: int, epochs: int, loss: float, acc: float) -> str:
        text = f"training {cfg.name}"
        if not math.isnan(acc):
            text += f"  loss {loss:.4f}  test acc {acc:.2%}"
        return text

    try:
        artifacts = ensure_model_shown(config, console, title=f"training {cfg.name}", label=label, force=force)
    except ParityError as exc:
        console.error(f"export failed the parity check: {exc}")
        return 1
    except DataError as exc:
        console.error(f"cannot load the {cfg.dataset} data set: {exc}")
        return 1
    except (ArtifactsError, OSError) as exc:
        console.error(f"cannot write the model artifacts in {config.artifacts_dir}: {exc}")
        return 1
    info = artifacts.info
    elapsed = time.perf_counter() - start
    if artifacts.trained:
        console.info(f"trained and exported in {elapsed:.1f} s")
    else:
        console.info(
            f"up to date: {artifacts.model_json_path} matches this config and every file's sha256 "
            f"(trained {info['created']}); use --force to retrain"
        )
    acc = info["accuracy"]
    parity = info["parity"]
    console.table(
        f"model {info['name']} ({info['dataset']}: {info['split']['train']} train / {info['split']['test']} test, "
        f"seed {info['seed']}, {info['epochs']} epochs, {info['parameters']:,} parameters)",
        ("format", "file", "test accuracy"),
        [
            ("TorchScript", artifacts.torchscript_path.relative_to(artifacts.dir), f"{acc['torchscript']:.2%}"),
            ("SavedModel", artifacts.savedmodel_dir.relative_to(artifacts.dir), f"{acc['savedmodel']:.2%}"),
        ],
    )
    console.print(
        f"parity: {parity['agreement']:.2%} digit agreement, max |logit diff| {parity['max_abs_logit_diff']:.2e} "
        f"on {parity['n_images']} test images (need >= {parity['min_agreement']:.1%}, "
        f"<= {parity['max_abs_logit_diff_allowed']:g})"
    )
    console.print(f"training: {info['training_seconds']:.1f} s; export + parity: {info['export_seconds']:.1f} s")
    console.print(f"artifacts: {artifacts.dir}")
    return 0


def train_tabular(config: BenchConfig, name: str, *, force: bool, console: Console) -> int:
    """Ensure ``artifacts/<name>/`` holds the tabular model ``name`` (retrain if ``force``); 0 on success."""
    from models.tabular.artifacts import ensure_tabular_model, tabular_artifacts_dir
    from models.tabular.train import ParityError, TabularRecipe

    folder = tabular_artifacts_dir(config.artifacts_dir, name)
    start = time.perf_counter()
    try:
        console.info(f"model {name}: {folder}")
        artifacts = ensure_tabular_model(TabularRecipe(name), folder, force=force)
    except ParityError as exc:
        console.error(f"export failed the parity check: {exc}")
        return 1
    except (OSError, RuntimeError, ValueError) as exc:
        console.error(f"cannot train or write the {name} model in {folder}: {exc}")
        return 1
    info = artifacts.info
    if artifacts.trained:
        console.info(f"trained and exported in {time.perf_counter() - start:.1f} s")
    else:
        console.info(
            f"up to date: {artifacts.dir / 'model.json'} matches this recipe and every file's sha256; use --force"
        )
    tensors = info["tensors"]
    rows = [(kind, t["name"], t["datatype"], str(t["shape"])) for kind in ("inputs", "outputs") for t in tensors[kind]]
    console.table(
        f"model {name} ({info['dataset']}; {info['split']['train']} train / {info['split']['test']} test, "
        f"seed {info['recipe']['seed']})",
        ("", "tensor", "datatype", "shape"),
        rows,
    )
    console.print(
        f"test accuracy {info['accuracy']['test']:.2%} (train {info['accuracy']['train']:.2%}); "
        f"parity of the exported arrays: max |probability diff| {info['parity']['max_abs_probability_diff']:.1e}"
    )
    console.print(
        f"input-data file: {artifacts.input_data_path} ({info['input_data']['samples']} samples with validation_data)"
    )
    console.print(f"artifacts: {artifacts.dir}")
    return 0


# --- `python -m bench train` (registered in bench/cli.py) ---

#: ``--model`` choices: the study's model (the [model] table) and the tabular models.
MODEL_CHOICES = ("mnist", *TABULAR_MODELS)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="retrain even if artifacts for this config exist")
    parser.add_argument(
        "--model",
        choices=MODEL_CHOICES,
        default="mnist",
        help="mnist (default): the study's model from [model]; a tabular model goes to artifacts/NAME/",
    )


def _main(args: argparse.Namespace, config: BenchConfig, console: Console) -> int:
    if args.model != "mnist":
        return train_tabular(config, args.model, force=args.force, console=console)
    return train(config, force=args.force, console=console)


TRAIN = Command(_add_arguments, _main)
