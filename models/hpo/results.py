"""HPO result files: raw trial and study rows first, the per-(algorithm, max_trials) summary after.

Files in ``results/<run-id>/``:

* ``hpo_trials.csv``  -- one row per trial, appended as trials finish (failed ones included);
* ``hpo_studies.csv`` -- one row per study (algorithm x max_trials x repeat): wall time, stop reason;
* ``hpo_summary.csv`` -- :func:`summarize_hpo` of the two above (pure; recomputable any time).

"Trials to reach within 1 % of the best": for each study, the 1-based number of the first
trial after which the best loss so far is <= 1.01 x the best loss found by *any* study of the
run (all algorithms and repeats), so algorithms are compared against one common target;
studies that never get there are counted in ``reached_1pct`` and left out of the mean.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.hpo.search import KATIB_ALGORITHMS, StudyResult, TrialRecord

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "STUDIES_FILE",
    "STUDY_COLUMNS",
    "SUMMARY_COLUMNS",
    "SUMMARY_FILE",
    "TRIALS_FILE",
    "TRIAL_COLUMNS",
    "CsvAppender",
    "best_so_far",
    "read_hpo",
    "study_row",
    "summarize_hpo",
    "trial_row",
]

TRIALS_FILE = "hpo_trials.csv"
STUDIES_FILE = "hpo_studies.csv"
SUMMARY_FILE = "hpo_summary.csv"

TRIAL_COLUMNS: tuple[str, ...] = (
    "run_id",
    "algorithm",
    "katib_algorithm",
    "max_trials",
    "repeat",
    "seed",
    "trial",
    "lr",
    "batch_size",
    "epochs",
    "loss",
    "accuracy",
    "state",
    "error",
    "start_s",
    "end_s",
    "duration_s",
    "started_at",
)
STUDY_COLUMNS: tuple[str, ...] = (
    "run_id",
    "algorithm",
    "katib_algorithm",
    "max_trials",
    "repeat",
    "seed",
    "parallel",
    "epochs",
    "trials",
    "completed",
    "failed",
    "stop_reason",
    "wall_s",
    "best_loss",
    "best_accuracy",
    "best_lr",
    "best_batch_size",
    "best_trial",
    "started_at",
)
SUMMARY_COLUMNS: tuple[str, ...] = (
    "algorithm",
    "katib_algorithm",
    "max_trials",
    "repeats",
    "trials",
    "failed",
    "wall_s_mean",
    "wall_s_std",
    "wall_s_min",
    "wall_s_max",
    "best_loss",
    "best_accuracy",
    "best_lr",
    "best_batch_size",
    "best_repeat",
    "best_loss_mean",
    "trials_to_1pct_mean",
    "reached_1pct",
    "stop_reasons",
)


def trial_row(
    record: TrialRecord, *, run_id: str, algorithm: str, max_trials: int, repeat: int, seed: int, epochs: int
) -> dict[str, Any]:
    """A ``hpo_trials.csv`` row (times rounded to microseconds)."""
    return {
        "run_id": run_id,
        "algorithm": algorithm,
        "katib_algorithm": KATIB_ALGORITHMS.get(algorithm, algorithm),
        "max_trials": max_trials,
        "repeat": repeat,
        "seed": seed,
        "trial": record.number,
        "lr": record.lr,
        "batch_size": record.batch_size,
        "epochs": epochs,
        "loss": record.loss,
        "accuracy": record.accuracy,
        "state": record.state,
        "error": record.error,
        "start_s": round(record.start_s, 6),
        "end_s": round(record.end_s, 6),
        "duration_s": round(record.end_s - record.start_s, 6),
        "started_at": round(record.started_at, 6),
    }


def study_row(study: StudyResult, *, run_id: str, repeat: int, epochs: int) -> dict[str, Any]:
    """A ``hpo_studies.csv`` row."""
    best = study.best
    return {
        "run_id": run_id,
        "algorithm": study.algorithm,
        "katib_algorithm": KATIB_ALGORITHMS.get(study.algorithm, study.algorithm),
        "max_trials": study.max_trials,
        "repeat": repeat,
        "seed": study.seed,
        "parallel": study.parallel,
        "epochs": epochs,
        "trials": len(study.trials),
        "completed": len(study.trials) - study.n_failed,
        "failed": study.n_failed,
        "stop_reason": study.stop_reason,
        "wall_s": round(study.wall_s, 6),
        "best_loss": best.loss if best else float("nan"),
        "best_accuracy": best.accuracy if best else float("nan"),
        "best_lr": best.lr if best else float("nan"),
        "best_batch_size": best.batch_size if best else "",
        "best_trial": best.number if best else "",
        "started_at": round(study.started_at, 6),
    }


class CsvAppender:
    """Append rows to a CSV with a fixed header, flushing each row (a crash loses nothing done)."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self.columns = tuple(columns)
        new = not path.exists() or path.stat().st_size == 0
        self._file = path.open("a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="raise")
        if new:
            self._writer.writeheader()
            self._file.flush()

    def write(self, row: Mapping[str, Any]) -> None:
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CsvAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def best_so_far(losses: Iterable[float]) -> list[float]:
    """Running minimum over trial losses in trial order; failed trials (NaN) keep the previous best."""
    out: list[float] = []
    best = math.inf
    for loss in losses:
        if loss == loss and loss < best:  # NaN-safe
            best = loss
        out.append(best if best < math.inf else float("nan"))
    return out


def read_hpo(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(trials, studies)`` of a run folder; raises FileNotFoundError naming a missing file."""
    import pandas as pd

    frames = []
    for name, columns in ((TRIALS_FILE, TRIAL_COLUMNS), (STUDIES_FILE, STUDY_COLUMNS)):
        path = Path(run_dir) / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found (is {run_dir} an `run hpo` results folder?)")
        frame = pd.read_csv(path, keep_default_na=True)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: missing columns {', '.join(missing)}")
        frames.append(frame)
    return frames[0], frames[1]


def summarize_hpo(trials: pd.DataFrame, studies: pd.DataFrame) -> pd.DataFrame:
    """One row per (algorithm, max_trials): wall-time mean/spread over repeats, best trial, 1 % reach."""
    import pandas as pd

    done = trials[trials["state"] == "COMPLETE"]
    target = float(done["loss"].min()) * 1.01 if len(done) else math.nan
    reach: dict[tuple[str, int, int], float] = {}
    for (alg, mt, rep), group in trials.sort_values("trial").groupby(["algorithm", "max_trials", "repeat"]):
        running = best_so_far(group["loss"].astype(float).tolist())
        hit = next((i + 1 for i, b in enumerate(running) if b == b and b <= target), math.nan)
        reach[(alg, int(mt), int(rep))] = hit
    rows = []
    order = {a: i for i, a in enumerate(KATIB_ALGORITHMS)}
    groups = sorted(studies.groupby(["algorithm", "max_trials"]), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1]))
    for (alg, mt), group in groups:
        walls = group["wall_s"].astype(float)
        these = done[(done["algorithm"] == alg) & (done["max_trials"] == mt)]
        best = these.sort_values(["loss", "repeat", "trial"]).iloc[0] if len(these) else None
        hits = [reach.get((alg, int(mt), int(r)), math.nan) for r in group["repeat"]]
        reached = [h for h in hits if h == h]
        reasons = group["stop_reason"].value_counts()
        rows.append(
            {
                "algorithm": alg,
                "katib_algorithm": KATIB_ALGORITHMS.get(alg, alg),
                "max_trials": int(mt),
                "repeats": len(group),
                "trials": int(group["trials"].sum()),
                "failed": int(group["failed"].sum()),
                "wall_s_mean": walls.mean(),
                "wall_s_std": walls.std(ddof=1) if len(walls) > 1 else math.nan,
                "wall_s_min": walls.min(),
                "wall_s_max": walls.max(),
                "best_loss": best["loss"] if best is not None else math.nan,
                "best_accuracy": best["accuracy"] if best is not None else math.nan,
                "best_lr": best["lr"] if best is not None else math.nan,
                "best_batch_size": int(best["batch_size"]) if best is not None else "",
                "best_repeat": int(best["repeat"]) if best is not None else "",
                "best_loss_mean": group["best_loss"].astype(float).mean(),
                "trials_to_1pct_mean": sum(reached) / len(reached) if reached else math.nan,
                "reached_1pct": f"{len(reached)}/{len(hits)}",
                "stop_reasons": ";".join(f"{k}:{v}" for k, v in sorted(reasons.items())),
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
