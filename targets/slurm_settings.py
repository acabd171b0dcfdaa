"""The checks of a ``flask`` target's ``hpc_dir`` and ``slurm_*`` keys (the Slurm training script's values).

Why a module of its own: the adapter's settings (:class:`targets.flask_target.FlaskSettings`)
check these values when bench.toml is read, and the training-manifest renderer
(:mod:`targets.manifests_training`) dispatches on the adapters' settings types; with the
checks in the renderer the two modules would import each other.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["check_slurm_settings"]

# sbatch --time: minutes, minutes:seconds, hours:minutes:seconds, days-hours,
# days-hours:minutes, days-hours:minutes:seconds.
_SLURM_TIME = re.compile(r"^(\d+(:\d{1,2}){0,2}|\d+-\d{1,2}(:\d{1,2}){0,2})$")
_SLURM_MEM = re.compile(r"^[1-9]\d*[KMGT]?$")
_SLURM_NAME = re.compile(r"^[A-Za-z0-9_.,-]*$")
_MODULE = re.compile(r"^[A-Za-z0-9_.+/-]+$")
# A folder that the script may put in double quotes: shell variables ($SCRATCH,
# ${HOME}) expand there; no spaces, quotes, backticks, ~ (not expanded in quotes) or ;|&.
_HPC_DIR = re.compile(r"^[A-Za-z0-9_./${}+-]+$")


def check_slurm_settings(s: Any) -> None:
    """ValueError naming the key when a ``hpc_dir``/``slurm_*`` value would break the script."""
    if not _HPC_DIR.match(s.hpc_dir) or "$(" in s.hpc_dir:
        raise ValueError(f"hpc_dir must be a path (letters, digits, _ . / - + and $VARIABLES; no spaces, "
                         f"quotes or ~), got {s.hpc_dir!r}")
    if not _SLURM_TIME.match(s.slurm_time):
        raise ValueError(f"slurm_time must be a Slurm time limit (MM, HH:MM:SS or D-HH[:MM[:SS]]), got {s.slurm_time!r}")
    if not _SLURM_MEM.match(s.slurm_mem):
        raise ValueError(f"slurm_mem must be a size like 8G or 8000M, got {s.slurm_mem!r}")
    for key in ("slurm_partition", "slurm_account"):
        if not _SLURM_NAME.match(getattr(s, key)):
            raise ValueError(f"{key} must be a Slurm name (letters, digits, _ . , -), got {getattr(s, key)!r}")
    for module in s.slurm_modules:
        if not _MODULE.match(module):
            raise ValueError(f"slurm_modules entries must be module names like python/3.11, got {module!r}")
