"""A pipeline run's report: the study's Table 4 or Table 5 with ours beside it, Figure 22 or 23.

Why from the run's files alone: like every servebench report it must be regenerable after
the fact (``bench report RUN``), for local and remote runs alike.  Inputs:
``pipeline_stages.csv`` (required), ``meta.json`` and ``pipeline_summary.csv`` (optional:
status, where it ran, the custom pipeline's accuracy).  The study's numbers come from
``results/reference/`` (transcriptions, labelled as such).  A run with a failed stage is
rendered with the rows it has, and the failure is marked in every table and figure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.pipeline.stages import (
    STAGES_FILE,
    SUMMARY_FILE,
    StageRow,
    StudyMetric,
    read_stages,
    read_summary_values,
    study_metrics,
)

__all__ = ["render_pipeline_report", "stages_markdown", "study_table_markdown"]

_STUDY_TABLE = {"custom": 4, "servebench": 5}
_KEY_COLUMN = {4: "metric", 5: "step"}
_DEFINITIONS = {
    "total_pipeline_time": "`total` row: wall time of the whole pipeline run",
    "model_running_time": "`train` + `evaluate`: the component bodies that fit and score the model",
    "katib_experiment": "`tune`: the Katib-rule random search",
    "tfjob": "`train` + `export`: fit the best parameters, save TorchScript + SavedModel",
    "model_serving": "`serve`: KServe stand-in start to its first correct answer",
    "total_time": "`total` row: wall time of the whole pipeline run",
}
_TITLES = {
    4: "Table 4: custom-model pipeline, total pipeline time and model running time (seconds)",
    5: "Table 5: time per step of the end-to-end pipeline (seconds)",
}


def _study(table: int, reference_dir: Path | None) -> dict[str, tuple[float, float]] | None:
    """``key -> (gcp_s, ibm_s)`` from results/reference, or None when the file is missing."""
    from bench.reference import load_reference

    try:
        frame = load_reference(table, reference_dir)
    except FileNotFoundError:
        return None
    key = _KEY_COLUMN[table]
    return {str(r[key]): (float(r["gcp_s"]), float(r["ibm_s"])) for _, r in frame.iterrows()}


def _cell(m: StudyMetric) -> str:
    if m.seconds is None:
        return "– (not run)"
    text = f"{m.seconds:.2f}"
    if m.status == "failed":
        return f"{text} (**failed**: {', '.join(m.failed)})"
    if m.status == "incomplete":
        return f"{text} (incomplete: {', '.join(m.missing)} not run)"
    return text


def _where(meta: dict[str, Any]) -> str:
    for key in ("runner", "target", "endpoint"):
        if meta.get(key):
            return str(meta[key])
    return "unknown (no meta.json)"


def study_table_markdown(pipeline: str, run_id: str, metrics: list[StudyMetric],
                         study: dict[str, tuple[float, float]] | None, *, where: str,
                         accuracy: float | None = None) -> str:
    """Table 4 (``custom``) or Table 5 (``servebench``): ours, the study's GCP and IBM, our definition."""
    table = _STUDY_TABLE[pipeline]
    lines = [
        f"# {_TITLES[table]}",
        "",
        f"Run `{run_id}` (pipeline `{pipeline}`, ran with {where}) beside the study's Kubeflow runs.",
        "",
        ("| study row | servebench, this run (s) | study: Kubeflow on GCP (s) | study: Kubeflow on IBM Cloud (s) "
         "| our stages (definition) |"),
        "|---|---:|---:|---:|---|",
    ]
    for m in metrics:
        gcp, ibm = study.get(m.key, (None, None)) if study else (None, None)
        lines.append(f"| {m.label} | {_cell(m)} | {'–' if gcp is None else f'{gcp:g}'} "
                     f"| {'–' if ibm is None else f'{ibm:g}'} | {_DEFINITIONS[m.key]} |")
    lines.append("")
    if accuracy is not None:
        lines += [f"Held-out accuracy of the trained model (`evaluate`, KFP Metrics): {accuracy:.4f}.", ""]
    if study is None:
        lines.append(f"The study's Table {table} was not found in results/reference/; only our times are shown.")
    else:
        lines.append(f"Study: its Table {table} as transcribed in results/reference/ (not measured here).")
    lines.append(
        "Ours: seconds from `pipeline_stages.csv`; each stage is its component body as timed inside the "
        "component (imports included), `total` is the wall time around the whole run (orchestrator "
        "start-up per task included). The study ran on managed Kubeflow clusters (pod scheduling, image "
        "pulls, cloud storage); compare the shape -- which step dominates -- rather than the absolute seconds."
    )
    if pipeline == "servebench":
        lines.append(
            "Mapping: the study's TFJob trained the model and saved it for serving inside the same job, so "
            "our `export` is counted with `train`; `smoke` (a short load sweep) has no study counterpart and "
            "appears only in the stage table of report.md. The study's steps do not add up to its total "
            "(results/reference/README.md); ours need not either."
        )
    return "\n".join(lines) + "\n"


def stages_markdown(rows: list[StageRow], expected: tuple[str, ...] = ()) -> str:
    """Every stage row as written, then any ``expected`` stage that has no row, as 'not run'."""
    lines = ["| stage | start (UTC) | end (UTC) | seconds | status |", "|---|---|---|---:|---|"]
    for r in rows:
        status = r.status if r.status == "ok" else f"**{r.status}**"
        lines.append(f"| {r.stage} | {r.start} | {r.end} | {r.seconds:.2f} | {status} |")
    have = {r.stage for r in rows}
    for stage in expected:
        if stage not in have:
            lines.append(f"| {stage} | – | – | – | not run |")
    return "\n".join(lines) + "\n"


def _figure(pipeline: str, run_id: str, metrics: list[StudyMetric], study: dict[str, tuple[float, float]] | None,
            path: Path) -> Path:
    from models.pipeline.figures import Series, grouped_bars

    if pipeline == "custom":
        number, what = 22, "custom-model pipeline: total pipeline time and model running time"
        categories = [m.label for m in metrics]
    else:
        number, what = 23, "end-to-end pipeline: time per study step"
        categories = [f"{m.label}\n(ours: {m.from_stages})" for m in metrics]
    ours = Series(
        f"servebench, run {run_id}",
        [m.seconds for m in metrics],
        notes=["failed" if m.status == "failed" else "incomplete" if m.status == "incomplete" else
               "not run" if m.seconds is None else "" for m in metrics],
        hatched=[m.status != "ok" for m in metrics],
    )
    series = [ours]
    if study is not None:
        series += [Series("study: Kubeflow on GCP", [study.get(m.key, (None, None))[0] for m in metrics],
                          notes=["not in study" if m.key not in study else "" for m in metrics]),
                   Series("study: Kubeflow on IBM Cloud", [study.get(m.key, (None, None))[1] for m in metrics],
                          notes=["not in study" if m.key not in study else "" for m in metrics])]
    caption = ("Ours: this run's stage times from pipeline_stages.csv. Study: its Table "
               f"{_STUDY_TABLE[pipeline]} (transcribed). Values are printed on the bars; a log axis is used when "
               "they differ by 10x or more. Hatched = a stage failed (time until the failure).")
    title = f"Figure {number}: {what}\nservebench (this run) vs the study's Kubeflow on GCP and IBM Cloud"
    return grouped_bars(categories, series, title=title, caption=caption, path=path)


def render_pipeline_report(run_dir: Path, out_dir: Path, *, reference_dir: Path | None = None) -> list[Path]:
    """Write table4.md or table5.md, figure22/23 PNG and report.md into ``out_dir``; return their paths.

    Raises ValueError when ``pipeline_stages.csv`` is missing or malformed.  A pipeline
    without a study table (neither ``custom`` nor ``servebench``) gets report.md only.
    """
    from models.pipeline.registry import PIPELINES, stages_for

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    rows = read_stages(run_dir / STAGES_FILE)
    meta_path = run_dir / "meta.json"
    meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    pipeline = rows[0].pipeline if rows else str(meta.get("pipeline") or "")
    if not pipeline:
        raise ValueError(f"{run_dir / STAGES_FILE} has no rows and meta.json names no pipeline")
    run_id = str(meta.get("run_id") or run_dir.name)
    where = _where(meta)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    listing: list[str] = []
    if pipeline in _STUDY_TABLE:
        table = _STUDY_TABLE[pipeline]
        metrics = study_metrics(pipeline, rows)
        study = _study(table, reference_dir)
        accuracy = read_summary_values(run_dir / SUMMARY_FILE).get("accuracy") if pipeline == "custom" else None
        md = out_dir / f"table{table}.md"
        md.write_text(study_table_markdown(pipeline, run_id, metrics, study, where=where, accuracy=accuracy),
                      encoding="utf-8")
        number = 22 if pipeline == "custom" else 23
        png = _figure(pipeline, run_id, metrics, study, out_dir / f"figure{number}_pipeline_{pipeline}.png")
        paths += [md, png]
        listing += [f"- [{md.name}]({md.name}) -- the study's Table {table} with this run beside it",
                    f"- [{png.name}]({png.name}) -- Figure {number}: the same numbers as grouped bars"]
    failed = [r.stage for r in rows if r.status != "ok" and r.stage != "total"] or (
        [str(meta["failed_stage"])] if meta.get("failed_stage") else [])
    status = str(meta.get("status") or ("failed" if failed else "ok"))
    expected = stages_for(pipeline) if pipeline in PIPELINES else ()
    lines = [f"# Pipeline run {run_id}", "",
             f"- pipeline: `{pipeline}`; where: {where}; status: **{status}**",
             f"- started: {meta.get('started_utc', '–')}; finished: {meta.get('finished_utc') or '–'}"]
    if failed:
        lines.append(f"- **failed stage: {', '.join(failed)}**" + (f" ({meta['error']})" if meta.get("error") else "")
                     + " -- the rows that exist are shown; later stages did not run")
    if pipeline not in _STUDY_TABLE:
        lines.append(f"- the study has no table for a pipeline named `{pipeline}`; only the stage times are shown")
    lines += ["", *listing, "", "## Stage times", "", stages_markdown(rows, expected)]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return [*paths, report]
