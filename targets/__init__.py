"""Deployment targets: the adapter framework at the top, the built-in adapters in subpackages.

An adapter turns one deployment (a local stand-in server, or a real endpoint) into what the
benchmark drives: start/stop, encode an image into an HTTP request, decode the answer.
What an adapter author needs is importable from here (``from targets import
LocalServerTarget, Request, instances_body``); see ``__all__`` and docs/adding-a-target.md.
Importing this package imports nothing else (the names load on first use), so a stand-in's
server process, which has only its own files, can import its subpackage.

The framework (runs in servebench's process):

* ``base``           -- the Target contract: ``Target``, ``TargetContext``, ``Request``, the errors
* ``spec``           -- ``TargetSpec``: a target's table as bench.toml wrote it
* ``registry``       -- finds adapters (built-in names, ``module:Class``, entry points), builds targets
* ``local_server``   -- ``LocalServerTarget``: the base of every adapter whose stand-in is a server process
* ``process``        -- stand-in processes: spawn, pin, wait until ready, stop with no orphans
* ``lifeline``       -- the watchdog each stand-in runs under (its own small process)
* ``remote``         -- remote mode: endpoint URL, Host header, credentials, readiness
* ``secrets``        -- which settings name environment variables holding secrets
* ``wire``           -- the built-ins' JSON bodies (``{"instances"}`` -> ``{"predictions"}``)
* ``page_protocols`` -- the digit page's request/answer shapes
* ``manifests``      -- renders ``templates/`` and asks an adapter for its training files
* ``cluster_endpoint`` -- where a pod in the cluster reaches a target (the load Job's address)
* ``contract/``      -- the contract every adapter passes (``bench check-target``, the tests)
* ``templates/``     -- the deployment files the built-in adapters render

The built-in adapters (each with a ``server/`` subpackage: the code that runs inside the
stand-in's server process, apart from the adapter that runs in servebench's process):

* ``flask/``  -- adapters ``flask`` (greene-linserv) and ``k8s`` (k8s-ibm: the same app, in replicas)
* ``kserve/`` -- adapter ``kserve`` (kubeflow-gcp, kubeflow-ibm): the real KServe ModelServer

The registry names the built-ins by import path only (``registry.BUILTIN_ADAPTERS``), so no
framework module imports an adapter (import-linter checks this: pyproject.toml).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> the module that defines it (imported on first use: module ``__getattr__``).
_SURFACE: dict[str, str] = {
    # the contract an adapter implements
    "Target": "targets.base",
    "TargetContext": "targets.base",
    "Request": "targets.base",
    "DecodeError": "targets.base",
    "TargetError": "targets.base",
    # the base class of a server-process adapter, its settings and processes
    "LocalServerTarget": "targets.local_server",
    "LocalServerSettings": "targets.local_server",
    "SpawnSpec": "targets.local_server",
    "RemoteSettings": "targets.remote",
    "ManagedProcess": "targets.process",
    "Probe": "targets.process",
    "http_probe": "targets.process",
    "spawn": "targets.process",
    "wait_ready": "targets.process",
    "group_pids": "targets.process",
    # the built-ins' wire format
    "instances_body": "targets.wire",
    "decode_v1_logits": "targets.wire",
    "wire_instance": "targets.wire",
    "dumps_compact": "targets.wire",
    "argmax_logits": "targets.wire",
    # registering and building targets
    "TargetSpec": "targets.spec",
    "ENTRY_POINT_GROUP": "targets.registry",
    "build_target": "targets.registry",
    "known_adapters": "targets.registry",
    # deployment outside the stand-in
    "ClusterEndpoint": "targets.cluster_endpoint",
    # proving an adapter works
    "run_contract": "targets.contract.suite",
    "CheckResult": "targets.contract.suite",
    "Samples": "targets.contract.suite",
    "reference_digits": "targets.contract.suite",
}

__all__ = [
    "CheckResult",
    "ClusterEndpoint",
    "DecodeError",
    "ENTRY_POINT_GROUP",
    "LocalServerSettings",
    "LocalServerTarget",
    "ManagedProcess",
    "Probe",
    "RemoteSettings",
    "Request",
    "Samples",
    "SpawnSpec",
    "Target",
    "TargetContext",
    "TargetError",
    "TargetSpec",
    "argmax_logits",
    "build_target",
    "decode_v1_logits",
    "dumps_compact",
    "group_pids",
    "http_probe",
    "instances_body",
    "known_adapters",
    "reference_digits",
    "run_contract",
    "spawn",
    "wait_ready",
    "wire_instance",
]

if TYPE_CHECKING:  # for type checkers and editors; at run time the names load lazily
    from targets.base import DecodeError, Request, Target, TargetContext, TargetError
    from targets.cluster_endpoint import ClusterEndpoint
    from targets.contract.suite import CheckResult, Samples, reference_digits, run_contract
    from targets.local_server import LocalServerSettings, LocalServerTarget, SpawnSpec
    from targets.process import ManagedProcess, Probe, group_pids, http_probe, spawn, wait_ready
    from targets.registry import ENTRY_POINT_GROUP, build_target, known_adapters
    from targets.remote import RemoteSettings
    from targets.spec import TargetSpec
    from targets.wire import argmax_logits, decode_v1_logits, dumps_compact, instances_body, wire_instance


def __getattr__(name: str) -> Any:
    """``targets.NAME`` for a public name: imports its module the first time (PEP 562)."""
    module = _SURFACE.get(name)
    if module is None:
        raise AttributeError(f"module 'targets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
