"""The capacity rule over real sockets: false VALIDs on a violating server, VALIDs on a good one.

    python benchmarks/capacity_socket_study.py [--violating 20] [--meeting 5] [--max-seconds 40]
                                               [--slo p99=100ms] [--confidence 0.95]

Why: the simulation (benchmarks/capacity_sim.py) models probes; this sends them. It starts
benchmarks/slo_server.py on 127.0.0.1 (4 ms, or 150 ms with probability ``--p-slow``:
latency independent of load) and runs ``bench run slo-server --modes capacity`` against
it as a remote KServe V1 target, once per search (each with its own ``[sweep] seed``):

- ``--violating`` searches on the server with 2 % slow requests (true p99 150 ms > 100 ms
  at every rate): every VALID is a false VALID (target: none);
- ``--meeting`` searches on the server with 0.2 % slow requests (true p99 ~4 ms): VALID
  is the right answer, up to the study's rate cap.

Bounded: the server binds loopback only; ``[loadgen] max_rps`` caps the offered rate
(``--max-rps``), ``[capacity] max_seconds`` each search; the server is stopped at the end
(and on error). Results: benchmarks/results/capacity_socket.csv (one row per search) and
.md (command, date, commit, load average before/after each search).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _config(folder: Path, port: int, args: argparse.Namespace, seed: int) -> Path:
    text = (ROOT / "bench.toml").read_text()
    text = text.replace('artifacts_dir = "artifacts/model"', f'artifacts_dir = "{ROOT / "artifacts" / "model"}"')
    text = text.replace("max_rps = 0.0 ", f"max_rps = {args.max_rps} ", 1)
    head, sweep = text.split("\n[sweep]\n", 1)  # the [sweep] table's seed, not [model]'s
    text = head + "\n[sweep]\n" + sweep.replace("\nseed = 0\n", f"\nseed = {seed}\n", 1)
    text += f"""
[targets.slo-server]
adapter = "kserve"
protocol = "v1"
endpoint = "http://127.0.0.1:{port}"

[capacity]
confidence = {args.confidence}
max_seconds = {args.max_seconds}
start_rps = {args.start_rps}
max_concurrency = 1
closed_loop_seconds = 2.0

[paths]
results_dir = "results"
reports_dir = "reports"
"""
    path = folder / "bench.toml"
    path.write_text(text)
    return path


def _search(kind: str, i: int, port: int, args: argparse.Namespace, folder: Path) -> dict[str, object]:
    config = _config(folder, port, args, seed=1000 * (kind == "meeting") + i)
    run_id = f"{kind}-{i}"
    before, t0 = _load(), time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--config",
            str(config),
            "run",
            "slo-server",
            "--modes",
            "capacity",
            "--slo",
            args.slo,
            "--run-id",
            run_id,
            "--no-report",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=args.max_seconds * 4 + 120,
    )
    wall = time.perf_counter() - t0
    path = folder / "results" / run_id / "capacity.csv"
    if not path.is_file():
        raise RuntimeError(f"{run_id}: no capacity.csv (exit {proc.returncode})\n{proc.stderr[-3000:]}")
    row = pd.read_csv(path).iloc[0].to_dict()
    probes = pd.read_csv(folder / "results" / run_id / "capacity_probes.csv")
    return {
        "server": kind,
        "search": i,
        "verdict": row["verdict"],
        "capacity_rps": row["capacity_rps"],
        "upper_rps": row["upper_rps"],
        "upper_decision": row.get("upper_decision", ""),
        "confidence": row.get("confidence"),
        "at_n": row.get("at_n"),
        "at_exceed": row.get("at_exceed"),
        "probes": int(row["probes"]),
        "requests": int(probes["n_requests"].sum()),
        "decisions": " ".join(f"{r.offered_rps:.3g}:{r.decision}" for r in probes.itertuples() if r.final),
        "seconds": row["seconds"],
        "wall_s": round(wall, 1),
        "exit": proc.returncode,
        "stop_reason": row["stop_reason"],
        "load_before": before,
        "load_after": _load(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--violating", type=int, default=20)
    parser.add_argument("--meeting", type=int, default=5)
    parser.add_argument("--p-slow", type=float, default=0.02)
    parser.add_argument("--p-slow-meeting", type=float, default=0.002)
    parser.add_argument("--slo", default="p99=100ms")
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--max-seconds", type=float, default=40.0)
    parser.add_argument("--start-rps", type=float, default=50.0)
    parser.add_argument("--max-rps", type=float, default=200.0)
    parser.add_argument(
        "--calibration",
        type=Path,
        default=None,
        help="a calibration.json from an earlier run on this host (else the first search measures one)",
    )
    parser.add_argument("--out", default="capacity_socket")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    load_start = _load()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    rows: list[dict[str, object]] = []
    folder = Path(tempfile.mkdtemp(prefix="slo-socket-"))
    if args.calibration is not None:
        (folder / "results").mkdir()
        shutil.copy(args.calibration, folder / "results" / "calibration.json")
    try:
        for kind, count, p_slow in (
            ("violating", args.violating, args.p_slow),
            ("meeting", args.meeting, args.p_slow_meeting),
        ):
            if count <= 0:
                continue
            port = _free_port()
            server = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "benchmarks" / "slo_server.py"),
                    "--port",
                    str(port),
                    "--p-slow",
                    str(p_slow),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert server.stdout is not None
                server.stdout.readline()  # "listening on ..."
                for i in range(1, count + 1):
                    rows.append(_search(kind, i, port, args, folder))
                    r = rows[-1]
                    print(
                        f"{kind} {i}/{count}: {r['verdict']} {r['capacity_rps']} req/s ({r['decisions']}), "
                        f"{r['wall_s']} s wall, load {r['load_before']}",
                        flush=True,
                    )
            finally:
                server.terminate()
                server.wait(timeout=10)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    frame = pd.DataFrame(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    frame.to_csv(RESULTS / f"{args.out}.csv", index=False)
    cmd = "python benchmarks/capacity_socket_study.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        f"# Capacity rule over real sockets ({args.slo}, confidence {args.confidence})",
        "",
        f"- command: `{cmd.strip()}`",
        f"- date: {started:%Y-%m-%d %H:%M} UTC, commit {commit}",
        f"- load average (1, 5, 15 min) at start / end: {load_start} / {_load()} -- loaded machine (2 CPUs "
        "shared with other work); per-search load in the CSV",
        f"- servers: benchmarks/slo_server.py, 4 ms or 150 ms with probability {args.p_slow} (violating) / "
        f"{args.p_slow_meeting} (meeting); [capacity] max_seconds {args.max_seconds}, start_rps "
        f"{args.start_rps}; [loadgen] max_rps {args.max_rps}",
        "",
    ]
    for kind in ("violating", "meeting"):
        part = frame[frame["server"] == kind] if not frame.empty else frame
        if part.empty:
            continue
        counts = part["verdict"].value_counts().to_dict()
        lines.append(
            f"- **{kind}**: {len(part)} searches, verdicts {counts}; median {part['wall_s'].median():.0f} s "
            "wall per search"
        )
    lines += [
        "",
        "| server | search | verdict | capacity (req/s) | upper (req/s) | rates judged (rate:decision) | "
        "probes | requests | wall s | load before |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in frame.itertuples():
        lines.append(
            f"| {r.server} | {r.search} | {r.verdict} | {r.capacity_rps} | {r.upper_rps} | {r.decisions} | "
            f"{r.probes} | {r.requests} | {r.wall_s} | {r.load_before} |"
        )
    (RESULTS / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / (args.out + '.csv')} and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
