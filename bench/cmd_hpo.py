"""`python -m bench run hpo` and `python -m bench manifests hpo`: the study's Katib tuning.

Why a command of its own: the study tuned the MNIST model with Katib (grid, random and
Bayesian search over lr in [0.01, 0.05] and batch size in [80, 100], minimising loss with
goal 0.001) and reported the best trial (Table 1) and the time per algorithm and trial
budget (Table 2, Figure 20).  This command runs the same search on one machine -- one
Optuna study per (repeat, max_trials, algorithm), trials as processes, ``parallel`` at a
time with one torch thread each -- and writes raw trial rows as they finish.

Execution order interleaves algorithms inside each (repeat, max_trials) so that a slow
period of a shared machine does not land on one algorithm only.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from bench.config import BenchConfig, ConfigError
from bench.console import Console
from ground.runmeta import KIND_HPO, RunMeta, RunStatus

__all__ = ["run_hpo", "write_hpo_manifests"]


def _model_toml(config: BenchConfig) -> str:
    """The [model] table for trial processes, with idx_dir made absolute (they read it elsewhere)."""
    model = config.model
    lines = ["# [model] table used by every trial process of this run (written by bench run hpo)", "[model]"]
    for f in fields(model):
        value = getattr(model, f.name)
        if f.name == "idx_dir" and value:
            value = str((config.root / value).resolve())
        if f.name == "artifacts_dir":
            value = str((config.root / value).resolve())
        lines.append(f"{f.name} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt in the main thread, so trial processes are stopped, not orphaned."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _meta(config: BenchConfig, run_id: str, settings: dict) -> RunMeta:
    from bench.meta import run_header

    return run_header(
        kind=KIND_HPO, run_id=run_id, root=config.root, extra_packages=("optuna", "torch"),
        config={"root": str(config.root), "sha256": config.sha256},
        hpo=settings,
        model={k: v for k, v in asdict(config.model).items()},
        execution=(
            "each trial is a `python -m models.trial` process (1 torch thread) whose loss=/accuracy= lines are "
            "parsed like Katib's StdOut collector; `parallel` trials at a time; studies run one after another, "
            "algorithms interleaved within each (repeat, max_trials)"
        ),
        totals={},
    )


def _num(value: float, spec: str) -> str:
    return "–" if value != value else format(value, spec)  # NaN -> dash


def _summary_cells(r: Any) -> list[Any]:
    """One console row of the summary (a pandas itertuples row)."""
    return [
        r.algorithm, r.max_trials, _num(r.wall_s_mean, ".1f"), _num(r.wall_s_std, ".1f"), r.failed,
        _num(r.best_loss, ".4f"), _num(r.best_lr, ".4f"), r.best_batch_size,
        f"{_num(r.trials_to_1pct_mean, '.1f')} ({r.reached_1pct})",
    ]


def run_hpo(
    config: BenchConfig,
    *,
    algorithms: list[str] | None,
    max_trials: list[int] | None,
    parallel: int | None,
    epochs: int | None,
    repeats: int | None,
    run_id: str | None,
    write_report: bool,
    console: Console,
) -> int:
    """Run every study, write results/<run-id>/hpo_*.csv + meta.json, then the report. 0 = ok."""
    import optuna

    from bench.results import ResultsError, fresh_run_dir, write_meta_file
    from models.data import DataError, load_dataset
    from models.hpo.results import (
        STUDIES_FILE,
        STUDY_COLUMNS,
        SUMMARY_FILE,
        TRIAL_COLUMNS,
        TRIALS_FILE,
        CsvAppender,
        read_hpo,
        study_row,
        summarize_hpo,
        trial_row,
    )
    from models.hpo.runner import ProcessTrialRunner
    from models.hpo.search import ALGORITHMS, derive_seed, run_study
    from models.hpo.space import SearchSpace

    hpo = config.hpo
    algorithms = list(algorithms or hpo.algorithms)
    max_trials = list(max_trials or hpo.max_trials)
    parallel = parallel if parallel is not None else hpo.parallel
    epochs = epochs if epochs is not None else hpo.epochs
    repeats = repeats if repeats is not None else hpo.repeats
    unknown = [a for a in algorithms if a not in ALGORITHMS]
    if unknown:
        raise ConfigError("--algorithms", f"unknown algorithm(s) {', '.join(unknown)}; known: {', '.join(ALGORITHMS)}")
    if any(n < 1 for n in max_trials):
        raise ConfigError("--max-trials", f"every count must be >= 1, got {max_trials}")
    for name, value in (("--parallel", parallel), ("--epochs", epochs), ("--repeats", repeats)):
        if value < 1:
            raise ConfigError(name, f"must be >= 1, got {value}")
    try:
        run_dir = fresh_run_dir(config.results_dir, run_id, "hpo")
    except ResultsError as exc:
        console.error(str(exc))
        return 2
    if (run_dir / TRIALS_FILE).exists():
        console.error(f"{run_dir} already holds a run; choose another --run-id")
        return 2
    run_id = run_dir.name
    try:
        split = load_dataset(config.model)  # fail fast here rather than once per trial
    except DataError as exc:
        console.error(f"cannot load the training data: {exc}")
        return 2
    run_dir.mkdir(parents=True, exist_ok=True)
    model_toml = run_dir / "trial_model.toml"
    model_toml.write_text(_model_toml(config), encoding="utf-8")
    space = SearchSpace.from_config(hpo)
    settings = {
        "algorithms": algorithms, "max_trials": max_trials, "parallel": parallel, "epochs": epochs,
        "repeats": repeats, "seed": hpo.seed, "goal": hpo.goal, "max_failed_trials": hpo.max_failed_trials,
        "space": asdict(space), "grid_points": len(space.grid_points()), "momentum": hpo.momentum,
        "grid_order": hpo.grid_order, "bayesian_initial_points": hpo.bayesian_initial_points,
        "trial_timeout_s": hpo.trial_timeout_s, "train_images": int(len(split.train_y)),
        "held_out_images": int(len(split.test_y)),
    }
    meta = _meta(config, run_id, settings)
    write_meta_file(run_dir, meta)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    plan = [(r, mt, alg) for r in range(repeats) for mt in max_trials for alg in algorithms]
    total_trials = repeats * len(algorithms) * sum(max_trials)
    console.info(
        f"hpo run {run_id}: {len(plan)} studies ({', '.join(algorithms)} x max trials {max_trials} "
        f"x {repeats} repeats), "
        f"<= {total_trials} trials of {epochs} epoch(s), {parallel} in parallel; results in {run_dir}"
    )
    done_trials = 0
    t_start = time.perf_counter()
    status, error = RunStatus.INTERRUPTED, "interrupted (Ctrl-C or SIGTERM)"
    trials_csv = CsvAppender(run_dir / TRIALS_FILE, TRIAL_COLUMNS)
    studies_csv = CsvAppender(run_dir / STUDIES_FILE, STUDY_COLUMNS)
    try:
        with _sigterm_as_interrupt(), console.progress("hpo trials") as progress:
            progress.update(0, total_trials)
            for repeat, mt, alg in plan:
                seed = derive_seed(hpo.seed, alg, repeat)
                label = f"{alg} max {mt} repeat {repeat + 1}/{repeats}"
                runner = ProcessTrialRunner(
                    epochs=epochs, momentum=hpo.momentum, config_path=model_toml, cwd=config.root,
                    timeout_s=hpo.trial_timeout_s,
                )

                def on_trial(record, _alg=alg, _mt=mt, _rep=repeat, _seed=seed, _label=label) -> None:  # noqa: ANN001
                    nonlocal done_trials
                    trials_csv.write(trial_row(record, run_id=run_id, algorithm=_alg, max_trials=_mt, repeat=_rep,
                                               seed=_seed, epochs=epochs))
                    done_trials += 1
                    progress.update(done_trials, total_trials, _label)
                    if record.state == "FAILED":
                        console.warn(f"{_label}: trial {record.number} FAILED: {record.error}")

                study = run_study(
                    alg, runner, space=space, max_trials=mt, parallel=parallel, seed=seed, goal=hpo.goal,
                    max_failed=hpo.max_failed_trials, grid_order=hpo.grid_order,
                    bayesian_initial_points=hpo.bayesian_initial_points, on_trial=on_trial,
                )
                studies_csv.write(study_row(study, run_id=run_id, repeat=repeat, epochs=epochs))
                best = study.best
                best_text = (f"best loss {best.loss:.4f} (lr {best.lr:.4f}, batch {best.batch_size})"
                             if best else "no completed trial")
                console.info(f"{label}: {study.wall_s:.1f} s, {len(study.trials)} trials ({study.n_failed} failed), "
                             f"{best_text}, stopped: {study.stop_reason}")
        status, error = RunStatus.COMPLETE, None
    except KeyboardInterrupt:
        raise  # status stays interrupted; the CLI reports it and exits 130
    except Exception as exc:
        status, error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        trials_csv.close()
        studies_csv.close()
        meta.details["totals"] = {"wall_s": round(time.perf_counter() - t_start, 3), "trials": done_trials}
        meta.finish(status, error=error)
        write_meta_file(run_dir, meta)
    trials, studies = read_hpo(run_dir)
    summary = summarize_hpo(trials, studies)
    summary.to_csv(run_dir / SUMMARY_FILE, index=False)
    console.table(
        f"hpo summary ({run_id}; wall time per study, mean ± sd over {repeats} repeat(s))",
        ["algorithm", "max trials", "wall s", "± sd", "failed", "best loss", "best lr", "best batch", "trials to 1 %"],
        [_summary_cells(row) for row in summary.itertuples()],
    )
    console.print(f"hpo run {run_id}: total {meta.details['totals']['wall_s']:.1f} s; results in {run_dir}")
    if write_report:
        from models.hpo.report import render_hpo_report

        paths = render_hpo_report(run_dir, config.reports_dir / run_id)
        console.print("report: " + ", ".join(str(p) for p in paths))
    return 0


def write_hpo_manifests(config: BenchConfig, *, output: Path | None, console: Console) -> int:
    """Render one Katib Experiment per configured algorithm; print them or write them to ``output``."""
    from bench.cmd_targets import emit_files
    from models.hpo.katib import render_experiments

    emit_files(render_experiments(config.hpo, model_name=config.model.name), output, console)
    return 0
