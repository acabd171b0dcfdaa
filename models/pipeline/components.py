"""The model's KFP v2 lightweight components of the servebench pipeline: tune -> train -> export.

The pipeline's last two stages, ``serve`` and ``smoke``, start a deployment target and
send it load: that is orchestration across targets and the load generator, so they and
the pipeline definition live in the CLI layer (:mod:`bench.pipeline.definition`); the
components here use the model code only.

Why the imports are inside each body: KFP serialises the function source and runs it in a
fresh interpreter (``kfp.local.SubprocessRunner(use_venv=False)`` locally, a container on a
cluster); servebench is pip-installed editable, so the body can import it there.
No ``from __future__ import annotations`` here: KFP reads the annotations as types.
Each body is wrapped in :func:`models.pipeline.timing.stage_timer`.
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Input, Metrics, Model, Output

__all__ = ["BASE_IMAGE", "export", "train", "tune"]

#: Lightweight components need an image with servebench installed on a cluster; locally unused.
BASE_IMAGE = "python:3.11"


@dsl.component(base_image=BASE_IMAGE)
def tune(
    trials: int,
    epochs: int,
    train_size: int,
    test_size: int,
    seed: int,
    timing_path: str,
    fail_stage: str,
    metrics: Output[Metrics],
) -> NamedTuple("Best", lr=float, batch_size=int):
    """The study's Katib random search (lr 0.01-0.05, batch 80-100), run as ``bench run hpo`` runs it.

    Same engine as the tuning study (:func:`models.hpo.search.run_study`: Katib's stop rules,
    ``random`` as the study's pipeline used), trials in-process one at a time (1 torch thread).
    """
    from collections import namedtuple

    from models.pipeline.timing import stage_timer

    with stage_timer(timing_path, "tune", fail_stage):
        from models.config import ModelConfig
        from models.data import load_dataset
        from models.hpo.search import TrialOutcome, run_study
        from models.hpo.space import SearchSpace, TrialParams
        from models.trial import run_trial

        cfg = ModelConfig(train_size=train_size, test_size=test_size, seed=seed, torch_threads=1)
        split = load_dataset(cfg)

        def objective(params: TrialParams) -> TrialOutcome:
            result = run_trial(split, cfg, lr=params.lr, batch_size=params.batch_size, epochs=epochs)
            return TrialOutcome(loss=result.loss, accuracy=result.accuracy)

        study = run_study("random", objective, space=SearchSpace(), max_trials=trials, parallel=1, seed=seed)
        best = study.best
        if best is None:
            raise RuntimeError(f"tuning: all {len(study.trials)} trials failed; first error: {study.trials[0].error}")
        metrics.log_metric("best_loss", float(best.loss))
        metrics.log_metric("best_accuracy", float(best.accuracy))
        metrics.log_metric("trials", float(len(study.trials)))
        metrics.log_metric("failed_trials", float(study.n_failed))
        best = {"lr": best.lr, "batch_size": best.batch_size}
    return namedtuple("Best", ["lr", "batch_size"])(float(best["lr"]), int(best["batch_size"]))


@dsl.component(base_image=BASE_IMAGE)
def train(
    lr: float,
    batch_size: int,
    epochs: int,
    train_size: int,
    test_size: int,
    seed: int,
    timing_path: str,
    fail_stage: str,
    model: Output[Model],
    metrics: Output[Metrics],
):
    """Train the shared LeNet with the best parameters (SGD, as the trials did); TFJob stand-in."""
    from models.pipeline.timing import stage_timer

    with stage_timer(timing_path, "train", fail_stage):
        import torch

        from models.config import ModelConfig
        from models.data import load_dataset
        from models.trial import train_sgd

        cfg = ModelConfig(train_size=train_size, test_size=test_size, seed=seed)
        net, result = train_sgd(load_dataset(cfg), cfg, lr=lr, batch_size=batch_size, epochs=epochs)
        torch.save(net.state_dict(), model.path)
        metrics.log_metric("accuracy", float(result.final.accuracy))
        model.metadata.update({"lr": lr, "batch_size": batch_size, "epochs": epochs})


@dsl.component(base_image=BASE_IMAGE)
def export(
    model_name: str,
    train_size: int,
    test_size: int,
    seed: int,
    timing_path: str,
    fail_stage: str,
    model: Input[Model],
    exported: Output[Model],
    metrics: Output[Metrics],
):
    """TorchScript + state_dict + SavedModel, with the TorchScript/SavedModel parity check."""
    from models.pipeline.timing import stage_timer

    with stage_timer(timing_path, "export", fail_stage):
        import json
        from pathlib import Path

        import torch

        from models.config import ModelConfig
        from models.data import load_dataset
        from models.export import export_all
        from models.net import LeNet

        cfg = ModelConfig(train_size=train_size, test_size=test_size, seed=seed)
        split = load_dataset(cfg)
        net = LeNet()
        net.load_state_dict(torch.load(model.path, weights_only=True))
        net.eval()
        out = Path(exported.path)
        report = export_all(net, out, model_name, split.test_x, split.test_y)
        (out / "model.json").write_text(json.dumps({"name": model_name, "parity": report.as_dict()}))
        for key, value in report.as_dict().items():
            if isinstance(value, (int, float)):
                metrics.log_metric(key, float(value))
