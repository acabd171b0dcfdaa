"""Benchmark: how long a valid predict waits while one slow client is connected, per target.

    python benchmarks/bench_slow_client.py [--targets greene-linserv,k8s-ibm,...]
                                           [--slow-s 20] [--probes 6] [--latency-requests 200]

Why: a server that reads a request head with a blocking ``recv`` on its only worker can be
held by one client that sends its head one byte per second (a "slowloris"); every other
request then queues behind it.  This script starts each target's local stand-in (from
bench.toml), then

1. times ``--latency-requests`` valid predicts, one after the other, each on a fresh
   loopback connection (the median is the normal request's latency);
2. opens ONE slow client that sends ``POST /predict HTTP/1.1`` and then one header byte per
   second for up to ``--slow-s`` seconds, and while it is connected sends ``--probes``
   valid predicts one after the other (fresh connection each) and times each: the
   largest of those is the wait.  It also records whether and when the server cut the
   slow client off, and what it answered (the slow client keeps dripping until then,
   or until ``--slow-s``, unless ``--no-wait-for-cut``).

A k8s-like target spreads connections over replicas by a hash, so only the probes that
land on the slow client's replica can wait; ``--probes 6`` makes missing it unlikely (1 in
2**6 for two replicas).

Everything is bounded: one slow client, ``--slow-s`` seconds at most, loopback only.
Results go to stdout and ``benchmarks/out/bench_slow_client.json`` (git-ignored) with the
load average before and after each target (a loaded machine makes latencies noisy).
This is a standalone script (its own argparse), not a test;
``tests/targets/test_bad_input.py`` (``test_slow_client_does_not_hold_the_server``) calls
:func:`measure_slow_client` with a generous bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

OUT_DIR = ROOT / "benchmarks" / "out"
DEFAULT_TARGETS = ("greene-linserv", "k8s-ibm", "kubeflow-gcp", "kubeflow-ibm")

__all__ = ["SlowClientResult", "exchange", "measure_latencies", "measure_slow_client", "request_bytes"]


def request_bytes(method: str, path: str, body: bytes, headers: dict[str, str], host: str, port: int) -> bytes:
    """One HTTP/1.1 request on the wire, ``Connection: close`` (one request per connection)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "content-length", "connection")]
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


def exchange(host: str, port: int, data: bytes, timeout: float) -> tuple[int, bytes]:
    """Send ``data`` on a fresh connection, read until the server closes: (status, body).

    Status 0 means the connection closed without any answer.
    """
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.startswith(b"HTTP/1."):
        return 0, raw
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def measure_latencies(host: str, port: int, data: bytes, n: int, warmup: int = 5, timeout: float = 30.0) -> list[float]:
    """Seconds per valid request, ``n`` sequential requests on fresh connections (after ``warmup``)."""
    times = []
    for i in range(warmup + n):
        start = time.perf_counter()
        status, body = exchange(host, port, data, timeout)
        elapsed = time.perf_counter() - start
        if status != 200:
            raise RuntimeError(f"valid request answered HTTP {status}: {body[:200]!r}")
        if i >= warmup:
            times.append(elapsed)
    return times


@dataclass
class SlowClientResult:
    """What one slow client did to the valid requests sent meanwhile."""

    slow_s: float
    waits_s: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    #: Seconds after its first byte when the server closed or answered the slow client
    #: (None: still connected when the measurement stopped it).
    slow_cut_after_s: float | None = None
    slow_answer: str = ""

    @property
    def max_wait_s(self) -> float:
        return max(self.waits_s) if self.waits_s else float("nan")


def _slow_client(
    host: str, port: int, slow_s: float, stop: threading.Event, result: SlowClientResult, connected: threading.Event
) -> None:
    """Send a request head one byte per second until ``slow_s``, ``stop`` or the server acts."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
        start = time.monotonic()
        connected.set()
        while time.monotonic() - start < slow_s and not stop.is_set():
            readable, _, _ = select.select([sock], [], [], 1.0)
            try:
                if readable:
                    answer = sock.recv(4096)
                    result.slow_cut_after_s = time.monotonic() - start
                    result.slow_answer = answer.split(b"\r\n", 1)[0].decode("latin-1") or "(closed)"
                    return
                sock.send(b"a")
            except OSError as exc:
                result.slow_cut_after_s = time.monotonic() - start
                result.slow_answer = f"({type(exc).__name__})"
                return


def measure_slow_client(
    host: str,
    port: int,
    data: bytes,
    *,
    slow_s: float = 20.0,
    probes: int = 6,
    settle_s: float = 1.0,
    wait_for_cut: bool = False,
) -> SlowClientResult:
    """Time ``probes`` valid requests sent while one slow client is connected.

    ``settle_s`` lets the server accept the slow connection first.  Every probe has a
    timeout of ``slow_s + 60`` s, so a server that never answers fails the measurement
    instead of hanging it.  The slow client stops when the probes are done, unless
    ``wait_for_cut``: then it keeps dripping until the server cuts it or ``slow_s`` ends.
    """
    result = SlowClientResult(slow_s=slow_s)
    stop, connected = threading.Event(), threading.Event()
    thread = threading.Thread(target=_slow_client, args=(host, port, slow_s, stop, result, connected), daemon=True)
    thread.start()
    try:
        if not connected.wait(10):
            raise RuntimeError("the slow client could not connect")
        time.sleep(settle_s)
        for _ in range(probes):
            start = time.perf_counter()
            status, _ = exchange(host, port, data, slow_s + 60)
            result.waits_s.append(time.perf_counter() - start)
            result.statuses.append(status)
        if wait_for_cut:
            thread.join(timeout=slow_s + 10)
    finally:
        stop.set()
        thread.join(timeout=slow_s + 10)
    return result


def _measure_target(name: str, config: Any, plan: Any, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    from models.data import load_dataset
    from targets.base import TargetContext
    from targets.registry import build_target

    context = TargetContext(
        artifacts_dir=config.artifacts_dir, log_dir=log_dir, cpus=plan.standins, ready_timeout_s=240.0
    )
    target = build_target(config.targets[name], context)
    image = load_dataset(config.model, root=config.root).test_x[0]
    asyncio.run(target.start())
    try:
        host, port_text = target.base_url.removeprefix("http://").rsplit(":", 1)
        port = int(port_text)
        blueprint = target.encode(image)
        data = request_bytes(blueprint.method, blueprint.path, blueprint.body, blueprint.headers, host, port)
        load_before = [round(x, 2) for x in os.getloadavg()]
        latencies = measure_latencies(host, port, data, args.latency_requests)
        slow = measure_slow_client(
            host, port, data, slow_s=args.slow_s, probes=args.probes, wait_for_cut=not args.no_wait_for_cut
        )
        return {
            "target": name,
            "server": target.describe().get("server", ""),
            "load_average_before": load_before,
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "latency_requests": len(latencies),
            "latency_median_ms": round(statistics.median(latencies) * 1e3, 3),
            "latency_p90_ms": round(statistics.quantiles(latencies, n=10)[-1] * 1e3, 3),
            "slow_client": {**asdict(slow), "max_wait_s": slow.max_wait_s},
        }
    finally:
        asyncio.run(target.stop())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS), help="comma-separated bench.toml targets")
    parser.add_argument("--slow-s", type=float, default=20.0, help="how long the slow client drips (max 300)")
    parser.add_argument("--probes", type=int, default=6, help="valid requests sent while it is connected")
    parser.add_argument(
        "--no-wait-for-cut",
        action="store_true",
        help="stop the slow client when the probes are done (default: let it drip until the "
        "server cuts it or --slow-s ends, to see whether the server cuts it)",
    )
    parser.add_argument("--latency-requests", type=int, default=200, help="valid requests for the median latency")
    parser.add_argument("--config", default=str(ROOT / "bench.toml"))
    parser.add_argument("--label", default="", help="a word stored with the results (e.g. before/after)")
    args = parser.parse_args(argv)
    if not 0 < args.slow_s <= 300 or not 1 <= args.probes <= 50 or not 1 <= args.latency_requests <= 5000:
        parser.error("--slow-s must be in (0, 300], --probes in 1..50, --latency-requests in 1..5000")

    from bench.config import load_config
    from bench.console import Console
    from ground.cpus import pin_current_process, plan_cpus

    console = Console()
    config = load_config(args.config)
    plan = plan_cpus(config.loadgen.cpus)
    pin_current_process(plan.client)
    rows = []
    with tempfile.TemporaryDirectory(prefix="slow-client-") as logs:
        for name in [t.strip() for t in args.targets.split(",") if t.strip()]:
            console.print(f"{name}: starting the stand-in ...")
            row = _measure_target(name, config, plan, args, Path(logs) / name)
            rows.append(row)
            slow = row["slow_client"]
            cut = slow["slow_cut_after_s"]
            console.print(
                f"{name}: median {row['latency_median_ms']:.2f} ms over {row['latency_requests']} requests; "
                f"with a slow client: max wait {slow['max_wait_s']:.2f} s (waits "
                f"{', '.join(f'{w:.2f}' for w in slow['waits_s'])}); slow client "
                + (f"cut after {cut:.1f} s ({slow['slow_answer']})" if cut is not None else "never cut")
                + f"; load {row['load_average_before']} -> {row['load_average_after']}"
            )
    result = {
        "label": args.label,
        "host": os.uname().nodename,
        "cpus": os.cpu_count(),
        "slow_s": args.slow_s,
        "probes": args.probes,
        "targets": rows,
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for path in (OUT_DIR / f"bench_slow_client-{args.label or 'run'}-{stamp}.json", OUT_DIR / "bench_slow_client.json"):
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {OUT_DIR / 'bench_slow_client.json'} (and a timestamped copy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
