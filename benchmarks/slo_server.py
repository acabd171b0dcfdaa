"""A KServe-V1-shaped test server whose latency does not depend on load (for the SLO study).

    python benchmarks/slo_server.py --port 8771 [--fast-ms 4] [--slow-ms 150] [--p-slow 0.02] [--seed 0]

Each ``POST /v1/models/mnist:predict`` sleeps ``fast_ms``, or ``slow_ms`` with probability
``p_slow`` (an asyncio sleep, so requests do not queue behind each other), then answers
``{"predictions": [[10 logits]]}`` (digit 0: the answer's correctness is not what is
studied). ``GET /v1/models/mnist`` answers ready. So the true p99 is ``slow_ms`` at every
rate when p_slow > 1 % -- a capacity search for ``p99 <= 100 ms`` must find nothing -- and
``fast_ms`` (plus the host's own delays) when p_slow < 1 %. Binds 127.0.0.1 only; stops
on SIGTERM/SIGINT. Started and stopped by benchmarks/capacity_socket_study.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal

from aiohttp import web

ANSWER = json.dumps({"predictions": [[1.0] + [0.0] * 9]}).encode()


def make_app(fast_s: float, slow_s: float, p_slow: float, seed: int, model: str = "mnist") -> web.Application:
    rng = random.Random(seed)

    async def predict(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(slow_s if rng.random() < p_slow else fast_s)
        return web.Response(body=ANSWER, content_type="application/json")

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"name": model, "ready": True})

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post(f"/v1/models/{model}:predict", predict)
    app.router.add_get(f"/v1/models/{model}", ready)
    return app


async def serve(port: int, app: web.Application) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    await stop.wait()
    await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fast-ms", type=float, default=4.0)
    parser.add_argument("--slow-ms", type=float, default=150.0)
    parser.add_argument("--p-slow", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 0 <= args.p_slow <= 1:
        parser.error("--p-slow must be in [0, 1]")
    asyncio.run(serve(args.port, make_app(args.fast_ms / 1000, args.slow_ms / 1000, args.p_slow, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
