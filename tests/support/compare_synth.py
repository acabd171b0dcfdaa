"""Synthetic runs with a known noise structure, for testing ``bench compare`` -- never a measurement.

Why a model and not real runs: the compare statistics must be checked against a truth we
control. The log of each step's per-trial statistic is

    log(base * n_factor) + run_effect + trial_effect + step_noise (+ log(slow-down))

with ``run_effect`` shared by every step of one target in one run (placement, caches),
``trial_effect`` shared by every step of one trial, and ``step_noise`` per cell -- the
three levels of variation a real sweep has. Runs are built in memory (``RunData``, the rows
read by :class:`bench.results.parse.StepSummary` like a file's) so hundreds of A/A pairs take
seconds; :mod:`synthetic_runs` writes real files instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bench.results import RunData
from bench.results.parse import StepSummary
from ground.runmeta import RunMeta

__all__ = ["NS", "TARGETS", "synthetic_run"]

TARGETS = {"greene-linserv": 0.010, "kubeflow-gcp": 0.0013}
NS = (1, 4, 8, 16, 64)
MODES = ("sequential", "concurrent")


def synthetic_run(
    run_id: str,
    rng: np.random.Generator,
    *,
    trials: int = 3,
    targets: Mapping[str, float] = TARGETS,
    ns: tuple[int, ...] = NS,
    modes: tuple[str, ...] = MODES,
    sd_run: float = 0.03,
    sd_trial: float = 0.03,
    sd_step: float = 0.03,
    slowdown: Mapping[tuple, float] | float = 1.0,
    errors: Mapping[tuple, int] | None = None,
    saturated: set[tuple] | frozenset = frozenset(),
    schema: int = 2,
    design: str | None = None,
) -> RunData:
    """A run's summary rows from the noise model above.

    ``slowdown``: one factor for everything, or {(target, mode, n): factor}. ``errors``:
    {(target, mode, n): failed requests} put into trial 1 of that step. ``saturated``:
    steps whose trial 1 is flagged saturated. ``schema=1`` leaves out the schema-2 columns.
    ``design="restart"``: every trial a fresh start -- the run effect is drawn anew per trial
    -- and meta.json says so (:mod:`bench.run.trial_design`); otherwise one run effect for all
    trials, and meta.json with no trial design (a run recorded before issue 21).
    """
    errors = errors or {}
    rows = []
    for target, base in targets.items():
        run_effect = rng.normal(0.0, sd_run)
        for trial in range(1, trials + 1):
            if design == "restart" and trial > 1:
                run_effect = rng.normal(0.0, sd_run)
            trial_effect = rng.normal(0.0, sd_trial)
            for mode in modes:
                for n in ns:
                    key = (target, mode, n)
                    factor = slowdown if isinstance(slowdown, float | int) else slowdown.get(key, 1.0)
                    scale = 1.0 if mode == "sequential" else n / 2
                    value = base * scale * factor * float(np.exp(run_effect + trial_effect + rng.normal(0.0, sd_step)))
                    failed = errors.get(key, 0) if trial == 1 else 0
                    row = {
                        "run_id": run_id,
                        "target": target,
                        "mode": mode,
                        "n_requests": n,
                        "concurrency": 1 if mode == "sequential" else n,
                        "rate": 0.0,
                        "trial": trial,
                        "total_s": value * (n if mode == "sequential" else 2),
                        "n_ok": n - failed,
                        "errors": failed,
                        "lat_mean_s": value * 1.05,
                        "lat_p50_s": value,
                        "lat_p90_s": value * 1.3,
                        "lat_p99_s": value * 1.6,
                    }
                    if schema >= 2:
                        sat = key in saturated and trial == 1
                        flags = ";".join(f for f, on in (("errors", failed > 0), ("saturated", sat)) if on)
                        row.update(saturated=sat, flags=flags)
                    rows.append(row)
    record = {"schema_version": schema, "run_id": run_id, "targets_order": list(targets), "status": "complete"}
    if design is not None:
        record["trial_design"] = {"design": design, "per_target": {t: design for t in targets}}
    meta = RunMeta.from_json(record)
    return RunData(
        path=Path("/synthetic") / run_id,
        run_id=run_id,
        steps=tuple(map(StepSummary.from_row, rows)),
        meta=meta,
        columns=frozenset(rows[0]) if rows else frozenset(),
    )
