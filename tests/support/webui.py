"""Helpers for the digit-page tests: aiohttp apps in a background loop, a recording upstream.

Why a background thread: the page's server and the stub upstream are aiohttp apps, while
the tests (and Playwright's sync API) are synchronous; each app runs on an event loop in
its own daemon thread and the test talks to it over real loopback HTTP.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from webui.server import start_server

__all__ = ["LoopThread", "Recorded", "StubUpstream", "serve_app"]


class LoopThread:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextmanager
def serve_app(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (free port) in a background loop; yield its URL."""
    thread = LoopThread()
    try:
        runner, url = thread.run(start_server(app))
        try:
            yield url
        finally:
            thread.run(runner.cleanup())
    finally:
        thread.close()


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StubUpstream:
    """A fake model server: records every request and answers as told.

    ``status``/``body``/``content_type``/``delay_s`` shape the predict answer; GETs (the
    readiness probes of remote targets) always answer 200 ``{}``.
    """

    status: int = 200
    body: bytes = b'{"predictions": [7]}'
    content_type: str = "application/json"
    delay_s: float = 0.0
    extra_headers: dict[str, str] = field(default_factory=lambda: {"X-Replica": "stub-0"})
    requests: list[Recorded] = field(default_factory=list)

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            if request.method == "GET":
                return web.json_response({})
            body = await request.read()
            self.requests.append(Recorded(request.method, request.path_qs, dict(request.headers), body))
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return web.Response(
                body=self.body,
                status=self.status,
                headers={"Content-Type": self.content_type, **self.extra_headers},
            )

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", handle)
        return app
