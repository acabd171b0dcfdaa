"""The load generator's cluster Job for `manifests loadgen TARGET --clients N`: its inputs, checked.

The Job is made from the whole configuration (the sweep, the model table, the one
target), not from one target's table, and it needs decisions a target's ``manifests()``
cannot make: which modes can be sharded, which barrier time the shards share, which claim
receives their runs.  This module makes them (:func:`plan_loadgen_job`); the rendering is
:mod:`bench.shard.job_render`, the printing :mod:`bench.commands.manifests`
(docs/loadgen-in-cluster.md).
"""

from __future__ import annotations

import math
import time
import tomllib
from typing import Any

from bench.config import BenchConfig, parse_config, target_context
from bench.run.request import RunRequest
from bench.shard.job_render import LoadgenJob
from ground.toml_write import dumps
from loadgen.shard import SHARDABLE_MODES, check_shardable
from loadgen.sweep import SweepPlan
from targets.cluster_endpoint import cluster_endpoint
from targets.registry import build_target, target_spec

__all__ = [
    "DEFAULT_PVC",
    "DEFAULT_START_IN_S",
    "default_step_interval",
    "loadgen_job",
    "plan_loadgen_job",
    "splittable_counts",
    "with_sweep",
]

DEFAULT_PVC = "servebench-results"
#: Seconds from rendering to the shards' common start: time to apply, schedule and pull.
DEFAULT_START_IN_S = 180.0
#: The default step interval in request timeouts: a step whose requests are in flight together
#: (the concurrent burst) ends within one ``[loadgen] timeout_s``, and its warm-up within another.
STEP_INTERVAL_TIMEOUTS = 2


def default_step_interval(timeout_s: float) -> float:
    """Seconds between the shards' step starts when ``--step-interval`` is not given: two request timeouts.

    Why not shorter: the pods share no channel, only the clock, so the interval must cover a
    step and its warm-up on the slowest shard; a step that takes longer still runs (the next
    one starts late on that shard, recorded as lateness, and the merged run warns of the skew).
    """
    return float(STEP_INTERVAL_TIMEOUTS * timeout_s)


def splittable_counts(n_requests: list[int], clients: int) -> tuple[list[int], list[int]]:
    """``[sweep] n_requests`` split into (kept, left out): a step of N < ``clients`` requests leaves a shard
    with nothing to send, so it cannot be sharded (measure it with `bench run` from one client)."""
    return [n for n in n_requests if n >= clients], [n for n in n_requests if n < clients]


def with_sweep(config: BenchConfig, overrides: dict[str, Any] | None) -> BenchConfig:
    """``config`` with ``[sweep]`` keys replaced by ``overrides`` (the run flags of `manifests loadgen`).

    Why through the TOML text: the ConfigMap ships bench.toml itself to the pods, so the
    overrides must be in that text -- and parsing it again validates them exactly as
    `bench run` would (errors name the ``sweep.KEY``).
    """
    if not overrides:
        return config
    tables = tomllib.loads(config.source)
    tables.setdefault("sweep", {}).update(overrides)
    return parse_config(dumps(tables), config.root)


def loadgen_job(
    config: BenchConfig,
    target_name: str,
    *,
    clients: int,
    pvc: str | None = None,
    namespace: str | None = None,
    image: str | None = None,
    start_at: int,
    step_interval_s: float | None = None,
    notes: tuple[str, ...] = (),
) -> LoadgenJob:
    """The :class:`bench.shard.job_render.LoadgenJob` for ``target_name``.

    Raises ConfigError for a target that is not configured, ValueError (naming the flag or
    the setting) for anything that cannot become a working Job.  A plan of several steps
    without ``step_interval_s`` gets :func:`default_step_interval` (the shards share no
    channel, only the clock, so step k starts at ``start_at + k x step_interval_s`` on every
    one of them), said in the job's notes.  ``notes``: lines for the rendered files' headers.
    """
    target_spec(config.targets, target_name)  # ConfigError naming the configured targets
    target = build_target(config.targets[target_name], target_context(config))
    modes = [m for m in config.sweep.modes if m in SHARDABLE_MODES]
    if not modes:
        raise ValueError(
            f"[sweep] modes = {list(config.sweep.modes)}: none can be sharded (only "
            f"{' and '.join(SHARDABLE_MODES)}; sequential sends one request at a time)"
        )
    try:
        plan = SweepPlan.from_config(config.sweep, config.loadgen, modes=modes)
        check_shardable(plan, clients)  # every shard needs a request (and one in flight) in every step
    except ValueError as exc:
        raise ValueError(f"sweep settings ([sweep] in bench.toml) for {clients} shards: {exc}") from None
    steps = len(plan.steps(target_name))
    if steps > 1 and step_interval_s is None:
        step_interval_s = default_step_interval(config.loadgen.timeout_s)
        notes = (
            *notes,
            f"--step-interval not given: steps {step_interval_s:g} s apart ({STEP_INTERVAL_TIMEOUTS} x "
            f"[loadgen] timeout_s), {steps} steps, about {steps * step_interval_s / 60:.0f} min; a longer "
            "step delays the next on its shard (recorded); set --step-interval to change it",
        )
    return LoadgenJob(
        target=target,
        tables=tomllib.loads(config.source),
        endpoint=cluster_endpoint(target),
        modes=modes,
        clients=clients,
        pvc=pvc or DEFAULT_PVC,
        namespace=namespace or str(getattr(target.settings, "namespace", "") or "default"),
        image=image or config.hpo.image,
        start_at=start_at,
        step_interval_s=step_interval_s,
        notes=notes,
    )


def plan_loadgen_job(
    config: BenchConfig,
    request: RunRequest,
    *,
    pvc: str | None,
    namespace: str | None,
    image: str | None,
    start_in_s: float | None,
) -> LoadgenJob:
    """The Job for ``request`` (its one target, ``clients``, ``step_interval_s`` and load flags), starting
    ``start_in_s`` from now (default :data:`DEFAULT_START_IN_S`).

    The load flags replace ``[sweep]`` keys in the shards' copy of bench.toml; modes and
    request counts that cannot be sharded are left out, each said in the job's notes.
    Raises ConfigError (an unknown target) or ValueError (naming what cannot become a Job).
    """
    clients = request.clients or 1
    start_in = DEFAULT_START_IN_S if start_in_s is None else start_in_s
    config = with_sweep(config, request.sweep_table())
    notes: list[str] = []
    dropped = [m for m in config.sweep.modes if m not in SHARDABLE_MODES]
    if dropped:
        notes.append(
            f"[sweep] modes {', '.join(dropped)} left out: one request at a time cannot be split over "
            "clients (measure it with `bench run` from one client)"
        )
    kept, small = splittable_counts(list(config.sweep.n_requests), clients)
    if small and kept:
        config = with_sweep(config, {"n_requests": kept})
        notes.append(
            f"[sweep] n_requests {', '.join(map(str, small))} left out: fewer requests than the "
            f"{clients} shards, so a shard would send none (measure them with `bench run` from one client)"
        )
    return loadgen_job(
        config,
        request.targets[0],
        clients=clients,
        pvc=pvc,
        namespace=namespace,
        image=image,
        start_at=math.ceil(time.time() + start_in),
        step_interval_s=request.step_interval_s,
        notes=tuple(notes),
    )
