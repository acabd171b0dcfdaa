"""Engine equivalence (issue 6 item 3): the same sweep, the same server, every engine, the same records.

Why: runs made with different engines must be comparable, so an engine may change how
fast requests go out but never *what* is recorded: the predictions decoded and the error
class of every failure (server closing mid-response, chunked answers, a server that never
answers, garbage) must be identical across engines.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from loadgen.engines import available_engines, engine_class
from loadgen.engines.fast_engine import run
from loadgen.sweep import SweepPlan, run_sweep
from targets.base import DecodeError, Request, Target, TargetContext
from tests.support.stub_http import StubServer, digit_of

ENGINES = available_engines()
N_IMAGES = 6


class StubTarget(Target):
    """A test double pointing at a loopback stub server (never a real deployment target)."""

    adapter = "stub"

    def __init__(self, url: str) -> None:
        super().__init__("stub", None, TargetContext(artifacts_dir=None, log_dir=None))
        self.base_url = url

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    @property
    def is_remote(self) -> bool:
        return True

    def encode(self, image: np.ndarray) -> Request:
        body = json.dumps({"instances": [image.tolist()]}, separators=(",", ":")).encode()
        return Request("POST", "/predict", body, {"Content-Type": "application/json"})

    def decode(self, status: int, body: bytes) -> int:
        try:
            return int(json.loads(body)["predictions"][0])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise DecodeError(f"not a prediction: {body[:60]!r}") from exc

    def manifests(self) -> dict[str, str]:
        return {}


def _images() -> tuple[np.ndarray, np.ndarray, StubTarget]:
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, size=(N_IMAGES, 28, 28), dtype=np.uint8)
    probe = StubTarget("http://unused")
    # Labels: the stub model's answer for half the images, a wrong digit for the rest, so
    # both correct and incorrect (but successful) predictions are compared.
    truth = np.array([digit_of(probe.encode(img).body) for img in images], dtype=np.int64)
    labels = np.where(np.arange(N_IMAGES) % 2 == 0, truth, (truth + 1) % 10)
    return images, labels, probe


def _sweep(engine: str, behaviour: str) -> list[tuple[str, int, int, str, int, int]]:
    images, labels, _ = _images()
    # A short timeout only where a timeout is the expected outcome: a loaded CI machine
    # must not turn a slow answer from a well-behaved stub into a spurious timeout.
    timeout_s = 0.4 if behaviour == "silent" else 10.0
    plan = SweepPlan(
        n_requests=(3,),
        modes=("sequential", "concurrent"),
        warmup=0,
        timeout_s=timeout_s,
        connect_timeout_s=5.0,
        max_duration_s=30.0,
    )

    async def main() -> list[Any]:
        with StubServer(behaviour) as server:
            target = StubTarget(server.url)
            return [step async for step in run_sweep(target, engine_class(engine), plan, images, labels)]

    steps = run(main())
    return [(step.key.mode, r.seq, r.label, r.error, r.predicted, r.status) for step in steps for r in step.records]


def _expected(behaviour: str) -> list[tuple[str, int, int, str, int, int]]:
    images, labels, probe = _images()
    plan = SweepPlan(n_requests=(3,), warmup=0)
    order = plan.image_order(N_IMAGES, 1)[:3]
    rows = []
    for mode in ("sequential", "concurrent"):
        for seq, index in enumerate(order):
            digit = digit_of(probe.encode(images[index]).body)
            error, predicted, status = {
                "ok": ("", digit, 200),
                "chunked": ("", digit, 200),
                "error_500": ("http_5xx", -1, 500),
                "close_mid": ("reset", -1, 0),
                "silent": ("timeout", -1, 0),
                "garbage": ("protocol", -1, 0),
            }[behaviour]
            rows.append((mode, seq, int(labels[index]), error, predicted, status))
    return rows


@pytest.mark.skipif(len(ENGINES) < 2, reason=f"equivalence needs two or more engines, have {ENGINES}")
@pytest.mark.parametrize("behaviour", ["ok", "chunked", "error_500", "close_mid", "silent", "garbage"])
def test_every_engine_records_the_same_outcomes(behaviour: str) -> None:
    expected = _expected(behaviour)
    results = {engine: _sweep(engine, behaviour) for engine in ENGINES}
    for engine, rows in results.items():
        assert rows == expected, f"engine {engine!r} differs on a {behaviour!r} server"
    if behaviour in ("ok", "chunked"):
        correct = sum(1 for row in expected if row[4] == row[2])
        assert 0 < correct < len(expected)  # right and wrong digits both present, neither is an error


def test_all_three_engines_are_registered_and_importable() -> None:
    assert set(ENGINES) == {"fast", "aiohttp", "httpx"}, f"engines importable here: {ENGINES}"
