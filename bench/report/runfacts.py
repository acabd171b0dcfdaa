"""meta.json in words: the run's status, CPU plan, sweep settings and warnings, as a reader
wants them (not as Python dicts).

report.md/html open with these facts; they must be readable sentences and small tables, and
a new fact (a host-noise warning, a new sweep setting) should have one obvious place to go
-- :func:`run_warnings` for anything the reader must see before trusting the numbers,
:func:`sweep_rows` for settings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.results.status import status_and_noise_warnings as state_warnings
from bench.run_timing import timing_text
from bench.shard_run import sharding_text, sharding_warnings
from ground.runmeta import RunMeta, RunStatus
from loadgen.stages import Stage, format_stages, parse_stage_table, peak_rate, planned_count

__all__ = [
    "ceiling_text",
    "cpu_plan_text",
    "meta_rows",
    "run_warnings",
    "status_text",
    "sweep_rows",
    "target_ceilings",
]

_STATUS = {
    RunStatus.COMPLETE: "complete: every planned target was run",
    RunStatus.INTERRUPTED: "interrupted (Ctrl-C or SIGTERM): the tables hold only the steps measured before it stopped",
    RunStatus.FAILED: "failed on an error: the tables hold only the steps measured before it",
    RunStatus.ABANDONED: "abandoned: the run's process ended without finishing it; the tables hold the steps "
    "measured before",
    RunStatus.RUNNING: "running: the process writing it is still measuring; the tables hold the steps so far",
    RunStatus.UNKNOWN: "unknown",
}


def status_text(meta: RunMeta) -> str:
    """How the run ended, in words (plus how many targets had problems)."""
    text = _STATUS[meta.status]
    if meta.status is RunStatus.FAILED and meta.error:
        text += f" ({_first_line(meta.error)})"
    if meta.status is RunStatus.UNKNOWN and meta.status_reason:
        text += f": {meta.status_reason}"
    problems = meta.details.get("target_errors") or {}
    if problems:
        text += f"; {len(problems)} target(s) had problems: {', '.join(problems)}"
    return text


def cpu_plan_text(plan: Mapping[str, Any] | None) -> str:
    """'load generator on CPU 1; stand-ins on CPU 0 (shared by all of them)'."""
    client = list((plan or {}).get("client") or [])
    standins = list((plan or {}).get("standins") or [])
    if not client and not standins:
        return "not pinned: the load generator and the stand-ins share every CPU"

    def cpus(values: Sequence[Any]) -> str:
        return ("CPU " if len(values) == 1 else "CPUs ") + ", ".join(str(v) for v in values)

    client_cpus = cpus(client) if client else "any CPU"
    standin_cpus = cpus(standins) if standins else "any CPU"
    text = f"load generator on {client_cpus}; stand-ins on {standin_cpus}"
    if len(standins) == 1:
        text += " (all stand-ins share that one core: extra workers or replicas add no parallelism)"
    return text


def target_ceilings(details: Mapping[str, Any]) -> dict[str, Mapping[str, Any] | None]:
    """The targets whose requests another engine than the run's sent, each with that engine's ceiling.

    A target's ``client_engine`` fact (meta.json ``targets``; e.g. ``"grpc (grpcio 1.85.4)"``)
    names it; the ceiling is the run's calibration of that engine (``client_ceilings``), None
    when it was not measured (``bench calibrate --engines fast,aiohttp,httpx,grpc``).
    """
    measured = details.get("client_ceilings") or {}
    out: dict[str, Mapping[str, Any] | None] = {}
    for name, facts in (details.get("targets") or {}).items():
        engine = str((facts or {}).get("client_engine") or "").split(" ", 1)[0] if isinstance(facts, Mapping) else ""
        if engine:
            out[str(name)] = measured.get(engine)
    return out


def _other_engines_text(details: Mapping[str, Any]) -> str:
    """The targets another engine sent (gRPC ones), each with that engine's ceiling or why it has none."""
    parts = []
    for target, ceiling in target_ceilings(details).items():
        engine = str(((details.get("targets") or {}).get(target) or {}).get("client_engine", "?")).split(" ", 1)[0]
        parts.append(
            f"{target} (sent by the {engine} engine): "
            + (
                ceiling_text(ceiling)
                if ceiling
                else f"not measured (bench calibrate --engines fast,aiohttp,httpx,{engine}): its steps are "
                "not checked against a client ceiling"
            )
        )
    return "".join(f"; {part}" for part in parts)


def ceiling_text(ceiling: Mapping[str, Any] | None) -> str:
    if not ceiling:
        return "not measured (no calibration recorded): near-ceiling points cannot be flagged"
    points = ", ".join(
        f"c={k}: {float(v):,.0f} req/s"
        for k, v in sorted((ceiling.get("rps_by_concurrency") or {}).items(), key=lambda kv: float(kv[0]))
    )
    return f"{ceiling.get('engine', '?')} engine: {points}"


def _seconds(value: Any) -> str:
    try:
        return f"{float(value):g} s"
    except (TypeError, ValueError):
        return str(value)


def _stages(value: Any) -> tuple[Stage, ...] | None:
    """meta.json's ``stages`` read back (None when there are none, or they cannot be read)."""
    if not value:
        return None
    try:
        return tuple(parse_stage_table(table, f"stages[{i}]") for i, table in enumerate(value))
    except ValueError:
        return None


def sweep_rows(sweep: Mapping[str, Any]) -> list[list[str]]:
    """[setting, value] rows for the sweep table; settings it does not know are listed as they are."""
    s = dict(sweep)
    rows: list[list[str]] = []

    def take(name: str, label: str, text: Any) -> None:
        if name in s:
            s.pop(name)
            rows.append([label, str(text)])

    modes = list(s.get("modes") or [])
    counts = ", ".join(str(n) for n in s.get("n_requests") or [])
    stages = _stages(s.pop("stages", None)) if "rate" in modes else None
    if stages is not None:  # the rate steps follow stages (docs/soak.md)
        staged = f"{planned_count(stages)} (the stages' rate curve, integrated)"
        others = ", ".join(m for m in modes if m != "rate")
        counts = staged if modes == ["rate"] else f"{counts} ({others}); rate steps: {staged}"
    elif modes == ["rate"] and s.get("duration_s") and s.get("rate_rps"):  # the counts are not used at all
        counts = f"{round(float(s['rate_rps']) * float(s['duration_s']))} (offered rate x seconds of arrivals)"
    elif "rate" in modes and s.get("duration_s") and s.get("rate_rps"):
        counts += (
            f" ({', '.join(m for m in modes if m != 'rate')}); rate steps: "
            f"{round(float(s['rate_rps']) * float(s['duration_s']))} (offered rate x seconds of arrivals)"
        )
    take("n_requests", "requests per step (N)", counts)
    take("modes", "modes", ", ".join(modes))
    take("trials", "trials (each step repeated)", s.get("trials"))
    take("warmup", "warm-up requests before each step (not counted)", s.get("warmup"))
    conc = s.get("concurrency")
    take("concurrency", "in flight in concurrent mode", "N (a burst of all N)" if not conc else f"at most {conc}")
    if stages is not None:
        rows.append(["stages (rate mode)", f"{format_stages(stages)} (peak {peak_rate(stages):g} req/s)"])
        for name in ("rate_rps", "duration_s"):  # the stages give both
            s.pop(name, None)
    if "rate" in modes:
        take("rate_rps", "offered rate (rate mode)", f"{s.get('rate_rps')} req/s")
        take("arrival", "arrivals (rate mode)", s.get("arrival"))
        duration = s.get("duration_s")
        take(
            "duration_s",
            "seconds of arrivals per rate step",
            _seconds(duration) if duration else "not set (N from the request counts)",
        )
    else:
        for name in ("rate_rps", "arrival", "duration_s"):  # rate-mode settings of a run without it
            s.pop(name, None)
    take("seed", "seed (image order, rate schedule)", s.get("seed"))
    take("max_duration_s", "longest a step may run", _seconds(s.get("max_duration_s")))
    if "timeout_s" in s or "connect_timeout_s" in s:
        rows.append(
            [
                "request timeout (connect)",
                f"{_seconds(s.pop('timeout_s', '?'))} ({_seconds(s.pop('connect_timeout_s', '?'))})",
            ]
        )
    rate_cap = s.get("max_rps")
    take("max_rps", "request rate cap", "none" if not rate_cap else f"{rate_cap} req/s")
    take("verify_tls", "TLS certificates verified (remote targets)", "yes" if s.get("verify_tls") else "no")
    rows += [[str(k), ", ".join(map(str, v)) if isinstance(v, list | tuple) else str(v)] for k, v in s.items()]
    return rows


def meta_rows(meta: RunMeta) -> list[list[str]]:
    """[fact, value] rows for the report's Run table."""
    details = meta.details
    host, git = meta.host, meta.git
    engine = details.get("engine") or {}
    model = details.get("model") or {}
    accuracy = (model.get("accuracy") or {}) if isinstance(model.get("accuracy"), Mapping) else {}
    facts = {
        "run id": meta.run_id or "?",
        "status": status_text(meta),
        "started / finished (UTC)": f"{meta.started_utc or '?'} / {meta.finished_utc or '-'}",
        "time taken by bench run": timing_text(details.get("timing"))
        or "not recorded (a run written before meta.json had timing)",
        "host CPU": (
            f"{host.get('cpu_model', '?')} ({host.get('cpu_count', '?')} CPUs, {host.get('cpus_usable', '?')} usable)"
        ),
        "OS / Python": f"{host.get('os', '?')} / Python {host.get('python', '?')}",
        "engine": f"{engine.get('name', '?')} ({engine.get('version', '?')}); chosen: {engine.get('chosen_by', '?')}",
        "client ceiling": ceiling_text(details.get("client_ceiling")) + _other_engines_text(details),
        "CPU plan": cpu_plan_text(details.get("cpu_plan")),
        "execution": details.get("execution", "-"),
        "model": f"{model.get('dir', '?')} (TorchScript sha256 {str(model.get('torchscript_sha256', '?'))[:16]}...)"
        + (
            f"; answers correct on the test split {100 * float(accuracy['torch']):.1f} %" if "torch" in accuracy else ""
        ),
        "config sha256": (details.get("config") or {}).get("sha256", "?"),
        "git": f"{git.get('commit', '?')}{' (dirty tree)' if git.get('dirty') else ''}",
    }
    if details.get("synthetic"):
        facts["synthetic"] = str(details["synthetic"])
    samples = details.get("samples") or {}
    if isinstance(samples, Mapping) and isinstance(samples.get("targets"), Mapping):  # not the MNIST images
        sent = "; ".join(f"{name}: {(fact or {}).get('description', '?')}" for name, fact in samples["targets"].items())
        facts["samples sent (other targets: the MNIST test split)"] = f"{sent} ({samples.get('check', '')})"
    if sharding_text(details):  # a run merged from shards (bench merge)
        facts["shards"] = sharding_text(details)
    return [[str(k), str(v)] for k, v in facts.items()]


def _first_line(text: str, limit: int = 300) -> str:
    line = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def run_warnings(
    meta: RunMeta, flagged_steps: int = 0, *, caution: str | None = None, out_of_order: int = 0
) -> list[str]:
    """Everything a reader must know before trusting this run's numbers, one sentence each.

    Rendered as a box at the top of report.md/html (the document's "warnings" block). This
    is the one place to add a new kind of warning about a run (e.g. a noisy host).
    ``caution``: the one-trial caution (:func:`bench.report.trialnoise.single_trial_caution`);
    ``out_of_order``: how many steps break the expected order beyond the noise.
    """
    warnings = []
    if meta.incomplete:
        warnings.append(
            f"**INCOMPLETE RUN** (status: {meta.status.value}): the tables hold only "
            "the steps measured before it stopped."
        )
    for target, message in (meta.details.get("target_errors") or {}).items():
        warnings.append(
            f"Target `{target}` had a problem: {_first_line(message)} (full message and the "
            "stand-in's log tail: the run's meta.json and logs/ folder)."
        )
    warnings.extend(
        state_warnings(meta)
    )  # abandoned / still running, busy host (bench.results.status, bench.hostnoise)
    warnings.extend(sharding_warnings(meta.details))  # merged shards: start skew, unsynchronised clocks
    if flagged_steps:
        warnings.append(
            f"{flagged_steps} step(s) are flagged (failed requests or a saturated open loop): they "
            'are marked in every table and figure, and listed under "Flagged steps".'
        )
    if caution:
        warnings.append(caution)
    if out_of_order:
        warnings.append(
            f"{out_of_order} step(s) break the expected order by more than the noise (a larger N "
            "finished sooner, or a throughput far from both its neighbours): listed under Table 3 as "
            '"Steps out of order"; re-measure them before reading them.'
        )
    return warnings
