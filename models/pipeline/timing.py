"""Per-stage timing rows for local pipeline runs.

Why a side channel for *timings only*: ``kfp.local`` does not report per-task start/end
times, and a failed task produces no outputs.  Each component appends one JSON line
(stage, start, end, seconds, status) to ``timing_path`` in a ``finally`` block, so the
rows of finished stages -- and the failing one -- survive a failure.  Model artifacts
still pass between components as KFP artifacts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["FORCED_FAILURE", "read_rows", "stage_timer"]

FORCED_FAILURE = "forced failure requested by fail_stage"


@contextmanager
def stage_timer(timing_path: str, stage: str, fail_stage: str = "") -> Iterator[None]:
    """Time the body as ``stage``; raise at the start if ``fail_stage == stage`` (tests)."""
    start = time.time()
    status = "failed"
    try:
        if fail_stage == stage:
            raise RuntimeError(f"{FORCED_FAILURE}: stage {stage!r}")
        yield
        status = "ok"
    finally:
        end = time.time()
        if timing_path:
            row = {"stage": stage, "start": start, "end": end, "seconds": end - start, "status": status}
            with open(timing_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")


def read_rows(timing_path: Path) -> list[dict]:
    """The rows written so far, in order (missing file -> [])."""
    if not timing_path.exists():
        return []
    return [json.loads(line) for line in timing_path.read_text().splitlines() if line.strip()]
