"""Runs the contract every target adapter passes against one target: ``bench check-target`` and the tests use it.

Why a library and not only a test file: a new adapter lives in its author's package, and
proving it works must need no edit of servebench.  ``python -m bench check-target NAME``
builds the configured target (in-tree or ``module:Class``) and calls :func:`run_contract`;
``tests/targets/test_contract.py`` calls the same check functions, one test each, for the
built-in and example adapters.

The checks, on a local stand-in started for the purpose:

* ``start``: it starts and answers its health URL;
* ``loopback-only``: every listening socket of its processes is 127.0.0.1 on its port;
* ``real-images``: N real MNIST test images get the digits the TorchScript model gives
  in-process on the same input (``min_agreement``), and accuracy >= 90 %;
* ``keep-alive``, ``latency``, ``burst:N``: what a deployment needs under load -- requests
  in a row on one connection, no Nagle / delayed-ACK floor, N connections at once answered
  without a dropped SYN (:mod:`targets.contract.load`);
* ``bad-input:KIND``: each kind of bad input (:data:`targets.contract.tools.BAD_INPUT_KINDS`,
  including an 8 MiB body) gets a 4xx JSON ``{"error": ...}`` and the server still answers;
* ``page-protocol``: if the adapter declares one, the digit page's own request gets an
  answer the page can read (so ``bench ui`` works); skipped when it declares none;
* ``stop``: ``stop`` leaves no process of its groups, and a second ``stop`` is harmless.

Nothing here prints: each result goes to an ``on_result`` callback.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from targets.base import Request, Target, TargetError
from targets.contract.load import BURST_SIZES, check_burst, check_keep_alive, check_latency
from targets.contract.tools import (
    BAD_INPUT_KINDS,
    OVERSIZED_BYTES,
    ContractFailure,
    ContractSkip,
    bad_bodies,
    listening_addresses,
)
from targets.page_protocols import PAGE_PROTOCOLS, PageAnswerError, decode_page_answer, page_request
from targets.process import group_pids

__all__ = [
    "CheckResult",
    "ContractFailure",
    "ContractSkip",
    "Samples",
    "check_bad_input",
    "check_burst",
    "check_keep_alive",
    "check_latency",
    "check_loopback_only",
    "check_page_protocol",
    "check_real_images",
    "check_stop",
    "contract_checks",
    "contract_client",
    "reference_digits",
    "run_contract",
]

#: Each request's deadline in the load checks unless the caller passes one (``[loadgen] timeout_s``'s default).
DEFAULT_TIMEOUT_S = 30.0
#: Accuracy the stand-in must reach on the test images (the model reaches ~97 %).
MIN_ACCURACY = 0.9


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``status`` is "pass", "fail" or "skip"; ``detail`` says what was seen."""

    name: str
    status: Literal["pass", "fail", "skip"]
    detail: str

    @property
    def passed(self) -> bool:
        return self.status != "fail"


@dataclass(frozen=True)
class Samples:
    """Test images (uint8 N x 28 x 28), their labels, and the in-process model's digits for them."""

    images: np.ndarray
    labels: np.ndarray
    reference: np.ndarray


def reference_digits(torchscript_path: str | Path, images: np.ndarray) -> np.ndarray:
    """The TorchScript model's digits, in process, for exactly the input ``encode`` puts on the wire."""
    from models.data import wire_pixels
    from models.predict import load_torchscript, torch_logits

    module = load_torchscript(torchscript_path)
    return np.asarray(torch_logits(module, wire_pixels(images)).argmax(axis=1))


def contract_client() -> Any:
    """An ``httpx.Client`` for the checks: no proxies from the environment (loopback only)."""
    import httpx

    return httpx.Client(trust_env=False, timeout=30.0)


def _send(
    client: Any,
    target: Target,
    request: Request,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> Any:
    """One blueprint on a fresh connection (``body``/``headers``/httpx ``kwargs`` override its own)."""
    if "files" in kwargs or "json" in kwargs:  # the page's own body: the adapter's path and non-body headers
        base = {k: v for k, v in request.headers.items() if k.lower() not in ("content-type", "content-length")}
        return client.request(
            request.method, target.base_url + request.path, headers={**base, "Connection": "close"}, **kwargs
        )
    return client.request(
        request.method,
        target.base_url + request.path,
        content=request.body if body is None else body,
        headers={**request.headers, "Connection": "close", **(headers or {})},
    )


def _excerpt(text: str, limit: int = 160) -> str:
    """``text`` on one line, cut to ``limit`` characters (an HTML error page is 30 lines)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _answer(response: Any) -> str:
    return f"HTTP {response.status_code} {_excerpt(response.text)!r}"


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _group_pids(target: Target) -> set[int]:
    pids: set[int] = set()
    for proc in target.processes:
        pids.update(group_pids(proc.pgid))
    return pids


# -- the checks: each returns what it saw, or raises ContractFailure / ContractSkip ---------
def check_loopback_only(target: Target) -> str:
    """The stand-in listens on 127.0.0.1 at its own port, and nowhere else."""
    if target.is_remote:
        raise ContractFailure("the target is remote: the contract suite checks local stand-ins")
    if not target.base_url.startswith("http://127.0.0.1:"):
        raise ContractFailure(f"base_url is {target.base_url!r}, expected http://127.0.0.1:PORT")
    pids = _group_pids(target)
    if not pids:
        raise ContractFailure("no live process: the adapter must expose its stand-in's processes as `processes`")
    addresses = listening_addresses(pids)
    if not addresses:
        raise ContractFailure(f"no listening socket found for the stand-in's processes {sorted(pids)}")
    port = target.base_url.rsplit(":", 1)[1]
    wrong = [a for a in addresses if not (a.startswith("127.0.0.1:") and a.endswith(f":{port}"))]
    if wrong:
        raise ContractFailure(f"listens on {wrong} besides 127.0.0.1:{port}")
    sockets, processes = _count(len(addresses), "socket", "sockets"), _count(len(pids), "process", "processes")
    return f"listens on 127.0.0.1:{port} only ({sockets}, {processes} in its groups)"


def check_real_images(target: Target, client: Any, samples: Samples, min_agreement: float = 1.0) -> str:
    """Real test images answered with the in-process model's digits (and >= 90 % accuracy)."""
    digits = []
    for image in samples.images:
        response = _send(client, target, target.encode(image))
        digits.append(target.decode(response.status_code, response.content))
    got = np.asarray(digits)
    agreement = float(np.mean(got == samples.reference))
    accuracy = float(np.mean(got == samples.labels))
    seen = f"{len(got)} images: agreement with the in-process model {agreement:.0%}, accuracy {accuracy:.0%}"
    if agreement < min_agreement:
        raise ContractFailure(
            f"{seen}; agreement must be >= {min_agreement:.0%} (a server of another export of "
            "the model may flip a near-tie: lower it with --min-agreement)"
        )
    if accuracy < MIN_ACCURACY:
        raise ContractFailure(f"{seen}; accuracy must be >= {MIN_ACCURACY:.0%}")
    return seen


def check_bad_input(
    target: Target, client: Any, image: np.ndarray, kind: str, oversized_bytes: int = OVERSIZED_BYTES
) -> str:
    """One kind of bad input gets a 4xx JSON ``{"error": ...}``, and the server still answers right."""
    valid = target.encode(image)
    try:
        body, content_type = bad_bodies(valid.body, oversized_bytes)[kind]
    except ValueError as exc:
        raise ContractFailure(str(exc)) from None
    response = _send(client, target, valid, body=body, headers={"Content-Type": content_type} if content_type else None)
    answer = _answer(response)
    if not 400 <= response.status_code < 500:
        raise ContractFailure(f"answered {answer}, expected a 4xx")
    try:
        doc = json.loads(response.content)
    except ValueError:
        raise ContractFailure(f"answered {answer}: not JSON") from None
    if not (isinstance(doc, dict) and doc.get("error")):
        raise ContractFailure(f'answered {answer}: no {{"error": "..."}} message')
    again = _send(client, target, valid)
    digit = target.decode(again.status_code, again.content)  # raises DecodeError if it broke
    return f"HTTP {response.status_code} {str(doc['error'])[:80]!r}; still answers (digit {digit})"


def check_page_protocol(target: Target, client: Any, image: np.ndarray) -> str:
    """The digit page's own request, to the adapter's predict path, gets an answer the page reads."""
    protocol = target.page_protocol
    if protocol is None:
        raise ContractSkip("declares no page_protocol: `bench ui` refuses this target")
    if protocol not in PAGE_PROTOCOLS:
        raise ContractFailure(f"page_protocol {protocol!r} is unknown; the page speaks {', '.join(PAGE_PROTOCOLS)}")
    kwargs, what = page_request(protocol, image)
    response = _send(client, target, target.encode(image), **kwargs)
    if not 200 <= response.status_code < 300:
        raise ContractFailure(f"{what} got {_answer(response)}")
    try:
        digit = decode_page_answer(protocol, json.loads(response.content))
    except (ValueError, PageAnswerError) as exc:
        raise ContractFailure(f"{what} got an answer the page cannot read: {exc}") from None
    return f"{protocol}: {what} answered digit {digit}"


def check_stop(target: Target) -> str:
    """``stop`` leaves no process of the stand-in's groups; a second ``stop`` is harmless."""
    processes = list(target.processes)
    if not processes:
        raise ContractFailure("no processes before stop: the adapter must expose them as `processes`")
    groups = [p.pgid for p in processes]
    asyncio.run(target.stop())
    left = {pgid: group_pids(pgid) for pgid in groups}
    if any(left.values()):
        raise ContractFailure(f"processes left after stop: {left}")
    if list(target.processes):
        raise ContractFailure("`processes` still lists processes after stop")
    asyncio.run(target.stop())
    return f"{_count(len(groups), 'process group', 'process groups')} stopped, no process left"


# -- the suite --------------------------------------------------------------------------
def contract_checks(
    target: Target,
    client: Any,
    samples: Samples,
    *,
    min_agreement: float,
    oversized_bytes: int,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    burst_sizes: tuple[int, ...] = BURST_SIZES,
) -> Iterator[tuple[str, Callable[[], str]]]:
    """Every check after ``start``, in order, as (name, thunk).

    ``timeout_s``: each request's deadline in the load checks (``bench check-target`` passes
    ``[loadgen] timeout_s``, the benchmark's own); ``burst_sizes``: one ``burst:N`` check each.
    """
    image = samples.images[0]
    yield "loopback-only", lambda: check_loopback_only(target)
    yield "real-images", lambda: check_real_images(target, client, samples, min_agreement)
    yield "keep-alive", lambda: check_keep_alive(target, image, timeout_s=timeout_s)
    yield "latency", lambda: check_latency(target, image, timeout_s=timeout_s)
    for n in burst_sizes:
        yield f"burst:{n}", lambda n=n: check_burst(target, image, n, timeout_s=timeout_s, pids=_group_pids(target))
    for kind in BAD_INPUT_KINDS:
        yield f"bad-input:{kind}", lambda kind=kind: check_bad_input(target, client, image, kind, oversized_bytes)
    yield "page-protocol", lambda: check_page_protocol(target, client, image)
    yield "stop", lambda: check_stop(target)


def _outcome(name: str, check: Callable[[], str]) -> CheckResult:
    try:
        return CheckResult(name, "pass", check())
    except ContractSkip as exc:
        return CheckResult(name, "skip", str(exc))
    except ContractFailure as exc:
        return CheckResult(name, "fail", str(exc))
    except TargetError as exc:  # a failed start: keep the stand-in's log tail, line by line
        return CheckResult(name, "fail", str(exc))
    except Exception as exc:
        return CheckResult(name, "fail", _excerpt(f"{type(exc).__name__}: {exc}", 300))


def run_contract(
    target: Target,
    samples: Samples,
    *,
    min_agreement: float = 1.0,
    oversized_bytes: int = OVERSIZED_BYTES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    burst_sizes: tuple[int, ...] = BURST_SIZES,
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Start ``target``'s local stand-in, run every check, stop it; return the results in order.

    Synchronous (each start/stop runs its own event loop): call it outside a running loop.
    The stand-in is stopped whatever happens.  A failed start is one failing result.
    """
    if target.is_remote:
        raise TargetError(
            f"target {target.name!r} is remote ({target.base_url}): the contract suite starts "
            "and checks a local stand-in (remove `endpoint` from its table)"
        )
    results: list[CheckResult] = []

    def record(result: CheckResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    client = contract_client()
    try:
        started = time.monotonic()

        def start() -> str:
            asyncio.run(target.start())
            return f"answering at {target.base_url} after {time.monotonic() - started:.1f} s"

        record(_outcome("start", start))
        if results[-1].passed:
            for name, check in contract_checks(
                target,
                client,
                samples,
                min_agreement=min_agreement,
                oversized_bytes=oversized_bytes,
                timeout_s=timeout_s,
                burst_sizes=burst_sizes,
            ):
                record(_outcome(name, check))
    finally:
        client.close()
        asyncio.run(target.stop())
    return results
