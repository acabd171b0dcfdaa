"""Helpers for the target tests: sending blueprints, bad-body mutations, process checks.

Why here: the contract suite, the k8s and the CLI tests all need to send a
:class:`targets.base.Request`, find which sockets a stand-in listens on, and prove that no
process is left; each helper does one of those things with the real OS facilities
(``ss``, ``/proc``), so the tests check what a user would see.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from typing import Any

import httpx

from targets.base import Request
from targets.process import proc_table

__all__ = [
    "bad_bodies",
    "descendants",
    "listening_addresses",
    "send",
]


_CLIENT: httpx.Client | None = None


def send(base_url: str, request: Request, *, headers: dict[str, str] | None = None, body: bytes | None = None,
         timeout: float = 30.0) -> httpx.Response:  # fmt: skip
    """Send one blueprint on a fresh connection (``headers``/``body`` override its own).

    One shared client (building an httpx client costs ~50 ms of TLS set-up) and
    ``Connection: close``, so every request opens its own TCP connection, as the k8s
    spreading test needs.
    """
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = httpx.Client(trust_env=False)
    return _CLIENT.request(
        request.method,
        base_url + request.path,
        content=request.body if body is None else body,
        headers={**request.headers, "Connection": "close", **(headers or {})},
        timeout=timeout,
    )


def _replace_image(doc: Any, fn: Any) -> bool:
    """Apply ``fn`` to the first 28x28 matrix or 784-long flat list in ``doc``, in place."""
    if isinstance(doc, dict):
        return any(_replace_image_at(doc, key, fn) for key in list(doc))
    if isinstance(doc, list):
        return any(_replace_image_at(doc, i, fn) for i in range(len(doc)))
    return False


def _is_image(value: Any) -> bool:
    if isinstance(value, list) and len(value) == 784 and all(isinstance(v, int | float) for v in value):
        return True
    return (
        isinstance(value, list)
        and len(value) == 28
        and all(isinstance(row, list) and len(row) == 28 for row in value)
    )


def _replace_image_at(container: Any, key: Any, fn: Any) -> bool:
    value = container[key]
    if _is_image(value):
        container[key] = fn(value)
        return True
    return _replace_image(value, fn)


def _with_image(body: bytes, fn: Any) -> bytes:
    doc = json.loads(body)
    if not _replace_image(doc, fn):
        raise AssertionError("the encoded body holds no 28x28 / 784 image to mutate")
    return json.dumps(doc, allow_nan=True).encode()


def _set_first(value: list[Any], x: float) -> list[Any]:
    if isinstance(value[0], list):
        return [[x, *value[0][1:]], *value[1:]]
    return [x, *value[1:]]


def bad_bodies(valid: bytes, oversized_bytes: int) -> dict[str, tuple[bytes, str | None]]:
    """Named bad requests derived from a valid JSON body: name -> (body, content type).

    A content type of None keeps the blueprint's own.
    """
    truncated = _with_image(valid, lambda v: v[:10])
    nan = _with_image(valid, lambda v: _set_first(v, math.nan))
    inf = _with_image(valid, lambda v: _set_first(v, math.inf))
    big = re.sub(rb"\s", b"", valid)
    filler = b" " * max(0, oversized_bytes - len(big))
    return {
        "malformed-json": (valid[: len(valid) // 2], None),
        "wrong-shape": (truncated, None),
        "nan": (nan, None),
        "infinity": (inf, None),
        "empty-body": (b"", None),
        "oversized-body": (big[:-1] + filler + big[-1:], None),
        "wrong-content-type": (valid, "text/plain"),
    }


def descendants(pid: int) -> set[int]:
    """All live descendants of ``pid`` (children, grandchildren, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for child, parent, _pgrp in proc_table():
        children.setdefault(parent, []).append(child)
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def listening_addresses(pids: set[int]) -> list[str]:
    """``ADDRESS:PORT`` of every TCP listening socket owned by one of ``pids`` (``ss -ltnpH``)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        owners = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if owners & pids:
            found.append(line.split()[3])
    return found
