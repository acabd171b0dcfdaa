"""The contract every target adapter passes, run over tests/target_cases.py.

For each case a local stand-in is started once (module-scoped) and must:
listen on loopback only; answer 100 real MNIST test images with the digits the
TorchScript model gives in-process on the same ``wire_pixels`` input; answer each kind of
bad input with a 4xx JSON error and keep serving; and stop leaving no process behind.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator

import numpy as np
import pytest

from targets.spec import TargetSpec
from models.data import wire_pixels
from targets.base import Target, TargetContext
from targets.process import group_pids
from targets.registry import build_target

from target_cases import CASES, ContractCase
from targets_helpers import bad_bodies, listening_addresses, send

pytestmark = pytest.mark.slow

N_IMAGES = 100  # the `mnist` fixture (tests/conftest.py): the first 100 test images


@pytest.fixture(scope="module")
def reference_digits(trained_model, mnist) -> np.ndarray:
    """The in-process TorchScript model's digits for the same wire_pixels input."""
    from models.predict import load_torchscript, torch_logits

    module = load_torchscript(trained_model.torchscript_path)
    return torch_logits(module, wire_pixels(mnist[0])).argmax(axis=1)


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


def _pids(target: Target) -> set[int]:
    pids: set[int] = set()
    for proc in getattr(target, "processes", []):
        pids.update(group_pids(proc.pgid))
    return pids


def test_starts_on_loopback_only(running) -> None:
    _, target = running
    assert not target.is_remote
    assert target.base_url.startswith("http://127.0.0.1:")
    pids = _pids(target)
    assert pids, "the adapter must expose its ManagedProcess list as `processes`"
    addresses = listening_addresses(pids)
    assert addresses, "no listening socket found for the stand-in's processes"
    assert all(a.startswith("127.0.0.1:") for a in addresses), addresses
    port = target.base_url.rsplit(":", 1)[1]
    assert all(a.endswith(f":{port}") for a in addresses), f"unexpected extra listeners: {addresses}"


def test_answers_real_images_like_the_model_in_process(running, mnist, reference_digits) -> None:
    case, target = running
    images, labels = mnist
    digits = []
    for image in images:
        request = target.encode(image)
        response = send(target.base_url, request)
        digits.append(target.decode(response.status_code, response.content))
    digits_arr = np.asarray(digits)
    agreement = float(np.mean(digits_arr == reference_digits))
    accuracy = float(np.mean(digits_arr == labels))
    assert agreement >= case.min_agreement, f"agreement with in-process model {agreement:.2%}"
    assert accuracy >= 0.9, f"accuracy on {N_IMAGES} test images is {accuracy:.2%}"
    print(f"{case.id}: accuracy {accuracy:.2%} on {N_IMAGES} test images, agreement {agreement:.2%}")


@pytest.mark.parametrize(
    "kind",
    ["malformed-json", "wrong-shape", "nan", "infinity", "empty-body", "oversized-body", "wrong-content-type"],
)
def test_bad_input_gets_4xx_json_and_server_stays_up(running, mnist, kind: str) -> None:
    case, target = running
    images, labels = mnist
    valid = target.encode(images[0])
    body, content_type = bad_bodies(valid.body, case.oversized_bytes)[kind]
    headers = {"Content-Type": content_type} if content_type else None
    response = send(target.base_url, valid, body=body, headers=headers)
    assert 400 <= response.status_code < 500, f"{kind}: HTTP {response.status_code} {response.text[:300]}"
    doc = json.loads(response.content)
    assert isinstance(doc, dict) and doc.get("error"), f"{kind}: no JSON error message: {response.text[:300]}"
    # Still up and still right.
    again = send(target.base_url, valid)
    assert target.decode(again.status_code, again.content) in range(10)


def test_stops_leaving_no_process(running) -> None:
    _, target = running
    processes = list(getattr(target, "processes", []))
    assert processes and all(group_pids(p.pgid) for p in processes)
    asyncio.run(target.stop())
    left = {p.pgid: group_pids(p.pgid) for p in processes}
    assert not any(left.values()), f"processes left after stop: {left}"
    assert not getattr(target, "processes", [])
    asyncio.run(target.stop())  # idempotent
