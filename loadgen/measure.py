"""Measuring one engine's ceiling: a closed-loop point, a raw-socket baseline, a default payload.

Why a module of its own: these are the measuring instruments that both ``bench
calibrate`` (:mod:`loadgen.calibration`) and ``benchmarks/bench_engines.py`` use, so the
two report the same quantities computed the same way. Definitions are in
:mod:`loadgen.calibration`'s docstring. Nothing here prints.  Host facts and CPU pinning
are :mod:`ground.hostfacts` and :mod:`ground.cpus` (one of each for every layer);
percentiles are :func:`loadgen.stats.percentile`.
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from loadgen.engine import Engine, EngineError, EngineOptions
from loadgen.request import Request
from loadgen.stats import percentile

__all__ = [
    "MAX_CONCURRENCY",
    "MAX_DURATION_S",
    "Payload",
    "measure_engine_point",
    "raw_socket_p50",
    "synthetic_payload",
]

MAX_DURATION_S = 60.0  # per measurement: calibration is bounded like every load we send
MAX_CONCURRENCY = 1024

#: The request a calibration sends, and a sentence saying where its body came from.
Payload = tuple[Request, str]


# -- the payload ---------------------------------------------------------------------------
def synthetic_payload() -> Payload:
    """A study-like request without the MNIST data: a seeded 28x28 image, normalised (~6 KB).

    The load generator knows no model and no adapter, so the real image's encoding is
    handed in by the caller (``targets.wire.mnist_payload``); this is the stand-in with
    the same shape and value range when none is given.
    """
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(28, 28)) * (rng.random((28, 28)) < 0.2)
    values = np.round(((image / 255.0) - 0.1307) / 0.3081, 4).tolist()
    body = json.dumps({"instances": [values]}, separators=(",", ":")).encode()
    return (
        Request("POST", "/predict", body, {"Content-Type": "application/json"}),
        "synthetic 28x28 image (no MNIST payload given)",
    )


# -- measurements --------------------------------------------------------------------------
def _percentile_ms(values: np.ndarray, q: float) -> float | None:
    """:func:`loadgen.stats.percentile` in ms, rounded; None without data (JSON null)."""
    return round(float(percentile(values, q)) * 1000.0, 4) if len(values) else None


async def measure_engine_point(
    engine_cls: type[Engine] | Callable[[EngineOptions], Engine],
    url: str,
    request: Request,
    concurrency: int,
    duration_s: float,
    *,
    warmup_s: float = 0.2,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """One closed-loop measurement: ``concurrency`` workers for ``duration_s`` seconds."""
    if not 0 < duration_s <= MAX_DURATION_S:
        raise ValueError(f"duration must be in (0, {MAX_DURATION_S:g}] s, got {duration_s}")
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ValueError(f"concurrency must be in 1..{MAX_CONCURRENCY}, got {concurrency}")
    engine = engine_cls(
        EngineOptions(
            base_url=url, max_connections=concurrency, timeout_s=timeout_s, connect_timeout_s=min(5.0, timeout_s)
        )
    )
    engine.prepare([request])
    latencies: list[float] = []
    errors: dict[str, int] = {}
    clock = time.perf_counter

    async def worker(until: float, record: bool) -> None:
        while True:
            start = clock()
            if start >= until:
                return
            try:
                response = await engine.send(request)
                error = "" if 200 <= response.status < 300 else f"http_{response.status // 100}xx"
            except EngineError as exc:
                error = exc.error
            if record:
                if error:
                    errors[error] = errors.get(error, 0) + 1
                else:
                    latencies.append(clock() - start)

    async with engine:
        await asyncio.gather(*(worker(clock() + warmup_s, False) for _ in range(concurrency)))
        gc.collect()
        cpu0, wall0 = time.process_time(), clock()
        await asyncio.gather(*(worker(wall0 + duration_s, True) for _ in range(concurrency)))
        wall, cpu = clock() - wall0, time.process_time() - cpu0
    lat = np.asarray(latencies)
    done = len(lat) + sum(errors.values())
    return {
        "engine": getattr(engine, "name", type(engine).__name__),
        "concurrency": concurrency,
        "duration_s": round(wall, 4),
        "requests": int(len(lat)),
        "errors": errors,
        "req_per_s": round(len(lat) / wall, 1) if wall > 0 else 0.0,
        "cpu_ms_per_request": round(cpu / done * 1000.0, 5) if done else None,
        "cpu_utilization": round(cpu / wall, 3) if wall > 0 else 0.0,
        "p50_ms": _percentile_ms(lat, 50),
        "p99_ms": _percentile_ms(lat, 99),
        "mean_ms": round(float(lat.mean()) * 1000.0, 4) if len(lat) else None,
    }


def raw_socket_p50(url: str, wire: bytes, duration_s: float = 0.5) -> dict[str, Any]:
    """p50 of blocking-socket round trips of ``wire`` (one kept-alive connection).

    The baseline for "added latency": no event loop, no parser objects, just
    ``sendall`` and ``recv`` until the Content-Length says the response is complete.
    """
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=5.0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times: list[float] = []
    clock = time.perf_counter
    try:
        deadline = clock() + duration_s
        while clock() < deadline:
            start = clock()
            sock.sendall(wire)
            _recv_response(sock)
            times.append(clock() - start)
    finally:
        sock.close()
    lat = np.asarray(times[len(times) // 10 :])  # the first tenth is warm-up
    return {
        "kind": "blocking socket, pre-built request bytes",
        "requests": int(len(lat)),
        "p50_ms": _percentile_ms(lat, 50),
        "p99_ms": _percentile_ms(lat, 99),
    }


def _recv_response(sock: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("null endpoint closed the connection")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionResetError("null endpoint closed the connection mid-body")
        body += chunk
