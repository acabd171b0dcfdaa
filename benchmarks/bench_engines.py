"""Benchmark: each load-generator engine vs wrk against one fast local endpoint.

    python benchmarks/bench_engines.py [--duration 3] [--concurrency 1,8,64]
                                       [--endpoint auto|nginx|python] [--engines fast,aiohttp,httpx]
                                       [--rounds 1] [--markdown benchmarks/results/bench_engines.md]

Why: issue 6 asks whether the ``fast`` engine gets near wrk (C, the reference) on this
machine: req/s, p50/p99 latency and client CPU per request at concurrency 1, 8 and 64,
with the endpoint (nginx when installed, else servebench's Python null server) on one
core and the client on another. Results are printed as a table and written as JSON
under ``benchmarks/out/`` (git-ignored). This is a standalone script (its own argparse),
not a test: speed figures depend on the machine and never gate the test suite.

On a shared machine one pair of figures means little: ``--rounds N`` repeats the whole
measurement N times, wrk and the engines alternating within each round at every
concurrency, and prints each round's ratios to wrk with the 1-minute load average when
the round began, then the median and range of the ratios. ``--markdown PATH`` writes the
same tables with the command, date, commit and loads (``benchmarks/results/``).

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
import statistics
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


def add_ratios(result: dict[str, Any]) -> None:
    """Put each engine point's ratios to the wrk point of the same round and concurrency on it."""
    wrk_points = {(p["round"], p["concurrency"]): p for p in (result["wrk"] or {}).get("points", [])}
    for entry in result["engines"].values():
        for p in entry["points"]:
            w = wrk_points.get((p["round"], p["concurrency"]))
            p["ratio_req_per_s_to_wrk"] = _ratio(p["req_per_s"], w["req_per_s"]) if w else None
            p["ratio_cpu_to_wrk"] = _ratio(p["cpu_ms_per_request"], w["cpu_ms_per_request"]) if w else None
            p["p50_minus_wrk_p50_printed_ms"] = (
                round(p["p50_ms"] - w["p50_ms_printed"], 4) if w and p["p50_ms"] and w["p50_ms_printed"] else None
            )


def point_rows(result: dict[str, Any]) -> list[list[str]]:
    """One row per (round, concurrency, client): wrk first, then each engine with its ratios."""
    rows = []
    wrk_points = {(p["round"], p["concurrency"]): p for p in (result["wrk"] or {}).get("points", [])}
    loads = result.get("load_average_by_round", {})
    for rnd in range(1, result["rounds"] + 1):
        load = loads.get(str(rnd))
        for level in result["concurrency"]:
            w = wrk_points.get((rnd, level))
            if w:
                rows.append(
                    [
                        str(rnd),
                        _fmt(load, 2),
                        "wrk",
                        str(level),
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
                p = next((p for p in entry["points"] if (p["round"], p["concurrency"]) == (rnd, level)), None)
                if p is None:
                    continue
                rows.append(
                    [
                        str(rnd),
                        _fmt(load, 2),
                        name,
                        str(level),
                        _fmt(p["req_per_s"], 0),
                        _fmt(p["p50_ms"], 3),
                        _fmt(p["p99_ms"], 3),
                        _fmt(p["mean_ms"], 3),
                        _fmt(p["cpu_ms_per_request"], 4),
                        _fmt(p["ratio_req_per_s_to_wrk"], 3),
                        _fmt(p["ratio_cpu_to_wrk"], 3),
                    ]
                )
    return rows


def ratio_summary(result: dict[str, Any]) -> list[list[str]]:
    """Per engine and concurrency: the median, lowest and highest ratio to wrk over the rounds."""
    rows = []
    for name, entry in result["engines"].items():
        for level in result["concurrency"]:
            points = [p for p in entry["points"] if p["concurrency"] == level]
            rps = sorted(p["ratio_req_per_s_to_wrk"] for p in points if p.get("ratio_req_per_s_to_wrk"))
            cpu = sorted(p["ratio_cpu_to_wrk"] for p in points if p.get("ratio_cpu_to_wrk"))
            if not rps or not cpu:
                continue
            rows.append(
                [
                    name,
                    str(level),
                    str(len(rps)),
                    f"{statistics.median(rps):.3f}",
                    f"{rps[0]:.3f}..{rps[-1]:.3f}",
                    f"{statistics.median(cpu):.3f}",
                    f"{cpu[0]:.3f}..{cpu[-1]:.3f}",
                ]
            )
    return rows


POINT_COLUMNS = [
    "round",
    "load 1m",
    "client",
    "c",
    "req/s",
    "p50 ms",
    "p99 ms",
    "mean ms",
    "CPU ms/req",
    "req/s / wrk",
    "CPU / wrk",
]
SUMMARY_COLUMNS = ["engine", "c", "rounds", "req/s / wrk (median)", "range", "CPU / wrk (median)", "range"]


def _md_table(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return "\n".join(lines)


def markdown_report(result: dict[str, Any], command: str) -> str:
    """The result as Markdown: command, date, commit, loads, the per-round table and the summary."""
    ep = result["endpoint"]
    return "\n".join(
        [
            "# Engines vs wrk (benchmarks/bench_engines.py)",
            "",
            f"- command: `{command}`",
            f"- date: {result['created_utc']}",
            f"- commit: `{result['commit']}`",
            f"- endpoint: {ep['kind']} {ep.get('version') or ''} on CPUs {ep['cpus'] or 'any'}; client on CPUs "
            f"{result['client_cpus'] or 'any'}; loop {result['loop']}; {result['payload']['bytes']:,} B POST; "
            f"{result['duration_s']:g} s per point",
            f"- load average (1, 5, 15 min) before {result['load_average_before']}, "
            f"after {result['load_average_after']}; per round in the table",
            f"- wrk: {(result['wrk'] or {}).get('version', 'not run')}",
            "",
            "## Ratios to wrk over the rounds",
            "",
            _md_table(SUMMARY_COLUMNS, ratio_summary(result)),
            "",
            "## Every point (wrk and the engines alternate within each round)",
            "",
            _md_table(POINT_COLUMNS, point_rows(result)),
            "",
            "\\* wrk's printed percentiles include its synthetic coordinated-omission samples; its 'mean ms' is "
            "concurrency / req/s (Little's law, raw-derived). CPU ms/req: the client process's user+sys time "
            "over the measured seconds / requests.",
            "",
        ]
    )


def _commit() -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def measure(args: argparse.Namespace, console: Console, levels: list[int], engines: list[str]) -> dict[str, Any]:
    """Every round: for each concurrency, wrk then each engine, side by side on one endpoint."""
    plan = plan_cpus("auto")
    request, payload_source = mnist_payload()
    wrk = None if args.no_wrk else shutil.which("wrk")
    result: dict[str, Any] = {
        "created_utc": utc_iso(),
        "commit": _commit(),
        "host": host_facts(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "load_average_by_round": {},
        "client_cpus": list(plan.client),
        "loop": loop_name(),
        "duration_s": args.duration,
        "rounds": args.rounds,
        "concurrency": levels,
        "payload": {"bytes": len(request.body), "source": payload_source},
        "engines": {},
        "wrk": None,
        "note": "wrk percentiles are as printed by wrk 4.1 (they include its synthetic CO-correction "
        "samples); mean_ms_littles_law = concurrency / req_per_s is raw-derived",
    }
    classes = {}
    for name in engines:
        try:
            if name not in ENGINE_NAMES:  # the in-memory test engine sends nothing to measure
                raise ValueError(f"{name!r} is not a network engine; engines: {', '.join(ENGINE_NAMES)}")
            classes[name] = engine_class(name)
            result["engines"][name] = {"version": classes[name].version(), "points": []}
        except (EngineUnavailable, ValueError) as exc:
            result["engines"][name] = {"error": str(exc), "points": []}
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
        for rnd in range(1, args.rounds + 1):
            result["load_average_by_round"][str(rnd)] = round(os.getloadavg()[0], 2)
            for level in levels:
                if wrk:
                    console.info(f"round {rnd}: wrk, concurrency {level}")
                    point = run_wrk(wrk, endpoint.url, request.body, level, args.duration, plan.client)
                    result["wrk"]["points"].append({"round": rnd, **point})
                for name, cls in classes.items():
                    console.info(f"round {rnd}: {name}, concurrency {level}")
                    point = run(cal.measure_engine_point(cls, endpoint.url, request, level, args.duration))
                    result["engines"][name]["points"].append({"round": rnd, **point})
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    add_ratios(result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per point (default 3)")
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--endpoint", choices=("auto", "nginx", "python"), default="auto")
    parser.add_argument("--engines", default=",".join(ENGINE_NAMES))
    parser.add_argument("--rounds", type=int, default=1, help="rounds of wrk and the engines, alternating (default 1)")
    parser.add_argument("--markdown", type=Path, help="also write the tables as Markdown to this file")
    parser.add_argument("--no-wrk", action="store_true", help="skip wrk even if installed")
    args = parser.parse_args(argv)
    console = Console()
    if not console.out.is_terminal:
        console.out.width = 160  # the table has eleven columns; 80 would truncate them
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not 0 < args.duration <= cal.MAX_DURATION_S or not levels or any(not 1 <= c <= 1024 for c in levels):
        console.error("duration must be in (0, 60] s and concurrencies in 1..1024")
        return 2
    if not 1 <= args.rounds <= 20:
        console.error("--rounds must be in 1..20")
        return 2
    result = measure(args, console, levels, engines)
    for name, entry in result["engines"].items():
        if "error" in entry:
            console.warn(f"{name}: {entry['error']}")
    ep = result["endpoint"]
    console.table(
        f"Engines vs wrk: {ep['kind']} {ep.get('version') or ''} on CPUs {ep['cpus'] or 'any'}, client on CPUs "
        f"{result['client_cpus'] or 'any'}, {result['payload']['bytes']:,} B POST, {args.duration:g} s per point",
        POINT_COLUMNS,
        point_rows(result),
    )
    if args.rounds > 1 and result["wrk"]:
        console.table("Ratios to wrk over the rounds", SUMMARY_COLUMNS, ratio_summary(result))
    console.print(
        f"raw blocking-socket p50 at c=1: {_fmt(result['raw_socket']['p50_ms'], 3)} ms; "
        f"load average before {result['load_average_before']}, after {result['load_average_after']}"
    )
    if result["wrk"]:
        console.print(
            "* wrk's printed percentiles include its synthetic coordinated-omission samples; "
            "its 'mean ms' is concurrency / req/s (Little's law, raw-derived)"
        )
    else:
        console.print("wrk is not run or not installed: no wrk ratios (apt-get install wrk)")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = utc_stamp()
    for path in (OUT_DIR / f"bench_engines-{stamp}.json", OUT_DIR / "bench_engines.json"):
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {OUT_DIR / 'bench_engines.json'} (and a timestamped copy)")
    if args.markdown:
        command = "python benchmarks/bench_engines.py " + " ".join(sys.argv[1:] if argv is None else argv)
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown_report(result, command.strip()), encoding="utf-8")
        console.print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
