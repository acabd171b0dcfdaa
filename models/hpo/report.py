"""HPO report: the study's Table 1 and Table 2 with ours beside them, Figure 20, and convergence.

Why from the CSVs only: ``bench report`` must be able to regenerate every table and figure
from a results folder long after the run (raw records first, rendering last).  The study's
numbers come from ``results/reference/`` (transcriptions, labelled as such); Table 2's
values are read as minutes:seconds (see ``results/reference/README.md``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from ground.figures import save_figure
from models.hpo.results import SUMMARY_FILE, best_so_far, read_hpo, summarize_hpo

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["render_hpo_report", "table1_markdown", "table2_markdown"]

_LABELS = {"random": "Random Search", "bayesian": "Bayesian Search", "grid": "Grid Search"}
_ORDER = ("random", "bayesian", "grid")  # the study's Table 2 column order
_COLORS = {"random": "tab:blue", "bayesian": "tab:orange", "grid": "tab:green"}


def _study_table(number: int) -> pd.DataFrame | None:
    try:
        from ground.reference import load_reference

        return load_reference(number)
    except (FileNotFoundError, ImportError):
        return None


def _fmt(value: float, digits: int = 4) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}g}"


def table1_markdown(trials: pd.DataFrame, study: pd.DataFrame | None) -> str:
    """The study's Table 1 layout: best trial per platform; our rows are per algorithm + overall."""
    lines = [
        "# Table 1: best trial (Katib hyperparameter tuning)",
        "",
        "| Platform | Best Trial Performance (Loss) | Tuned Learning Rate | Tuned Batch-Size | Accuracy | Source |",
        "|---|---|---|---|---|---|",
    ]
    done = trials[trials["state"] == "COMPLETE"].sort_values(["loss", "algorithm", "max_trials", "repeat", "trial"])
    for alg in [a for a in ("grid", "random", "bayesian") if a in set(trials["algorithm"])]:
        mine = done[done["algorithm"] == alg]
        if len(mine):
            b = mine.iloc[0]
            lines.append(
                f"| this machine, {alg} (max {int(b['max_trials'])}, repeat {int(b['repeat'])}, "
                f"trial {int(b['trial'])}) "
                f"| {b['loss']:.4f} | {b['lr']:.4f} | {int(b['batch_size'])} | {b['accuracy']:.4f} | measured |"
            )
        else:
            lines.append(f"| this machine, {alg} | – (no completed trial) | – | – | – | measured |")
    if len(done):
        b = done.iloc[0]
        lines.append(
            f"| **this machine, best overall** ({b['algorithm']}) | **{b['loss']:.4f}** | **{b['lr']:.4f}** "
            f"| **{int(b['batch_size'])}** | {b['accuracy']:.4f} | measured |"
        )
    if study is not None:
        for _, row in study.iterrows():
            lines.append(
                f"| {row['platform']} (study, Katib on Kubeflow) | {row['best_trial_performance_loss']} "
                f"| {row['tuned_learning_rate']} | {int(row['tuned_batch_size'])} | – | study's Table 1 |"
            )
    lines += [""]
    failed = int((trials["state"] != "COMPLETE").sum())
    lines.append(
        f"Trials: {len(trials)} ({failed} failed, counted, excluded from 'best'). "
        "Loss: cross-entropy on the held-out split."
    )
    if study is not None:
        outside = study[(study["tuned_learning_rate"] < 0.01) | (study["tuned_learning_rate"] > 0.05)]
        if len(outside):
            lines.append(
                "Note: the study's tuned learning rates ("
                + ", ".join(str(v) for v in outside["tuned_learning_rate"])
                + ") lie outside the range it searched, [0.01, 0.05]; they are shown as printed "
                "(likely 0.0453 and 0.0498)."
            )
    else:
        lines.append("The study's Table 1 was not found (results/reference/); only our rows are shown.")
    return "\n".join(lines) + "\n"


def table2_markdown(summary: pd.DataFrame, study: pd.DataFrame | None) -> str:
    """The study's Table 2 layout: time per algorithm x max tries; ours (mean ± sd) beside the study's."""
    algs = [a for a in _ORDER if a in set(summary["algorithm"])]
    head = "| Max Tries | " + " | ".join(f"{_LABELS[a]}: ours (s) | {_LABELS[a]}: study (s)" for a in algs) + " |"
    lines = [
        "# Table 2: time per tuning algorithm and number of tries",
        "",
        head,
        "|---|" + "---|---|" * len(algs),
    ]
    for mt in sorted(set(int(v) for v in summary["max_trials"])):
        cells = [str(mt)]
        for alg in algs:
            row = summary[(summary["algorithm"] == alg) & (summary["max_trials"] == mt)]
            if len(row):
                r = row.iloc[0]
                sd = "" if math.isnan(float(r["wall_s_std"])) else f" ± {float(r['wall_s_std']):.1f}"
                cells.append(f"{float(r['wall_s_mean']):.1f}{sd} (n={int(r['repeats'])})")
            else:
                cells.append("–")
            ref = None
            if study is not None:
                match = study[(study["algorithm"] == alg) & (study["max_tries"] == mt)]
                if len(match):
                    ref = match.iloc[0]
            cells.append(f"{int(ref['seconds'])} ({ref['as_written']})" if ref is not None else "–")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Ours: wall time of one study (first trial start to last trial end, trials run as processes, "
        "`parallel` at a time), mean ± sample sd over repeats, on this machine.",
    ]
    if study is not None:
        lines.append(
            "Study: Katib on Kubeflow, as printed (e.g. `6:25:00`), read as minutes:seconds:hundredths "
            "(see results/reference/README.md). The study's times include Kubernetes pod scheduling and "
            "image pulls per trial; ours do not."
        )
    else:
        lines.append("The study's Table 2 was not found (results/reference/); only our times are shown.")
    return "\n".join(lines) + "\n"


def _figure20(summary: pd.DataFrame, study: pd.DataFrame | None, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    algs = [a for a in _ORDER if a in set(summary["algorithm"])]
    tries = sorted(set(int(v) for v in summary["max_trials"]))
    panels = 2 if study is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    width = 0.8 / max(len(algs), 1)
    x = np.arange(len(tries))
    ax = axes[0][0]
    for i, alg in enumerate(algs):
        rows = [summary[(summary["algorithm"] == alg) & (summary["max_trials"] == t)] for t in tries]
        means = [float(r.iloc[0]["wall_s_mean"]) if len(r) else np.nan for r in rows]
        sds = [float(r.iloc[0]["wall_s_std"]) if len(r) else np.nan for r in rows]
        sds = [0.0 if math.isnan(s) else s for s in sds]
        offset = (i - (len(algs) - 1) / 2) * width
        ax.bar(x + offset, means, width, yerr=sds, capsize=3, label=_LABELS[alg], color=_COLORS[alg])
    ax.set_xticks(x, [str(t) for t in tries])
    ax.set_xlabel("max trials")
    ax.set_ylabel("wall time per study (s)")
    ax.set_title("this machine (mean ± sd over repeats)")
    ax.legend()
    if study is not None:
        ax2 = axes[0][1]
        study_tries = sorted(set(int(v) for v in study["max_tries"]))  # the study's own rows (5, 10, 15)
        xs = np.arange(len(study_tries))
        for i, alg in enumerate(algs):
            vals = []
            for t in study_tries:
                m = study[(study["algorithm"] == alg) & (study["max_tries"] == t)]
                vals.append(float(m.iloc[0]["seconds"]) if len(m) else np.nan)
            offset = (i - (len(algs) - 1) / 2) * width
            ax2.bar(xs + offset, vals, width, label=_LABELS[alg], color=_COLORS[alg], alpha=0.6, hatch="//")
        ax2.set_xticks(xs, [str(t) for t in study_tries])
        ax2.set_xlabel("max tries")
        ax2.set_ylabel("average time (s, read as mm:ss)")
        ax2.set_title("study, Katib on Kubeflow (Table 2, transcribed)")
        ax2.legend()
    fig.suptitle("Figure 20: time taken by each hyperparameter tuning algorithm")
    fig.tight_layout()
    return save_figure(fig, path.with_suffix(""), ("png",), dpi=120)[0]


def _convergence(trials: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for alg in [a for a in _ORDER if a in set(trials["algorithm"])]:
        mine = trials[trials["algorithm"] == alg]
        biggest = int(mine["max_trials"].max())
        curves = []
        for _, group in mine[mine["max_trials"] == biggest].groupby("repeat"):
            curve = best_so_far(group.sort_values("trial")["loss"].astype(float).tolist())
            curves.append(curve)
            ax.plot(range(1, len(curve) + 1), curve, color=_COLORS[alg], alpha=0.25, linewidth=1)
        if curves:
            n = max(len(c) for c in curves)
            padded = np.array([c + [c[-1]] * (n - len(c)) for c in curves], dtype=float)
            with np.errstate(all="ignore"):
                mean = np.nanmean(padded, axis=0)
            ax.plot(
                range(1, n + 1),
                mean,
                color=_COLORS[alg],
                linewidth=2.2,
                marker="o",
                markersize=3,
                label=f"{_LABELS[alg]} (max {biggest}, mean of {len(curves)})",
            )
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial number")
    ax.set_ylabel("best held-out loss so far")
    ax.set_title("Convergence: best loss so far vs trial (thin: each repeat)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path.with_suffix(""), ("png",), dpi=120)[0]


def render_hpo_report(run_dir: Path, out_dir: Path) -> list[Path]:
    """Write table1.md, table2.md, figure20_hpo_time.png, hpo_convergence.png; return their paths.

    Reads ``hpo_trials.csv`` and ``hpo_studies.csv`` from ``run_dir``; the summary is
    recomputed from them (and ``hpo_summary.csv`` rewritten if missing).
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    trials, studies = read_hpo(run_dir)
    summary = summarize_hpo(trials, studies)
    if not (run_dir / SUMMARY_FILE).exists():
        summary.to_csv(run_dir / SUMMARY_FILE, index=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    study1, study2 = _study_table(1), _study_table(2)
    paths = []
    for name, text in (("table1.md", table1_markdown(trials, study1)), ("table2.md", table2_markdown(summary, study2))):
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    paths.append(_figure20(summary, study2, out_dir / "figure20_hpo_time.png"))
    paths.append(_convergence(trials, out_dir / "hpo_convergence.png"))
    return paths
