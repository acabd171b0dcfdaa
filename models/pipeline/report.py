"""A pipeline run's report: the study's Table 4 or Table 5 with ours beside it, Figure 22 or 23.

Why from the run's files alone: like every servebench report it must be regenerable after
the fact (``bench report RUN``), for local and remote runs alike.  Inputs:
``pipeline_stages.csv`` (required), ``meta.json`` and ``pipeline_summary.csv`` (optional:
status, where it ran, the custom pipeline's accuracy).  The study's numbers come from
``results/reference/`` (transcriptions, labelled as such).  A run with a failed stage is
rendered with the rows it has, and the failure is marked in every table and figure.

The table and figure functions take a *sequence* of runs: one for a run's own report, several
for the side-by-side report of :mod:`models.pipeline.combined` (one column and one bar per
run, plus ratio columns against the first run) -- one renderer, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ground.runmeta import RunMeta, RunStatus, parse_status, read_run_meta
from models.pipeline.stages import (
    STAGES_FILE,
    SUMMARY_FILE,
    StageRow,
    StudyMetric,
    read_stages,
    read_summary_values,
    study_metrics,
)

__all__ = [
    "STUDY_TABLE",
    "PipelineRun",
    "figure_name",
    "load_pipeline_run",
    "load_study",
    "ratio_cell",
    "render_pipeline_report",
    "stages_markdown",
    "study_figure",
    "study_table_markdown",
    "where_label",
]

#: pipeline -> the study's table number (the two pipelines the study timed)
STUDY_TABLE = {"custom": 4, "servebench": 5}
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

Study = dict[str, tuple[float, float]]


@dataclass(frozen=True)
class PipelineRun:
    """One pipeline run as read from its files: everything its tables and figures show."""

    run_id: str
    pipeline: str
    where: str  # "local kfp.local", "remote <host> (target NAME)", ...
    rows: tuple[StageRow, ...]
    metrics: tuple[StudyMetric, ...]
    status: RunStatus
    failed: tuple[str, ...]  # stages that failed
    meta: RunMeta | None  # None when the run has no meta.json
    accuracy: float | None = None

    @property
    def label(self) -> str:
        """Column header / legend text: the run id and where it ran."""
        return f"{self.run_id} ({self.where})"


def where_label(run_meta: RunMeta | None) -> str:
    """Where a run ran, from its meta.json: ``local kfp.local`` or the remote KFP host and target.

    Why not just ``runner``: a remote run's runner is ``kfp.Client`` for every cluster; what
    tells two clusters apart is the host of ``kfp_endpoint`` (``meta["kfp"]["kfp_host"]``,
    written by bench/pipeline/remote_run.py) and the target name.
    """
    if run_meta is None:
        return "unknown (no meta.json)"
    meta = run_meta.details
    runner = str(meta.get("runner") or "")
    if meta.get("mode") == "remote" or runner == "kfp.Client":
        kfp = meta.get("kfp") if isinstance(meta.get("kfp"), dict) else {}
        host, target = kfp.get("kfp_host"), meta.get("target")
        if host:
            return f"remote {host}" + (f", target {target}" if target else "")
        return f"remote, target {target}" if target else "remote (host not recorded)"
    if runner.startswith("kfp.local"):
        return "local kfp.local"
    for key in ("runner", "target", "endpoint"):
        if meta.get(key):
            return str(meta[key])
    return "unknown (meta.json names no runner)"


def load_pipeline_run(run_dir: Path) -> PipelineRun:
    """Read one run's ``pipeline_stages.csv`` (+ optional meta.json, pipeline_summary.csv).

    Raises ValueError when the stage file is missing or malformed, or names no pipeline.
    """
    run_dir = Path(run_dir)
    rows = read_stages(run_dir / STAGES_FILE)
    meta = read_run_meta(run_dir / "meta.json")  # MetaError is a ValueError naming the file
    details = meta.details if meta else {}
    pipeline = rows[0].pipeline if rows else str(details.get("pipeline") or "")
    if not pipeline:
        raise ValueError(f"{run_dir / STAGES_FILE} has no rows and meta.json names no pipeline")
    failed = tuple(r.stage for r in rows if r.status != "ok" and r.stage != "total") or (
        (str(details["failed_stage"]),) if details.get("failed_stage") else ()
    )
    accuracy = read_summary_values(run_dir / SUMMARY_FILE).get("accuracy") if pipeline == "custom" else None
    return PipelineRun(
        run_id=meta.run_id if meta and meta.run_id else run_dir.name,
        pipeline=pipeline,
        where=where_label(meta),
        rows=tuple(rows),
        metrics=tuple(study_metrics(pipeline, rows)),
        status=meta.status if meta else _status_from_stages(rows, failed),
        failed=failed,
        meta=meta,
        accuracy=accuracy,
    )


def _status_from_stages(rows: Sequence[StageRow], failed: tuple[str, ...]) -> RunStatus:
    """A run without meta.json: failed if a stage failed, else what its ``total`` row says."""
    if failed:
        return RunStatus.FAILED
    total = next((r for r in rows if r.stage == "total"), None)
    return parse_status(total.status)[0] if total else RunStatus.UNKNOWN


def load_study(pipeline: str, reference_dir: Path | None = None) -> Study | None:
    """``key -> (gcp_s, ibm_s)`` of the study's Table 4/5 from results/reference; None when missing."""
    from ground.reference import load_reference

    table = STUDY_TABLE[pipeline]
    try:
        frame = load_reference(table, reference_dir)
    except FileNotFoundError:
        return None
    key = _KEY_COLUMN[table]
    return {str(r[key]): (float(r["gcp_s"]), float(r["ibm_s"])) for _, r in frame.iterrows()}


def figure_name(pipeline: str) -> str:
    """``figure22_pipeline_custom.png`` / ``figure23_pipeline_servebench.png``."""
    return f"figure{22 if pipeline == 'custom' else 23}_pipeline_{pipeline}.png"


def _cell(m: StudyMetric) -> str:
    if m.seconds is None:
        return "– (not run)"
    text = f"{m.seconds:.2f}"
    if m.status == "failed":
        return f"{text} (**failed**: {', '.join(m.failed)})"
    if m.status == "incomplete":
        return f"{text} (incomplete: {', '.join(m.missing)} not run)"
    return text


def ratio_cell(
    a: float | None, a_state: str, b: float | None, b_state: str, *, a_name: str = "A", b_name: str = "B"
) -> str:
    """``b / a`` to two decimals, or ``–`` with the reason when either side is not a complete time.

    Why refuse partial times: a failed stage's seconds are "time until the failure", and a
    ratio of that to a finished stage would look like a speed-up that never happened.
    """
    for name, value, state in ((a_name, a, a_state), (b_name, b, b_state)):
        if value is None or state != "ok":
            return f"– ({name} {'not run' if value is None else state})"
    if not a:  # 0 s (or None, excluded above): no meaningful ratio
        return f"– ({a_name} is 0 s)"
    return f"{(b or 0.0) / a:.2f}"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"


def study_table_markdown(pipeline: str, runs: Sequence[PipelineRun], study: Study | None) -> str:
    """Table 4 (``custom``) or Table 5 (``servebench``): one column per run, the study's GCP and IBM.

    With two or more runs, a ``B / A`` column per later run (its seconds over the first run's)
    and the study's own IBM / GCP ratio follow, so a cluster-vs-cluster comparison of ours
    reads against the study's.
    """
    if not runs:
        raise ValueError("study_table_markdown needs at least one run")
    table, first, later = STUDY_TABLE[pipeline], runs[0], runs[1:]
    header = [
        "study row",
        *(f"`{r.run_id}`: {r.where} (s)" for r in runs),
        *(f"`{r.run_id}` / `{first.run_id}`" for r in later),
        "study: Kubeflow on GCP (s)",
        "study: Kubeflow on IBM Cloud (s)",
    ]
    header += ["study: IBM / GCP"] if later else []
    header.append("our stages (definition)")
    if len(runs) == 1:
        intro = (
            f"Run `{first.run_id}` (pipeline `{pipeline}`, ran with {first.where}) beside the study's Kubeflow runs."
        )
    else:
        listed = ", ".join(f"`{r.run_id}` ({r.where})" for r in runs)
        intro = (
            f"Runs {listed} of pipeline `{pipeline}` side by side, beside the study's Kubeflow runs. "
            f"`X` / `{first.run_id}` = run X's seconds divided by `{first.run_id}`'s: below 1 means X was "
            "faster. A ratio is given only where both runs completed every stage of the row."
        )
    lines = [
        f"# {_TITLES[table]}",
        "",
        intro,
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 2) + "---|",
    ]
    for i, m in enumerate(first.metrics):
        gcp, ibm = study.get(m.key, (None, None)) if study else (None, None)
        cells = [
            m.label,
            *(_cell(r.metrics[i]) for r in runs),
            *(
                ratio_cell(
                    m.seconds,
                    m.status,
                    r.metrics[i].seconds,
                    r.metrics[i].status,
                    a_name=f"`{first.run_id}`",
                    b_name=f"`{r.run_id}`",
                )
                for r in later
            ),
            _num(gcp),
            _num(ibm),
        ]
        if later:
            cells.append("–" if gcp is None or ibm is None or gcp <= 0 else f"{ibm / gcp:.2f}")
        cells.append(_DEFINITIONS[m.key])
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for r in runs:
        if r.status is not RunStatus.COMPLETE:
            error = r.meta.error if r.meta else None
            lines.append(
                f"**Run `{r.run_id}` {r.status.value}**"
                + (f" (stage {', '.join(r.failed)})" if r.failed else "")
                + (f": {error}" if error else "")
                + ". Its cells show the rows it has."
            )
    accuracies = [(r.run_id, r.accuracy) for r in runs if r.accuracy is not None]
    if len(runs) == 1 and accuracies:
        lines += [f"Held-out accuracy of the trained model (`evaluate`, KFP Metrics): {accuracies[0][1]:.4f}.", ""]
    elif accuracies:
        lines += [
            "Held-out accuracy of the trained model (`evaluate`, KFP Metrics): "
            + ", ".join(f"`{run_id}` {acc:.4f}" for run_id, acc in accuracies)
            + ".",
            "",
        ]
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


def stages_markdown(rows: Sequence[StageRow], expected: tuple[str, ...] = ()) -> str:
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


def study_figure(pipeline: str, runs: Sequence[PipelineRun], study: Study | None, path: Path) -> Path:
    """Figure 22 / 23: one bar group per study row; one bar per run, then the study's GCP and IBM bars."""
    from models.pipeline.figures import RUN_COLORS, STUDY_COLORS, Series, grouped_bars

    metrics = runs[0].metrics
    if pipeline == "custom":
        number, what = 22, "custom-model pipeline: total pipeline time and model running time"
        categories = [m.label for m in metrics]
    else:
        number, what = 23, "end-to-end pipeline: time per study step"
        categories = [f"{m.label}\n(ours: {m.from_stages})" for m in metrics]
    series = [
        Series(
            f"servebench, run {r.label}",
            [m.seconds for m in r.metrics],
            notes=[
                "failed"
                if m.status == "failed"
                else "incomplete"
                if m.status == "incomplete"
                else "not run"
                if m.seconds is None
                else ""
                for m in r.metrics
            ],
            hatched=[m.status != "ok" for m in r.metrics],
            color=RUN_COLORS[i % len(RUN_COLORS)],
        )
        for i, r in enumerate(runs)
    ]
    if study is not None:
        notes = ["not in study" if m.key not in study else "" for m in metrics]
        series += [
            Series(
                "study: Kubeflow on GCP",
                [study.get(m.key, (None, None))[0] for m in metrics],
                notes=notes,
                color=STUDY_COLORS[0],
            ),
            Series(
                "study: Kubeflow on IBM Cloud",
                [study.get(m.key, (None, None))[1] for m in metrics],
                notes=notes,
                color=STUDY_COLORS[1],
            ),
        ]
    ours = "this run's stage times" if len(runs) == 1 else "each run's stage times"
    caption = (
        f"Ours: {ours} from pipeline_stages.csv. Study: its Table {STUDY_TABLE[pipeline]} (transcribed). "
        "Values are printed on the bars; a log axis is used when they differ by 10x or more. "
        "Hatched = a stage failed (time until the failure)."
    )
    who = "servebench (this run)" if len(runs) == 1 else f"{len(runs)} servebench runs"
    title = f"Figure {number}: {what}\n{who} vs the study's Kubeflow on GCP and IBM Cloud"
    return grouped_bars(categories, series, title=title, caption=caption, path=path)


def render_pipeline_report(run_dir: Path, out_dir: Path, *, reference_dir: Path | None = None) -> list[Path]:
    """Write table4.md or table5.md, figure22/23 PNG and report.md into ``out_dir``; return their paths.

    Raises ValueError when ``pipeline_stages.csv`` is missing or malformed.  A pipeline
    without a study table (neither ``custom`` nor ``servebench``) gets report.md only.
    """
    from models.pipeline.registry import PIPELINES, stages_for

    run = load_pipeline_run(run_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    listing: list[str] = []
    if run.pipeline in STUDY_TABLE:
        table = STUDY_TABLE[run.pipeline]
        study = load_study(run.pipeline, reference_dir)
        md = out_dir / f"table{table}.md"
        md.write_text(study_table_markdown(run.pipeline, [run], study), encoding="utf-8")
        png = study_figure(run.pipeline, [run], study, out_dir / figure_name(run.pipeline))
        paths += [md, png]
        listing += [
            f"- [{md.name}]({md.name}) -- the study's Table {table} with this run beside it",
            f"- [{png.name}]({png.name}) -- Figure {22 if table == 4 else 23}: the same numbers as grouped bars",
        ]
    meta = run.meta
    expected = stages_for(run.pipeline) if run.pipeline in PIPELINES else ()
    lines = [
        f"# Pipeline run {run.run_id}",
        "",
        f"- pipeline: `{run.pipeline}`; where: {run.where}; status: **{run.status.value}**",
        f"- started: {(meta and meta.started_utc) or '–'}; finished: {(meta and meta.finished_utc) or '–'}",
    ]
    if run.failed:
        error = meta.error if meta else None
        lines.append(
            f"- **failed stage: {', '.join(run.failed)}**"
            + (f" ({error})" if error else "")
            + " -- the rows that exist are shown; later stages did not run"
        )
    if run.pipeline not in STUDY_TABLE:
        lines.append(f"- the study has no table for a pipeline named `{run.pipeline}`; only the stage times are shown")
    lines += ["", *listing, "", "## Stage times", "", stages_markdown(run.rows, expected)]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return [*paths, report]
