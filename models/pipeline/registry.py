"""The pipelines ``bench run pipeline --pipeline NAME`` knows: stages, settings, defaults, compile.

Why a registry: ``bench/cmd_pipeline.py`` runs, times and reports any of them the same way
(kfp.local, ``stage_timer`` rows, ``pipeline_stages.csv``); only what differs per pipeline
lives here.  KFP is imported only when a pipeline function is asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.config import ModelConfig

__all__ = ["OUTPUT_NAMES", "PIPELINES", "compile_named", "default_parameters", "pipeline_function", "settings_for", "stages_for"]

#: ``servebench``: the study's E2E pipeline (Table 5); ``custom``: its custom-model pipeline (Table 4).
PIPELINES = ("servebench", "custom")

_STAGES = {
    "servebench": ("tune", "train", "export", "serve", "smoke"),
    "custom": ("load_data", "train", "evaluate"),
}

#: What a pipeline's single return value is, for ``pipeline_summary.csv`` (a fraction).
OUTPUT_NAMES = {"custom": "accuracy"}

#: Pipeline parameters a caller may override per pipeline; everything else is fixed.
_SETTINGS = {
    "servebench": ("trials", "tune_epochs", "epochs", "train_size", "test_size", "seed", "smoke_requests", "fail_stage"),
    "custom": ("epochs", "batch_size", "learning_rate", "train_size", "test_size", "seed", "fail_stage"),
}


def _check(name: str) -> str:
    if name not in PIPELINES:
        raise ValueError(f"unknown pipeline {name!r}; known: {', '.join(PIPELINES)}")
    return name


def stages_for(name: str) -> tuple[str, ...]:
    """The stage names in run order (``pipeline_stages.csv`` rows, before ``total``)."""
    return _STAGES[_check(name)]


def settings_for(name: str) -> tuple[str, ...]:
    """The parameter names ``run_pipeline(settings=...)`` accepts for this pipeline."""
    return _SETTINGS[_check(name)]


def default_parameters(name: str, model: ModelConfig) -> dict[str, Any]:
    """The run's parameters before overrides: the split from ``[model]``, quick training settings.

    ``servebench`` trains the torch LeNet with ``[model] epochs``; ``custom`` keeps its own
    quick Keras settings (the pipeline's defaults: 3 epochs of Adam, batch 64) because the
    torch one-cycle recipe in ``[model]`` is not what the study's TF code ran.
    """
    split = {"train_size": model.train_size, "test_size": model.test_size, "seed": model.seed}
    if _check(name) == "servebench":
        return {"trials": 4, "tune_epochs": 1, "smoke_requests": 8, "epochs": model.epochs, **split,
                "model_name": model.name}
    return dict(split)


def pipeline_function(name: str) -> Callable[..., Any]:
    """The ``@dsl.pipeline`` function; calling it after ``kfp.local.init`` runs it locally."""
    if _check(name) == "servebench":
        from models.pipeline.definition import servebench_pipeline

        return servebench_pipeline
    from models.pipeline.custom import custom_pipeline

    return custom_pipeline


def compile_named(name: str, output: str | Path) -> Path:
    """Write pipeline ``name``'s KFP IR YAML to ``output``; returns the path."""
    if _check(name) == "servebench":
        from models.pipeline.definition import compile_pipeline

        return compile_pipeline(output)
    from models.pipeline.custom import compile_custom

    return compile_custom(output)
