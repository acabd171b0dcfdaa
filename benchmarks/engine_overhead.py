"""Where the fast engine's client CPU goes: its own Python cost per request, broken down.

    python benchmarks/engine_overhead.py [--rounds 5] [--duration 1] [--baseline REF]
                                         [--profile-nginx] [--callback-loop ROUNDS]
                                         [--markdown PATH]

Why: issue 25 asks for the fast engine at >= 0.8x wrk with <= 1.5x wrk's CPU per request,
and to profile first.  Against a real endpoint the client's CPU is kernel (one ``send``
and one ``recv`` per request, as wrk) plus Python; on a shared machine the kernel share
swings with the load, so this script takes the kernel and the server out: each variant
below runs the same closed loop (:func:`loadgen.measure.measure_engine_point`, the loop
``bench_engines.py`` measures) over a *fake transport* that answers every write on the
next loop turn with nginx's canned response.  The CPU per request left is Python only:

* ``harness``  -- no engine: one future per request, completed on the next loop turn
  (the asyncio floor: task wake-ups, the measuring loop's clock reads);
* ``noparse``  -- the fast engine with its parser replaced by "the whole chunk is the
  body" (the engine's bookkeeping without httptools);
* ``fast``     -- the fast engine as it is;
* ``fast@REF`` -- the fast engine at git revision REF (``--baseline``), for before/after.

``--callback-loop ROUNDS`` measures, against nginx at 64 connections, wrk, the fast
engine and an experimental *connection-driven* closed loop (each connection's protocol
writes its next request from the parser's completion callback: httptools, the same
clock reads, but no future and no task wake-up per request) in alternating rounds: what
the per-request ``await engine.send`` costs next to wrk.

``--profile-nginx`` also runs the fast engine at 64 connections against nginx under
cProfile (``tottime``: where Python time is spent; C calls made inside a Python function,
e.g. the ``send`` syscall in ``HttpConnection.start``, count towards that function).
Medians and minima over ``--rounds`` (the minimum is the least disturbed on a loaded
machine).  A standalone script, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import importlib.util
import io
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.console import Console
from ground.clock import utc_iso
from loadgen.engine import Engine, Response
from loadgen.engines import fast_engine
from loadgen.engines.fast_http import HttpConnection
from loadgen.measure import measure_engine_point
from loadgen.request import Request

NGINX_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 07 Dec 2026 05:20:54 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: 20\r\nConnection: keep-alive\r\n\r\n"
    b'{"predictions": [0]}'
)
_OK = Response(200, b'{"predictions": [0]}', len(NGINX_RESPONSE))


class FakeTransport(asyncio.Transport):
    """Answers each write with the canned response on the next loop turn; no socket."""

    def __init__(self, protocol: asyncio.Protocol, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._protocol, self._loop = protocol, loop

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._loop.call_soon(self._protocol.data_received, NGINX_RESPONSE)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


def on_fake_transport(module: Any, connection: type = HttpConnection) -> type[Engine]:
    """``module.FastEngine`` whose connections are ``connection`` objects on a fake transport."""

    class Faked(module.FastEngine):
        name = "fast"

        async def _connect(self, deadline: float, loop: asyncio.AbstractEventLoop) -> Any:
            conn = connection()
            self._open.add(conn)
            conn.connection_made(FakeTransport(conn, loop))
            return conn

    return Faked


class NoParseConnection(HttpConnection):
    """The fast engine's connection with httptools replaced by 'the chunk is the body'."""

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self.chunks.append(data)
        self._complete(200)


class Harness(Engine):
    """No engine at all: a future per request, completed on the next loop turn."""

    name = "harness"

    @classmethod
    def version(cls) -> str:
        return "-"

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        pass

    async def send(self, request: Any) -> Response:
        future = self._loop.create_future()
        self._loop.call_soon(future.set_result, _OK)
        return await future


def baseline_module(ref: str, tmp: Path) -> Any:
    """The fast engine's two modules at git revision ``ref``, importable as ``fast_at_ref``."""
    package = tmp / "fast_at_ref"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("fast_engine.py", "fast_http.py"):
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{ref}:loadgen/engines/{name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (package / name).write_text(text.replace("from loadgen.engines.fast_http", "from fast_at_ref.fast_http"))
    sys.path.insert(0, str(tmp))
    return importlib.import_module("fast_at_ref.fast_engine")


class CallbackLoop(asyncio.Protocol):
    """One connection of the connection-driven loop: the next request leaves from the callback."""

    def __init__(self, wire: bytes, until: list[float], latencies: list[float]) -> None:
        import httptools

        self._wire, self._until, self._latencies = wire, until, latencies
        self._parser = httptools.HttpResponseParser(self)
        self._chunks: list[bytes] = []
        self._start = 0.0
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def go(self) -> None:
        self._start = time.perf_counter()
        self._chunks = []
        self.transport.write(self._wire)

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        now = time.perf_counter()
        self._latencies.append(now - self._start)
        if now < self._until[0]:
            self.go()
        elif self.done is not None:
            self.done.set_result(None)


async def callback_loop_point(url: str, wire: bytes, concurrency: int, duration_s: float) -> dict[str, float]:
    """req/s and CPU us per request of the connection-driven loop (0.2 s warm-up first)."""
    loop = asyncio.get_running_loop()
    port = int(url.rsplit(":", 1)[1])
    latencies: list[float] = []
    until = [0.0]
    conns = []
    for _ in range(concurrency):
        _, protocol = await loop.create_connection(lambda: CallbackLoop(wire, until, latencies), "127.0.0.1", port)
        conns.append(protocol)

    async def spell(seconds: float) -> None:
        until[0] = time.perf_counter() + seconds
        for protocol in conns:
            protocol.done = loop.create_future()
            protocol.go()
        await asyncio.gather(*(protocol.done for protocol in conns))

    await spell(0.2)
    latencies.clear()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await spell(duration_s)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    for protocol in conns:
        protocol.transport.close()
    return {"req_per_s": len(latencies) / wall, "cpu_us": cpu / len(latencies) * 1e6}


def against_nginx(rounds: int, duration_s: float) -> list[list[str]]:
    """wrk, the fast engine and the connection-driven loop at c=64, alternating; one row per point."""
    import shutil

    from ground.cpus import pinned, plan_cpus
    from loadgen.nullserver import NullEndpoint
    from targets.wire import mnist_payload

    spec = importlib.util.spec_from_file_location("bench_engines", ROOT / "benchmarks" / "bench_engines.py")
    assert spec is not None and spec.loader is not None
    bench_engines = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_engines)
    wrk = shutil.which("wrk")
    plan = plan_cpus("auto")
    request, _ = mnist_payload()
    rows = []
    with NullEndpoint("nginx", cpus=plan.standins) as endpoint, pinned(plan.client):
        wire = fast_engine.build_request_bytes(request, endpoint.url)
        for rnd in range(1, rounds + 1):
            load = f"{os.getloadavg()[0]:.2f}"
            points = []
            if wrk:
                w = bench_engines.run_wrk(wrk, endpoint.url, request.body, 64, duration_s, plan.client)
                points.append(("wrk", w["req_per_s"], w["cpu_ms_per_request"] * 1000.0))
            f = fast_engine.run(measure_engine_point(fast_engine.FastEngine, endpoint.url, request, 64, duration_s))
            points.append(("fast (await engine.send)", f["req_per_s"], f["cpu_ms_per_request"] * 1000.0))
            cb = fast_engine.run(callback_loop_point(endpoint.url, wire, 64, duration_s))
            points.append(("connection-driven loop", cb["req_per_s"], cb["cpu_us"]))
            ref = points[0] if wrk else None
            for name, rps, cpu in points:
                ratios = [f"{rps / ref[1]:.3f}", f"{cpu / ref[2]:.3f}"] if ref else ["-", "-"]
                rows.append([str(rnd), load, name, f"{rps:,.0f}", f"{cpu:.2f}", *ratios])
    return rows


def profile_nginx(duration_s: float) -> str:
    """cProfile of the fast engine at c=64 against nginx, client and nginx pinned apart."""
    from ground.cpus import pinned, plan_cpus
    from loadgen.nullserver import NullEndpoint
    from targets.wire import mnist_payload

    plan = plan_cpus("auto")
    request, _ = mnist_payload()
    profiler = cProfile.Profile()
    with NullEndpoint("nginx", cpus=plan.standins) as endpoint, pinned(plan.client):
        profiler.enable()
        point = fast_engine.run(measure_engine_point(fast_engine.FastEngine, endpoint.url, request, 64, duration_s))
        profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    head = f"{point['requests']:,} requests at {point['req_per_s']:,.0f} req/s under the profiler\n"
    return head + out.getvalue()


def _commit() -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=1.0, help="seconds per point (default 1)")
    parser.add_argument("--baseline", help="also measure the fast engine at this git revision")
    parser.add_argument("--profile-nginx", action="store_true", help="cProfile the fast engine against nginx")
    parser.add_argument(
        "--callback-loop",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="rounds of wrk vs fast vs a connection-driven loop against nginx at c=64 (default 0: not run)",
    )
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown to this file")
    args = parser.parse_args(argv)
    console = Console()
    if not 1 <= args.rounds <= 50 or not 0 < args.duration <= 10:
        console.error("--rounds must be in 1..50 and --duration in (0, 10] s")
        return 2
    request = Request("POST", "/predict", b"x" * 6153, {"Content-Type": "application/json"})
    with tempfile.TemporaryDirectory(prefix="servebench-overhead-") as tmp:
        variants: dict[str, type[Engine]] = {
            "harness": Harness,
            "noparse": on_fake_transport(fast_engine, NoParseConnection),
            "fast": on_fake_transport(fast_engine),
        }
        if args.baseline:
            old = baseline_module(args.baseline, Path(tmp))
            variants[f"fast@{args.baseline}"] = on_fake_transport(old, old.HttpConnection)
        load_before = os.getloadavg()
        cpu_us: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):  # variants alternate within each round
            for name, cls in variants.items():
                for level in (1, 64):
                    point = fast_engine.run(
                        measure_engine_point(cls, "http://127.0.0.1:9", request, level, args.duration, warmup_s=0.1)
                    )
                    cpu_us.setdefault((name, level), []).append(point["cpu_ms_per_request"] * 1000.0)
        load_after = os.getloadavg()
    rows = [
        [name, str(level), f"{statistics.median(v):.2f}", f"{min(v):.2f}", str(len(v))]
        for (name, level), v in cpu_us.items()
    ]
    columns = ["variant", "c", "CPU us/req (median)", "CPU us/req (min)", "rounds"]
    title = "Python CPU per request over a fake transport (no kernel, no server)"
    console.table(title, columns, rows)
    loads = f"load average before {[round(x, 2) for x in load_before]}, after {[round(x, 2) for x in load_after]}"
    console.print(loads)
    nginx_columns = ["round", "load 1m", "client (c=64, nginx)", "req/s", "CPU us/req", "req/s / wrk", "CPU / wrk"]
    nginx_rows = against_nginx(args.callback_loop, 2.0) if args.callback_loop else []
    if nginx_rows:
        console.table("Against nginx: wrk, the fast engine, a connection-driven loop", nginx_columns, nginx_rows)
    profile = profile_nginx(3.0) if args.profile_nginx else ""
    if profile:
        console.print(profile)
    if args.markdown:
        command = "python benchmarks/engine_overhead.py " + " ".join(sys.argv[1:] if argv is None else argv)
        lines = [
            f"# {title}",
            "",
            f"- command: `{command.strip()}`",
            f"- date: {utc_iso()}; commit `{_commit()}`; {loads}",
            "",
            "| " + " | ".join(columns) + " |",
            "|" + "|".join("---" for _ in columns) + "|",
            *("| " + " | ".join(row) + " |" for row in rows),
            "",
        ]
        if nginx_rows:
            lines += [
                "## Against nginx: wrk, the fast engine, a connection-driven loop (alternating)",
                "",
                "| " + " | ".join(nginx_columns) + " |",
                "|" + "|".join("---" for _ in nginx_columns) + "|",
                *("| " + " | ".join(row) + " |" for row in nginx_rows),
                "",
            ]
        if profile:
            lines += ["## cProfile, fast engine at c=64 against nginx", "", "```", profile.rstrip(), "```", ""]
        args.markdown.write_text("\n".join(lines), encoding="utf-8")
        console.print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
