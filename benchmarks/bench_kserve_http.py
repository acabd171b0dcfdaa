"""Benchmark: does the KServe stand-in's guarded HTTP layer slow a valid predict down?

    python benchmarks/bench_kserve_http.py --trees before=/tmp/old-checkout,after=. \\
        [--target kubeflow-gcp] [--rounds 3] [--requests 400]

Why: :mod:`targets.kserve.server.http_protocol` adds work to every request uvicorn parses (counting head
bytes, one pass over the headers when a head is complete).  This script compares the
latency of a valid V1 predict served by the stand-in's code from two checkouts ("trees":
e.g. ``git archive`` of the commit before the change, and the working tree), in
alternating order over ``--rounds`` rounds so slow drift of a shared machine does not
pass for the change.  Per tree and round it starts the target's stand-in (bench.toml),
sends ``--requests`` predicts one after the other on ONE keep-alive connection (server
work per request, no connection set-up) and ``--requests`` on fresh connections (what
bench_slow_client.py measures), after 20 warm-up requests, and stops it.  The stand-in
and this client are pinned to separate CPUs (``ground.cpus.plan_cpus``), as in a run.

The stand-in runs the tree's ``targets`` package: the server process is started with
that tree as its working directory and PYTHONPATH.  The model is the one in this
checkout's ``artifacts/`` (train it first).  Results: stdout and
``benchmarks/out/bench_kserve_http.json`` (git-ignored), with the load average before
and after each measurement -- on a loaded machine the figures are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from bench_slow_client import measure_latencies, request_bytes

OUT_DIR = ROOT / "benchmarks" / "out"
WARMUP = 20


def keep_alive_latencies(host: str, port: int, data: bytes, n: int, timeout: float = 30.0) -> list[float]:
    """Seconds per request for ``n`` sequential requests on one connection (after WARMUP)."""
    data = data.replace(b"Connection: close\r\n", b"")
    times = []
    with socket.create_connection((host, port), timeout=timeout) as sock:
        for i in range(WARMUP + n):
            start = time.perf_counter()
            sock.sendall(data)
            status, _ = _read_response(sock)
            elapsed = time.perf_counter() - start
            if status != 200:
                raise RuntimeError(f"valid request answered HTTP {status}")
            if i >= WARMUP:
                times.append(elapsed)
    return times


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One Content-Length-framed response from ``sock``: (status, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed mid-response")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:] if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed mid-body")
        body += chunk
    return int(head.split(b" ", 2)[1]), body


def _measure(target_name: str, tree: Path, config: Any, plan: Any, requests: int, log_dir: Path) -> dict[str, Any]:
    """Start the stand-in from ``tree``, time keep-alive and fresh-connection predicts, stop it."""
    from models.data import load_dataset
    from targets.base import TargetContext
    from targets.registry import build_target

    saved_cwd, saved_path = os.getcwd(), os.environ.get("PYTHONPATH")
    os.chdir(tree)  # ``python -m targets.kserve.server.main`` imports from its working directory first
    os.environ["PYTHONPATH"] = str(tree)
    context = TargetContext(
        artifacts_dir=config.artifacts_dir, log_dir=log_dir, cpus=plan.standins, ready_timeout_s=240.0
    )
    target = build_target(config.targets[target_name], context)
    try:
        asyncio.run(target.start())
    finally:
        os.chdir(saved_cwd)
        if saved_path is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved_path
    try:
        host, port_text = target.base_url.removeprefix("http://").rsplit(":", 1)
        port = int(port_text)
        blueprint = target.encode(load_dataset(config.model, root=config.root).test_x[0])
        data = request_bytes(blueprint.method, blueprint.path, blueprint.body, blueprint.headers, host, port)
        load_before = [round(x, 2) for x in os.getloadavg()]
        kept = keep_alive_latencies(host, port, data, requests)
        fresh = measure_latencies(host, port, data, requests, warmup=WARMUP)
        return {
            "load_average_before": load_before,
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "keep_alive_ms": [round(t * 1e3, 4) for t in kept],
            "fresh_connection_ms": [round(t * 1e3, 4) for t in fresh],
        }
    finally:
        asyncio.run(target.stop())


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", required=True, help="label=DIR,label=DIR: checkouts whose targets/ to serve")
    parser.add_argument("--target", default="kubeflow-gcp", help="a bench.toml target with the kserve adapter")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=400, help="timed requests per connection kind and round")
    parser.add_argument("--config", default=str(ROOT / "bench.toml"))
    args = parser.parse_args(argv)
    trees = {}
    for item in args.trees.split(","):
        label, sep, folder = item.partition("=")
        # DIR/targets/kserve_server.py before the layout of issue 23, DIR/targets/kserve/server/main.py after it
        if not sep or not any(
            (Path(folder) / "targets" / p).is_file() for p in ("kserve_server.py", "kserve/server/main.py")
        ):
            parser.error(f"--trees: {item!r} is not label=DIR with DIR/targets/kserve/server/main.py")
        trees[label] = Path(folder).resolve()
    if not 1 <= args.rounds <= 10 or not 10 <= args.requests <= 5000:
        parser.error("--rounds must be in 1..10, --requests in 10..5000")

    from bench.config import load_config
    from bench.console import Console
    from ground.cpus import pin_current_process, plan_cpus

    console = Console()
    config = load_config(args.config)
    plan = plan_cpus(config.loadgen.cpus)  # the stand-in on its CPUs, this client on another
    pin_current_process(plan.client)
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in trees}
    with tempfile.TemporaryDirectory(prefix="kserve-http-") as logs:
        for round_no in range(args.rounds):
            order = list(trees) if round_no % 2 == 0 else list(reversed(trees))
            for label in order:
                log_dir = Path(logs) / f"{label}-{round_no}"
                run = _measure(args.target, trees[label], config, plan, args.requests, log_dir)
                runs[label].append(run)
                console.print(
                    f"round {round_no + 1} {label}: keep-alive median {_median(run['keep_alive_ms'])} ms, "
                    f"fresh-connection median {_median(run['fresh_connection_ms'])} ms; "
                    f"load {run['load_average_before']} -> {run['load_average_after']}"
                )
    summary = {
        label: {
            "keep_alive_median_ms": _median([t for r in rs for t in r["keep_alive_ms"]]),
            "fresh_connection_median_ms": _median([t for r in rs for t in r["fresh_connection_ms"]]),
            "per_round_keep_alive_median_ms": [_median(r["keep_alive_ms"]) for r in rs],
            "per_round_fresh_connection_median_ms": [_median(r["fresh_connection_ms"]) for r in rs],
        }
        for label, rs in runs.items()
    }
    for label, row in summary.items():
        console.print(
            f"{label}: keep-alive median {row['keep_alive_median_ms']} ms (rounds "
            f"{row['per_round_keep_alive_median_ms']}), fresh-connection median "
            f"{row['fresh_connection_median_ms']} ms (rounds {row['per_round_fresh_connection_median_ms']})"
        )
    result = {
        "target": args.target,
        "host": os.uname().nodename,
        "cpus": os.cpu_count(),
        "trees": {k: str(v) for k, v in trees.items()},
        "requests": args.requests,
        "summary": summary,
        "runs": runs,
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "bench_kserve_http.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    console.print(f"wrote {OUT_DIR / 'bench_kserve_http.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
