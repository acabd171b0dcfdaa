"""Benchmark: each load-generator engine vs wrk against one fast local endpoint.

    python benchmarks/bench_engines.py [--duration 3] [--concurrency 1,8,64]
                                       [--endpoint auto|nginx|python] [--engines fast,aiohttp,httpx]

Why: issue 6 asks whether the ``fast`` engine gets near wrk (C, the reference) on this
machine: req/s, p50/p99 latency and client CPU per request at concurrency 1, 8 and 64,
with the endpoint (nginx when installed, else servebench's Python null server) on one
core and the client on another. Results are printed as a table and written as JSON
under ``benchmarks/out/`` (git-ignored). This is a standalone script (its own argparse),
not a test: speed figures depend on the machine and never gate the test suite.

About wrk's numbers: wrk 4.1 adds synthetic samples to its latency histogram before it
prints percentiles (``stats_correct``: its coordinated-omission correction for samples
longer than twice the mean interval), so its printed p50/p99 are *not* raw timings.
They are reported as printed, labelled so, next to the raw-derived mean latency by
Little's law (concurrency / req/s) and a raw blocking-socket p50 from Python. wrk's CPU
per request is its process's user+sys time (``RUSAGE_CHILDREN``) / requests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.console import Console
from ground.clock import utc_iso, utc_stamp
from ground.cpus import pinned, plan_cpus
from ground.hostfacts import host_facts
from loadgen import calibration as cal
from loadgen.engines import ENGINE_NAMES, EngineUnavailable, engine_class
from loadgen.engines.fast_engine import build_request_bytes, loop_name, run
from loadgen.nullserver import NullEndpoint
from targets.wire import mnist_payload

OUT_DIR = ROOT / "benchmarks" / "out"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not match:
        raise ValueError(f"cannot read wrk time {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict[str, Any]:
    """The figures of ``wrk --latency`` output (4.x format)."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s)", output)
    if not rps or not total:
        raise ValueError(f"unexpected wrk output:\n{output}")
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, flags=re.M))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "req_per_s": float(rps.group(1)),
        "requests": int(total.group(1)),
        "p50_ms_printed": _ms(pct["50"]) if "50" in pct else None,
        "p99_ms_printed": _ms(pct["99"]) if "99" in pct else None,
        "errors": (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0),
    }


def run_wrk(
    wrk: str, url: str, body: bytes, concurrency: int, duration_s: float, cpus: tuple[int, ...]
) -> dict[str, Any]:
    """One wrk run (1 thread, ``concurrency`` connections) pinned to the client CPUs."""
    with tempfile.TemporaryDirectory(prefix="servebench-wrk-") as tmp:
        body_path = Path(tmp) / "body.json"
        body_path.write_bytes(body)
        script = Path(tmp) / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            f'local f = io.open("{body_path}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        seconds = max(1, round(duration_s))  # wrk takes whole seconds
        argv = [wrk, "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(script), url + "/predict"]
        if cpus and shutil.which("taskset"):
            argv = ["taskset", "-c", ",".join(map(str, cpus)), *argv]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 30, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    figures = parse_wrk(done.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figures["cpu_ms_per_request"] = round(cpu / figures["requests"] * 1000.0, 5) if figures["requests"] else None
    figures["mean_ms_littles_law"] = (
        round(concurrency / figures["req_per_s"] * 1000.0, 4) if figures["req_per_s"] else None
    )
    figures["concurrency"] = concurrency
    return figures


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _fmt(value: Any, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per point (default 3)")
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--endpoint", choices=("auto", "nginx", "python"), default="auto")
    parser.add_argument("--engines", default=",".join(ENGINE_NAMES))
    parser.add_argument("--no-wrk", action="store_true", help="skip wrk even if installed")
    args = parser.parse_args(argv)
    console = Console()
    if not console.out.is_terminal:
        console.out.width = 140  # the table has nine columns; 80 would truncate them
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not 0 < args.duration <= cal.MAX_DURATION_S or not levels or any(not 1 <= c <= 1024 for c in levels):
        console.error("duration must be in (0, 60] s and concurrencies in 1..1024")
        return 2
    plan = plan_cpus("auto")
    request, payload_source = mnist_payload()
    wrk = None if args.no_wrk else shutil.which("wrk")
    load_before = os.getloadavg()
    result: dict[str, Any] = {
        "created_utc": utc_iso(),
        "host": host_facts(),
        "load_average_before": [round(x, 2) for x in load_before],
        "client_cpus": list(plan.client),
        "loop": loop_name(),
        "duration_s": args.duration,
        "payload": {"bytes": len(request.body), "source": payload_source},
        "engines": {},
        "wrk": None,
        "note": "wrk percentiles are as printed by wrk 4.1 (they include its synthetic CO-correction "
        "samples); mean_ms_littles_law = concurrency / req_per_s is raw-derived",
    }
    with NullEndpoint(args.endpoint, cpus=plan.standins) as endpoint, pinned(plan.client):
        result["endpoint"] = endpoint.describe()
        console.info(
            f"endpoint: {endpoint.kind} on CPUs {list(plan.standins) or 'any'}; "
            f"client on CPUs {list(plan.client) or 'any'}; payload {len(request.body):,} B"
        )
        result["raw_socket"] = cal.raw_socket_p50(endpoint.url, build_request_bytes(request, endpoint.url), 1.0)
        if wrk:
            version = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
            result["wrk"] = {"version": (version.stdout or version.stderr).split("\n")[0].strip(), "points": []}
            for level in levels:
                console.info(f"wrk: concurrency {level}")
                result["wrk"]["points"].append(
                    run_wrk(wrk, endpoint.url, request.body, level, args.duration, plan.client)
                )
        for name in engines:
            try:
                if name not in ENGINE_NAMES:  # the in-memory test engine sends nothing to measure
                    raise ValueError(f"{name!r} is not a network engine; engines: {', '.join(ENGINE_NAMES)}")
                cls = engine_class(name)
            except (EngineUnavailable, ValueError) as exc:
                result["engines"][name] = {"error": str(exc), "points": []}
                continue
            entry: dict[str, Any] = {"version": cls.version(), "points": []}
            result["engines"][name] = entry
            for level in levels:
                console.info(f"{name}: concurrency {level}")
                entry["points"].append(run(cal.measure_engine_point(cls, endpoint.url, request, level, args.duration)))
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    wrk_by_c = {p["concurrency"]: p for p in (result["wrk"] or {}).get("points", [])}
    rows = []
    for level in levels:
        w = wrk_by_c.get(level)
        if w:
            rows.append(
                [
                    "wrk",
                    level,
                    _fmt(w["req_per_s"], 0),
                    f"{_fmt(w['p50_ms_printed'], 3)}*",
                    f"{_fmt(w['p99_ms_printed'], 3)}*",
                    _fmt(w["mean_ms_littles_law"], 3),
                    _fmt(w["cpu_ms_per_request"], 4),
                    "1.000",
                    "1.000",
                ]
            )
        for name, entry in result["engines"].items():
            p = next((p for p in entry["points"] if p["concurrency"] == level), None)
            if p is None:
                continue
            p["ratio_req_per_s_to_wrk"] = _ratio(p["req_per_s"], w["req_per_s"]) if w else None
            p["ratio_cpu_to_wrk"] = _ratio(p["cpu_ms_per_request"], w["cpu_ms_per_request"]) if w else None
            p["p50_minus_wrk_p50_printed_ms"] = (
                round(p["p50_ms"] - w["p50_ms_printed"], 4) if w and p["p50_ms"] else None
            )
            rows.append(
                [
                    name,
                    level,
                    _fmt(p["req_per_s"], 0),
                    _fmt(p["p50_ms"], 3),
                    _fmt(p["p99_ms"], 3),
                    _fmt(p["mean_ms"], 3),
                    _fmt(p["cpu_ms_per_request"], 4),
                    _fmt(p["ratio_req_per_s_to_wrk"], 3),
                    _fmt(p["ratio_cpu_to_wrk"], 3),
                ]
            )
    ep = result["endpoint"]
    console.table(
        f"Engines vs wrk: {ep['kind']} {ep.get('version') or ''} on CPUs {ep['cpus'] or 'any'}, client on CPUs "
        f"{result['client_cpus'] or 'any'}, {len(request.body):,} B POST, {args.duration:g} s per point",
        ["client", "c", "req/s", "p50 ms", "p99 ms", "mean ms", "CPU ms/req", "req/s / wrk", "CPU / wrk"],
        rows,
    )
    console.print(
        f"raw blocking-socket p50 at c=1: {_fmt(result['raw_socket']['p50_ms'], 3)} ms; "
        f"load average before {result['load_average_before']}, after {result['load_average_after']}"
    )
    if wrk:
        console.print(
            "* wrk's printed percentiles include its synthetic coordinated-omission samples; "
            "its 'mean ms' is concurrency / req/s (Little's law, raw-derived)"
        )
    else:
        console.print("wrk is not installed: no wrk ratios (apt-get install wrk)")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = utc_stamp()
    for path in (OUT_DIR / f"bench_engines-{stamp}.json", OUT_DIR / "bench_engines.json"):
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {OUT_DIR / 'bench_engines.json'} (and a timestamped copy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
