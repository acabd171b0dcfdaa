"""What the target contract suite sends and looks at: bad bodies, listening sockets.

Shared by the contract suite (:mod:`targets.contract.suite`, driven by ``bench
check-target`` and by the in-repo tests) and the target tests; each does one thing with the real OS
facilities (``ss``, ``/proc``), so a check sees what a
user would see.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections.abc import Callable
from typing import Any

__all__ = [
    "BAD_INPUT_KINDS",
    "OVERSIZED_BYTES",
    "ContractFailure",
    "ContractSkip",
    "NoImageInBody",
    "bad_bodies",
    "listening_addresses",
    "listening_backlogs",
]


class ContractFailure(AssertionError):
    """A check failed; the message says what the target did instead."""


class ContractSkip(Exception):
    """A check does not apply to this adapter; the message says why."""


#: Size of the body every stand-in must refuse with a 4xx (8 MiB; the built-ins' limits
#: are 1-4 MiB).  A server that accepts bodies this large fails the oversized-body check.
OVERSIZED_BYTES = 8 * 1024 * 1024

#: The kinds of bad input, in the order they are sent.
BAD_INPUT_KINDS: tuple[str, ...] = (
    "malformed-json",
    "wrong-shape",
    "nan",
    "infinity",
    "empty-body",
    "oversized-body",
    "wrong-content-type",
)


def _is_image(value: Any) -> bool:
    if isinstance(value, list) and len(value) == 784 and all(isinstance(v, int | float) for v in value):
        return True
    return (
        isinstance(value, list) and len(value) == 28 and all(isinstance(row, list) and len(row) == 28 for row in value)
    )


def _replace_image(doc: Any, fn: Callable[[Any], Any]) -> bool:
    """Apply ``fn`` to the first 28x28 matrix or 784-long flat list in ``doc``, in place."""
    keys: list[Any] = list(doc) if isinstance(doc, dict) else list(range(len(doc))) if isinstance(doc, list) else []
    for key in keys:
        if _is_image(doc[key]):
            doc[key] = fn(doc[key])
            return True
        if _replace_image(doc[key], fn):
            return True
    return False


class NoImageInBody(ValueError):
    """The adapter's request body holds no 28x28 / 784 image the suite could damage."""


def _with_image(body: bytes, fn: Callable[[Any], Any]) -> bytes:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise NoImageInBody(f"the encoded body is not JSON ({exc}); the bad-input checks derive JSON bodies") from None
    if not _replace_image(doc, fn):
        raise NoImageInBody("the encoded body holds no 28x28 / 784 image to mutate")
    return json.dumps(doc, allow_nan=True).encode()


def _set_first(value: list[Any], x: float) -> list[Any]:
    if isinstance(value[0], list):
        return [[x, *value[0][1:]], *value[1:]]
    return [x, *value[1:]]


def bad_bodies(valid: bytes, oversized_bytes: int = OVERSIZED_BYTES) -> dict[str, tuple[bytes, str | None]]:
    """Named bad requests derived from a valid JSON body: kind -> (body, content type).

    A content type of None keeps the blueprint's own.  The oversized body is the valid
    one padded with spaces to ``oversized_bytes`` (still valid JSON: only the size is wrong).
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


def _listening_lines(pids: set[int]) -> list[list[str]]:
    """The ``ss -ltnpH`` rows (split into columns) of TCP listening sockets owned by one of ``pids``."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return [line.split() for line in out.splitlines() if {int(p) for p in re.findall(r"pid=(\d+)", line)} & pids]


def listening_addresses(pids: set[int]) -> list[str]:
    """``ADDRESS:PORT`` of every TCP listening socket owned by one of ``pids`` (``ss -ltnpH``)."""
    return [columns[3] for columns in _listening_lines(pids)]


def listening_backlogs(pids: set[int]) -> list[int]:
    """The listen backlog of every TCP listening socket of ``pids``: ``ss``'s Send-Q column, which for a
    listening socket is the backlog the kernel granted (``listen(n)`` capped at net.core.somaxconn)."""
    try:
        return [int(columns[2]) for columns in _listening_lines(pids)]
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
        return []
