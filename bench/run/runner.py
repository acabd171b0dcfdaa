"""Sweep the targets of a run one at a time, writing each row as it is measured.

Why one target at a time (start, sweep, stop): on a small machine two stand-ins would
compete for the same cores and each would slow the other; the study measured each
platform on its own. Why keep going after a failure: a target that cannot start or dies
mid-run must not cost the measurements of the others. Why a start per trial (issue
21): trials inside one start share its placement and caches and are not replicates of
what differs between runs; :mod:`bench.run.trial_design` says which target is measured
when. Its state is recorded in meta.json, the steps already measured stay on disk, and the
command exits non-zero naming it.

Nothing here prints: progress and messages go through :class:`RunEvents` callbacks that
``bench.run.session`` connects to the console.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.hostnoise import TargetNoiseProbe, target_busy_reasons
from bench.results import RunWriter
from bench.results.writer import ResultsWriteError
from bench.run.trial_design import RESTART, Visit, describe_design, visit_schedule
from bench.signals import cancel_on_sigterm
from ground.clock import utc_iso, utc_stamp
from ground.runmeta import RunMeta, RunStatus
from loadgen.live import LiveStats
from loadgen.records import StepKey
from loadgen.stats import parse_error_counts, summarize
from targets.base import Target

__all__ = [
    "DEATH_CLASSES",
    "RunEvents",
    "TargetOutcome",
    "default_run_id",
    "finish_meta",
    "model_facts",
    "run_coroutine",
    "run_log_dir",
    "sweep_targets",
]

# A step in which every request failed with one of these means nothing is listening any
# more: the target died. Timeouts or 5xx mean it is slow or broken, which is measured.
DEATH_CLASSES = frozenset({"refused", "reset"})


@dataclass
class TargetOutcome:
    """What happened to one target.

    ``status``: pending (not started yet) | running (being measured: written to meta.json
    when the target starts, so a run killed mid-target says which one) | ok | errors |
    start_failed | died | failed | interrupted | not_run.
    """

    name: str
    status: str = "pending"
    message: str = ""
    steps: int = 0
    requests: int = 0
    errors: int = 0
    error_classes: dict[str, int] = field(default_factory=dict)
    start_s: float | None = None

    @property
    def problem(self) -> bool:
        return self.status not in ("ok", "pending", "running")

    def as_meta(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunEvents:
    """Callbacks from the runner to whoever displays progress (all optional)."""

    on_target_start: Callable[[str], None] = lambda name: None
    on_target_ready: Callable[[str, Mapping[str, Any]], None] = lambda name, desc: None
    on_progress: Callable[[StepKey, int, int, LiveStats], None] = lambda key, done, total, live: None
    on_step: Callable[[Mapping[str, Any]], None] = lambda row: None
    on_target_done: Callable[[TargetOutcome], None] = lambda outcome: None


def default_run_id(now: float | None = None) -> str:
    """Time-based, sortable, UTC: ``20261128-214003``."""
    return utc_stamp(now)


def run_coroutine(coro: Any) -> Any:
    """Run the async part on uvloop when available (the fast engine's loop helper)."""
    try:
        from loadgen.engines.fast_engine import new_event_loop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)


def model_facts(artifacts: Any) -> dict[str, Any]:
    """meta.json's model section: where, which files (sha256), and how good the model is."""
    info = dict(artifacts.info)
    facts: dict[str, Any] = {
        "dir": str(artifacts.dir),
        "trained_by_this_run": bool(getattr(artifacts, "trained", False)),
        "model_json_sha256": hashlib.sha256(artifacts.model_json_path.read_bytes()).hexdigest(),
        "sha256": dict(info.pop("sha256", {})),
    }
    ts = next((h for f, h in facts["sha256"].items() if f.endswith("model.pt")), None)
    facts["torchscript_sha256"] = ts
    for key, value in info.items():
        if isinstance(value, str | int | float | bool) or key in ("accuracy", "parity", "test_accuracy"):
            facts[key] = value
    return facts


def finish_meta(
    meta: RunMeta, outcomes: Sequence[TargetOutcome], status: RunStatus, error: str | None = None
) -> RunMeta:
    """End a load run: :meth:`RunMeta.finish`, then the per-target outcomes and problems."""
    meta.finish(status, error=error)
    word = meta.status.value
    for o in outcomes:
        if o.status == "pending":
            o.status, o.message = "not_run", f"not run: the run ended ({word}) before this target"
        elif o.status == "running":  # left mid-target (or between its trials) by an exception no handler named
            o.status, o.message = word, f"the run ended ({word}) before this target's last trial was measured"
    _record_outcomes(meta, outcomes)
    return meta


def _record_outcomes(meta: RunMeta, outcomes: Sequence[TargetOutcome]) -> None:
    meta.details["outcomes"] = {o.name: o.as_meta() for o in outcomes}
    meta.details["target_errors"] = {o.name: f"{o.status}: {o.message}" for o in outcomes if o.problem}


def _is_dead(row: Mapping[str, Any]) -> bool:
    classes = parse_error_counts(row.get("errors_by_class") or "")
    return int(row.get("n_ok", 0)) == 0 and bool(classes) and set(classes) <= DEATH_CLASSES


async def _sweep_one(
    target: Target,
    outcome: TargetOutcome,
    run_sweep: Callable[..., Any],
    engine_factory: Callable[[Any], Any],
    plan: Any,
    images: np.ndarray | Any,  # the test split, or a ready SampleSet (then labels is None)
    labels: np.ndarray | None,
    writer: RunWriter,
    events: RunEvents,
    checkpoint: Callable[[StepKey, int, float, float], None] | None = None,
) -> None:
    classes: Counter[str] = Counter(outcome.error_classes)  # over the target's visits so far
    sweep = run_sweep(
        target,
        engine_factory,
        plan,
        images,
        labels,
        on_progress=events.on_progress,
        record_sink=lambda key: writer.step_sink(key, on_checkpoint=checkpoint),
    )
    try:
        async for step in sweep:
            row = summarize(step)
            writer.append_summary(row)
            if not step.streamed:  # a shard's step, or a run_sweep that does not stream
                writer.append_requests(step.key, step.records)
            outcome.steps += 1
            outcome.requests += step.n_records
            outcome.errors += int(row["errors"])
            classes.update(parse_error_counts(row["errors_by_class"] or ""))
            outcome.error_classes = dict(classes)
            events.on_step(row)
            if _is_dead(row):
                outcome.status = "died"
                outcome.message = (
                    f"every request of step {step.key.mode} N={step.key.n_requests} failed "
                    f"({row['errors_by_class']}): the target stopped answering; "
                    "its remaining steps were skipped"
                )
                return
    finally:
        await sweep.aclose()
    if outcome.errors:
        outcome.status = "errors"
        outcome.message = (
            f"{outcome.errors} of {outcome.requests} requests failed ("
            + ", ".join(f"{k}: {v}" for k, v in classes.items())
            + ")"
        )
    else:
        outcome.status = "ok"


async def sweep_targets(
    targets: Sequence[Target],
    outcomes: Sequence[TargetOutcome],
    *,
    run_sweep: Callable[..., Any],
    engine_factory: Callable[[Any], Any],
    plan: Any,
    images: np.ndarray,
    labels: np.ndarray,
    writer: RunWriter,
    meta: RunMeta,
    events: RunEvents,
    trial_design: str = RESTART,
    samples: Callable[[Target], Awaitable[Any]] | None = None,
) -> list[TargetOutcome]:
    """Start, sweep and stop the targets visit by visit; never let one target's failure stop the rest.

    The visits come from :func:`bench.run.trial_design.visit_schedule`: with ``restart`` (the
    default) every trial of a local stand-in is its own start, the targets in a seeded
    shuffled order per trial; a remote target, or ``within-run``, is visited once for all
    trials. meta.json's ``trial_design`` records which. After a visit that ends in a
    problem (start failed, died, sweep failed) the target's remaining visits are skipped.
    ``run_sweep`` gets the plan of the visit (``only_trials``), so a once-per-target phase
    wrapped around it (:func:`bench.capacity.run.with_capacity`) runs on the last visit.

    Cancellation (Ctrl-C / SIGTERM) stops the current target and marks it interrupted; the
    caller finalises meta.json. meta.json is rewritten when each visit starts (the
    target's outcome ``running``) and after it (its outcome and host-noise facts, see
    :mod:`bench.hostnoise`). ``outcomes`` (one per target, same order) is filled in place,
    so it is complete even when a KeyboardInterrupt unwinds the event loop before this
    coroutine returns.

    ``samples(target)``, awaited once the target is up and before any request is sent, gives
    the :class:`~loadgen.samples.SampleSet` to send instead of ``images``/``labels`` (None:
    the MNIST images); an exception from it fails the target with its message, nothing sent
    (:mod:`bench.run.samples`: input-data files and inputs synthesised from metadata).
    """
    names = [t.name for t in targets]
    remote = [bool(getattr(t, "is_remote", False)) for t in targets]
    trials, seed = (plan.trials, plan.seed) if plan is not None else (1, 0)
    visits = visit_schedule(remote, trials, design=trial_design, seed=seed, has_plan=plan is not None)
    meta.details["trial_design"] = describe_design(
        names, remote, trials, design=trial_design, seed=seed, has_plan=plan is not None
    )
    meta.details["outcomes"] = {o.name: o.as_meta() for o in outcomes}
    noise = meta.details.setdefault("host_noise", {}).setdefault("targets", {})
    with cancel_on_sigterm():  # SIGTERM cancels the sweep as Ctrl-C does: every stand-in is stopped
        for visit in visits:
            target, outcome = targets[visit.index], outcomes[visit.index]
            if outcome.problem:
                continue  # its earlier visit failed: the message says so, the other targets go on
            visit_plan = replace(plan, only_trials=visit.trials) if plan is not None and visit.trials else plan
            await _visit(
                target,
                outcome,
                visit,
                visit_plan,
                run_sweep,
                engine_factory,
                images,
                labels,
                writer,
                meta,
                outcomes,
                events,
                noise,
                samples,
            )
    return outcomes


def _visit_label(visit: Visit, plan: Any) -> str:
    return f"trial {visit.trials[0]}/{plan.trials}" if visit.trials and plan is not None else ""


async def _visit(
    target: Target,
    outcome: TargetOutcome,
    visit: Visit,
    plan: Any,
    run_sweep: Callable[..., Any],
    engine_factory: Callable[[Any], Any],
    images: np.ndarray,
    labels: np.ndarray,
    writer: RunWriter,
    meta: RunMeta,
    outcomes: Sequence[TargetOutcome],
    events: RunEvents,
    noise: dict[str, Any],
    samples: Callable[[Target], Awaitable[Any]] | None = None,
) -> None:
    """One start-sweep-stop of ``target``; its outcome accumulates over the target's visits."""
    label = _visit_label(visit, plan)
    events.on_target_start(target.name)
    outcome.status = "running"
    _write_progress(meta, outcomes, writer)
    probe = TargetNoiseProbe()
    probe.before_start()
    t0 = time.perf_counter()
    try:
        try:
            await target.start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outcome.status = "start_failed"
            outcome.message = f"could not start{' for ' + label if label else ''}: {type(exc).__name__}: {exc}"
            if outcome.steps:
                outcome.message += f" (after {outcome.steps} steps of earlier trials; its remaining trials skipped)"
            return
        start_s = round(time.perf_counter() - t0, 3)
        outcome.start_s = start_s if outcome.start_s is None else outcome.start_s
        desc = target.describe()
        meta.details.setdefault("targets", {})[target.name] = {**desc, "start_s": outcome.start_s}
        starts = meta.details["trial_design"].setdefault("starts", {}).setdefault(target.name, [])
        starts.append({"trials": list(visit.trials) or "all", "start_s": start_s, "base_url": desc.get("base_url")})
        events.on_target_ready(target.name, desc)
        probe.window_start(_pgids(target))
        try:
            chosen = await samples(target) if samples is not None else None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outcome.status = "failed"
            outcome.message = f"no request sent: {exc}"
            return
        sent = (chosen, None) if chosen is not None else (images, labels)
        try:
            checkpoint = _checkpointer(meta, outcomes, writer)
            await _sweep_one(target, outcome, run_sweep, engine_factory, plan, *sent, writer, events, checkpoint)
        except asyncio.CancelledError:
            raise
        except ResultsWriteError as exc:  # the disk is full: every other target would fail the same way
            outcome.status = "failed"
            outcome.message = f"stopped after {outcome.steps} steps: {exc}"
            raise
        except Exception as exc:
            outcome.status = "failed"
            outcome.message = (
                f"sweep failed after {outcome.steps} steps{' in ' + label if label else ''}: "
                f"{type(exc).__name__}: {exc}"
            )
        if outcome.status in ("ok", "errors") and not visit.last:
            outcome.status = "running"  # more trials to come; "ok"/"errors" is decided on its last visit
    except asyncio.CancelledError:
        outcome.status = "interrupted"
        outcome.message = f"interrupted after {outcome.steps} steps"
        raise
    finally:
        probe.window_end(_pgids(target))
        try:
            await asyncio.shield(target.stop())
        except Exception as exc:
            outcome.message += f"; stop failed: {exc}"
        probe.after_stop()
        _record_noise(noise, target.name, probe.facts(), meta)
        try:
            _write_progress(meta, outcomes, writer)
        except OSError as exc:  # a full disk: the error that stops the run is already on its way
            outcome.message += f"; meta.json not rewritten: {exc}"
        if outcome.status != "pending" and (visit.last or outcome.problem):
            events.on_target_done(outcome)


def _record_noise(noise: dict[str, Any], name: str, facts: dict[str, Any], meta: RunMeta) -> None:
    """Per target, the noisiest visit's facts (what the warnings read) and every visit's in ``visits``."""
    n_cpus = int(((meta.details.get("host_noise") or {}).get("at_start") or {}).get("n_cpus") or 1)
    previous = noise.get(name)
    visits = (previous or {}).get("visits", [])
    if previous is None or len(target_busy_reasons(facts, n_cpus)) > len(target_busy_reasons(previous, n_cpus)):
        noise[name] = dict(facts)
    noise[name]["visits"] = [*visits, facts]


def _pgids(target: Target) -> list[int]:
    """Process groups of a local stand-in (empty for remote targets): its CPU is servebench's."""
    return [p.pgid for p in (getattr(target, "processes", None) or []) if getattr(p, "pgid", None)]


def _checkpointer(
    meta: RunMeta, outcomes: Sequence[TargetOutcome], writer: RunWriter
) -> Callable[[StepKey, int, float, float], None]:
    """What a streamed step's sink calls after each member it wrote: meta.json says how far the step got.

    ``checkpoint`` in meta.json: the step (its key), when it started (epoch seconds: the
    report's timeline places a killed step with it), the records of it on disk and when the
    last were written (UTC); a run killed mid-step is read with it (``bench report``)."""

    def checkpoint(key: StepKey, records_written: int, at: float, step_started_at: float) -> None:
        meta.details["checkpoint"] = {
            "step": asdict(key),
            "step_started_at": step_started_at,
            "records_written": records_written,
            "requests_written": writer.requests_written,
            "last_flush": utc_iso(at),
        }
        try:
            _write_progress(meta, outcomes, writer)
        except OSError as exc:
            raise ResultsWriteError(writer.meta_path, exc) from exc

    return checkpoint


def _write_progress(meta: RunMeta, outcomes: Sequence[TargetOutcome], writer: RunWriter) -> None:
    _record_outcomes(meta, outcomes)
    writer.write_meta(meta)


def run_log_dir(run_dir: Path) -> Path:
    """The folder of a run's stand-in logs (``RUN/logs``, one sub-folder per target): beside the results,
    so a failure's log tail can be read later."""
    return run_dir / "logs"
