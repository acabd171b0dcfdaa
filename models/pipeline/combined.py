"""Several pipeline runs side by side: the study's Table 4/5 and Figure 22/23 with one column per run.

Why: the study's Tables 4 and 5 put two clusters (GCP, IBM Cloud) next to each other.  Ours do
the same for two or more of our runs -- one submitted to each cluster with ``--target``, or two
local runs -- with a ratio column against the first run, beside the study's two columns and
its own IBM / GCP ratio.  Everything comes from the runs' files (``pipeline_stages.csv``,
``meta.json``, ``pipeline_summary.csv``) through the same renderer as a run's own report
(:mod:`models.pipeline.report`), so a combined table never disagrees with the single ones.

Only runs of one pipeline are combined: a ``servebench`` (Table 5) and a ``custom`` (Table 4)
run have no row in common, and :class:`MixedPipelinesError` names them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from ground.runmeta import RunStatus
from models.pipeline.report import (
    STUDY_TABLE,
    PipelineRun,
    figure_name,
    load_pipeline_run,
    load_study,
    ratio_cell,
    study_figure,
    study_table_markdown,
)

__all__ = [
    "MAX_RUNS",
    "MixedPipelinesError",
    "combined_dir_name",
    "render_pipeline_comparison",
    "stage_comparison_markdown",
]

#: more runs than this make a figure whose bars cannot be read (and a table too wide)
MAX_RUNS = 6
SEPARATOR = "--vs--"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_MAX_NAME = 150  # well under the 255 bytes a file name may have, leaves room for the files inside


class MixedPipelinesError(ValueError):
    """The runs given are of different pipelines (Table 4 vs Table 5): nothing to put side by side."""


def combined_dir_name(run_ids: Sequence[str]) -> str:
    """The combined report's folder name: ``A--vs--B[--vs--C...]``; ValueError naming a bad input.

    Why validated here: the name becomes a folder under ``reports/``, so each id must be a
    plain run id (letters, digits, ``.``, ``_``, ``-``; no path separators).  When the joined
    name would exceed 150 characters it is shortened to the first id, the number of other runs
    and a hash of all ids -- still unique per list and order, and report.md names every run.
    """
    if not 2 <= len(run_ids) <= MAX_RUNS:
        raise ValueError(f"a combined report takes 2 to {MAX_RUNS} runs, got {len(run_ids)}")
    for run_id in run_ids:
        if not _RUN_ID.match(run_id):
            raise ValueError(
                f"run id {run_id!r} cannot name a report folder: use 1-100 letters, digits, "
                "'.', '_' or '-' (rename the run's folder)"
            )
    twice = sorted({r for r in run_ids if list(run_ids).count(r) > 1})
    if twice:
        raise ValueError(f"run {', '.join(twice)} given more than once; compare different runs")
    name = SEPARATOR.join(run_ids)
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256("\n".join(run_ids).encode()).hexdigest()[:10]
    return f"{run_ids[0][:80]}{SEPARATOR}{len(run_ids) - 1}-more-{digest}"


def _stage_cell(run: PipelineRun, stage: str) -> tuple[float | None, str, str]:
    """(seconds, state, text) of one stage of one run; the last row wins, as in study_metrics."""
    row = {r.stage: r for r in run.rows}.get(stage)
    if row is None:
        return None, "not run", "– (not run)"
    text = f"{row.seconds:.2f}" if row.status == "ok" else f"{row.seconds:.2f} (**{row.status}**)"
    return row.seconds, row.status, text


def stage_comparison_markdown(runs: Sequence[PipelineRun], expected: tuple[str, ...] = ()) -> str:
    """Every stage (``expected`` order, then ``total``, then any other row) with one column per run."""
    stages = [s for s in expected if s != "total"]
    for r in runs:
        stages += [row.stage for row in r.rows if row.stage not in stages and row.stage != "total"]
    stages.append("total")
    first, later = runs[0], runs[1:]
    header = ["stage", *(f"`{r.run_id}` (s)" for r in runs), *(f"`{r.run_id}` / `{first.run_id}`" for r in later)]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for stage in stages:
        cells = [_stage_cell(r, stage) for r in runs]
        a_s, a_state, _ = cells[0]
        ratios = [
            ratio_cell(a_s, a_state, b_s, b_state, a_name=f"`{first.run_id}`", b_name=f"`{r.run_id}`")
            for r, (b_s, b_state, _) in zip(later, cells[1:], strict=True)
        ]
        lines.append("| " + " | ".join([stage, *(text for _, _, text in cells), *ratios]) + " |")
    return "\n".join(lines) + "\n"


def render_pipeline_comparison(
    run_dirs: Sequence[Path], out_dir: Path, *, reference_dir: Path | None = None
) -> list[Path]:
    """Write the side-by-side table4/5.md, figure22/23 PNG and report.md into ``out_dir``.

    Raises :class:`MixedPipelinesError` when the runs are of different pipelines, and
    ValueError for fewer than two runs, more than :data:`MAX_RUNS`, a pipeline without a study
    table, or a run whose files cannot be read (the message names the run).
    """
    from models.pipeline.registry import PIPELINES, stages_for

    if not 2 <= len(run_dirs) <= MAX_RUNS:
        raise ValueError(f"a combined report takes 2 to {MAX_RUNS} runs, got {len(run_dirs)}")
    runs = [load_pipeline_run(Path(d)) for d in run_dirs]
    pipelines = {r.pipeline for r in runs}
    if len(pipelines) > 1:
        listed = ", ".join(f"{r.run_id} ({r.pipeline})" for r in runs)
        raise MixedPipelinesError(
            f"cannot put runs of different pipelines side by side: {listed}; "
            "give runs of one pipeline (servebench = Table 5, custom = Table 4)"
        )
    pipeline = runs[0].pipeline
    if pipeline not in STUDY_TABLE:
        raise ValueError(
            f"pipeline `{pipeline}` (runs {', '.join(r.run_id for r in runs)}) has no study table "
            f"to compare in; known: {', '.join(STUDY_TABLE)}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = STUDY_TABLE[pipeline]
    study = load_study(pipeline, reference_dir)
    md = out_dir / f"table{table}.md"
    md.write_text(study_table_markdown(pipeline, runs, study), encoding="utf-8")
    png = study_figure(pipeline, runs, study, out_dir / figure_name(pipeline))
    ids = " vs ".join(r.run_id for r in runs)
    lines = [
        f"# Pipeline runs side by side: {ids}",
        "",
        f"Pipeline `{pipeline}`; ratios are each run's seconds over `{runs[0].run_id}`'s (below 1 = faster).",
        "",
        "| run | where | status | started (UTC) | finished (UTC) | own report |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        status = r.status.value
        if r.status is not RunStatus.COMPLETE:
            status = f"**{status}**" + (f" (stage {', '.join(r.failed)})" if r.failed else "")
        started, finished = (r.meta.started_utc, r.meta.finished_utc) if r.meta else (None, None)
        lines.append(
            f"| `{r.run_id}` | {r.where} | {status} | {started or '–'} "
            f"| {finished or '–'} | [../{r.run_id}/report.md](../{r.run_id}/report.md) |"
        )
    lines += [
        "",
        f"- [{md.name}]({md.name}) -- the study's Table {table} with one column per run",
        f"- [{png.name}]({png.name}) -- Figure {22 if table == 4 else 23}: one bar per run beside the study's",
        "",
        "## Stage times",
        "",
        stage_comparison_markdown(runs, stages_for(pipeline) if pipeline in PIPELINES else ()),
    ]
    report = out_dir / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return [md, png, report]
