"""Export the trained weights to TorchScript, a state_dict and a TF SavedModel, and prove parity.

Why the parity check reads the files back: what the servers load is the files on disk, not
the objects in memory.  So both exported files are loaded from disk (``torch.jit.load``,
``tf.saved_model.load`` + the serving signature) and the whole test split is run through
each on :func:`models.data.wire_pixels` inputs -- exactly what a client sends.  If they
disagree on more than 0.1 % of predicted digits or any logit differs by more than 1e-4,
:class:`ParityError` is raised with the figures and the export fails: a benchmark that
compares two stacks serving different models would measure nothing.

Layout written under ``out_dir`` (see :mod:`models.artifacts`)::

    torchscript/model.pt        TorchScript (scripted), input (N,28,28) or (N,1,28,28)
    weights/state_dict.pt       plain state_dict (load with torch.load(weights_only=True))
    savedmodel/<name>/1/        TF SavedModel, TF-Serving layout, input (N,28,28)
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from models.data import wire_pixels
from models.net import LeNet, build_keras, copy_torch_to_keras
from models.predict import SavedModelPredictor, load_torchscript, torch_logits

__all__ = [
    "MAX_ABS_LOGIT_DIFF",
    "MIN_AGREEMENT",
    "ExportReport",
    "ParityError",
    "check_parity",
    "export_all",
    "export_savedmodel",
    "export_state_dict",
    "export_torchscript",
]

MIN_AGREEMENT: float = 0.999  # share of test images on which both formats predict the same digit
MAX_ABS_LOGIT_DIFF: float = 1e-4  # largest allowed |logit_torchscript - logit_savedmodel|

TORCHSCRIPT_REL = Path("torchscript/model.pt")
STATE_DICT_REL = Path("weights/state_dict.pt")
SAVEDMODEL_REL = Path("savedmodel")


class ParityError(RuntimeError):
    """The two exported formats disagree beyond the thresholds; the message has the figures."""


@dataclass(frozen=True)
class ExportReport:
    """Accuracy of each exported file on the test split, and how closely they agree."""

    n_images: int
    torchscript_accuracy: float
    savedmodel_accuracy: float
    agreement: float
    max_abs_logit_diff: float
    savedmodel_input: str  # the serving signature's input name (V1/V2 "instances" map to it)
    savedmodel_output: str

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def export_torchscript(model: LeNet, path: Path) -> Path:
    """Script (not trace) the model so its 3-D/4-D input branch survives, and save it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    with warnings.catch_warnings():  # torch.jit is "deprecated" in 2.13; see models.predict
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(model)
        scripted.save(str(path))
    return path


def export_state_dict(model: LeNet, path: Path) -> Path:
    """Plain tensors only, so consumers can use ``torch.load(path, weights_only=True)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, str(path))
    return path


def export_savedmodel(model: LeNet, base: Path, name: str) -> Path:
    """Copy the weights into the Keras twin and write ``base/<name>/1`` (TF Serving layout)."""
    keras_model = build_keras(name)
    copy_torch_to_keras(model, keras_model)
    version_dir = base / name / "1"
    version_dir.parent.mkdir(parents=True, exist_ok=True)
    keras_model.export(str(version_dir), format="tf_saved_model", verbose=False)
    return version_dir


def check_parity(torchscript_path: Path, savedmodel_dir: Path, images: np.ndarray, labels: np.ndarray) -> ExportReport:
    """Load both files from disk, run every image through each, raise :class:`ParityError` if they differ."""
    if len(images) == 0:
        raise ParityError("parity check needs at least one test image")
    x = wire_pixels(images)
    ts = load_torchscript(torchscript_path)
    sm = SavedModelPredictor(savedmodel_dir)
    batch = 500
    ts_logits = np.concatenate([torch_logits(ts, x[i : i + batch]) for i in range(0, len(x), batch)])
    sm_logits = np.concatenate([sm(x[i : i + batch]) for i in range(0, len(x), batch)])
    if ts_logits.shape != sm_logits.shape or ts_logits.shape[1:] != (10,):
        raise ParityError(f"logit shapes differ: torchscript {ts_logits.shape}, savedmodel {sm_logits.shape}")
    ts_pred, sm_pred = ts_logits.argmax(1), sm_logits.argmax(1)
    labels = np.asarray(labels)
    report = ExportReport(
        n_images=int(len(x)),
        torchscript_accuracy=float(np.mean(ts_pred == labels)),
        savedmodel_accuracy=float(np.mean(sm_pred == labels)),
        agreement=float(np.mean(ts_pred == sm_pred)),
        max_abs_logit_diff=float(np.max(np.abs(ts_logits.astype(np.float64) - sm_logits))),
        savedmodel_input=sm.input_name,
        savedmodel_output=sm.output_name,
    )
    if report.agreement < MIN_AGREEMENT or not report.max_abs_logit_diff <= MAX_ABS_LOGIT_DIFF:
        raise ParityError(
            f"TorchScript ({torchscript_path}) and SavedModel ({savedmodel_dir}) disagree on "
            f"{len(x)} test images: digit agreement {report.agreement:.4%} (need >= {MIN_AGREEMENT:.1%}), "
            f"max |logit diff| {report.max_abs_logit_diff:.3g} (need <= {MAX_ABS_LOGIT_DIFF:g})"
        )
    return report


def export_all(model: LeNet, out_dir: Path, name: str, test_x: np.ndarray, test_y: np.ndarray) -> ExportReport:
    """Write all three artifacts under ``out_dir`` and return the parity/accuracy report."""
    ts_path = export_torchscript(model, out_dir / TORCHSCRIPT_REL)
    export_state_dict(model, out_dir / STATE_DICT_REL)
    sm_dir = export_savedmodel(model, out_dir / SAVEDMODEL_REL, name)
    return check_parity(ts_path, sm_dir, test_x, test_y)
