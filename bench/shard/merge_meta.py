"""meta.json of a merged run: every shard's facts kept, the run-level fields combined. Pure.

What the top-level fields mean for a merged run: ``host``, ``versions``, ``git``,
``config``, ``model``, ``sweep``, ``test_split`` are the shards' (checked equal where they
must be, :mod:`bench.shard.merge_checks`; ``host`` is the first shard's); ``host_noise`` is
the noisiest shard's, per target (so its warnings show); ``client_ceiling`` is the sum of
the shards' ceilings (:func:`combined_ceiling`); ``engine`` is the shards' if they all used
one, else ``mixed``.  ``shards`` keeps every shard's host, writer, engine, calibration,
client ceiling, clock estimate and measured step starts as recorded; ``sharding`` the
splitting rules, the start schedule and, per step, the start skew between shards and each
shard's offered and achieved rate.
"""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from bench.hostnoise import target_busy_reasons
from bench.report.tables import ceiling_for
from bench.results.status import writer_facts
from bench.shard.merge_checks import VOLATILE_TARGET_KEYS, ShardInput
from bench.shard.merge_records import MergedFacts
from bench.shard_run import describe_share_rule
from ground.clock import utc_iso
from ground.runmeta import RunMeta, RunStatus
from loadgen.stats import parse_error_counts

__all__ = ["combined_ceiling", "merged_meta"]


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
                name: {k: v for k, v in (desc or {}).items() if k not in VOLATILE_TARGET_KEYS}
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
