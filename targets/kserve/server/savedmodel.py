"""Finds where a TensorFlow SavedModel lies: the folder holding ``saved_model.pb``.

Used in the server process by the entry point (:mod:`targets.kserve.server.main`: checks the
folder before any port opens) and the model class (:mod:`targets.kserve.server.model`: loads
from it), and in servebench's process by the adapter (:func:`targets.kserve.target.find_savedmodel`).
Standard library only, so the server process can import it before kserve.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["resolve_savedmodel_dir"]


def resolve_savedmodel_dir(path: str | os.PathLike[str], model_name: str = "") -> Path:
    """Find the folder holding ``saved_model.pb``.

    Accepts the version folder itself (``savedmodel/mnist/1``), a TF-Serving model base
    (``savedmodel/mnist`` with numeric version folders: the highest wins, as TF Serving
    does) or the ``savedmodel/`` folder plus ``model_name``.  Raises ``FileNotFoundError``
    naming what was looked for, so a wrong ``--model-dir`` fails before any port opens.
    """
    base = Path(path)
    candidates = [base]
    if model_name:
        candidates.append(base / model_name)
    for folder in candidates:
        if (folder / "saved_model.pb").is_file():
            return folder
        if folder.is_dir():
            versions = sorted(
                (int(p.name), p) for p in folder.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()
            )
            if versions:
                return versions[-1][1]
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"no SavedModel (saved_model.pb) in {looked} or its numeric version folders")
