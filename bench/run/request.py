"""What one `bench run` was asked to do: :class:`RunRequest`, built once from the run flags.

The command (:mod:`bench.commands.run`) builds it from the parsed flags; the sweep
(:mod:`bench.run.session`), the local shard processes (:mod:`bench.shard.processes`) and
the loadgen Job (:mod:`bench.shard.job`) take it whole instead of a dozen loose arguments.
bench.toml is applied where a value is needed: :meth:`RunRequest.sweep_overrides` turns the
load flags into overrides of ``[sweep]`` (one path for `run`, `run --clients` and its shards).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import BenchConfig
from bench.run.samples import SampleOptions
from bench.run.trial_design import RESTART
from bench.shard_run import ShardOptions
from loadgen.stages import Stage

__all__ = ["RunRequest", "sweep_overrides"]


@dataclass(frozen=True)
class RunRequest:
    """The flags of one `bench run` as plain values; None = not given (bench.toml's value applies)."""

    targets: tuple[str, ...]  # target names, or ("all",)
    n_requests: tuple[int, ...] | None = None  # --requests
    modes: tuple[str, ...] | None = None  # --modes (may include "capacity")
    trials: int | None = None  # --trials
    rate_rps: float | None = None  # --rate
    duration_s: float | None = None  # --duration
    concurrency: int | None = None  # --concurrency
    stages: tuple[Stage, ...] | None = None  # --stages
    engine: str | None = None  # --engine (None: [loadgen] engine)
    run_id: str | None = None  # --run-id (None: time-based)
    write_report: bool = True  # not --no-report
    slo: str | None = None  # --slo (with --modes capacity)
    trial_design: str = RESTART  # --trial-design
    shard: ShardOptions | None = None  # --shard I/N [--start-at/--step-interval/--step-gate]
    endpoint: str | None = None  # --endpoint URL
    out: Path | None = None  # --out DIR
    clients: int | None = None  # --clients N
    start_at: float | None = None  # --start-at (with --clients: the shards' schedule)
    step_interval_s: float | None = None  # --step-interval
    config_path: Path = Path("bench.toml")  # --config, as the shard processes must be given it
    samples: SampleOptions = SampleOptions()  # --input-data, --shape, --synthetic, --rtol/--atol/--argmax

    def target_names(self, config: BenchConfig) -> list[str]:
        """The targets to measure, in order, without repeats (``all``: every configured one)."""
        if "all" in self.targets:
            return list(config.targets)
        return list(dict.fromkeys(self.targets))

    def engine_name(self, config: BenchConfig) -> str:
        """The engine asked for: ``--engine``, else ``[loadgen] engine`` (may be ``auto``)."""
        return self.engine or config.loadgen.engine

    def mode_list(self) -> list[str] | None:
        """``--modes`` as a list (None: not given)."""
        return None if self.modes is None else list(self.modes)

    def sweep_table(self) -> dict[str, Any]:
        """The load flags given, as ``[sweep]`` keys of a copy of bench.toml (`manifests loadgen`: the shards'
        own file); ``--rate``/``--duration`` without ``--modes`` select rate mode, as in `bench run`."""
        given: dict[str, Any] = {
            "n_requests": None if self.n_requests is None else list(self.n_requests),
            "modes": self.mode_list(),
            "trials": self.trials,
            "rate_rps": self.rate_rps,
            "duration_s": self.duration_s,
            "concurrency": self.concurrency,
            "stages": None if self.stages is None else [stage.describe() for stage in self.stages],
        }
        table = {key: value for key, value in given.items() if value is not None}
        if self.stages is not None:
            table["duration_s"] = 0.0  # the stages size the rate step, as in `bench run`
        if self.duration_s is not None:
            table["stages"] = []
        if (self.rate_rps is not None or self.duration_s is not None or self.stages is not None) and self.modes is None:
            table["modes"] = ["rate"]
        return table

    def sweep_overrides(self, config: BenchConfig, modes: list[str] | None) -> dict[str, Any]:
        """The load flags as :meth:`SweepPlan.from_config` overrides of ``[sweep]`` (see :func:`sweep_overrides`);
        ``modes``: the ordinary sweep's modes (``--modes`` without ``capacity``)."""
        return sweep_overrides(
            config,
            n_requests=None if self.n_requests is None else list(self.n_requests),
            modes=modes,
            trials=self.trials,
            rate_rps=self.rate_rps,
            duration_s=self.duration_s,
            concurrency=self.concurrency,
            stages=self.stages,
        )


def sweep_overrides(
    config: BenchConfig,
    *,
    n_requests: list[int] | None = None,
    modes: list[str] | None = None,
    trials: int | None = None,
    rate_rps: float | None = None,
    duration_s: float | None = None,
    concurrency: int | None = None,
    stages: tuple[Stage, ...] | None = None,
) -> dict[str, Any]:
    """The ``bench run`` flags as :meth:`SweepPlan.from_config` overrides of ``[sweep]``.

    One path: bench.toml's values, each replaced by its flag when given (None = not given).
    ``--rate``/``--duration`` mean rate mode: without ``--modes`` they select it alone; with
    a ``--modes`` that lacks it they are a mistake. A ``--requests`` that no step would use
    (rate mode only, counts from the duration or the stages) is one too. ``--stages``
    replaces bench.toml's ``duration_s`` and ``--duration`` bench.toml's ``stages`` (each
    sizes the rate step); both flags together, or ``--rate`` with stages, mean nothing.
    Raises ValueError naming the flag.
    """
    if stages is not None and duration_s is not None:
        raise ValueError(
            "--duration and --stages both size the rate step: give one (the stages' durations are its length)"
        )
    if stages is not None and rate_rps is not None:
        raise ValueError("--rate has no effect with --stages: each stage gives its own rate")
    flags = (("--rate", rate_rps), ("--duration", duration_s), ("--stages", stages))
    rate_flags = [flag for flag, value in flags if value is not None]
    if rate_flags and modes is None:
        modes = ["rate"]
    elif rate_flags and modes is not None and "rate" not in modes:
        raise ValueError(
            f"{' and '.join(rate_flags)} set the load of rate mode, but --modes {','.join(modes)} does not include rate"
        )
    effective_modes = modes if modes is not None else list(config.sweep.modes)
    effective_duration = duration_s if duration_s is not None else float(config.sweep.duration_s)
    staged = stages is not None or (duration_s is None and bool(config.sweep.stages))
    if n_requests is not None and (effective_duration > 0 or staged) and set(effective_modes) == {"rate"}:
        if staged:
            source = "--stages" if stages is not None else "[sweep] stages"
            sized = "the requests its stages' rates add up to"
        else:
            source = "--duration" if duration_s is not None else "[sweep] duration_s"
            sized = "round(rate x duration) requests"
        raise ValueError(
            f"--requests has no effect: with {source} each rate step sends {sized}, and no closed-loop mode is selected"
        )
    return {
        "n_requests": n_requests,
        "modes": modes,
        "trials": trials,
        "rate_rps": rate_rps,
        # each flag that sizes the rate step clears the other way of sizing it in bench.toml
        "duration_s": 0.0 if stages is not None else duration_s,
        "concurrency": concurrency,
        "stages": () if duration_s is not None else stages,
    }
