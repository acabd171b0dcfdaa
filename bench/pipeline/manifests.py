"""Render the cluster-side pieces of the study's E2E pipeline (``bench manifests pipeline [-o DIR]``).

What the study ran on Kubeflow after tuning (section 5.3): a TFJob training the model with
the best parameters found, and a KServe InferenceService serving the result from a PVC,
driven by a Kubeflow pipeline.  This renders the three from bench.toml:

* ``tfjob.yaml`` -- :mod:`models.pipeline.tfjob`; best parameters from the newest
  ``bench run hpo`` results (lowest held-out loss), else the middle of ``[hpo]``'s search
  space (the file header says which); image ``[hpo] image`` (it must contain servebench);
  checked field by field and its pod template against the Kubernetes 1.30 schema before
  anything is written;
* ``inferenceservice.yaml`` (+ the predictor Dockerfile for the custom-container form) --
  :func:`targets.kserve.manifests.render_kserve_manifests` for the first ``kserve`` target;
* ``servebench-pipeline.yaml`` -- the compiled KFP IR, every step in ``kfp_image`` (or
  ``[hpo] image``).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.config import BenchConfig
    from bench.console import Console

__all__ = ["best_parameters", "render_pipeline_manifests", "write_pipeline_manifests"]


def best_parameters(config: BenchConfig) -> tuple[float, int, str]:
    """(lr, batch_size, where from): the newest hpo run's best COMPLETE trial, else the space's middle."""
    from models.hpo.results import TRIALS_FILE

    candidates = sorted(Path(config.results_dir).glob(f"*/{TRIALS_FILE}"), key=lambda p: p.stat().st_mtime)
    for path in reversed(candidates):
        best: tuple[float, float, int] | None = None
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                try:
                    loss, lr, batch = float(row["loss"]), float(row["lr"]), int(float(row["batch_size"]))
                except (KeyError, TypeError, ValueError):
                    continue
                if row.get("state") == "COMPLETE" and math.isfinite(loss) and (best is None or loss < best[0]):
                    best = (loss, lr, batch)
        if best is not None:
            return best[1], best[2], f"best trial (loss {best[0]:.4f}) of {path.parent.name}/{TRIALS_FILE}"
    h = config.hpo
    return (
        round((h.lr_min + h.lr_max) / 2, 6),
        (h.batch_size_min + h.batch_size_max) // 2,
        "no `bench run hpo` results found: the middle of the [hpo] search space",
    )


def _kserve_target(config: BenchConfig) -> tuple[str, Any]:
    from ground.tables import parse_table
    from targets.kserve.target import KServeSettings, KServeTarget
    from targets.registry import resolve_adapter

    for name, spec in config.targets.items():
        cls = resolve_adapter(spec)
        if issubclass(cls, KServeTarget):
            return name, parse_table(cls.Settings, spec.settings, f"targets.{name}")
    return "kubeflow", KServeSettings()


def render_pipeline_manifests(config: BenchConfig) -> dict[str, str]:
    """File name -> text; raises ValueError listing every problem of the TFJob (nothing half-valid)."""
    import tempfile

    import kubernetes_validate
    import yaml

    from bench.pipeline.definition import pipeline_function  # lazy on purpose: imports kfp
    from models.pipeline.remote import compile_for_cluster
    from models.pipeline.tfjob import check_tfjob, render_tfjob, replica_pod
    from targets.kserve.manifests import render_kserve_manifests

    target, ks = _kserve_target(config)
    lr, batch, source = best_parameters(config)
    claim = (
        ks.storage_uri[len("pvc://") :].split("/")[0] if ks.storage_uri.startswith("pvc://") else "servebench-models"
    )
    job = render_tfjob(
        name=f"{ks.model_name}-train",
        namespace=ks.namespace,
        image=config.hpo.image,
        lr=lr,
        batch_size=batch,
        epochs=config.model.epochs,
        model_name=ks.model_name,
        pvc_claim=claim,
    )
    problems = check_tfjob(job)
    try:
        kubernetes_validate.validate(replica_pod(job), "1.30.0", strict=True)
    except kubernetes_validate.ValidationError as exc:
        problems.append(f"pod template (as a v1 Pod, Kubernetes 1.30): {exc.message}")
    if problems:
        raise ValueError("rendered TFJob is invalid: " + "; ".join(problems))
    pvc_note = (
        f"# It exports onto PVC {claim!r} at /mnt/models; the InferenceService reads {ks.storage_uri}.\n"
        if ks.storage_uri.startswith("pvc://")
        else f"# storage_uri {ks.storage_uri} is not a PVC: copy /mnt/models/savedmodel/{ks.model_name} there.\n"
    )
    files = {
        "tfjob.yaml": (
            "# TFJob (Kubeflow training operator): train the MNIST LeNet with the best parameters and export it.\n"
            f"# Parameters: lr {lr:g}, batch size {batch} -- {source}.\n"
            "# Rendered by `python -m bench manifests pipeline`; the image must contain servebench.\n"
            + pvc_note
            + yaml.safe_dump(job, sort_keys=False)
        )
    }
    files.update(render_kserve_manifests(target, ks))
    with tempfile.TemporaryDirectory(prefix="sb-ir-") as tmp:
        package = Path(tmp) / "servebench-pipeline.yaml"
        compile_for_cluster(pipeline_function("servebench"), package, ks.kfp_image or config.hpo.image)
        files["servebench-pipeline.yaml"] = package.read_text(encoding="utf-8")
    return files


def write_pipeline_manifests(config: BenchConfig, *, output: Path | None, console: Console) -> int:
    """Print the manifests, or write them into ``output``; 1 if the TFJob would be invalid."""
    from ground.tables import ConfigError

    try:
        files = render_pipeline_manifests(config)
    except ConfigError:
        raise  # bad bench.toml: the CLI reports it naming the key (exit 2)
    except ValueError as exc:
        console.error(str(exc))
        return 1
    from bench.emit import emit_files

    emit_files(files, output, console)
    return 0
