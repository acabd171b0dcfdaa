"""The adapters the in-repo contract suite runs over (tests/targets/test_contract.py).

Why a separate file: every adapter must pass the same contract (:mod:`targets.contract.suite`,
also what ``python -m bench check-target NAME`` runs for any configured adapter, without
editing this file), so covering another adapter in servebench's own tests is adding a
:class:`ContractCase` here, not writing tests.  Built-in adapters are listed by name; the
example adapters under ``examples/`` by their ``module:Class`` path (their folders are put
on ``sys.path`` through ``extra_sys_path``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from targets.contract.tools import OVERSIZED_BYTES
from tests.support.paths import EXAMPLES

__all__ = ["CASES", "EXAMPLE_ADAPTER", "EXAMPLE_DIR", "FASTAPI_ADAPTER", "FASTAPI_DIR", "ContractCase"]

EXAMPLE_DIR = EXAMPLES / "aiohttp_target"
EXAMPLE_ADAPTER = "servebench_aiohttp_example.target:AiohttpTarget"
FASTAPI_DIR = EXAMPLES / "fastapi_target"
FASTAPI_ADAPTER = "servebench_fastapi_example.target:FastAPITarget"


@dataclass(frozen=True)
class ContractCase:
    """One adapter configuration the contract suite starts and checks.

    ``min_agreement``: share of the 100 test images whose digit must equal the in-process
    TorchScript model's (1.0 for adapters serving the TorchScript file itself; a SavedModel
    server may differ on a near-tie, see models/export.py's parity check).
    ``oversized_bytes``: size of the body that must be refused with a 4xx.
    ``extra_sys_path``: folders to import the adapter from (examples not pip-installed).
    """

    id: str
    adapter: str
    table: dict[str, Any] = field(default_factory=dict)
    min_agreement: float = 1.0
    oversized_bytes: int = OVERSIZED_BYTES
    extra_sys_path: tuple[Path, ...] = ()


CASES: list[ContractCase] = [
    ContractCase("flask-per-request", "flask", {"model_loading": "per-request", "workers": 1}),
    ContractCase("k8s-2-replicas", "k8s", {"model_loading": "startup", "replicas": 2}),
    ContractCase("example-aiohttp", EXAMPLE_ADAPTER, {}, extra_sys_path=(EXAMPLE_DIR,)),
    ContractCase("example-fastapi", FASTAPI_ADAPTER, {}, extra_sys_path=(FASTAPI_DIR,)),
    # KServe ModelServer over the SavedModel: compared with the TorchScript reference, a
    # near-tie may flip (export parity is checked on logits, not on every argmax).
    ContractCase("kserve-v1", "kserve", {"protocol": "v1", "workers": 1}, min_agreement=0.99),
    ContractCase("kserve-v2", "kserve", {"protocol": "v2", "workers": 1}, min_agreement=0.99),
]
