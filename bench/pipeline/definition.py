"""The servebench pipeline, defined once (KFP v2): tune -> train -> export -> serve -> smoke.

The same definition is compiled to IR YAML for a real Kubeflow (:func:`compile_pipeline`)
and run locally by ``bench/pipeline/local_run.py`` through ``kfp.local``.
(No ``from __future__ import annotations``: KFP reads the annotations as types.)

Why in ``bench/``: ``tune``, ``train`` and ``export`` are the model's components
(:mod:`models.pipeline.components`), but ``serve`` and ``smoke`` start a deployment target
and send it load (:mod:`bench.pipeline.serving`), and a pipeline made of both is
orchestration -- the CLI layer's job; the layers below never import it.
:func:`pipeline_function` and :func:`compile_named` hand out this pipeline or the
model-only ``custom`` one (:mod:`models.pipeline.custom`) by name.

``serve`` and ``smoke`` each start their own KServe stand-in: a running server cannot be
passed between KFP tasks (each task is its own process), so ``serve`` measures
start-to-first-correct-prediction and stops, and ``smoke`` starts it again for a short sweep.
As in the model's components, the imports are inside the bodies (KFP runs each body in a
fresh interpreter) and each body is wrapped in :func:`models.pipeline.timing.stage_timer`.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfp import compiler, dsl
from kfp.dsl import Input, Metrics, Model, Output

from models.pipeline.components import BASE_IMAGE, export, train, tune
from models.pipeline.registry import check_pipeline, stages_for

__all__ = [
    "PIPELINE_NAME",
    "STAGES",
    "compile_named",
    "compile_pipeline",
    "pipeline_function",
    "serve",
    "servebench_pipeline",
    "smoke",
]

PIPELINE_NAME = "servebench-pipeline"
STAGES = stages_for("servebench")  # tune, train, export, serve, smoke


@dsl.component(base_image=BASE_IMAGE)
def serve(
    train_size: int,
    test_size: int,
    seed: int,
    timing_path: str,
    fail_stage: str,
    exported: Input[Model],
    metrics: Output[Metrics],
) -> float:
    """Start the KServe stand-in on the SavedModel; return seconds to its first CORRECT answer."""
    from models.pipeline.timing import stage_timer

    with stage_timer(timing_path, "serve", fail_stage):
        from bench.pipeline.serving import first_correct_prediction

        seconds = first_correct_prediction(exported.path, train_size=train_size, test_size=test_size, seed=seed)
        metrics.log_metric("first_correct_s", seconds)
    return seconds


@dsl.component(base_image=BASE_IMAGE)
def smoke(
    n_requests: int,
    train_size: int,
    test_size: int,
    seed: int,
    timing_path: str,
    fail_stage: str,
    exported: Input[Model],
    metrics: Output[Metrics],
) -> float:
    """A short sequential + concurrent sweep through loadgen; return the accuracy of the answers."""
    from models.pipeline.timing import stage_timer

    with stage_timer(timing_path, "smoke", fail_stage):
        from bench.pipeline.serving import smoke_sweep

        summary = smoke_sweep(
            exported.path, n_requests=n_requests, train_size=train_size, test_size=test_size, seed=seed
        )
        for key, value in summary.items():
            metrics.log_metric(key, float(value))
    return float(summary["accuracy"])


@dsl.pipeline(name=PIPELINE_NAME, description="Katib-like tuning, training, export, KServe serving, smoke load.")
def servebench_pipeline(
    trials: int = 4,
    tune_epochs: int = 1,
    epochs: int = 3,
    train_size: int = 4000,
    test_size: int = 1000,
    seed: int = 0,
    model_name: str = "mnist",
    smoke_requests: int = 8,
    timing_path: str = "",
    fail_stage: str = "",
) -> None:
    """Parameters are the quick settings; ``fail_stage`` forces that stage to fail (tests)."""
    common = {
        "train_size": train_size,
        "test_size": test_size,
        "seed": seed,
        "timing_path": timing_path,
        "fail_stage": fail_stage,
    }
    t = tune(trials=trials, epochs=tune_epochs, **common)
    tr = train(lr=t.outputs["lr"], batch_size=t.outputs["batch_size"], epochs=epochs, **common)
    ex = export(model_name=model_name, model=tr.outputs["model"], **common)
    sv = serve(exported=ex.outputs["exported"], **common)
    sm = smoke(n_requests=smoke_requests, exported=ex.outputs["exported"], **common)
    sm.after(sv)  # two stand-ins on one box at once would skew both stages


def compile_pipeline(output: str | Path) -> Path:
    """Write the pipeline's KFP IR YAML to ``output`` (parents created) and return its path."""
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(servebench_pipeline, package_path=str(path))
    return path


def pipeline_function(name: str) -> Callable[..., Any]:
    """The ``@dsl.pipeline`` function of pipeline ``name``; calling it after ``kfp.local.init`` runs it locally."""
    if check_pipeline(name) == "servebench":
        return servebench_pipeline
    from models.pipeline.custom import custom_pipeline

    return custom_pipeline


def compile_named(name: str, output: str | Path) -> Path:
    """Write pipeline ``name``'s KFP IR YAML to ``output``; returns the path."""
    if check_pipeline(name) == "servebench":
        return compile_pipeline(output)
    from models.pipeline.custom import compile_custom

    return compile_custom(output)
