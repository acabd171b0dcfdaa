"""The study's "custom model" pipeline (its Table 4, Figure 22): load_data -> train -> evaluate.

What the study did (section 5.2, approach 2): took its own bare-metal TensorFlow code for a
digit recogniser on MNIST and turned it into lightweight Kubeflow components.  Here the
"own TF code" is the Keras twin of servebench's LeNet (:func:`models.net.build_keras`),
trained with TensorFlow/Keras (not copied from torch) on the same seeded split the rest of
servebench uses, then evaluated on the held-out split.

Why three components and what crosses between them: ``load_data`` does the loading and the
one preprocessing step (:func:`models.data.normalize`) and hands the arrays on as two KFP
``Dataset`` artifacts (train, held-out test); ``train`` writes the fitted model as a KFP
``Model`` artifact (a ``.keras`` file in the artifact's folder); ``evaluate`` reads both and
logs accuracy to KFP ``Metrics`` and returns it (the pipeline's output).  Nothing passes
through side files except the per-stage timing rows (:func:`models.pipeline.timing.stage_timer`),
which kfp.local does not report.

As in :mod:`models.pipeline.components`, the imports are inside the bodies (KFP runs each
body in a fresh interpreter) and there is no ``from __future__ import annotations`` (KFP
reads the annotations as types).
"""

from pathlib import Path

from kfp import compiler, dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from models.pipeline.components import BASE_IMAGE

__all__ = [
    "MODEL_STAGES",
    "PIPELINE_NAME",
    "STAGES",
    "compile_custom",
    "custom_pipeline",
    "evaluate",
    "load_data",
    "train",
]

PIPELINE_NAME = "servebench-custom-model"
STAGES = ("load_data", "train", "evaluate")
#: The stages whose body times add up to Table 4's "model running time" (docs/pipeline.md).
MODEL_STAGES = ("train", "evaluate")


@dsl.component(base_image=BASE_IMAGE)
def load_data(
    train_size: int,
    test_size: int,
    seed: int,
    timing_path: str,
    fail_stage: str,
    train_data: Output[Dataset],
    test_data: Output[Dataset],
):
    """Load the seeded stratified MNIST split, normalise it, write train and held-out test as .npz."""
    from models.pipeline.timing import stage_timer

    with stage_timer(timing_path, "load_data", fail_stage):
        import numpy as np

        from models.config import ModelConfig
        from models.data import load_dataset, normalize

        split = load_dataset(ModelConfig(train_size=train_size, test_size=test_size, seed=seed))
        for artifact, x, y in ((train_data, split.train_x, split.train_y), (test_data, split.test_x, split.test_y)):
            with open(artifact.path, "wb") as fh:  # a file handle: np.savez would append ".npz" to a path
                np.savez(fh, x=normalize(x), y=y)
            artifact.metadata.update({"images": len(y), "format": "npz: x float32 (N,28,28) normalised, y int64"})


@dsl.component(base_image=BASE_IMAGE)
def train(
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    timing_path: str,
    fail_stage: str,
    train_data: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
):
    """Fit the Keras LeNet twin with Adam on the training Dataset; save it as model.keras."""
    from models.pipeline.timing import stage_timer

    with stage_timer(timing_path, "train", fail_stage):
        import os

        import numpy as np

        from models.net import build_keras

        model_obj = build_keras("custom")  # imports keras/tensorflow quietly
        import keras

        keras.utils.set_random_seed(seed)
        with np.load(train_data.path) as data:
            x, y = data["x"], data["y"]
        model_obj.compile(
            optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        history = model_obj.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)
        os.makedirs(model.path, exist_ok=True)
        model_obj.save(os.path.join(model.path, "model.keras"))
        metrics.log_metric("train_loss", float(history.history["loss"][-1]))
        metrics.log_metric("train_accuracy", float(history.history["accuracy"][-1]))
        model.metadata.update(
            {
                "framework": "keras",
                "epochs": epochs,
                "batch_size": batch_size,
                "learning_rate": learning_rate,
                "file": "model.keras",
            }
        )


@dsl.component(base_image=BASE_IMAGE)
def evaluate(
    timing_path: str,
    fail_stage: str,
    test_data: Input[Dataset],
    model: Input[Model],
    metrics: Output[Metrics],
) -> float:
    """Accuracy and loss of the trained model on the held-out Dataset (KFP Metrics); returns accuracy."""
    from models.pipeline.timing import stage_timer

    with stage_timer(timing_path, "evaluate", fail_stage):
        import os

        import numpy as np

        from models.predict import quiet_tensorflow

        quiet_tensorflow()
        import keras

        net = keras.models.load_model(os.path.join(model.path, "model.keras"))
        with np.load(test_data.path) as data:
            x, y = data["x"], data["y"]
        logits = np.asarray(net.predict(x, batch_size=500, verbose=0))
        accuracy = float(np.mean(np.argmax(logits, axis=1) == y))
        loss = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits))
        metrics.log_metric("accuracy", accuracy)
        metrics.log_metric("loss", loss)
        metrics.log_metric("test_images", float(len(y)))
    return accuracy


@dsl.pipeline(
    name=PIPELINE_NAME, description="The study's custom model: TF/Keras digit recogniser as lightweight components."
)
def custom_pipeline(
    epochs: int = 3,
    batch_size: int = 64,
    learning_rate: float = 0.001,
    train_size: int = 4000,
    test_size: int = 1000,
    seed: int = 0,
    timing_path: str = "",
    fail_stage: str = "",
) -> float:
    """Defaults are the quick settings (~30 s of TF work on 2 cores); returns held-out accuracy."""
    timing = {"timing_path": timing_path, "fail_stage": fail_stage}
    data = load_data(train_size=train_size, test_size=test_size, seed=seed, **timing)
    fit = train(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        train_data=data.outputs["train_data"],
        **timing,
    )
    ev = evaluate(test_data=data.outputs["test_data"], model=fit.outputs["model"], **timing)
    return ev.outputs["Output"]


def compile_custom(output: str | Path) -> Path:
    """Write the custom pipeline's KFP IR YAML to ``output`` (parents created) and return its path."""
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(custom_pipeline, package_path=str(path))
    return path
