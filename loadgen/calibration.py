"""Client self-calibration: each engine's own ceiling against a null endpoint, as data.

Why: a benchmark client that burns more CPU than the server measures itself (DESIGN.md
§4). Before trusting a sweep we measure, on the machine at hand, what each engine can
do against a server that costs (almost) nothing: max req/s at a few concurrencies,
client CPU per request, p50/p99 latency, and the latency the engine adds at concurrency 1.
``bench run`` picks the cheapest engine from this (engine ``auto``), records the
calibration in meta.json and marks sweep points whose throughput nears the ceiling.

Definitions (stated once, used everywhere):

* **req/s**: successful responses / wall time of the measurement window (closed loop,
  C workers each sending its next request when the previous one completed).
* **CPU ms/request**: ``time.process_time()`` delta of the client process (user + sys,
  all threads) over the window / requests completed. The null endpoint runs in another
  process, pinned to other CPUs, so none of its work is counted.
* **p50/p99**: exact percentiles of the per-request times (send call to full body).
* **added latency at c=1**: engine p50 minus the p50 of a raw blocking-socket round trip
  (``sendall`` of the same pre-built bytes, ``recv`` until the response is complete) in
  the same process, against the same endpoint: what the engine adds on top of the
  kernel's loopback round trip and the server's own time. It can be slightly negative
  (the event loop's epoll wake-up is sometimes quicker than a blocking ``recv``).

A calibration is JSON on disk (``calibration.json``) and a :class:`CalibrationResult` in
code, parsed from the JSON by :func:`parse_calibration` alone: the engine choice and the
client ceiling (:meth:`CalibrationResult.ceiling`, meta.json's ``client_ceiling``) read its
typed points. Functions here are pure of printing; progress goes through an
``on_progress`` callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ground.clock import utc_iso
from ground.cpus import pinned
from ground.hostfacts import host_facts, same_host
from loadgen.measure import (
    MAX_CONCURRENCY,
    MAX_DURATION_S,
    Payload,
    measure_engine_point,
    raw_socket_p50,
    synthetic_payload,
)
from loadgen.request import Request

__all__ = [
    "CalibrationPoint",
    "CalibrationResult",
    "ClientCeiling",
    "DEFAULT_CONCURRENCIES",
    "EngineCalibration",
    "MAX_CONCURRENCY",
    "MAX_DURATION_S",
    "QUICK_CONCURRENCIES",
    "RPS_KEYS",
    "SCHEMA",
    "calibration_summary",
    "ceiling_for",
    "choose_engine",
    "load_or_run_calibration",
    "measure_engine_point",
    "parse_calibration",
    "raw_socket_p50",
    "run_calibration",
    "write_calibration",
]

SCHEMA = "servebench.calibration/1"
DEFAULT_CONCURRENCIES: tuple[int, ...] = (1, 8, 64)
QUICK_CONCURRENCIES: tuple[int, ...] = (1, 64)

Progress = Callable[[str], None]


# -- the typed result ----------------------------------------------------------------------
# Names a point's req/s figure has gone by in calibration dicts. parse_calibration is the only
# code that knows them; everything else reads CalibrationPoint.req_per_s.
RPS_KEYS: tuple[str, ...] = ("req_per_s", "rps", "requests_per_s", "throughput_rps", "max_rps")


@dataclass(frozen=True)
class CalibrationPoint:
    """One engine at one concurrency against the null endpoint."""

    engine: str
    concurrency: int
    req_per_s: float  # the client's ceiling at this concurrency (0 when none was recorded)
    cpu_ms_per_request: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: Mapping[str, int] = field(default_factory=dict)  # failed requests by class


@dataclass(frozen=True)
class EngineCalibration:
    """One engine's calibration: whether it worked, and its points."""

    name: str
    works: bool
    points: tuple[CalibrationPoint, ...] = ()
    version: str = ""
    error: str = ""
    cpu_ms_per_request: float | None = None
    added_latency_ms: float | None = None


@dataclass(frozen=True)
class ClientCeiling:
    """The client's req/s ceiling per concurrency for the engine a run uses (meta.json's
    ``client_ceiling``; reports mark points whose throughput nears it)."""

    engine: str
    rps_by_concurrency: Mapping[int, float]

    def to_json(self) -> dict[str, Any]:
        """``{"engine", "rps_by_concurrency": {"1": req/s, ...}}``, concurrencies ascending."""
        return {
            "engine": self.engine,
            "rps_by_concurrency": {str(c): self.rps_by_concurrency[c] for c in sorted(self.rps_by_concurrency)},
        }


@dataclass(frozen=True)
class CalibrationResult:
    """A calibration as data: every engine's points, the engine chosen, and the JSON it came from.

    ``data`` is the calibration's JSON (written to calibration.json; provenance such as the
    endpoint, host and payload is read from it); the typed fields are parsed from it once, by
    :func:`parse_calibration`.
    """

    engines: Mapping[str, EngineCalibration]
    chosen: str = ""
    data: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def ceiling(self, engine: str) -> ClientCeiling | None:
        """``engine``'s ceiling: its highest req/s per measured concurrency; None when it has none."""
        best: dict[int, float] = {}
        for entry in self.engines.values():
            for point in entry.points:
                if point.engine == engine and point.req_per_s > 0:
                    best[point.concurrency] = max(point.req_per_s, best.get(point.concurrency, 0.0))
        return ClientCeiling(engine, dict(sorted(best.items()))) if best else None


def _opt_float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _point(node: Mapping[str, Any], engine: str) -> CalibrationPoint | None:
    concurrency = node.get("concurrency")
    if not isinstance(concurrency, int | float) or isinstance(concurrency, bool):
        return None
    rps = next((node[k] for k in RPS_KEYS if k in node), None)
    return CalibrationPoint(
        engine=str(node.get("engine") or node.get("name") or engine),
        concurrency=int(concurrency),
        req_per_s=float(rps) if isinstance(rps, int | float) and not isinstance(rps, bool) and rps > 0 else 0.0,
        cpu_ms_per_request=_opt_float(node.get("cpu_ms_per_request")),
        p50_ms=_opt_float(node.get("p50_ms")),
        p99_ms=_opt_float(node.get("p99_ms")),
        errors=dict(node["errors"]) if isinstance(node.get("errors"), Mapping) else {},
    )


def parse_calibration(data: Mapping[str, Any]) -> CalibrationResult:
    """The typed form of a calibration dict: calibration.json, its summary in meta.json, or an
    older hand-made dict (a flat ``points`` list, points naming their engine ``name``, the
    req/s figure under any of :data:`RPS_KEYS`). Raises ValueError for a non-mapping."""
    if not isinstance(data, Mapping):
        raise ValueError(f"a calibration is a JSON object, not {type(data).__name__}")
    engines: dict[str, EngineCalibration] = {}
    for name, entry in (data.get("engines") or {}).items():
        entry = entry if isinstance(entry, Mapping) else {}
        points = tuple(
            p
            for p in (_point(n, str(name)) for n in entry.get("points") or () if isinstance(n, Mapping))
            if p is not None
        )
        engines[str(name)] = EngineCalibration(
            name=str(name),
            works=bool(entry.get("works")),
            points=points,
            version=str(entry.get("version") or ""),
            error=str(entry.get("error") or ""),
            cpu_ms_per_request=_opt_float(entry.get("cpu_ms_per_request")),
            added_latency_ms=_opt_float(entry.get("added_latency_ms")),
        )
    loose = [p for p in (_point(n, "") for n in data.get("points") or () if isinstance(n, Mapping)) if p and p.engine]
    for name in dict.fromkeys(p.engine for p in loose):  # a flat list of points: one entry per engine named
        mine = tuple(p for p in loose if p.engine == name)
        known = engines.get(name)
        engines[name] = EngineCalibration(
            name, works=known.works if known else True, points=(known.points if known else ()) + mine
        )
    return CalibrationResult(engines=engines, chosen=str(data.get("chosen") or ""), data=dict(data))


# -- the whole calibration -----------------------------------------------------------------
def run_calibration(
    *,
    engines: Sequence[str] | None = None,
    concurrencies: Sequence[int] = DEFAULT_CONCURRENCIES,
    duration_s: float = 3.0,
    cpus: str | Sequence[int] = "auto",
    endpoint: str = "auto",
    quick: bool = False,
    payload: Payload | None = None,
    on_progress: Progress | None = None,
) -> CalibrationResult:
    """Measure every engine against a null endpoint started for the purpose (JSON in ``.data``).

    Synchronous: it runs its own event loop (uvloop when available, like ``bench run``),
    so call it before entering a loop. ``cpus`` is the ``[loadgen] cpus`` setting: the
    client is pinned to its share for the duration and the endpoint to the rest.
    ``endpoint``: ``"auto"`` (nginx when installed, else the Python null server),
    ``"python"`` or ``"nginx"``. Engines that cannot be imported are listed as unavailable.
    ``payload``: the request to send and where it came from (the CLI passes the study's
    MNIST image as the adapters encode it, ``targets.wire.mnist_payload``); default
    :func:`loadgen.measure.synthetic_payload`, of the same size.
    """
    from ground.cpus import plan_cpus
    from loadgen.engines import ENGINE_NAMES, PROTOCOL_ENGINE_NAMES, EngineUnavailable, engine_class
    from loadgen.engines.fast_engine import loop_name, new_event_loop
    from loadgen.nullserver import NullEndpoint

    names = list(dict.fromkeys(engines or ENGINE_NAMES))
    known = ENGINE_NAMES + PROTOCOL_ENGINE_NAMES
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown engine(s) {unknown}; engines: {', '.join(known)}")
    levels = sorted(set(int(c) for c in concurrencies))
    if not levels or any(not 1 <= c <= MAX_CONCURRENCY for c in levels):
        raise ValueError(f"concurrencies must be in 1..{MAX_CONCURRENCY}, got {list(concurrencies)}")
    if not 0 < duration_s <= MAX_DURATION_S:
        raise ValueError(f"duration must be in (0, {MAX_DURATION_S:g}] s, got {duration_s}")
    plan = plan_cpus(cpus if isinstance(cpus, str) else list(cpus))
    say = on_progress or (lambda _msg: None)
    request, payload_source = payload or synthetic_payload()
    created = time.time()
    data: dict[str, Any] = {
        "schema": SCHEMA,
        "created_at": created,
        "created_utc": utc_iso(created),
        "quick": quick,
        "duration_s": duration_s,
        "concurrencies": levels,
        "host": host_facts(),
        "client": {"cpus": list(plan.client), "loop": loop_name(), "python": sys.version.split()[0]},
        "payload": {"bytes": len(request.body), "source": payload_source, "method": "POST"},
        "definitions": {
            "req_per_s": "successful responses / wall seconds, closed loop of C workers",
            "cpu_ms_per_request": "client process CPU (user+sys) / requests; endpoint in another process",
            "added_latency_ms": "engine p50 at c=1 minus raw blocking-socket p50, same endpoint",
        },
        "engines": {},
    }
    with NullEndpoint(endpoint, cpus=plan.standins) as null, contextlib.ExitStack() as stack, pinned(plan.client):
        data["endpoint"] = null.describe()
        grpc_null = _grpc_endpoint(names, stack, plan.standins, data, say)
        from loadgen.engines.fast_engine import build_request_bytes

        say(f"baseline: raw socket round trips against {null.kind} at {null.url}")
        data["baseline"] = raw_socket_p50(null.url, build_request_bytes(request, null.url), min(duration_s, 1.0))
        for name in names:
            entry: dict[str, Any] = {"available": False, "works": False, "version": "", "error": "", "points": []}
            data["engines"][name] = entry
            try:
                cls = engine_class(name)
            except EngineUnavailable as exc:
                entry["error"] = str(exc)
                say(f"{name}: unavailable ({exc})")
                continue
            entry["available"] = True
            entry["version"] = cls.version()
            for level in levels:
                say(f"{name}: concurrency {level} for {duration_s:g} s")
                try:
                    with asyncio.Runner(loop_factory=new_event_loop) as runner:
                        url, sent = (null.url, request) if name not in PROTOCOL_ENGINE_NAMES else grpc_null
                        point = runner.run(measure_engine_point(cls, url, sent, level, duration_s))
                except Exception as exc:
                    entry["error"] = f"concurrency {level}: {type(exc).__name__}: {exc}"
                    break
                point["engine"] = name
                entry["points"].append(point)
            # The raw-socket baseline is HTTP against the HTTP endpoint: no added latency for grpc.
            _finish_entry(entry, data["baseline"] if name not in PROTOCOL_ENGINE_NAMES else {}, levels)
    try:
        data["chosen"] = choose_engine(parse_calibration(data))
    except ValueError as exc:
        data["chosen"] = ""
        data["choice_error"] = str(exc)
    data["choice_rule"] = (
        "lowest mean client CPU ms/request over the concurrencies every working engine "
        "measured; an engine works when every point completed with no error"
    )
    return parse_calibration(data)


def _grpc_endpoint(
    names: Sequence[str], stack: contextlib.ExitStack, cpus: Sequence[int], data: dict[str, Any], say: Progress
) -> tuple[str, Request] | None:
    """For the ``grpc`` engine: a null gRPC server (:mod:`loadgen.null_grpc`) and its request.

    Recorded as ``grpc_endpoint`` and ``grpc_payload`` beside the HTTP ``endpoint``; None when
    no gRPC engine is asked for.
    """
    if "grpc" not in names:
        return None
    from loadgen.null_grpc import NullGrpcEndpoint, grpc_payload

    null = stack.enter_context(NullGrpcEndpoint(cpus=cpus))
    request, source = grpc_payload()
    data["grpc_endpoint"] = null.describe()
    data["grpc_payload"] = {"bytes": len(request.body), "source": source, "method": request.path}
    say(f"grpc: measured against a null gRPC server at {null.url}")
    return null.url, request


def _finish_entry(entry: dict[str, Any], baseline: dict[str, Any], levels: Sequence[int]) -> None:
    points = entry["points"]
    entry["works"] = (
        not entry["error"] and len(points) == len(levels) and all(p["requests"] > 0 and not p["errors"] for p in points)
    )
    costs = [p["cpu_ms_per_request"] for p in points if p["cpu_ms_per_request"] is not None]
    entry["cpu_ms_per_request"] = round(float(np.mean(costs)), 5) if costs else None
    entry["max_req_per_s"] = max((p["req_per_s"] for p in points), default=0.0)
    c1 = next((p for p in points if p["concurrency"] == 1 and p["p50_ms"] is not None), None)
    base = baseline.get("p50_ms")
    entry["added_latency_ms"] = round(c1["p50_ms"] - base, 4) if c1 and base is not None else None
    if not entry["works"] and not entry["error"]:
        bad = [p for p in points if p["errors"] or not p["requests"]]
        entry["error"] = "; ".join(f"c={p['concurrency']}: errors {p['errors']}" for p in bad) or "incomplete"


# -- using a calibration -------------------------------------------------------------------
def choose_engine(calibration: CalibrationResult) -> str:
    """The working engine with the lowest mean CPU ms/request over the common concurrencies.

    Ties (within 1 %) go to the registry order (fast, aiohttp, httpx). Raises ValueError
    when no engine worked.
    """
    from loadgen.engines import ENGINE_NAMES

    engines = {n: e for n, e in calibration.engines.items() if n in ENGINE_NAMES}  # HTTP engines only
    working = {n: e for n, e in engines.items() if e.works and e.points}
    if not working:
        problems = "; ".join(f"{n}: {e.error or 'no data'}" for n, e in engines.items()) or "none measured"
        raise ValueError(f"no engine worked in the calibration ({problems})")
    common = set.intersection(*({p.concurrency for p in e.points} for e in working.values()))
    if not common:
        raise ValueError("the working engines share no measured concurrency")

    def cost(entry: EngineCalibration) -> float:
        costs = [p.cpu_ms_per_request for p in entry.points if p.concurrency in common]
        return float(np.mean([c if c is not None else np.nan for c in costs]))

    costs = {n: cost(e) for n, e in working.items()}
    best = min(costs.values())
    order = ["fast", "aiohttp", "httpx"]
    near = [n for n, c in costs.items() if c <= best * 1.01]
    return sorted(near, key=lambda n: order.index(n) if n in order else len(order))[0]


_SUMMARY_POINT = ("engine", "concurrency", "req_per_s", "cpu_ms_per_request", "p50_ms", "p99_ms")


def calibration_summary(calibration: CalibrationResult, path: str | Path | None = None) -> dict[str, Any]:
    """A compact, secret-free form for meta.json: choice, per-engine figures, provenance."""
    data = calibration.data
    summary: dict[str, Any] = {
        "schema": data.get("schema"),
        "created_utc": data.get("created_utc"),
        "quick": data.get("quick"),
        "path": str(path) if path else None,
        "chosen": calibration.chosen,
        "choice_rule": data.get("choice_rule"),
        "endpoint": {k: (data.get("endpoint") or {}).get(k) for k in ("kind", "version", "cpus")},
        "client": data.get("client"),
        "baseline_p50_ms": (data.get("baseline") or {}).get("p50_ms"),
        "engines": {},
    }
    for name, entry in calibration.engines.items():
        summary["engines"][name] = {
            "version": entry.version,
            "works": entry.works,
            "cpu_ms_per_request": entry.cpu_ms_per_request,
            "added_latency_ms": entry.added_latency_ms,
            "points": [{k: getattr(p, k) for k in _SUMMARY_POINT} for p in entry.points],
        }
    return summary


def _still_valid(data: Any, max_age_s: float) -> bool:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return False
    age = time.time() - float(data.get("created_at", 0))
    return 0 <= age <= max_age_s and same_host(data.get("host")) and bool(data.get("engines"))


def load_or_run_calibration(
    path: str | Path,
    max_age_s: float,
    quick: bool = True,
    *,
    cpus: str | Sequence[int] = "auto",
    engines: Sequence[str] | None = None,
    payload: Payload | None = None,
    on_progress: Progress | None = None,
) -> CalibrationResult:
    """The calibration at ``path`` if it is recent and from this host; else measure one.

    A fresh measurement is written to ``path`` (so the next run reuses it). ``quick``:
    ~0.5 s per point at concurrency 1 and 64 (about 1 s per engine, plus start-up);
    otherwise the full 3 s x (1, 8, 64). Synchronous: call it before the event loop.
    """
    path = Path(path)
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if _still_valid(data, max_age_s):
            return parse_calibration(data)
    if quick:
        result = run_calibration(
            engines=engines,
            concurrencies=QUICK_CONCURRENCIES,
            duration_s=0.5,
            cpus=cpus,
            quick=True,
            payload=payload,
            on_progress=on_progress,
        )
    else:
        result = run_calibration(engines=engines, cpus=cpus, payload=payload, on_progress=on_progress)
    write_calibration(result, path)
    return result


def write_calibration(calibration: CalibrationResult, path: str | Path) -> Path:
    """Write the calibration's JSON atomically (a crash never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(dict(calibration.data), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def ceiling_for(concurrency: float, ceiling: Mapping[str, Any] | None) -> float | None:
    """The client's calibrated req/s at this concurrency (an estimate between measured points).

    Calibration measures a few concurrencies (e.g. 1 and 64); between two of them the
    ceiling is interpolated linearly in log(concurrency)-log(req/s) space, outside them the
    nearest measured value is used. None when no calibration was recorded.
    """
    if not ceiling:
        return None
    points = sorted((float(k), float(v)) for k, v in (ceiling.get("rps_by_concurrency") or {}).items() if v)
    if not points:
        return None
    c = max(float(concurrency or 1), 1.0)
    if c <= points[0][0]:
        return points[0][1]
    if c >= points[-1][0]:
        return points[-1][1]
    for (c0, r0), (c1, r1) in zip(points, points[1:], strict=False):
        if c0 <= c <= c1:
            w = (math.log(c) - math.log(c0)) / (math.log(c1) - math.log(c0))
            return float(math.exp(math.log(r0) + w * (math.log(r1) - math.log(r0))))
    return points[-1][1]  # unreachable: the loop covers every c between the ends
