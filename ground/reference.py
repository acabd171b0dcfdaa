"""The study's own numbers (results/reference/*.csv), for overlays and side-by-side tables.

Why a module: the paper's Table 3 is the result servebench reproduces; reports draw it as a
dashed "study" line and print it beside a run. The numbers are transcriptions (see
``results/reference/README.md``), never measurements, and are labelled as such wherever shown.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = [
    "REFERENCE_DIR",
    "STUDY_COLUMNS",
    "STUDY_MODE",
    "load_reference",
    "study_table3",
]

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "results" / "reference"

# bench.toml target name -> the study's Table 3 column heading.
STUDY_COLUMNS: dict[str, str] = {
    "greene-linserv": "w/o KF baremetal",
    "k8s-ibm": "w/o KF K8 cluster",
    "kubeflow-gcp": "w KF GCP",
    "kubeflow-ibm": "w KF IBM",
}

# The study sent its requests one after another, so its numbers compare with this mode only.
STUDY_MODE = "sequential"

_FILES = {
    1: "table1_katib_hyperparameters.csv",
    2: "table2_katib_time.csv",
    3: "table3_inference_time.csv",
    4: "table4_kubeflow_gcp_vs_ibm.csv",
    5: "table5_e2e_pipeline_steps.csv",
}


def load_reference(table: int, directory: Path | None = None) -> pd.DataFrame:
    """One of the study's tables (1..5) as transcribed; raises FileNotFoundError naming the file."""
    if table not in _FILES:
        raise ValueError(f"the study has tables 1..5, not {table}")
    path = (directory or REFERENCE_DIR) / _FILES[table]
    if not path.is_file():
        raise FileNotFoundError(f"study reference table {table} not found at {path}")
    return pd.read_csv(path)


def study_table3(directory: Path | None = None) -> pd.DataFrame:
    """Table 3 in long form: columns ``target, n_requests, total_s`` (seconds, sequential)."""
    wide = load_reference(3, directory)
    long = wide.melt(id_vars="n_requests", var_name="target", value_name="total_s")
    return long[["target", "n_requests", "total_s"]].sort_values(["target", "n_requests"], ignore_index=True)
