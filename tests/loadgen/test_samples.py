"""Samples: the MNIST sweep records which image each request sent and whether its digit agreed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from loadgen.engines.memory_engine import MemoryEngine
from loadgen.engines.virtual_time import run_virtual
from loadgen.request import DecodeError, Request
from loadgen.samples import Answer, MnistSamples, ReadySamples, checked_digit
from loadgen.stats import summarize
from loadgen.sweep import SweepPlan, run_sweep
from tests.support.loadgen import MEMORY_URL, FakeTarget, MemoryServer, digit_images, digit_of

LABELS = np.random.default_rng(11).integers(0, 10, size=30)
IMAGES = digit_images(LABELS)


def test_mnist_records_carry_their_image_and_agree_exactly_when_correct() -> None:
    """Every third image is answered wrongly: agree is 0 there, and agreement == accuracy."""

    def answer(request: Request) -> tuple[int, bytes]:
        digit = digit_of(request.body)
        return 200, json.dumps({"digit": digit if digit % 3 else (digit + 1) % 10}).encode()

    plan = SweepPlan(n_requests=(20,), modes=("sequential",), trials=2, warmup=0)
    target = FakeTarget(MEMORY_URL)

    async def main():
        return [s async for s in run_sweep(target, MemoryEngine.factory(MemoryServer(answer)), plan, IMAGES, LABELS)]

    for step in run_virtual(main()):
        order = plan.image_order(len(IMAGES), step.key.trial)[:20]
        assert [r.sample for r in step.records] == order.tolist()
        assert all(r.label == LABELS[r.sample] for r in step.records)
        assert all(r.agree == int(r.correct) for r in step.records)
        row = summarize(step)
        assert row["agreement"] == row["accuracy"] and row["n_agree"] == row["n_correct"] < 20


def test_mnist_samples_encode_once_and_check_digits() -> None:
    target = FakeTarget(MEMORY_URL)
    samples = MnistSamples(target, IMAGES, LABELS)
    assert samples.request(3) is samples.request(3) and target.encoded == 1
    digit = int(LABELS[3])
    assert samples.check(3, 200, json.dumps({"digit": digit}).encode()) == Answer(digit, 1)
    assert samples.check(3, 200, json.dumps({"digit": (digit + 1) % 10}).encode()).agree == 0
    with pytest.raises(ValueError, match="one label per image"):
        MnistSamples(target, IMAGES, LABELS[:3])


@pytest.mark.parametrize("value", [True, 3.5, 12, -1, "3", None])
def test_only_digits_are_digits(value) -> None:
    with pytest.raises(DecodeError, match="not a digit 0..9"):
        checked_digit(value)
    assert checked_digit(np.int64(7)) == 7


def test_ready_samples_need_at_least_one_request() -> None:
    with pytest.raises(ValueError, match="no samples"):
        ReadySamples([], lambda i, s, b: Answer(), "nothing")
