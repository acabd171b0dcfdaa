"""The ``bench run`` load flags as overrides of bench.toml's ``[sweep]``: one path for both.

Why a module of its own: ``bench run`` (:mod:`bench.cmd_run`) and ``bench run --clients N``
(:mod:`bench.clients`, which starts ``bench run`` shards) apply the same flags the same way;
with this in either command module the two would import each other.  The checked result
is :class:`loadgen.sweep.SweepPlan`, whose settings part is the same type bench.toml's
``[sweep]`` is parsed into (:class:`loadgen.sweep_settings.SweepSettings`).
"""

from __future__ import annotations

from typing import Any

from bench.config import BenchConfig

__all__ = ["sweep_overrides"]


def sweep_overrides(config: BenchConfig, *, n_requests: list[int] | None = None, modes: list[str] | None = None,
                    trials: int | None = None, rate_rps: float | None = None, duration_s: float | None = None,
                    concurrency: int | None = None) -> dict[str, Any]:
    """The ``bench run`` flags as :meth:`SweepPlan.from_config` overrides of ``[sweep]``.

    One path: bench.toml's values, each replaced by its flag when given (None = not given).
    ``--rate``/``--duration`` mean rate mode: without ``--modes`` they select it alone; with
    a ``--modes`` that lacks it they are a mistake. A ``--requests`` that no step would use
    (rate mode only, counts from the duration) is one too. Raises ValueError naming the flag.
    """
    rate_flags = [flag for flag, value in (("--rate", rate_rps), ("--duration", duration_s)) if value is not None]
    if rate_flags and modes is None:
        modes = ["rate"]
    elif rate_flags and modes is not None and "rate" not in modes:
        raise ValueError(f"{' and '.join(rate_flags)} set the load of rate mode, but --modes "
                         f"{','.join(modes)} does not include rate")
    effective_modes = modes if modes is not None else list(config.sweep.modes)
    effective_duration = duration_s if duration_s is not None else config.sweep.duration_s
    if n_requests is not None and effective_duration > 0 and set(effective_modes) == {"rate"}:
        source = "--duration" if duration_s is not None else "[sweep] duration_s"
        raise ValueError(f"--requests has no effect: with {source} each rate step sends round(rate x duration) "
                         "requests, and no closed-loop mode is selected")
    return {"n_requests": n_requests, "modes": modes, "trials": trials, "rate_rps": rate_rps,
            "duration_s": duration_s, "concurrency": concurrency}
