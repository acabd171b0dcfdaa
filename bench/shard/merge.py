"""Merge shard runs (``bench run --shard I/N``) into one ordinary run (``bench merge SHARD_RUN... -o RUN``).

Why an ordinary run: ``bench report`` and ``bench compare`` must work on the merged run
unchanged, so it is written like any other -- summary.csv, requests.csv.gz, meta.json --
with three additions: a ``shard`` column in requests.csv.gz (which shard sent each
request), ``shards`` in meta.json (every shard's host, writer, engine, calibration, client
ceiling, clock estimate and measured step starts, as recorded) and ``sharding`` (the
splitting rules, the start schedule and, per step, the start skew between shards and each
shard's offered and achieved rate).

Refused, naming the difference: shards of different configurations (sha256), models
(TorchScript and model.json sha256), targets (name and description), plans (the sweep),
start schedules or shard counts; a shard index twice, or missing; a shard that did not
complete or lacks a step.  Statistics are recomputed from the union of the raw records
(:mod:`bench.shard.merge_records`), one step at a time: each shard's requests.csv.gz is
read step by step in its (the plan's) order, a step is merged, summarised and written,
then dropped, so a merge holds one step's records, not the run's; when a later step
cannot be merged, what was written is removed again.  What the top-level meta.json fields mean for a merged run:
``host``, ``versions``, ``git``, ``config``, ``model``, ``sweep``, ``test_split`` are the
shards' (checked equal where they must be; ``host`` is the first shard's); ``host_noise``
is the noisiest shard's, per target (so its warnings show); ``client_ceiling`` is the sum
of the shards' ceilings (:func:`combined_ceiling`); ``engine`` is the shards' if they all
used one, else ``mixed``.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.hostnoise import target_busy_reasons
from bench.report.tables import ceiling_for
from bench.results import SHARDS_DIR, ResultsError, RunData, RunWriter, holds_run, load_run, validate_run_id
from bench.results.parse import iter_step_records
from bench.results.status import writer_facts
from bench.shard.merge_records import MergedFacts, ShardStep, merge_step
from bench.shard_run import describe_share_rule
from ground.clock import utc_iso
from ground.redactor import Redactor
from ground.runmeta import RunMeta, RunStatus
from loadgen.records import RequestRecord, StepKey
from loadgen.shard import split_evenly
from loadgen.stats import SUMMARY_COLUMNS, format_flags, parse_error_counts, summarize
from loadgen.sweep import SweepPlan

__all__ = ["MergeError", "MergeResult", "combined_ceiling", "merge_runs", "read_shards"]

SHARD_COLUMN = "shard"
# Describing the same deployment, these may differ between shards (how long it took to check).
_VOLATILE_TARGET_KEYS = ("start_s",)


class MergeError(ValueError):
    """The shard runs cannot be merged; the message names the shard(s) and the difference."""


@dataclass(frozen=True)
class ShardInput:
    """One shard run as read from disk (by the one reader: typed rows, records and metadata)."""

    path: Path
    run: RunData
    index: int
    count: int
    requests_file: Path  # the shard's raw records, read step by step (:class:`_StepStream`)

    @property
    def name(self) -> str:
        return f"shard {self.index} ({self.path})"

    @property
    def meta(self) -> dict[str, Any]:
        """The shard's meta.json content (what the merged run keeps and compares, section by section)."""
        return self.run.meta.to_json()


@dataclass(frozen=True)
class MergeResult:
    run_dir: Path
    run_id: str
    steps: tuple[MergedFacts, ...]
    meta: RunMeta


def read_shards(paths: Sequence[Path]) -> list[ShardInput]:
    """Read every shard run (with its raw requests); MergeError for anything that is not one."""
    shards = []
    for path in paths:
        try:
            run = load_run(path, with_requests=True)
        except ResultsError as exc:
            raise MergeError(f"{path}: {exc}") from None
        section = run.meta.details.get("shard")
        if not isinstance(section, Mapping):
            raise MergeError(
                f"{path} is not a shard run: its meta.json has no 'shard' section "
                "(shard runs come from `bench run TARGET --shard I/N`)"
            )
        if run.requests_file is None:
            raise MergeError(f"{path} has no requests.csv.gz: the merge needs every shard's raw records")
        shards.append(ShardInput(Path(path), run, int(section["index"]), int(section["count"]), run.requests_file))
    return shards


class _StepStream:
    """One shard's records step by step in file order (the plan's order): one step in memory."""

    def __init__(self, shard: ShardInput) -> None:
        self._steps = iter_step_records(shard.requests_file)
        self._next: tuple[StepKey, tuple[RequestRecord, ...]] | None = None

    def take(self, same_step: Any) -> tuple[RequestRecord, ...]:
        """The records of the next step if ``same_step(its key)``, else none (a share of 0 requests)."""
        if self._next is None:
            self._next = next(self._steps, None)
        if self._next is None or not same_step(self._next[0]):
            return ()
        records, self._next = self._next[1], None
        return records


def _difference(a: Any, b: Any, where: str = "") -> str | None:
    """The first place where two JSON-like values differ, as 'key.sub: A vs B'; None when equal."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in list(dict.fromkeys([*a, *b])):
            sub = f"{where}.{key}" if where else str(key)
            if key not in a or key not in b:
                left = repr(a[key]) if key in a else "missing"
                right = repr(b[key]) if key in b else "missing"
                return f"{sub}: {left} vs {right}"
            found = _difference(a[key], b[key], sub)
            if found:
                return found
        return None
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            found = _difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{where or 'value'}: {a!r} vs {b!r}"


def _target_facts(meta: Mapping[str, Any]) -> dict[str, Any]:
    targets = meta.get("targets") or {}
    return {
        "order": list(meta.get("targets_order") or []),
        "described": {
            name: {k: v for k, v in (desc or {}).items() if k not in _VOLATILE_TARGET_KEYS}
            for name, desc in targets.items()
        },
    }


def _model_facts(meta: Mapping[str, Any]) -> dict[str, Any]:
    model = meta.get("model") or {}
    return {k: model.get(k) for k in ("torchscript_sha256", "model_json_sha256", "sha256")}


_AGREEMENT = (  # what must be equal, the words for it, how to read it from meta.json
    ("configuration", lambda m: (m.get("config") or {}).get("sha256")),
    ("model", _model_facts),
    ("target", _target_facts),
    ("plan", lambda m: m.get("sweep")),
    ("test split", lambda m: m.get("test_split")),
    ("start schedule", lambda m: (m.get("shard") or {}).get("schedule")),
)


def check_shards(shards: Sequence[ShardInput]) -> None:
    """MergeError naming the first disagreement, duplicate, gap or unfinished shard."""
    if not shards:
        raise MergeError("no shard runs given")
    counts = sorted({s.count for s in shards})
    if len(counts) > 1:
        raise MergeError(
            "the runs are shards of different splits: "
            + "; ".join(f"{s.path} is shard {s.index} of {s.count}" for s in shards)
        )
    count = counts[0]
    seen: dict[int, ShardInput] = {}
    for shard in shards:
        if shard.index in seen:
            raise MergeError(
                f"shard {shard.index} of {count} is given twice: {seen[shard.index].path} and {shard.path}"
            )
        seen[shard.index] = shard
    missing = [i for i in range(count) if i not in seen]
    if missing:
        raise MergeError(
            f"shard(s) {', '.join(map(str, missing))} of {count} missing: a merged run needs every "
            f"shard (given: {', '.join(str(i) for i in sorted(seen))})"
        )
    for shard in shards:
        status = shard.run.meta.status
        if status is not RunStatus.COMPLETE:
            raise MergeError(
                f"{shard.name} did not complete (status: {status.value}): the merged run would lack its requests"
            )
    first = min(shards, key=lambda s: s.index)
    for what, read in _AGREEMENT:
        for other in sorted(shards, key=lambda s: s.index):
            found = _difference(read(first.meta), read(other.meta))
            if found:
                raise MergeError(f"the shards disagree on the {what}: {first.name} and {other.name} differ in {found}")


def _plan(meta: Mapping[str, Any]) -> SweepPlan:
    sweep = dict(meta.get("sweep") or {})
    try:
        return SweepPlan(**sweep)
    except (TypeError, ValueError) as exc:
        raise MergeError(f"the shards' plan (meta.json 'sweep') cannot be read back: {exc}") from None


def _shard_step(shard: ShardInput, key: StepKey, stream: _StepStream) -> ShardStep:
    """``shard``'s records and figures of the plan's step ``key``, checked against its share.

    The records are the next step of ``stream`` (shards write their steps in the plan's order).
    """
    label = f"step {key.mode} N={key.n_requests} trial {key.trial}"

    def same_step(k: StepKey) -> bool:  # a shard records its own share's concurrency: not compared
        return (k.target, k.mode, k.n_requests, k.trial, float(k.rate)) == (
            key.target,
            key.mode,
            key.n_requests,
            key.trial,
            float(key.rate),
        )

    summaries = [s for s in shard.run.steps if same_step(s.key)]
    if len(summaries) != 1:
        raise MergeError(
            f"{shard.name} has {len(summaries)} summary rows for {label} (expected 1): an incomplete "
            "or edited shard run"
        )
    records = sorted(stream.take(same_step), key=lambda r: r.seq)
    first, size = split_evenly(key.n_requests, shard.count)[shard.index]
    seqs = [r.seq for r in records]
    if seqs != list(range(first, first + size)):
        raise MergeError(
            f"{shard.name} has {len(seqs)} records for {label}, not its share (requests {first} to "
            f"{first + size - 1} of {key.n_requests})"
        )
    row = summaries[0]
    lateness = next(
        (
            s.get("late_s")
            for s in (shard.run.meta.details["shard"].get("steps") or [])
            if s.get("mode") == key.mode and s.get("n_requests") == key.n_requests and s.get("trial") == key.trial
        ),
        None,
    )
    facts = {
        "concurrency": row.key.concurrency,
        "offered_rps": row.offered_rps,
        "achieved_rps": row.achieved_rps,
        "late_s": lateness,
        "flags": format_flags(row.flags),
    }
    return ShardStep(
        index=shard.index,
        records=tuple(records),
        started_at=float(row.started_at or 0.0),
        total_s=float(row.total_s or 0.0),
        facts=facts,
    )


def combined_ceiling(
    ceilings: Sequence[Mapping[str, Any] | None], cpu_groups: Sequence[Sequence[int]] | None = None
) -> dict[str, Any] | None:
    """The K clients' ceiling together: at concurrency ``K x c``, the sum of each group's ceiling.

    ``cpu_groups`` lists the shards that shared one CPU (default: each shard alone); a group
    counts once, at its members' combined concurrency (one CPU, however many processes).
    None when a shard recorded no ceiling: the sum would be a guess.
    """
    if not ceilings or any(not c for c in ceilings):
        return None
    k = len(ceilings)
    groups = [list(g) for g in cpu_groups] if cpu_groups else [[i] for i in range(k)]
    levels = sorted({float(c) for ceiling in ceilings for c in (ceiling.get("rps_by_concurrency") or {})})
    points = {}
    for c in levels:
        total = sum(ceiling_for(c * len(group), ceilings[group[0]]) or 0.0 for group in groups)
        points[str(int(round(c * k)))] = total
    engines = sorted({str(c.get("engine")) for c in ceilings if c})
    return {
        "engine": ", ".join(engines),
        "rps_by_concurrency": points,
        "combined_from": f"{k} shard ceilings summed at concurrency c per shard ({len(groups)} CPU group(s))",
    }


def _noisiest(shards: Sequence[ShardInput]) -> dict[str, Any]:
    """host_noise of the merged run: the highest start load, and per target the noisiest shard's facts."""

    def load1(shard: ShardInput) -> float:
        load = ((shard.meta.get("host_noise") or {}).get("at_start") or {}).get("load") or [0.0]
        return float(load[0] or 0.0)

    worst_start = max(shards, key=load1)
    noise: dict[str, Any] = {
        "at_start": dict((worst_start.meta.get("host_noise") or {}).get("at_start") or {}),
        "targets": {},
        "from_shards": {"at_start": worst_start.index},
    }
    names = {name for s in shards for name in ((s.meta.get("host_noise") or {}).get("targets") or {})}
    for name in sorted(names):

        def reasons(shard: ShardInput, name: str = name) -> int:
            facts = ((shard.meta.get("host_noise") or {}).get("targets") or {}).get(name) or {}
            n_cpus = int(((shard.meta.get("host_noise") or {}).get("at_start") or {}).get("n_cpus") or 1)
            return len(target_busy_reasons(facts, n_cpus))

        worst = max(sorted(shards, key=lambda s: s.index), key=reasons)
        noise["targets"][name] = ((worst.meta.get("host_noise") or {}).get("targets") or {}).get(name)
        noise["from_shards"][name] = worst.index
    return noise


def _shard_record(shard: ShardInput) -> dict[str, Any]:
    meta = shard.meta
    keep = (
        "run_id",
        "host",
        "writer",
        "versions",
        "git",
        "engine",
        "calibration",
        "client_ceiling",
        "client_ceilings",
        "cpu_plan",
        "host_noise",
        "command",
        "started_at",
        "started_utc",
        "finished_at",
        "finished_utc",
        "targets",
    )
    return {
        "index": shard.index,
        "count": shard.count,
        "path": str(shard.path),
        **{k: copy.deepcopy(meta.get(k)) for k in keep},
        **copy.deepcopy(dict(meta["shard"])),
    }


def _outcome(name: str, steps: Sequence[MergedFacts], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    requests = sum(s.requests for s in steps)
    errors = sum(int(r["errors"]) for r in rows)
    classes: dict[str, int] = {}
    for row in rows:
        for cls, n in parse_error_counts(row["errors_by_class"] or "").items():
            classes[cls] = classes.get(cls, 0) + n
    status = "errors" if errors else "ok"
    message = (
        f"{errors} of {requests} requests failed (" + ", ".join(f"{k}: {v}" for k, v in classes.items()) + ")"
        if errors
        else ""
    )
    return {
        "name": name,
        "status": status,
        "message": message,
        "steps": len(steps),
        "requests": requests,
        "errors": errors,
        "error_classes": classes,
        "start_s": None,
    }


def merged_meta(
    shards: Sequence[ShardInput],
    run_id: str,
    steps: Sequence[MergedFacts],
    rows: Sequence[Mapping[str, Any]],
    cpu_groups: Sequence[Sequence[int]] | None = None,
) -> RunMeta:
    """meta.json of the merged run (see the module docstring for what each field means here)."""
    ordered = sorted(shards, key=lambda s: s.index)
    first = ordered[0].meta
    meta = {
        k: copy.deepcopy(v)
        for k, v in first.items()
        if k not in ("shard", "outcomes", "target_errors", "status", "complete", "error", "finished_at", "finished_utc")
    }
    now = time.time()
    started = min(float(s.meta.get("started_at") or now) for s in ordered)
    finished = max(float(s.meta.get("finished_at") or now) for s in ordered)
    engines = {(s.meta.get("engine") or {}).get("name") for s in ordered}
    same_host = len({(s.meta.get("writer") or {}).get("boot_id") or id(s) for s in ordered}) == 1
    target = steps[0].key.target if steps else (first.get("targets_order") or ["?"])[0]
    outcome = _outcome(target, steps, rows)
    meta.update(
        {
            "run_id": run_id,
            "started_at": started,
            "started_utc": utc_iso(started),
            "writer": writer_facts(),
            "command": " ".join(sys.argv),
            "targets": {
                name: {k: v for k, v in (desc or {}).items() if k not in _VOLATILE_TARGET_KEYS}
                for name, desc in (first.get("targets") or {}).items()
            },
            "calibration": None,
            "client_ceiling": combined_ceiling([s.meta.get("client_ceiling") for s in ordered], cpu_groups),
            "client_ceilings": {  # per other engine (grpc), combined like the run's engine's
                name: combined_ceiling([(s.meta.get("client_ceilings") or {}).get(name) for s in ordered], cpu_groups)
                for name in sorted({n for s in ordered for n in (s.meta.get("client_ceilings") or {})})
            },
            "host_noise": _noisiest(ordered),
            "execution": (
                f"{len(ordered)} shards (bench run --shard I/{len(ordered)}) sent each step's share together "
                "and were merged by bench merge: statistics recomputed from the union of their raw records"
            ),
            "outcomes": {target: outcome},
            "target_errors": {target: f"{outcome['status']}: {outcome['message']}"}
            if outcome["status"] != "ok"
            else {},
            "shards": [_shard_record(s) for s in ordered],
            "sharding": {
                "count": len(ordered),
                "schedule": copy.deepcopy((first.get("shard") or {}).get("schedule")),
                "rules": dict(describe_share_rule()),
                "clocks": (
                    "one host (one clock) for all shards"
                    if same_host
                    else "several hosts: each shard's kernel NTP estimate is under shards[i].clock; the skew below "
                    "is measured on the shards' own clocks"
                ),
                "merged_at": utc_iso(now),
                "steps": [
                    {
                        "mode": s.key.mode,
                        "n_requests": s.key.n_requests,
                        "trial": s.key.trial,
                        "start_skew_s": s.start_skew_s,
                        "shards": list(s.shards),
                    }
                    for s in steps
                ],
            },
        }
    )
    if len(engines) > 1:
        meta["engine"] = {
            "name": "mixed",
            "version": "",
            "chosen_by": "per shard (see shards): " + ", ".join(sorted(str(e) for e in engines)),
        }
    if same_host:
        client = sorted({c for s in ordered for c in ((s.meta.get("cpu_plan") or {}).get("client") or [])})
        meta["cpu_plan"] = {"client": client, "standins": list((first.get("cpu_plan") or {}).get("standins") or [])}
    merged = RunMeta.from_json(meta)
    merged.finish(RunStatus.COMPLETE, now=finished)  # the shards all completed (check_shards)
    return merged


def merge_runs(
    paths: Sequence[Path],
    run_dir: Path,
    *,
    redactor: Redactor | None = None,
    cpu_groups: Sequence[Sequence[int]] | None = None,
    extra_meta: Mapping[str, Any] | None = None,
) -> MergeResult:
    """Check and merge the shard runs at ``paths`` into a new run folder ``run_dir``.

    Raises MergeError (nothing left written) when they cannot be merged; ResultsError when
    ``run_dir`` already holds a run. ``extra_meta`` is added to meta.json (``--clients``
    records its CPU placement and stand-in there).
    """
    run_id = validate_run_id(Path(run_dir).name)
    if holds_run(Path(run_dir), ignoring=(SHARDS_DIR,)):  # --clients merges beside its shards
        raise ResultsError(f"{run_dir} already holds a run; choose another output")
    shards = read_shards(paths)
    check_shards(shards)
    ordered = sorted(shards, key=lambda s: s.index)
    plan = _plan(ordered[0].meta)
    target = (ordered[0].meta.get("targets_order") or [None])[0]
    if not target:
        raise MergeError(f"{ordered[0].name} names no target in meta.json")
    streams = [_StepStream(s) for s in ordered]
    steps: list[MergedFacts] = []
    writer = RunWriter(
        run_dir,
        run_id,
        SUMMARY_COLUMNS,
        redactor=redactor,
        extra_request_columns=(SHARD_COLUMN,),
        expected=(SHARDS_DIR,),
    )
    try:
        for key in plan.steps(target):  # one step in memory at a time: merged, summarised, written, dropped
            step = merge_step(key, [_shard_step(s, key, stream) for s, stream in zip(ordered, streams, strict=True)])
            row = summarize(step.result)
            writer.append_summary(row)
            writer.append_requests(
                step.result.key, step.result.records, extra_cells=[(i,) for i in step.shard_of_record]
            )
            steps.append(MergedFacts(step.result.key, len(step.result.records), row, step.start_skew_s, step.shards))
            del step
        meta = merged_meta(ordered, run_id, steps, [s.row for s in steps], cpu_groups)
        meta.details.update(copy.deepcopy(dict(extra_meta or {})))
        writer.write_meta(meta)
    except BaseException:
        writer.close()
        _remove_partial(writer)  # nothing written when the shards cannot be merged
        raise
    writer.close()
    return MergeResult(run_dir=Path(run_dir), run_id=run_id, steps=tuple(steps), meta=meta)


def _remove_partial(writer: RunWriter) -> None:
    """Delete what ``writer`` wrote so far (and its folder when that leaves it empty)."""
    for path in (writer.summary_path, writer.requests_path, writer.meta_path):
        path.unlink(missing_ok=True)
    try:
        writer.directory.rmdir()
    except OSError:
        pass  # not empty: it holds the shards (``--clients``) or something else that was there
