"""Per step, the successful requests' latencies and the count sent: what report and compare need of the raw records.

Why a digest: the latency CDF of the report and the per-request test of ``bench compare``
need, per step (trials pooled), only the latencies of the successful requests -- exact, as
float64 -- and how many requests were sent. Kept as one numpy array per step, that is 8
bytes per successful record (80 MB for 10 M) instead of about 750 bytes per record for the
whole table, and it is built from :func:`bench.results.chunks.iter_request_frames` one
chunk at a time, so reading a run of any length stays bounded by the arrays themselves.
Every figure drawn from it is exact (no histogram, no sampling): the latencies are all
there, in file order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench.results.chunks import iter_request_frames

__all__ = ["DIGEST_COLUMNS", "PooledKey", "StepLatencies", "digest_frames", "digest_requests", "ok_latencies_of"]

PooledKey = tuple[str, str, int, int, float]  # target, mode, n_requests, concurrency, rate: trials pooled
_KEY_COLUMNS = ["target", "mode", "n_requests", "concurrency", "rate"]
#: The request columns a digest reads (the pooled step key, the error class, the latency).
DIGEST_COLUMNS: tuple[str, ...] = (*_KEY_COLUMNS, "error", "latency_s")


@dataclass(frozen=True)
class StepLatencies:
    """One pooled step: its successful requests' latencies (s, file order) and the requests sent."""

    ok: np.ndarray
    sent: int


def _pooled(key: tuple) -> PooledKey:
    target, mode, n, c, rate = key
    return (str(target), str(mode), int(n), int(c), round(float(rate), 6))


def digest_frames(frames: Iterable[pd.DataFrame], drop_modes: Iterable[str] = ()) -> dict[PooledKey, StepLatencies]:
    """The digest of request rows given in chunks (any columns including :data:`DIGEST_COLUMNS`).

    Steps keep the order they first appear in; rows of ``drop_modes`` are left out.
    """
    drop = set(drop_modes)
    parts: dict[PooledKey, list[np.ndarray]] = {}
    sent: dict[PooledKey, int] = {}
    for frame in frames:
        if drop:
            frame = frame[~frame["mode"].isin(drop)]
        if frame.empty:
            continue
        counts = frame.groupby(_KEY_COLUMNS, sort=False).size()
        for key, n in counts.items():
            pooled = _pooled(key)
            sent[pooled] = sent.get(pooled, 0) + int(n)
            parts.setdefault(pooled, [])
        ok = frame[frame["error"] == ""]
        for key, group in ok.groupby(_KEY_COLUMNS, sort=False):
            parts[_pooled(key)].append(group["latency_s"].to_numpy(np.float64))
    return {
        key: StepLatencies(np.concatenate(arrays) if arrays else np.empty(0, np.float64), sent[key])
        for key, arrays in parts.items()
    }


def digest_requests(path: Path, drop_modes: Iterable[str] = ()) -> dict[PooledKey, StepLatencies] | None:
    """The digest of a requests.csv.gz read in bounded chunks; None when the file does not exist."""
    if not Path(path).is_file():
        return None
    return digest_frames(iter_request_frames(path, DIGEST_COLUMNS), drop_modes)


def ok_latencies_of(digest: Mapping[PooledKey, StepLatencies] | None) -> dict[PooledKey, np.ndarray]:
    """Per pooled step with at least one successful request, its latencies (``ok_latencies``' shape)."""
    return {key: step.ok for key, step in (digest or {}).items() if step.ok.size}
