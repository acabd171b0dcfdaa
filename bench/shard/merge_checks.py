"""Read the shard runs ``bench merge`` is given and refuse any that cannot be merged, naming why.

Why a module of its own: what makes shards mergeable is decided once, before a record is
read -- the shard runs are of one split (each index once, none missing), completed, and
agree on everything that decides what was measured: configuration (sha256), model
(TorchScript and model.json sha256), target (name and description), plan (the sweep),
test split and start schedule.  Each refusal is a :class:`MergeError` naming the shard(s)
and the first difference (tests/bench/shard/ pin the words).  Whether each shard's
records of a step are exactly its share is checked as they stream
(:mod:`bench.shard.merge_records`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.results import ResultsError, RunData, load_run
from ground.runmeta import RunStatus
from loadgen.sweep import SweepPlan

__all__ = ["VOLATILE_TARGET_KEYS", "MergeError", "ShardInput", "check_shards", "read_shards", "shard_plan"]

# Describing the same deployment, these may differ between shards (how long it took to check).
VOLATILE_TARGET_KEYS = ("start_s",)


class MergeError(ValueError):
    """The shard runs cannot be merged; the message names the shard(s) and the difference."""


@dataclass(frozen=True)
class ShardInput:
    """One shard run as read from disk (by the one reader: typed rows, records and metadata)."""

    path: Path
    run: RunData
    index: int
    count: int
    requests_file: Path  # the shard's raw records, read step by step (:class:`bench.shard.step_frames.StepFrames`)

    @property
    def name(self) -> str:
        return f"shard {self.index} ({self.path})"

    @property
    def meta(self) -> dict[str, Any]:
        """The shard's meta.json content (what the merged run keeps and compares, section by section)."""
        return self.run.meta.to_json()


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
            name: {k: v for k, v in (desc or {}).items() if k not in VOLATILE_TARGET_KEYS}
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


def shard_plan(meta: Mapping[str, Any]) -> SweepPlan:
    sweep = dict(meta.get("sweep") or {})
    try:
        return SweepPlan(**sweep)
    except (TypeError, ValueError) as exc:
        raise MergeError(f"the shards' plan (meta.json 'sweep') cannot be read back: {exc}") from None
