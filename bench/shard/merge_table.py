"""Show a merged run: per step, each shard's requests, rates, start offset and lateness, then their union.

Shown by `bench merge` and by `bench run --clients N` after it merged its shards.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.console import Console
from bench.shard.merge import MergeResult
from bench.shard_run import sharding_warnings

__all__ = ["print_merge", "shard_rows"]


def _ms(value: Any) -> str:
    return "-" if value is None else f"{float(value) * 1000:.1f}"


def _rps(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if number != number else f"{number:.1f}"


def shard_rows(result: MergeResult) -> list[list[str]]:
    """Per step: one row per shard (its own offered/achieved rate, start offset, lateness), then the merged row."""
    rows = []
    for step in result.steps:
        key = step.key
        label = f"{key.mode} N={key.n_requests} t{key.trial}"
        for shard in step.shards:
            rows.append(
                [
                    label,
                    str(shard["index"]),
                    str(shard["n"]),
                    str(shard.get("concurrency", "")),
                    _rps(shard.get("offered_rps")),
                    _rps(shard.get("achieved_rps")),
                    _ms(shard.get("start_offset_s")),
                    _ms(shard.get("late_s")),
                ]
            )
        merged: Mapping[str, Any] = step.row
        rows.append(
            [
                label,
                "merged",
                str(step.requests),
                str(key.concurrency),
                _rps(merged["offered_rps"]),
                _rps(merged["achieved_rps"]),
                f"skew {_ms(step.start_skew_s)}",
                "-",
            ]
        )
    return rows


def print_merge(result: MergeResult, console: Console) -> None:
    """The merged run's table (:func:`shard_rows`), then its sharding warnings."""
    console.table(
        f"Merged run {result.run_id}: each shard and the union ({result.run_dir})",
        [
            "step",
            "shard",
            "requests",
            "in flight / conns",
            "offered req/s",
            "achieved req/s",
            "start offset ms",
            "late vs schedule ms",
        ],
        shard_rows(result),
    )
    for warning in sharding_warnings(result.meta.details):
        console.warn(warning)
