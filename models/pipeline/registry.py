"""The pipelines ``bench run pipeline --pipeline NAME`` knows: stages, settings, defaults.

Why a registry: ``bench/pipeline/local_run.py`` runs, times and reports any of them the same way
(kfp.local, ``stage_timer`` rows, ``pipeline_stages.csv``); only what differs per pipeline
lives here, as plain data the reports can read without KFP.  The pipeline functions
themselves are handed out by :func:`bench.pipeline.definition.pipeline_function` (the
servebench pipeline deploys and loads a target, which is the CLI layer's to orchestrate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.config import ModelConfig

__all__ = ["OUTPUT_NAMES", "PIPELINES", "check_pipeline", "default_parameters", "settings_for", "stages_for"]

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
    "servebench": (
        "trials",
        "tune_epochs",
        "epochs",
        "train_size",
        "test_size",
        "seed",
        "smoke_requests",
        "fail_stage",
    ),
    "custom": ("epochs", "batch_size", "learning_rate", "train_size", "test_size", "seed", "fail_stage"),
}


def check_pipeline(name: str) -> str:
    """``name`` if it is a known pipeline, else ValueError listing the known ones."""
    if name not in PIPELINES:
        raise ValueError(f"unknown pipeline {name!r}; known: {', '.join(PIPELINES)}")
    return name


def stages_for(name: str) -> tuple[str, ...]:
    """The stage names in run order (``pipeline_stages.csv`` rows, before ``total``)."""
    return _STAGES[check_pipeline(name)]


def settings_for(name: str) -> tuple[str, ...]:
    """The parameter names ``run_pipeline(settings=...)`` accepts for this pipeline."""
    return _SETTINGS[check_pipeline(name)]


def default_parameters(name: str, model: ModelConfig) -> dict[str, Any]:
    """The run's parameters before overrides: the split from ``[model]``, quick training settings.

    ``servebench`` trains the torch LeNet with ``[model] epochs``; ``custom`` keeps its own
    quick Keras settings (the pipeline's defaults: 3 epochs of Adam, batch 64) because the
    torch one-cycle recipe in ``[model]`` is not what the study's TF code ran.
    """
    split = {"train_size": model.train_size, "test_size": model.test_size, "seed": model.seed}
    if check_pipeline(name) == "servebench":
        return {
            "trials": 4,
            "tune_epochs": 1,
            "smoke_requests": 8,
            "epochs": model.epochs,
            **split,
            "model_name": model.name,
        }
    return dict(split)
