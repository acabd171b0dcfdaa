"""Run the study's hyperparameter tuning on this machine, and render its Katib Experiments.

What ``bench hpo`` (also ``run hpo``; flags in :mod:`bench.commands.hpo`) and ``bench
manifests hpo`` do. The study tuned the MNIST model with Katib (grid, random and Bayesian
search over lr in [0.01, 0.05] and batch size in [80, 100], minimising loss with goal 0.001)
and reported the best trial (Table 1) and the time per algorithm and trial budget (Table 2,
Figure 20).  This command runs the same search on one machine -- one Optuna study per
(repeat, max_trials, algorithm), trials as processes, ``parallel`` at a time with one torch
thread each -- and writes raw trial rows as they finish.

Execution order interleaves algorithms inside each (repeat, max_trials) so that a slow
period of a shared machine does not land on one algorithm only.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from bench.config import BenchConfig, ConfigError
from bench.console import Console
from bench.emit import emit_files
from bench.results import ResultsError, fresh_run_dir, write_meta_file
from bench.results.header import run_header
from bench.signals import sigterm_as_interrupt
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


def _meta(config: BenchConfig, run_id: str, settings: dict) -> RunMeta:
    return run_header(
        kind=KIND_HPO,
        run_id=run_id,
        root=config.root,
        extra_packages=("optuna", "torch"),
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
        r.algorithm,
        r.max_trials,
        _num(r.wall_s_mean, ".1f"),
        _num(r.wall_s_std, ".1f"),
        r.failed,
        _num(r.best_loss, ".4f"),
        _num(r.best_lr, ".4f"),
        r.best_batch_size,
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
    budget = _budget(
        config, algorithms=algorithms, max_trials=max_trials, parallel=parallel, epochs=epochs, repeats=repeats
    )  # ConfigError naming the flag
    try:
        run_dir, split = _fresh_run(config, run_id)
    except (ResultsError, _Refused) as exc:
        console.error(str(exc))
        return 2
    model_toml, space, meta = _start_run(config, run_dir, budget, split)
    _run_studies(config, budget, run_dir, model_toml, space, meta, console)
    _show_summary(run_dir, budget, meta, console)
    if write_report:
        from models.hpo.report import render_hpo_report

        paths = render_hpo_report(run_dir, config.reports_dir / run_dir.name)
        console.print("report: " + ", ".join(str(p) for p in paths))
    return 0


@dataclass(frozen=True)
class _Budget:
    """The tuning run's size: ``[hpo]`` in bench.toml with the flags over it, checked."""

    algorithms: list[str]
    max_trials: list[int]
    parallel: int
    epochs: int
    repeats: int

    def studies(self) -> list[tuple[int, int, str]]:
        """(repeat, max_trials, algorithm) in execution order: algorithms interleaved within each repeat x budget."""
        return [(r, mt, alg) for r in range(self.repeats) for mt in self.max_trials for alg in self.algorithms]

    def total_trials(self) -> int:
        return self.repeats * len(self.algorithms) * sum(self.max_trials)


class _Refused(Exception):
    """The run cannot start (its folder holds a run, the data cannot be loaded): exit 2, message shown."""


def _budget(
    config: BenchConfig,
    *,
    algorithms: list[str] | None,
    max_trials: list[int] | None,
    parallel: int | None,
    epochs: int | None,
    repeats: int | None,
) -> _Budget:
    """The flags over ``[hpo]``; ConfigError naming the flag when a value cannot mean anything."""
    from models.hpo.search import ALGORITHMS

    hpo = config.hpo
    budget = _Budget(
        algorithms=list(algorithms or hpo.algorithms),
        max_trials=list(max_trials or hpo.max_trials),
        parallel=parallel if parallel is not None else hpo.parallel,
        epochs=epochs if epochs is not None else hpo.epochs,
        repeats=repeats if repeats is not None else hpo.repeats,
    )
    unknown = [a for a in budget.algorithms if a not in ALGORITHMS]
    if unknown:
        raise ConfigError("--algorithms", f"unknown algorithm(s) {', '.join(unknown)}; known: {', '.join(ALGORITHMS)}")
    if any(n < 1 for n in budget.max_trials):
        raise ConfigError("--max-trials", f"every count must be >= 1, got {budget.max_trials}")
    for name, value in (("--parallel", budget.parallel), ("--epochs", budget.epochs), ("--repeats", budget.repeats)):
        if value < 1:
            raise ConfigError(name, f"must be >= 1, got {value}")
    return budget


def _fresh_run(config: BenchConfig, run_id: str | None) -> tuple[Path, Any]:
    """The new run's folder (not created yet) and the data split; ResultsError or _Refused saying why not."""
    from models.data import DataError, load_dataset

    run_dir = fresh_run_dir(config.results_dir, run_id, "hpo")
    try:
        return run_dir, load_dataset(config.model)  # fail fast here rather than once per trial
    except DataError as exc:
        raise _Refused(f"cannot load the training data: {exc}") from None


def _start_run(config: BenchConfig, run_dir: Path, budget: _Budget, split: Any) -> tuple[Path, Any, RunMeta]:
    """Create the folder with the trials' [model] table and the first meta.json; (model toml, space, meta)."""
    from models.hpo.space import SearchSpace

    hpo = config.hpo
    run_dir.mkdir(parents=True, exist_ok=True)
    model_toml = run_dir / "trial_model.toml"
    model_toml.write_text(_model_toml(config), encoding="utf-8")
    space = SearchSpace.from_config(hpo)
    settings = {
        "algorithms": budget.algorithms,
        "max_trials": budget.max_trials,
        "parallel": budget.parallel,
        "epochs": budget.epochs,
        "repeats": budget.repeats,
        "seed": hpo.seed,
        "goal": hpo.goal,
        "max_failed_trials": hpo.max_failed_trials,
        "space": asdict(space),
        "grid_points": len(space.grid_points()),
        "momentum": hpo.momentum,
        "grid_order": hpo.grid_order,
        "bayesian_initial_points": hpo.bayesian_initial_points,
        "trial_timeout_s": hpo.trial_timeout_s,
        "train_images": int(len(split.train_y)),
        "held_out_images": int(len(split.test_y)),
    }
    meta = _meta(config, run_dir.name, settings)
    write_meta_file(run_dir, meta)
    return model_toml, space, meta


def _run_studies(
    config: BenchConfig, budget: _Budget, run_dir: Path, model_toml: Path, space: Any, meta: RunMeta, console: Console
) -> None:
    """Every study in turn, trial rows appended as they finish; meta.json gets the final status, also on Ctrl-C."""
    import optuna

    from models.hpo.results import STUDIES_FILE, STUDY_COLUMNS, TRIAL_COLUMNS, TRIALS_FILE, CsvAppender

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    studies, total_trials = budget.studies(), budget.total_trials()
    console.info(
        f"hpo run {run_dir.name}: {len(studies)} studies ({', '.join(budget.algorithms)} x max trials "
        f"{budget.max_trials} x {budget.repeats} repeats), <= {total_trials} trials of {budget.epochs} epoch(s), "
        f"{budget.parallel} in parallel; results in {run_dir}"
    )
    done = _TrialCount(total_trials)
    t_start = time.perf_counter()
    status, error = RunStatus.INTERRUPTED, "interrupted (Ctrl-C or SIGTERM)"
    trials_csv = CsvAppender(run_dir / TRIALS_FILE, TRIAL_COLUMNS)
    studies_csv = CsvAppender(run_dir / STUDIES_FILE, STUDY_COLUMNS)
    try:
        with sigterm_as_interrupt(), console.progress("hpo trials") as progress:
            progress.update(0, total_trials)
            for repeat, mt, alg in studies:
                _run_one_study(
                    config,
                    budget,
                    (repeat, mt, alg),
                    run_dir.name,
                    model_toml,
                    space,
                    trials_csv,
                    studies_csv,
                    done,
                    progress,
                    console,
                )
        status, error = RunStatus.COMPLETE, None
    except KeyboardInterrupt:
        raise  # status stays interrupted; the CLI reports it and exits 130
    except Exception as exc:
        status, error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
        raise
    finally:
        trials_csv.close()
        studies_csv.close()
        meta.details["totals"] = {"wall_s": round(time.perf_counter() - t_start, 3), "trials": done.trials}
        meta.finish(status, error=error)
        write_meta_file(run_dir, meta)


@dataclass
class _TrialCount:
    """Trials finished so far, out of at most ``total`` (the progress bar's count)."""

    total: int
    trials: int = 0


def _run_one_study(
    config: BenchConfig,
    budget: _Budget,
    study_key: tuple[int, int, str],
    run_id: str,
    model_toml: Path,
    space: Any,
    trials_csv: Any,
    studies_csv: Any,
    done: _TrialCount,
    progress: Any,
    console: Console,
) -> None:
    """One (repeat, max_trials, algorithm) study: its trial rows as they end, its study row, its console line."""
    from models.hpo.results import study_row, trial_row
    from models.hpo.runner import ProcessTrialRunner
    from models.hpo.search import derive_seed, run_study

    hpo = config.hpo
    repeat, mt, alg = study_key
    seed = derive_seed(hpo.seed, alg, repeat)
    label = f"{alg} max {mt} repeat {repeat + 1}/{budget.repeats}"
    runner = ProcessTrialRunner(
        epochs=budget.epochs,
        momentum=hpo.momentum,
        config_path=model_toml,
        cwd=config.root,
        timeout_s=hpo.trial_timeout_s,
    )

    def on_trial(record: Any) -> None:
        trials_csv.write(
            trial_row(
                record, run_id=run_id, algorithm=alg, max_trials=mt, repeat=repeat, seed=seed, epochs=budget.epochs
            )
        )
        done.trials += 1
        progress.update(done.trials, done.total, label)
        if record.state == "FAILED":
            console.warn(f"{label}: trial {record.number} FAILED: {record.error}")

    study = run_study(
        alg,
        runner,
        space=space,
        max_trials=mt,
        parallel=budget.parallel,
        seed=seed,
        goal=hpo.goal,
        max_failed=hpo.max_failed_trials,
        grid_order=hpo.grid_order,
        bayesian_initial_points=hpo.bayesian_initial_points,
        on_trial=on_trial,
    )
    studies_csv.write(study_row(study, run_id=run_id, repeat=repeat, epochs=budget.epochs))
    best = study.best
    best_text = (
        f"best loss {best.loss:.4f} (lr {best.lr:.4f}, batch {best.batch_size})" if best else "no completed trial"
    )
    console.info(
        f"{label}: {study.wall_s:.1f} s, {len(study.trials)} trials ({study.n_failed} failed), "
        f"{best_text}, stopped: {study.stop_reason}"
    )


def _show_summary(run_dir: Path, budget: _Budget, meta: RunMeta, console: Console) -> None:
    """Write hpo_summary.csv from the raw rows and print it as the run's table."""
    from models.hpo.results import SUMMARY_FILE, read_hpo, summarize_hpo

    run_id = run_dir.name
    trials, studies = read_hpo(run_dir)
    summary = summarize_hpo(trials, studies)
    summary.to_csv(run_dir / SUMMARY_FILE, index=False)
    console.table(
        f"hpo summary ({run_id}; wall time per study, mean ± sd over {budget.repeats} repeat(s))",
        ["algorithm", "max trials", "wall s", "± sd", "failed", "best loss", "best lr", "best batch", "trials to 1 %"],
        [_summary_cells(row) for row in summary.itertuples()],
    )
    console.print(f"hpo run {run_id}: total {meta.details['totals']['wall_s']:.1f} s; results in {run_dir}")


def write_hpo_manifests(config: BenchConfig, *, output: Path | None, console: Console) -> int:
    """Render one Katib Experiment per configured algorithm; print them or write them to ``output``."""
    from models.hpo.katib import render_experiments

    emit_files(render_experiments(config.hpo, model_name=config.model.name), output, console)
    return 0
