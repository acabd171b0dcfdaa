"""The servebench pipeline, defined once (KFP v2): tune -> train -> export -> serve -> smoke.

The same definition is compiled to IR YAML for a real Kubeflow (:func:`compile_pipeline`)
(no ``from __future__ import annotations``: KFP reads the annotations as types)
and run locally by ``bench/cmd_pipeline.py`` through ``kfp.local``.
"""

from pathlib import Path

from kfp import compiler, dsl

from models.pipeline.components import export, serve, smoke, train, tune

__all__ = ["PIPELINE_NAME", "compile_pipeline", "servebench_pipeline"]

PIPELINE_NAME = "servebench-pipeline"


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
    common = {"train_size": train_size, "test_size": test_size, "seed": seed,
              "timing_path": timing_path, "fail_stage": fail_stage}
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
