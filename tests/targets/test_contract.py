"""The contract every target adapter passes (:mod:`targets.contract.suite`), over tests/support/target_cases.py.

Each check of the library is one test here, so a failure names the adapter and the check.
For each case a local stand-in is started once (module-scoped) and must: listen on
loopback only; answer 100 real MNIST test images with the digits the TorchScript model
gives in-process on the same ``wire_pixels`` input; answer each kind of bad input with a
4xx JSON error and keep serving; keep a connection alive (or say it closes it), show no
Nagle / delayed-ACK floor and answer 128 connections at once without a dropped SYN; answer
the digit page's request if it declares a page protocol; and stop leaving no process behind.  ``bench
check-target`` runs the same checks
for any configured adapter (tests/bench/commands/test_check_target.py).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest

from targets.base import Target, TargetContext
from targets.contract.suite import (
    ContractSkip,
    Samples,
    check_bad_input,
    check_burst,
    check_keep_alive,
    check_latency,
    check_loopback_only,
    check_page_protocol,
    check_real_images,
    check_stop,
    contract_client,
    reference_digits,
)
from targets.contract.tools import BAD_INPUT_KINDS
from targets.process import group_pids
from targets.registry import build_target
from targets.spec import TargetSpec
from tests.support.target_cases import CASES, ContractCase

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def samples(trained_model, mnist) -> Samples:
    """The `mnist` fixture's 100 test images, their labels and the in-process model's digits."""
    images, labels = mnist
    return Samples(images, labels, reference_digits(trained_model.torchscript_path, images))


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    with contract_client() as http:
        yield http


@pytest.fixture(scope="module", params=CASES, ids=[c.id for c in CASES])
def running(request, trained_model, tmp_path_factory) -> Iterator[tuple[ContractCase, Target]]:
    case: ContractCase = request.param
    for folder in case.extra_sys_path:
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    context = TargetContext(
        artifacts_dir=trained_model.dir,
        log_dir=tmp_path_factory.mktemp(f"logs-{case.id}"),
        ready_timeout_s=180.0,
    )
    target = build_target(TargetSpec(f"contract-{case.id}", case.adapter, case.table), context)
    asyncio.run(target.start())
    try:
        yield case, target
    finally:
        asyncio.run(target.stop())


def test_starts_on_loopback_only(running) -> None:
    _, target = running
    print(check_loopback_only(target))


def test_answers_real_images_like_the_model_in_process(running, client, samples) -> None:
    case, target = running
    print(f"{case.id}: {check_real_images(target, client, samples, case.min_agreement)}")


def test_keeps_connections_or_says_it_closes_them(running, samples) -> None:
    case, target = running
    print(f"{case.id}: {check_keep_alive(target, samples.images[0], timeout_s=30.0)}")


def test_has_no_nagle_delayed_ack_floor(running, samples) -> None:
    case, target = running
    try:
        print(f"{case.id}: {check_latency(target, samples.images[0], timeout_s=30.0)}")
    except ContractSkip as exc:
        assert "closed the connection" in str(exc)  # only a server without keep-alive is skipped
        pytest.skip(str(exc))


def test_answers_a_burst_of_128_connections(running, samples) -> None:
    case, target = running
    pids = {pid for proc in target.processes for pid in group_pids(proc.pgid)}
    print(f"{case.id}: {check_burst(target, samples.images[0], 128, timeout_s=30.0, pids=pids)}")


@pytest.mark.parametrize("kind", BAD_INPUT_KINDS)
def test_bad_input_gets_4xx_json_and_server_stays_up(running, client, samples, kind: str) -> None:
    case, target = running
    check_bad_input(target, client, samples.images[0], kind, case.oversized_bytes)


def test_declared_page_protocol_is_answered(running, client, samples) -> None:
    case, target = running
    try:
        print(f"{case.id}: {check_page_protocol(target, client, samples.images[0])}")
    except ContractSkip as exc:
        assert target.page_protocol is None  # only an adapter that declares none is skipped
        pytest.skip(str(exc))


def test_stops_leaving_no_process(running) -> None:
    _, target = running
    print(check_stop(target))
