"""What the ``serve`` and ``smoke`` components do with the exported model, as plain functions.

Plain functions rather than code in the component bodies: testable without KFP, and the
bodies stay short. In ``bench/`` because both start a deployment target and ``smoke`` sweeps
it with the load generator -- orchestration over the layers below, which only the CLI layer
may do. The stand-in is :class:`targets.kserve.target.KServeTarget` (the real kserve
ModelServer on loopback) pointed at the component's exported-model artifact folder.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

__all__ = ["first_correct_prediction", "smoke_sweep"]


def _target(exported: str | Path, log_dir: str):
    from targets.base import TargetContext
    from targets.kserve.target import KServeSettings, KServeTarget

    ctx = TargetContext(artifacts_dir=Path(exported), log_dir=Path(log_dir), bind_host="127.0.0.1")
    return KServeTarget("kserve-pipeline", KServeSettings(), ctx)


def _split(train_size: int, test_size: int, seed: int):
    from models.config import ModelConfig
    from models.data import load_dataset

    return load_dataset(ModelConfig(train_size=train_size, test_size=test_size, seed=seed))


async def _first_correct(exported: str | Path, image, label: int, timeout_s: float) -> float:
    import httpx

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sb-serve-") as logs:
        target = _target(exported, logs)
        async with target:
            req = target.encode(image)
            async with httpx.AsyncClient(base_url=target.base_url, timeout=30.0) as client:
                while True:
                    resp = await client.request(req.method, req.path, content=req.body, headers=dict(req.headers))
                    digit = target.decode(resp.status_code, resp.content)
                    if digit == label:
                        return time.monotonic() - t0
                    if time.monotonic() - t0 > timeout_s:
                        raise RuntimeError(f"stand-in answered {digit} for an image labelled {label}")
                    await asyncio.sleep(0.2)


def first_correct_prediction(
    exported: str | Path, *, train_size: int, test_size: int, seed: int, timeout_s: float = 60.0
) -> float:
    """Start the stand-in, send test image 0 until the answer is its label, stop; seconds from start.

    Raises RuntimeError when the answer stays wrong for ``timeout_s`` (a wrong model must
    not pass as served).
    """
    split = _split(train_size, test_size, seed)
    return asyncio.run(_first_correct(exported, split.test_x[0], int(split.test_y[0]), timeout_s))


async def _sweep(exported: str | Path, n_requests: int, images, labels) -> dict[str, float]:
    from loadgen.engines import engine_class
    from loadgen.modes import Mode
    from loadgen.sweep import SweepPlan, run_sweep

    plan = SweepPlan(n_requests=(n_requests,), modes=(Mode.SEQUENTIAL, Mode.CONCURRENT), warmup=1, max_duration_s=60.0)
    records = []
    with tempfile.TemporaryDirectory(prefix="sb-smoke-") as logs:
        target = _target(exported, logs)
        async with target:
            async for step in run_sweep(target, engine_class("httpx"), plan, images, labels):
                records.extend(step.records)
    ok = sum(r.ok for r in records)
    return {
        "requests": float(len(records)),
        "errors": float(len(records) - ok),
        "accuracy": sum(r.correct for r in records) / len(records) if records else 0.0,
    }


def smoke_sweep(
    exported: str | Path, *, n_requests: int, train_size: int, test_size: int, seed: int
) -> dict[str, float]:
    """A short sequential + concurrent sweep; requests, errors and accuracy over all records.

    Raises RuntimeError if any request failed (a smoke test that errors is a failed stage).
    """
    split = _split(train_size, test_size, seed)
    summary = asyncio.run(_sweep(exported, n_requests, split.test_x, split.test_y))
    if summary["errors"]:
        raise RuntimeError(f"smoke sweep: {int(summary['errors'])} of {int(summary['requests'])} requests failed")
    return summary
