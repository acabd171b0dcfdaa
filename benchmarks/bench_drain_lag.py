"""Does draining records while a step runs delay its sends?  Send lag with and without a sink, side by side.

Why: a streamed step (:mod:`loadgen.modes`) classifies, decodes and writes its completed
requests every second *inside* the event loop that sends; if that work delayed sends, the
open-loop send lag the saturation checks read would grow and a long step would flag its
own client.  This runs the same open-loop step against a null endpoint (a separate
process on loopback, :class:`loadgen.nullserver.NullEndpoint`) with the fast engine,
alternately without a sink (the records made after the step, as before streaming) and with
one (records drained every second into requests.csv.gz on disk), and prints the send-lag
columns of each step's summary row.

    python benchmarks/bench_drain_lag.py --rate 1000 --seconds 20 --pairs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results import RunWriter
from loadgen.engine import EngineOptions
from loadgen.engines import engine_class
from loadgen.modes import run_step
from loadgen.nullserver import NULL_BODY, NullEndpoint
from loadgen.pacing import schedule
from loadgen.records import StepKey
from loadgen.request import Request
from loadgen.stats import SUMMARY_COLUMNS, summarize

COLUMNS = ("send_lag_p50_s", "send_lag_max_s", "lag_growth_s", "offered_rps", "achieved_rps", "flags")


def _decode(status: int, body: bytes) -> int:
    return int(json.loads(body)["predictions"][0])


async def _step(url: str, rate: float, seconds: float, sink_dir: Path | None, index: int) -> dict:
    n = int(rate * seconds)
    key = StepKey(target="null", mode="rate", n_requests=n, concurrency=64, rate=rate, trial=index)
    request = Request("POST", "/", b'{"instances": [0]}', {"Content-Type": "application/json"})
    engine = engine_class("fast")(EngineOptions(base_url=url, max_connections=64))
    writer = RunWriter(sink_dir / f"r{index}", f"r{index}", SUMMARY_COLUMNS) if sink_dir is not None else None
    async with engine:
        engine.prepare([request])
        step = await run_step(
            engine,
            key,
            [request] * n,
            [0] * n,
            _decode,
            offsets=schedule(n, rate),
            max_duration_s=seconds + 30,
            sink=writer.step_sink(key) if writer is not None else None,
        )
    row = summarize(step)
    if writer is not None:
        writer.close()
    return {"sink": writer is not None, "n_ok": row["n_ok"], **{c: row[c] for c in COLUMNS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}; null body {NULL_BODY!r}")
    with NullEndpoint("python") as endpoint, tempfile.TemporaryDirectory(prefix="servebench-lag-") as tmp:
        results = []
        for pair in range(args.pairs):
            for sink in (False, True) if pair % 2 == 0 else (True, False):
                out = asyncio.run(_step(endpoint.url, args.rate, args.seconds, Path(tmp) if sink else None, pair))
                results.append(out)
                print(json.dumps(out), flush=True)
    for sink in (False, True):
        rows = [r for r in results if r["sink"] is sink]
        p50 = np.median([r["send_lag_p50_s"] for r in rows]) * 1000
        worst = max(r["send_lag_max_s"] for r in rows) * 1000
        growth = np.median([r["lag_growth_s"] for r in rows]) * 1000
        print(
            f"{'with sink' if sink else 'no sink  '}: send lag p50 {p50:.2f} ms (median of {len(rows)}), "
            f"max {worst:.1f} ms (worst), growth {growth:.2f} ms (median)"
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
