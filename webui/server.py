"""The digit page's local server: static files, ``config.json`` and a same-origin proxy.

Why a proxy instead of letting the page call the target: the target is on another origin
(another port, or a cluster behind Istio that routes by ``Host`` and wants a cookie or a
bearer token).  A browser can neither set ``Host`` nor see credentials that live in the
CLI's environment, and CORS headers would open the target to every web site.  So the page
only ever talks to its own origin, and ``POST /api/predict`` forwards the body to the
target's predict URL with the headers the target adapter itself sends
(:meth:`targets.base.Target.encode` builds them, including :mod:`targets.remote`'s Host
and credentials), then hands back the target's answer.

Rules kept here: bound to 127.0.0.1; bodies over ``max_body_bytes`` get a 413 JSON, any
other method than POST a 405, an unreachable target a 502 JSON naming it (504 on a
timeout); every error is JSON; no CORS header anywhere; requests whose ``Origin`` or
``Host`` is not this server are refused (another site in the same browser must not use
the credentials through us); credentials never reach the page, a log or an error text:
every answer the page gets -- the target's JSON body, the headers passed on, the excerpt
of a non-JSON answer, every error -- goes through one :class:`ground.redactor.Redactor`
(the configuration's secrets, from ``bench ui``, plus the credential headers the adapter
sends), so a target that echoes a token or cookie back cannot hand it to the page.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web

from ground.redactor import Redactor
from webui.pageconfig import api_mode_for_target, page_config

__all__ = [
    "DEFAULT_MAX_BODY",
    "STATIC_DIR",
    "Upstream",
    "create_app",
    "start_server",
    "upstream_for",
]

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Largest upload forwarded: the Flask app's own limit (targets.flask.server.app.DEFAULT_MAX_BODY).
DEFAULT_MAX_BODY = 4 * 1024 * 1024
#: Static files served at the root, with their content types (a fixed list: nothing else
#: under the package folder is reachable).
STATIC_FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "mnist.js": "text/javascript; charset=utf-8",
    "digit.js": "text/javascript; charset=utf-8",
    "digit.css": "text/css; charset=utf-8",
}
#: The page may load only its own files and talk only to its own origin (blob: for the
#: photo preview), so a stray external reference fails loudly instead of leaking.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]"}
_PASSED_RESPONSE_HEADERS = ("X-Replica",)
#: Request headers whose values are credentials (redacted even when no variable names them).
_CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")
#: Characters of a non-JSON answer quoted in the proxy's error (after redaction).
SNIPPET_CHARS = 300


@dataclass(frozen=True)
class Upstream:
    """Where ``/api/predict`` forwards, and the target's own request headers.

    ``headers`` may hold credentials (``Authorization``, ``Cookie``): excluded from repr,
    never sent to the page, scrubbed from error texts by :meth:`redact`.  ``redactor``
    holds those header values (labelled by header name) unless one is given.
    """

    url: str
    headers: Mapping[str, str] = field(repr=False)
    verify_tls: bool = True
    redactor: Redactor = field(default_factory=Redactor, repr=False)

    def __post_init__(self) -> None:
        own = Redactor({k.replace("-", "_"): v for k, v in self.headers.items() if k.lower() in _CREDENTIAL_HEADERS})
        object.__setattr__(self, "redactor", self.redactor.merge(own))

    def redact(self, text: str) -> str:
        return self.redactor.redact(text)


def upstream_for(target: Any) -> Upstream:
    """The predict URL and headers of a *started* target, from its own ``encode``.

    A blank image is encoded only to learn the path and headers the adapter sends (Host,
    credentials); the body is replaced by the page's and Content-Type by the page's.
    """
    blueprint = target.encode(np.zeros((28, 28), dtype=np.uint8))
    headers = {k: v for k, v in blueprint.headers.items() if k.lower() not in ("content-type", "content-length")}
    return Upstream(url=target.base_url + blueprint.path, headers=headers, verify_tls=target.verify_tls)


def _json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, "source": "proxy", **extra}, status=status)


def _host_name(host: str) -> str:
    """``Host`` header without its port: ``127.0.0.1:8080`` -> ``127.0.0.1``, ``[::1]:80`` -> ``[::1]``."""
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


@web.middleware
async def _guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every answer JSON on error, safe headers, and only our own origin accepted."""
    if _host_name(request.host or "") not in _LOCAL_HOSTS:
        return _json_error(421, f"this server only answers requests for 127.0.0.1/localhost, not Host {request.host!r}")
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return _json_error(
            403, f"cross-origin request from {origin!r} refused: the page must be loaded from this server"
        )
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return _json_error(403, "cross-site request refused: the page must be loaded from this server")
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _json_error(exc.status, exc.reason if exc.status != 404 else f"not found: {request.path}")
        if exc.status == 405:
            response.headers["Allow"] = exc.headers.get("Allow", "")
    except Exception as exc:
        response = _json_error(500, f"internal error in the page's server: {type(exc).__name__}")
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


class _Proxy:
    """``POST /api/predict`` -> the target's predict URL, and its answer back."""

    def __init__(
        self, target: Any, upstream: Upstream | None, max_body_bytes: int, timeout_s: float, redactor: Redactor
    ) -> None:
        self.target = target
        self.upstream = upstream
        self.redactor = redactor.merge(upstream.redactor if upstream is not None else None)
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s
        self.session: ClientSession | None = None

    async def open(self, _app: web.Application) -> Any:
        if self.upstream is not None:
            # ssl=True: verify certificates; False: the target's verify_tls = false.
            connector = TCPConnector(ssl=bool(self.upstream.verify_tls), limit=8)
            self.session = ClientSession(
                connector=connector, trust_env=False, timeout=ClientTimeout(total=self.timeout_s)
            )
        yield
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def _read_body(self, request: web.Request) -> bytes | web.Response:
        limit = self.max_body_bytes
        too_big = _json_error(413, f"body too large: the limit is {limit} bytes", limit=limit)
        if request.content_length is not None and request.content_length > limit:
            return too_big
        try:  # the app's client_max_size is the same limit; it also holds for chunked bodies
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            return too_big

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            response = _json_error(405, f"method {request.method} not allowed: POST a photo or a predict body")
            response.headers["Allow"] = "POST"
            return response
        body = await self._read_body(request)
        if isinstance(body, web.Response):
            return body
        if not body:
            return _json_error(400, "empty body: POST a photo (multipart field 'file') or a predict JSON body")
        name = self.target.name
        if self.upstream is None or self.session is None:
            return _json_error(502, f"target {name!r} is not running: the page's server was started with --no-start")
        headers = dict(self.upstream.headers)
        headers["Content-Type"] = request.headers.get("Content-Type", "application/octet-stream")
        try:
            async with self.session.post(self.upstream.url, data=body, headers=headers) as resp:
                answer = await resp.read()
                status = resp.status
                content_type = resp.headers.get("Content-Type", "")
                passed = {k: resp.headers[k] for k in _PASSED_RESPONSE_HEADERS if k in resp.headers}
        except TimeoutError:
            return _json_error(
                504, f"target {name!r} at {self.upstream.url} did not answer within {self.timeout_s:g} s"
            )
        except (ClientError, OSError) as exc:
            detail = self.redactor.redact(f"{type(exc).__name__}: {exc}")
            return _json_error(502, f"target {name!r} at {self.upstream.url} is unreachable ({detail})")
        passed = self.redactor.redact_headers(passed)
        if "json" not in content_type.lower():
            # Redact the whole answer before cutting it: a cut through a secret would leave
            # a piece that no longer matches it.
            snippet = self.redactor.redact(answer.decode("utf-8", "replace")).strip()[:SNIPPET_CHARS].strip()
            return _json_error(
                502 if status < 400 else status,
                self.redactor.redact(
                    f"target {name!r} answered HTTP {status} with "
                    f"{content_type or 'no content type'}, not JSON: {snippet!r}"
                ),
                upstream_status=status,
            )
        return web.Response(
            body=self.redactor.redact_bytes(answer), status=status, content_type="application/json", headers=passed
        )


def create_app(
    target: Any,
    *,
    forward: bool = True,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    timeout_s: float = 30.0,
    static_dir: Path = STATIC_DIR,
    redactor: Redactor | None = None,
) -> web.Application:
    """The page, its ``config.json`` and the proxy for ``target``.

    ``forward``: the target is started (its ``base_url`` and credentials are known); when
    False the proxy answers 502 naming why.  ``redactor``: the configuration's secrets
    (``bench.redact_secrets.redactor_for``); the adapter's credential headers are added.  Raises
    :class:`webui.pageconfig.UnsupportedTarget` for an adapter the page cannot talk to.
    """
    api = api_mode_for_target(target)
    upstream = upstream_for(target) if forward else None
    config = page_config(
        target=target.name,
        adapter=target.adapter,
        api=api,
        where="remote" if target.is_remote else "local stand-in",
        upstream=upstream.url if upstream else "(not started)",
        max_upload_bytes=max_body_bytes,
        forwarding=forward,
    )
    proxy = _Proxy(target, upstream, max_body_bytes, timeout_s, redactor or Redactor())
    config_bytes = json.dumps(proxy.redactor.redact_data(config), indent=1).encode()
    app = web.Application(middlewares=[_guard], client_max_size=max_body_bytes)
    app.cleanup_ctx.append(proxy.open)

    def static_handler(filename: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        path = static_dir / filename

        async def handler(_request: web.Request) -> web.Response:
            return web.Response(body=path.read_bytes(), headers={"Content-Type": STATIC_FILES[filename]})

        return handler

    async def config_handler(_request: web.Request) -> web.Response:
        return web.Response(body=config_bytes, content_type="application/json", headers={"Cache-Control": "no-store"})

    app.router.add_get("/", static_handler("index.html"))
    for filename in STATIC_FILES:
        if (static_dir / filename).is_file():
            app.router.add_get(f"/{filename}", static_handler(filename))
    app.router.add_get("/config.json", config_handler)
    app.router.add_route("*", "/api/predict", proxy.handle)
    return app


async def start_server(app: web.Application, *, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Serve ``app`` on ``host:port`` (0 = a free port); return the runner and the page URL.

    The caller stops it with ``await runner.cleanup()``.
    """
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
    except BaseException:
        await runner.cleanup()
        raise
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    return runner, f"http://{url_host}:{bound_port}/"
