"""Reading ``pipeline_stages.csv`` and deriving the study's Table 4 / Table 5 quantities from it.

Why pure functions of the stage rows: a pipeline run's report and its ``pipeline_summary.csv``
must come from the same arithmetic, and must work for any run that wrote the stage file --
local (kfp.local) or remote (a Kubeflow cluster) alike -- with nothing else at hand.

The mapping to the study (docs/pipeline.md explains each choice):

* custom pipeline (Table 4): *total pipeline time* = the ``total`` row (wall time of the
  whole run, scheduler overhead included); *model running time* = ``train`` + ``evaluate``
  (the component bodies that build, fit and score the model; data loading and the
  orchestrator's per-task start-up excluded).
* E2E pipeline (Table 5): Katib experiment = ``tune``; TFJob = ``train`` + ``export`` (the
  study's TFJob saved the trained model for serving inside the job); model serving =
  ``serve`` (stand-in start to its first correct answer); total time = ``total``.  ``smoke``
  has no study counterpart and is only listed among the stage rows.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "STAGES_FILE",
    "STAGE_COLUMNS",
    "STUDY_METRICS",
    "SUMMARY_COLUMNS",
    "SUMMARY_FILE",
    "StageRow",
    "StudyMetric",
    "read_stages",
    "read_summary_values",
    "study_metrics",
    "summary_rows",
    "write_stages",
    "write_summary",
]

STAGES_FILE = "pipeline_stages.csv"
SUMMARY_FILE = "pipeline_summary.csv"
STAGE_COLUMNS = ("pipeline", "stage", "start", "end", "seconds", "status")
SUMMARY_COLUMNS = ("pipeline", "metric", "value", "unit", "from_stages", "status")

#: pipeline -> ((metric key as in results/reference, label as the study prints it, our stages), ...)
STUDY_METRICS: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    "custom": (
        ("total_pipeline_time", "Total pipeline time", ("total",)),
        ("model_running_time", "Model running time", ("train", "evaluate")),
    ),
    "servebench": (
        ("katib_experiment", "Katib experiment", ("tune",)),
        ("tfjob", "TFJob", ("train", "export")),
        ("model_serving", "Model serving", ("serve",)),
        ("total_time", "Total time", ("total",)),
    ),
}


@dataclass(frozen=True)
class StageRow:
    """One row of ``pipeline_stages.csv`` (times as the ISO strings written)."""

    pipeline: str
    stage: str
    start: str
    end: str
    seconds: float
    status: str


@dataclass(frozen=True)
class StudyMetric:
    """One of the study's rows computed from our stages.

    ``status``: ``ok`` (every stage present and ok), ``failed`` (a stage failed: ``seconds``
    is time until the failure), ``incomplete`` (some stage never ran), ``not run`` (none ran).
    """

    key: str
    label: str
    stages: tuple[str, ...]
    seconds: float | None
    status: str
    missing: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()

    @property
    def from_stages(self) -> str:
        return "+".join(self.stages)


def write_stages(path: Path, pipeline: str, rows: list[dict]) -> Path:
    """Write ``pipeline_stages.csv``: one writer for local and remote runs, so the format is one.

    ``rows``: dicts with ``stage``, ``start``/``end`` (epoch seconds), ``seconds``, ``status``;
    times are written as UTC ISO strings, seconds to the millisecond.
    """
    from ground.clock import utc_iso

    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(STAGE_COLUMNS)
        for r in rows:
            writer.writerow(
                [pipeline, r["stage"], utc_iso(r["start"]), utc_iso(r["end"]), f"{r['seconds']:.3f}", r["status"]]
            )
    return path


def read_stages(path: Path) -> list[StageRow]:
    """Rows of a ``pipeline_stages.csv``; raises ValueError naming the file and the problem.

    Stage names are read with ``-`` as ``_``: KFP's compiled IR names the task of
    ``load_data`` ``load-data``, so a run timed from a cluster's task details may write either.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = set(STAGE_COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{path} lacks columns {sorted(missing)}; is it a pipeline_stages.csv?")
            rows = list(reader)
    except FileNotFoundError:
        raise ValueError(f"{path} not found: the run wrote no stage timings") from None
    out = []
    for number, r in enumerate(rows, start=2):
        try:
            seconds = float(r["seconds"])
        except (TypeError, ValueError):
            raise ValueError(f"{path} line {number}: seconds {r['seconds']!r} is not a number") from None
        if math.isnan(seconds) or seconds < 0:
            raise ValueError(f"{path} line {number}: seconds must be >= 0, got {r['seconds']!r}")
        out.append(StageRow(r["pipeline"], r["stage"].replace("-", "_"), r["start"], r["end"], seconds, r["status"]))
    names = {r.pipeline for r in out}
    if len(names) > 1:
        raise ValueError(f"{path} mixes pipelines {sorted(names)}; one run is one pipeline")
    return out


def study_metrics(pipeline: str, rows: list[StageRow]) -> list[StudyMetric]:
    """The study's Table 4 (``custom``) or Table 5 (``servebench``) rows from our stage rows.

    An unknown pipeline has no study table: returns ``[]``.  A stage that appears twice
    (it should not) counts once, the last row winning, as the file is written in order.
    """
    by_stage = {r.stage: r for r in rows}
    metrics = []
    for key, label, stages in STUDY_METRICS.get(pipeline, ()):
        present = [by_stage[s] for s in stages if s in by_stage]
        missing = tuple(s for s in stages if s not in by_stage)
        failed = tuple(r.stage for r in present if r.status != "ok")
        seconds = sum(r.seconds for r in present) if present else None
        if not present:
            status = "not run"
        elif failed:
            status = "failed"
        elif missing:
            status = "incomplete"
        else:
            status = "ok"
        metrics.append(StudyMetric(key, label, stages, seconds, status, missing, failed))
    return metrics


def summary_rows(pipeline: str, rows: list[StageRow], extra: dict[str, float] | None = None) -> list[dict[str, str]]:
    """``pipeline_summary.csv`` rows: the study metrics in seconds, then ``extra`` values.

    ``extra`` carries pipeline outputs that are not times (the custom pipeline's held-out
    ``accuracy``, a fraction), written with unit ``fraction`` and ``from_stages`` = the
    stage that produced it (``evaluate``).
    """
    out = [
        {
            "pipeline": pipeline,
            "metric": m.key,
            "value": "" if m.seconds is None else f"{m.seconds:.3f}",
            "unit": "s",
            "from_stages": m.from_stages,
            "status": m.status,
        }
        for m in study_metrics(pipeline, rows)
    ]
    for key, value in (extra or {}).items():
        out.append(
            {
                "pipeline": pipeline,
                "metric": key,
                "value": f"{value:.6g}",
                "unit": "fraction",
                "from_stages": "evaluate",
                "status": "ok",
            }
        )
    return out


def write_summary(path: Path, rows: list[dict[str, str]]) -> Path:
    """Write ``pipeline_summary.csv`` (header + rows); returns the path."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


def read_summary_values(path: Path) -> dict[str, float]:
    """``metric -> value`` from a ``pipeline_summary.csv`` (missing file or empty values skipped)."""
    if not Path(path).is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        values = {}
        for r in csv.DictReader(fh):
            try:
                values[r["metric"]] = float(r["value"])
            except (KeyError, TypeError, ValueError):
                continue
        return values
