"""The extension API without servers: LocalServerTarget's plumbing, page protocols, bad bodies.

What a new adapter gets from the base class must hold before any process starts: the
package folder on the spawned server's PYTHONPATH, remote mode from the settings alone,
paths relative to bench.toml, a clear error for a missing model file, and a run script
as default manifests.  The page protocols' Python mirror must read what the page reads.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from ground.tables import ConfigError
from loadgen.request import DecodeError
from targets.base import TargetContext, TargetError
from targets.contract.tools import BAD_INPUT_KINDS, OVERSIZED_BYTES, NoImageInBody, bad_bodies
from targets.local_server import LocalServerTarget, package_root
from targets.page_protocols import PAGE_PROTOCOLS, PageAnswerError, decode_page_answer, page_request
from targets.registry import build_target
from targets.spec import TargetSpec
from targets.wire import decode_v1_logits, instances_body
from tests.support.target_cases import FASTAPI_ADAPTER, FASTAPI_DIR

IMAGE = (np.arange(784, dtype=np.int64) % 256).astype(np.uint8).reshape(28, 28)


@pytest.fixture
def fastapi_on_path():
    sys.path.insert(0, str(FASTAPI_DIR))
    yield
    sys.path.remove(str(FASTAPI_DIR))


def _fastapi(tmp_path: Path, **table: object) -> LocalServerTarget:
    ctx = TargetContext(artifacts_dir=tmp_path / "model", log_dir=tmp_path / "logs", config_dir=tmp_path)
    return build_target(TargetSpec("fast", FASTAPI_ADAPTER, dict(table)), ctx)


def test_spawned_server_gets_the_adapters_folder_on_pythonpath(tmp_path, fastapi_on_path, monkeypatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    target = _fastapi(tmp_path)
    assert package_root(type(target).__module__) == FASTAPI_DIR
    env = target._env({"EXTRA": "1"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(FASTAPI_DIR), "/somewhere/else"]
    assert env["EXTRA"] == "1" and env["PYTHONUNBUFFERED"] == "1"


def test_missing_model_is_named_before_anything_spawns(tmp_path, fastapi_on_path) -> None:
    target = _fastapi(tmp_path)
    with pytest.raises(
        TargetError, match=r"'fast': TorchScript model not found at .*torchscript/model\.pt.*bench train"
    ):
        target.command("127.0.0.1", 1)


def test_remote_mode_comes_from_the_settings(tmp_path, fastapi_on_path, monkeypatch) -> None:
    monkeypatch.setenv("SB_FAST_TOKEN", "tok-123")
    target = _fastapi(
        tmp_path, endpoint="https://fast.example.org/", bearer_token_env="SB_FAST_TOKEN", host_header="fast.internal"
    )
    assert target.is_remote and target.base_url == "https://fast.example.org" and target.processes == []
    request = target.encode(IMAGE)
    assert request.path == "/v1/predict" and request.body == instances_body(IMAGE)
    assert request.headers["Authorization"] == "Bearer tok-123" and request.headers["Host"] == "fast.internal"
    facts = target.describe()
    assert facts["mode"] == "remote" and facts["bearer_token_env"] == "SB_FAST_TOKEN"
    assert "tok-123" not in json.dumps(facts)


def test_local_server_settings_are_validated_by_key(tmp_path, fastapi_on_path) -> None:
    with pytest.raises(ConfigError, match=r"targets\.fast\.cpu\b.*did you mean 'cpus'"):
        _fastapi(tmp_path, cpu=[0])
    with pytest.raises(ConfigError, match="cpus must be CPU numbers"):
        _fastapi(tmp_path, cpus=[-1])
    assert _fastapi(tmp_path, cpus=[1]).cpus == (1,)


def test_context_paths_are_relative_to_bench_toml(tmp_path) -> None:
    ctx = TargetContext(artifacts_dir=tmp_path, log_dir=tmp_path, config_dir=tmp_path / "project")
    assert ctx.path("data/x.bin") == (tmp_path / "project" / "data" / "x.bin").resolve()
    assert ctx.path("/abs/y") == Path("/abs/y")


def test_default_manifests_are_the_stand_ins_command_line(tmp_path, fastapi_on_path) -> None:
    model = tmp_path / "model" / "torchscript" / "model.pt"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"only its presence is checked here")
    ((name, script),) = _fastapi(tmp_path).manifests().items()
    assert name == "run-fast.sh" and script.startswith("#!/bin/sh")
    assert f"exec python -m servebench_fastapi_example.server --model {model.resolve()}" in script
    assert script.rstrip().endswith("--host 127.0.0.1 --port 8080")


def test_builtin_adapters_declare_their_page_protocols(tmp_path) -> None:
    ctx = TargetContext(artifacts_dir=tmp_path, log_dir=tmp_path)
    protocols = {
        adapter: build_target(TargetSpec("t", adapter, table), ctx).page_protocol
        for adapter, table in [("flask", {}), ("k8s", {}), ("kserve", {"protocol": "v2"})]
    }
    assert protocols == {"flask": "multipart", "k8s": "multipart", "kserve": "kserve-v2"}
    assert set(protocols.values()) <= set(PAGE_PROTOCOLS)


# -- the page protocols' Python mirror ----------------------------------------------------
def test_page_requests_carry_the_wire_pixels() -> None:
    v1, _ = page_request("kserve-v1", IMAGE)
    assert json.dumps(v1["json"], separators=(",", ":")).encode() == instances_body(IMAGE)
    v2, _ = page_request("kserve-v2", IMAGE)
    assert v2["json"]["inputs"][0]["shape"] == [1, 28, 28] and len(v2["json"]["inputs"][0]["data"]) == 784
    photo, _ = page_request("multipart", IMAGE)
    assert photo["files"]["file"][1].startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="unknown page protocol 'v3'"):
        page_request("v3", IMAGE)


def test_page_answers_are_read_like_the_page_reads_them() -> None:
    logits = [0.0] * 10
    logits[7] = 3.5
    assert decode_page_answer("multipart", {"predictions": [4]}) == 4
    assert decode_page_answer("kserve-v1", {"predictions": [logits]}) == 7
    assert decode_page_answer("kserve-v2", {"outputs": [{"shape": [1, 10], "data": [logits]}]}) == 7
    assert decode_page_answer("kserve-v2", {"outputs": [{"shape": [1, 10], "data": logits}]}) == 7
    for protocol, doc in [
        ("multipart", {"predictions": [11]}),
        ("multipart", {"predictions": [True]}),
        ("kserve-v1", {"predictions": [4]}),  # a digit where logits belong
        ("kserve-v1", {"predictions": [[math.nan] * 10]}),
        ("kserve-v2", {"outputs": []}),
        ("kserve-v1", [1, 2]),
    ]:
        with pytest.raises(PageAnswerError):
            decode_page_answer(protocol, doc)


def test_v1_logits_decoder_is_strict() -> None:
    logits = [0.0] * 10
    logits[2] = 1.0
    assert decode_v1_logits(200, json.dumps({"predictions": [logits]}).encode()) == 2
    for status, body in [
        (500, b"{}"),
        (200, b"not json"),
        (200, b'{"predictions": [2]}'),
        (200, b'{"predictions": [[1, 2, 3]]}'),
        (200, b'{"predictions": [[true]]}'),
    ]:
        with pytest.raises(DecodeError):
            decode_v1_logits(status, body)


# -- the bad bodies the contract suite sends ------------------------------------------------
def test_bad_bodies_damage_only_what_their_name_says() -> None:
    valid = instances_body(IMAGE)
    bodies = bad_bodies(valid)
    assert list(bodies) == list(BAD_INPUT_KINDS)
    assert len(bodies["oversized-body"][0]) == OVERSIZED_BYTES == 8 * 1024 * 1024
    assert json.loads(bodies["oversized-body"][0]) == json.loads(valid)  # valid JSON, only too big
    assert b"NaN" in bodies["nan"][0] and b"Infinity" in bodies["infinity"][0]
    assert len(json.loads(bodies["wrong-shape"][0])["instances"][0]) == 10
    assert bodies["wrong-content-type"] == (valid, "text/plain") and bodies["empty-body"] == (b"", None)
    with pytest.raises(NoImageInBody, match="not JSON"):
        bad_bodies(b"\x00binary")
    with pytest.raises(NoImageInBody, match="no 28x28"):
        bad_bodies(b'{"instances": [[1, 2]]}')
