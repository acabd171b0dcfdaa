"""Helpers for the target tests: sending blueprints, bad-body mutations, process checks, clear errors.

Why here: the k8s, bad-input and CLI tests all need to send a
:class:`targets.base.Request`, find which sockets a stand-in listens on, and prove that no
process is left; each helper does one of those things with the real OS facilities
(``ss``, ``/proc``), so the tests check what a user would see.  The bad bodies and the
socket lookup belong to the contract suite (:mod:`targets.contract.tools`) and are
re-exported here.
"""

from __future__ import annotations

import re

import httpx

from targets.base import Request
from targets.contract.tools import bad_bodies, listening_addresses
from targets.process import proc_table

__all__ = [
    "assert_clear",
    "bad_bodies",
    "descendants",
    "listening_addresses",
    "send",
]

# What must never reach a client in an error message: a traceback, a repr, an address, a class name.
_REPR = re.compile(r"Traceback|object at 0x|0x[0-9a-f]{6,}|\b[A-Z]\w*(Error|Exception)\b")


def assert_clear(message: str) -> None:
    """An error message for a client: text, no traceback, no Python repr or address."""
    assert isinstance(message, str) and message, message
    assert not _REPR.search(message), message
    assert len(message) < 400, message


_CLIENT: httpx.Client | None = None


def send(
    base_url: str,
    request: Request,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 30.0,
) -> httpx.Response:
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
