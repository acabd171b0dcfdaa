"""Run ``bench run TARGET --clients N``: N shard processes on this machine, one stand-in for all, merged.

Why subprocesses running the very command a cluster pod runs: a local multi-client run
must not be a second implementation of sharding.  Each client is
``python -m bench run TARGET --shard I/N --start-at EPOCH --endpoint URL --out DIR ...``
(:func:`shard_argv`), so what is tested here is what a Kubernetes Indexed Job runs.  The
parent only does what the shards cannot share: it starts the target's stand-in once
(every shard sends to it through ``--endpoint``), makes sure the model and the client
calibration exist before N processes would race to make them, chooses the engine once,
places each shard on a CPU, starts them under the same lifeline watchdog as the stand-ins
(:func:`targets.process.spawn`: a new process group, pinned from the first instruction,
killed with the parent however it dies), waits, and merges their folders
(``RUN/shards/*``) into ``RUN`` with :func:`bench.shard.merge.merge_runs`.

When each step starts: without ``--start-at``/``--step-interval`` the parent coordinates
the steps itself (:class:`loadgen.barrier.StepGate` in ``RUN/shards/gate``): each shard
says when it has warmed up for a step, and the parent, once all have, starts the step on
every shard at one instant a moment ahead -- so any shardable plan runs with no extra
flag, and no step waits for a guessed interval.  ``--start-at EPOCH [--step-interval S]``
(or ``--step-interval`` alone) keeps the wall-clock schedule a cluster's pods use.

When it helps and when it does not: see docs/loadgen-in-cluster.md ("--clients on one
machine").  Stopping: a shard that fails (exit code other than 0 = clean, 1 = failed
requests) stops every other shard at once; Ctrl-C or SIGTERM stops all shards and the
stand-in (exit 130); nothing is merged then, the shard folders stay for inspection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.capacity.show import plan_capacity
from bench.config import BenchConfig, target_context
from bench.console import Console
from bench.hostnoise import (
    CpuTimes,
    noise_warnings,
    parse_pid_cpu_ticks,
    parse_proc_stat,
    read_loadavg,
    run_start_load,
    window_shares,
)
from bench.redact_secrets import redactor_for
from bench.results import SHARDS_DIR, ResultsError, refuse_existing_run, validate_run_id
from bench.run.display import print_table3
from bench.run.prepare import choose_run_engine, prepare_model
from bench.run.request import RunRequest
from bench.run.runner import default_run_id, run_coroutine, run_log_dir
from bench.shard.merge import MergeError, merge_runs
from bench.shard.merge_table import print_merge
from bench.shard_run import ShardOptions, check_shard_run, shard_run_id, with_endpoint
from bench.signals import cancel_on_sigterm
from ground.cpus import available_cpus, listed_cpus
from loadgen.barrier import StartSchedule, StepGate, release_ready_steps
from loadgen.engines import ENGINE_NAMES
from loadgen.shard import ShardSpec
from loadgen.stages import format_stages
from loadgen.sweep import SweepPlan
from targets.process import proc_table, spawn
from targets.registry import build_targets

__all__ = ["CLIENT_START_DELAY_S", "ClientPlacement", "place_clients", "run_clients", "shard_argv"]

#: Seconds from launching the shard processes to step 0: each must import servebench,
#: read the model's test split, check the endpoint and warm up first. Two shards took
#: about 10 s to get there on a 2-core machine at load average 7 (imports and the test
#: split alone, 6 s of wall time there); a shard that is not ready in time starts late,
#: and its lateness is recorded and warned about. ``--start-at`` sets the instant instead.
CLIENT_START_DELAY_S = 15.0
_POLL_S = 0.2
_GATE_POLL_S = 0.02  # while the parent releases steps: a shard's wait for the go is this plus GATE_LEAD_S
_OK_EXIT_CODES = (0, 1)  # 1: the shard measured, some requests failed -- still mergeable


@dataclass(frozen=True)
class ClientPlacement:
    """Which CPUs each shard and the stand-in run on (empty = not pinned)."""

    clients: tuple[tuple[int, ...], ...]
    standins: tuple[int, ...]
    note: str

    def cpu_groups(self) -> list[list[int]]:
        """Shards that share one CPU set (for the combined client ceiling)."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, cpus in enumerate(self.clients):
            groups.setdefault(cpus or (-1 - index,), []).append(index)  # unpinned: each on its own
        return list(groups.values())

    def describe(self) -> dict[str, Any]:
        return {"clients": [list(c) for c in self.clients], "standins": list(self.standins), "note": self.note}


def place_clients(n: int, setting: str | Sequence[int], cpus: Sequence[int], *, local_target: bool) -> ClientPlacement:
    """Put each of ``n`` shards on a CPU of its own where the CPUs allow. Pure.

    ``"auto"`` with a local stand-in: with at least n + 1 CPUs, the shards take the last n
    (one each) and the stand-in the rest; with fewer but at least 2, the shards share the
    last CPU (they compete for it -- the note says so) and the stand-in keeps the others,
    because a client on the stand-in's CPU would slow what is measured; on one CPU nobody
    is pinned.  ``"auto"`` with a remote target: shard i on CPU ``i mod len(cpus)``.
    ``"none"``: nobody pinned.  A list: shards round-robin over the listed CPUs, the
    stand-in on the others (all, if the list covers every CPU).
    """
    cpus = tuple(sorted(cpus))
    if setting == "none" or len(cpus) < 2 and setting == "auto":
        return ClientPlacement(tuple(() for _ in range(n)), (), "not pinned")
    if setting == "auto" and not local_target:
        clients = tuple((cpus[i % len(cpus)],) for i in range(n))
        shared = "" if n <= len(cpus) else f"; {n} shards on {len(cpus)} CPUs share them"
        return ClientPlacement(clients, (), "remote target: shards spread over all CPUs" + shared)
    if setting == "auto":
        if len(cpus) >= n + 1:
            return ClientPlacement(tuple((c,) for c in cpus[-n:]), cpus[:-n], "one CPU per shard")
        return ClientPlacement(
            tuple((cpus[-1],) for _ in range(n)),
            cpus[:-1],
            f"{n} shards share CPU {cpus[-1]} (only {len(cpus)} CPUs: one is kept for the "
            "stand-in): together they get one CPU's worth of client",
        )
    listed = listed_cpus(setting, cpus)
    rest = tuple(c for c in cpus if c not in listed)
    shared = "" if n <= len(listed) else f"; {n} shards share {len(listed)} CPU(s)"
    return ClientPlacement(
        tuple((listed[i % len(listed)],) for i in range(n)),
        rest or cpus,
        "shards round-robin over loadgen.cpus" + shared,
    )


def shard_argv(
    *,
    config_path: Path,
    target: str,
    spec: ShardSpec,
    schedule: StartSchedule,
    out: Path,
    run_id: str,
    endpoint: str | None,
    engine: str | None,
    overrides: dict[str, Any],
    gate: Path | None = None,
) -> list[str]:
    """The shard's command line: the one documented for Kubernetes pods (docs/loadgen-in-cluster.md),
    with ``--step-gate DIR`` instead of ``--start-at`` when the parent coordinates the steps."""
    argv = [sys.executable, "-m", "bench", "--config", str(config_path), "run", target, "--shard", spec.label]
    if gate is not None:
        argv += ["--step-gate", str(gate)]
    else:
        argv += ["--start-at", repr(schedule.start_at)]
        if schedule.interval_s:
            argv += ["--step-interval", repr(schedule.interval_s)]
    argv += ["--out", str(out), "--run-id", run_id]
    if endpoint:
        argv += ["--endpoint", endpoint]
    if engine:
        argv += ["--engine", engine]
    flags = {
        "n_requests": "--requests",
        "modes": "--modes",
        "trials": "--trials",
        "rate_rps": "--rate",
        "duration_s": "--duration",
        "concurrency": "--concurrency",
    }
    stages = overrides.get("stages")
    if stages:  # --stages: the shard sizes its share from them (its --duration would be the 0 they imply)
        argv += ["--stages", format_stages(stages)]
    for name, flag in flags.items():
        value = overrides.get(name)
        if value is None or (name == "duration_s" and stages):
            continue
        argv += [
            flag,
            ",".join(str(v) for v in value)
            if isinstance(value, list | tuple)
            else repr(value)
            if isinstance(value, float)
            else str(value),
        ]
    return argv


def _prepare(config: BenchConfig, console: Console, requested: str) -> str:
    """Model and calibration made once, before N processes could race to make them; the engine chosen once."""
    prepare_model(config, console)
    return choose_run_engine(config, requested, console)[0]


class _WholeRunNoise:
    """Host noise over a ``--clients`` run, seen from the parent, which can tell ours from others'.

    Each shard's own meta.json counts its sibling shards and the stand-in as "other
    processes"; here the stand-in's process group (live) and every shard (reaped: a
    child's CPU time is added to its parent's when it is waited for, through the lifeline
    watchdog up to this process) count as servebench's own. Shares: :func:`bench.hostnoise.window_shares`.
    """

    def __init__(self) -> None:
        self.facts: dict[str, Any] = {"load_before": read_loadavg()}
        self._start: dict[str, int] | None = None
        self._t0 = 0.0

    @staticmethod
    def _sample(pgids: Sequence[int]) -> dict[str, int] | None:
        try:
            times = parse_proc_stat(Path("/proc/stat").read_text())[0]
            own = parse_pid_cpu_ticks(Path("/proc/self/stat").read_text())  # with reaped children
            own += sum(
                parse_pid_cpu_ticks(Path(f"/proc/{pid}/stat").read_text())
                for pid, _ppid, pgrp in proc_table()
                if pgrp in set(pgids)
            )
        except (OSError, ValueError, IndexError):
            return None
        return {**{k: getattr(times, k) for k in CpuTimes.__dataclass_fields__}, "own": own}

    def start(self, pgids: Sequence[int]) -> None:
        self._t0, self._start = time.monotonic(), self._sample(pgids)

    def end(self, pgids: Sequence[int], placement: ClientPlacement) -> None:
        end = self._sample(pgids) if self._start is not None else None
        if self._start is not None and end is not None:
            self.facts.update(window_shares(self._start, end) or {})
            self.facts["sweep_s"] = round(time.monotonic() - self._t0, 3)
        self.facts["load_after"] = read_loadavg()
        self.facts["cpus"] = {
            "client": sorted({c for cpus in placement.clients for c in cpus}),
            "standins": list(placement.standins),
        }


async def _wait_for_shards(procs: Sequence[Any], gate: StepGate | None = None) -> tuple[int, str]:
    """Wait for every shard, releasing each gated step once all are ready for it; at the first failure stop
    the others. (worst exit code, what failed)."""
    released: set[int] = set()
    while True:
        if gate is not None:
            released.update(release_ready_steps(gate, len(procs), released))
        codes = [p.returncode for p in procs]
        failed = [(i, c) for i, c in enumerate(codes) if c is not None and c not in _OK_EXIT_CODES]
        if failed:
            index, code = failed[0]
            for p in procs:
                await p.astop()
            return code, (
                f"shard {index} exited with code {code}; the other shards were stopped:\n" + procs[index].log_tail(20)
            )
        if all(c is not None for c in codes):
            return max(codes), ""
        await asyncio.sleep(_GATE_POLL_S if gate is not None else _POLL_S)


async def _run_shards(
    target: Any,
    argvs: Any,
    placement: ClientPlacement,
    log_dir: Path,
    noise: _WholeRunNoise,
    console: Console,
    gate: StepGate | None = None,
) -> tuple[int, str, dict[str, Any]]:
    """Start the stand-in, the shards (pinned, under lifelines), wait; always stop everything."""
    procs: list[Any] = []
    standin_groups: list[int] = []
    with cancel_on_sigterm():  # SIGTERM stops every shard and the stand-in, as Ctrl-C does
        try:
            t0 = time.perf_counter()
            await target.start()
            desc = {**target.describe(), "start_s": round(time.perf_counter() - t0, 3)}
            console.info(f"[{target.name}] ready at {target.base_url}; starting {len(placement.clients)} shards")
            standin_groups = [p.pgid for p in (getattr(target, "processes", None) or []) if getattr(p, "pgid", None)]
            noise.start(standin_groups)
            for index, argv in enumerate(argvs(target.base_url)):
                procs.append(spawn(argv, log_path=log_dir / f"shard-{index}.log", cpus=placement.clients[index]))
                console.info(f"  shard {index}: pid {procs[-1].pid}, CPUs {list(placement.clients[index]) or 'any'}")
            code, problem = await _wait_for_shards(procs, gate)
            return code, problem, desc
        finally:
            for proc in procs:
                await proc.astop()
            noise.end(standin_groups, placement)
            await asyncio.shield(target.stop())


@dataclass(frozen=True)
class _Checked:
    """A checked ``--clients`` run: the configuration to use, the plan's flags (as the shards get them), target
    and run id."""

    config: BenchConfig
    overrides: dict[str, Any]
    target: str
    run_id: str


def _check(config: BenchConfig, request: RunRequest) -> _Checked:
    """Every check that can fail before anything starts (ValueError / ResultsError naming the problem)."""
    requested = request.engine_name(config)
    if requested not in ("auto", *ENGINE_NAMES):
        raise ValueError(f"unknown engine {requested!r}; engines: auto, {', '.join(ENGINE_NAMES)}")
    names = request.target_names(config)
    clients, start_at, step_interval_s = request.clients or 1, request.start_at, request.step_interval_s
    modes, capacity = plan_capacity(config, request.mode_list(), request.slo)
    overrides = request.sweep_overrides(config, modes)
    plan = None if modes == [] else SweepPlan.from_config(config.sweep, config.loadgen, **overrides)
    # check the plan as a shard of this run would be checked: gated, or on the --start-at schedule
    gated = start_at is None and step_interval_s is None
    schedule = StartSchedule(start_at or time.time() + CLIENT_START_DELAY_S, step_interval_s or 0.0)
    check_shard_run(
        plan,
        names,
        ShardOptions(ShardSpec(0, clients), schedule, gate=Path("gate") if gated else None),
        capacity=capacity is not None,
    )
    if request.endpoint is not None:
        config = with_endpoint(config, names[0], request.endpoint)
    if request.out is not None:
        config = dataclasses.replace(config, results_dir=Path(request.out).resolve())
    run_id = validate_run_id(request.run_id or default_run_id())
    run_dir = config.results_dir / run_id
    refuse_existing_run(run_dir)  # a ResultsError (a ValueError) naming the folder
    return _Checked(config, overrides, names[0], run_id)


def run_clients(
    config: BenchConfig,
    request: RunRequest,
    console: Console,
    report: Callable[[BenchConfig, Path], Path] | None = None,
) -> int:
    """Run ``request.clients`` shards of the plan against one target and merge them into ``RUN``; exit code as
    `bench run`.  ``report``: writes a run folder's report (None: no report)."""
    clients, start_at, step_interval_s = request.clients or 1, request.start_at, request.step_interval_s
    load_at_start = run_start_load()  # before this run does any work
    try:
        checked = _check(config, request)
        config, name = checked.config, checked.target
        run_dir = config.results_dir / checked.run_id

        def context(cpus: tuple[int, ...]) -> Any:
            return lambda _: target_context(config, log_dir=run_log_dir(run_dir) / name, cpus=cpus)

        local = not build_targets(config.targets, [name], context(()))[0].is_remote  # the stand-in's CPUs depend on it
        placement = place_clients(clients, config.loadgen.cpus, available_cpus(), local_target=local)
    except (ValueError, ResultsError) as exc:
        console.error(str(exc))
        return 2
    target = build_targets(config.targets, [name], context(placement.standins))[0]
    try:
        engine_name = _prepare(config, console, request.engine_name(config))
    except (OSError, RuntimeError, ValueError, ImportError) as exc:
        console.error(f"cannot prepare the run: {type(exc).__name__}: {exc}")
        return 1
    shards_dir = run_dir / SHARDS_DIR
    shards_dir.mkdir(parents=True, exist_ok=True)
    if (config.results_dir / "calibration.json").is_file():  # every shard reuses the one just checked
        shutil.copy(config.results_dir / "calibration.json", shards_dir / "calibration.json")
    console.info(f"run {checked.run_id}: {clients} shards of {name} on this machine; CPUs: {placement.note}")
    schedules: list[StartSchedule] = []
    gate = None
    if start_at is None and step_interval_s is None:  # this parent starts every step (loadgen.barrier.StepGate)
        gate = StepGate(shards_dir / "gate")
        gate.folder.mkdir()
        console.info("steps: each starts on every shard as soon as all have warmed up for it (coordinated here)")

    def argvs(base_url: str) -> list[list[str]]:  # called once the stand-in is up: the delay counts from then
        if gate is not None:
            schedules.append(StartSchedule())
        else:
            schedules.append(
                StartSchedule(
                    start_at if start_at is not None else time.time() + CLIENT_START_DELAY_S, step_interval_s or 0.0
                )
            )
        return [
            shard_argv(
                config_path=Path(request.config_path).resolve(),
                target=name,
                spec=ShardSpec(i, clients),
                schedule=schedules[0],
                out=shards_dir,
                run_id=checked.run_id,
                endpoint=base_url,
                engine=engine_name,
                overrides=checked.overrides,
                gate=gate.folder if gate is not None else None,
            )
            for i in range(clients)
        ]

    noise = _WholeRunNoise()
    try:
        code, problem, desc = run_coroutine(_run_shards(target, argvs, placement, shards_dir, noise, console, gate))
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.error(f"interrupted: every shard and the stand-in were stopped; shard folders kept in {shards_dir}")
        return 130
    except Exception as exc:
        console.error(f"[{name}] {type(exc).__name__}: {exc}")
        return 1
    if problem:
        console.error(problem)
        return 1
    extra = {
        "targets": {name: desc},
        "cpu_plan": {
            "client": sorted({c for cpus in placement.clients for c in cpus}),
            "standins": list(placement.standins),
        },
        "host_noise": {
            "at_start": load_at_start,
            "targets": {name: noise.facts},
            "measured_by": "the --clients parent: the stand-in and every shard count as "
            "servebench's own CPU time (each shard's own figures are under shards)",
        },
        "clients": {
            "count": clients,
            "placement": placement.describe(),
            "start_at": schedules[0].start_at,
            "step_interval_s": schedules[0].interval_s,
            "engine": engine_name,
            "steps_started_by": "this parent, when every shard was ready (step gate)"
            if gate is not None
            else "the wall clock (--start-at schedule)",
            "start_delay_s": None if start_at is not None or gate is not None else CLIENT_START_DELAY_S,
        },
    }
    shard_dirs = [
        shards_dir / shard_run_id(checked.run_id, ShardOptions(ShardSpec(i, clients), schedules[0]))
        for i in range(clients)
    ]
    return _merge_and_show(config, shard_dirs, run_dir, placement, extra, name, code, report, console)


def _merge_and_show(
    config: BenchConfig,
    shard_dirs: list[Path],
    run_dir: Path,
    placement: ClientPlacement,
    extra: dict[str, Any],
    name: str,
    code: int,
    report: Callable[[BenchConfig, Path], Path] | None,
    console: Console,
) -> int:
    """Merge the shards into the run's folder, show it (and its report); the exit code."""
    try:
        result = merge_runs(
            shard_dirs,
            run_dir,
            redactor=redactor_for(config, console),
            cpu_groups=placement.cpu_groups(),
            extra_meta=extra,
        )
    except (MergeError, ResultsError) as exc:
        console.error(f"the shards ran but cannot be merged: {exc} (shard folders in {run_dir / 'shards'})")
        return 1
    print_merge(result, console)
    print_table3(run_dir, console)
    for warning in noise_warnings(result.meta):
        console.warn(warning)
    if report is not None:
        console.print(f"report: {report(config, run_dir) / 'report.html'}")
    outcome = result.meta.details["outcomes"][name]
    if outcome["status"] != "ok" or code:
        console.error(f"{name}: {outcome['message'] or 'a shard reported problems'} -- details in {run_dir / 'shards'}")
        return 1
    return 0
