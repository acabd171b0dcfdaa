"""ASGI guards in front of kserve's FastAPI app: what the KServe stand-in answers at all.

Why guards and not kserve options: kserve 0.21 always registers the V2 *model repository
extension* (``POST /v2/repository/models/<name>/load|unload``) next to the inference
protocol, with no switch and no authentication.  One unauthenticated ``unload`` took the
model out of the worker that received it -- every later predict there answered 404 while
``/v2/health/ready`` still said ready.  On a cluster Istio can deny those paths (see
docs/remote-targets.md); the stand-in has no mesh, so it refuses them itself.

* :class:`EndpointGuard` lets through exactly the inference protocol (V1 and V2 health,
  metadata, predict/infer), answers 403 for the repository extension (any method, V1 or
  V2 spelling), 405 with an ``Allow`` header for a known path with the wrong method (kserve
  answered ``GET /v1/models/m:predict`` with "Model mnist:predict does not exist"), 404 for
  the rest (``/openapi.json``, ``/docs``, ``:explain``), and turns an unexpected exception
  into a 500 JSON error without a Python repr and without closing the connection.
* :class:`BodyGuard` gives 413 for bodies over the limit and 415 for non-JSON POST bodies.

Every refusal is ``{"error": "<message>"}`` JSON, the Open Inference Protocol's error shape.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import Any

from starlette.requests import ClientDisconnect

__all__ = [
    "INFERENCE_ENDPOINTS",
    "BodyGuard",
    "EndpointGuard",
    "RepositoryDisabled",
    "allowed_methods",
    "is_repository_path",
    "reply_json",
]

_logger = logging.getLogger("kserve")

_JSON_TYPES = ("application/json", "application/cloudevents+json")

#: Past this many bytes a refused body is no longer read and discarded before the answer:
#: the connection is simply closed after it (a client may then see a reset).
_DRAIN_CAP = 64 * 1024 * 1024

_MODEL = r"[^/:]+"  # one path segment; V1 puts ":predict" right after the name

#: (path pattern, methods) of everything the stand-in serves: kserve's inference protocol.
#: GET implies HEAD (Starlette answers HEAD on every GET route).
INFERENCE_ENDPOINTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"/", ("GET",)),  # kserve's liveness: {"status": "alive"}
    (r"/metrics", ("GET",)),  # Prometheus metrics, read-only
    (r"/v1/models", ("GET",)),
    (rf"/v1/models/{_MODEL}", ("GET",)),  # V1 model ready
    (rf"/v1/models/{_MODEL}:predict", ("POST",)),
    (r"/v2", ("GET",)),  # V2 server metadata
    (r"/v2/health/live", ("GET",)),
    (r"/v2/health/ready", ("GET",)),
    (r"/v2/models", ("GET",)),
    (rf"/v2/models/{_MODEL}", ("GET",)),  # V2 model metadata
    (rf"/v2/models/{_MODEL}/ready", ("GET",)),
    (rf"/v2/models/{_MODEL}/infer", ("POST",)),
)
_ENDPOINTS = tuple((re.compile(pattern), methods) for pattern, methods in INFERENCE_ENDPOINTS)

#: The model repository extension in every spelling a client might try: the V2 paths
#: kserve routes (index, load, unload) and V1-style load/unload.
_REPOSITORY = re.compile(r"/v2/repository(/.*)?|/v[12]/models/[^/]+(:|/)(load|unload)/?")


class RepositoryDisabled(Exception):
    """Raised by the stand-in's model repository extension: serving cannot be changed."""

    def __init__(self, model_name: str = "") -> None:
        super().__init__(
            "the model repository extension (load/unload/index) is disabled: this server serves "
            "the inference protocol only, and what it serves cannot be changed over HTTP"
        )
        self.model_name = model_name


def is_repository_path(path: str) -> bool:
    """True for a path of the model repository extension (load/unload/index)."""
    return _REPOSITORY.fullmatch(path) is not None


def allowed_methods(path: str) -> tuple[str, ...] | None:
    """The methods the inference endpoint at ``path`` accepts, or None if there is none."""
    for pattern, methods in _ENDPOINTS:
        if pattern.fullmatch(path):
            return (*methods, "HEAD") if "GET" in methods else methods
    return None


def _clip(text: str, limit: int = 80) -> str:
    """A client-supplied string, shortened for an error message."""
    return text if len(text) <= limit else text[:limit] + "..."


async def reply_json(send: Any, status: int, message: str, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """Answer ``{"error": message}`` with ``status`` (the whole response)."""
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _drain(receive: Any, already: int = 0) -> None:
    """Read and discard the rest of a request body (up to ``_DRAIN_CAP`` bytes).

    Answering before the client has finished sending makes the server close a socket
    with unread data, which the client sees as a connection reset instead of our answer.
    """
    seen = already
    while seen <= _DRAIN_CAP:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class _TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds the limit of {limit} bytes")


class EndpointGuard:
    """ASGI middleware: only the inference protocol reaches kserve (see the module doc).

    Runs on the decoded path (``scope["path"]``), the same string the router matches, so
    ``/v2%2Frepository/...`` is refused like ``/v2/repository/...``.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if is_repository_path(path):
            _logger.warning("refused %s %s: model repository extension disabled (403)", _clip(method, 20), _clip(path))
            await _drain(receive)
            await reply_json(send, 403, str(RepositoryDisabled()))
            return
        methods = allowed_methods(path)
        if methods is None:
            await _drain(receive)
            await reply_json(
                send,
                404,
                f"no endpoint {method} {_clip(path)}: this server answers the KServe V1/V2 inference "
                "protocol only (/v1/models/<name>:predict, /v2/models/<name>/infer, metadata and health)",
            )
            return
        if method not in methods:
            await _drain(receive)
            allow = ", ".join(methods)
            await reply_json(
                send,
                405,
                f"method {_clip(method, 20)} is not allowed on {_clip(path)}; use {allow}",
                headers=[(b"allow", allow.encode())],
            )
            return
        await self._serve(scope, receive, send)

    async def _serve(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Call kserve; an exception no handler took becomes a 500 JSON answer.

        Starlette's last-resort handler answers too, but then re-raises, and uvicorn closes
        the connection -- a keep-alive client saw its *next* request reset.  A request
        whose body ended in a disconnect gets no answer and no error log.
        """
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except _TooLarge:
            raise  # BodyGuard's own signal, answered there
        except ClientDisconnect:
            # The body never arrived whole: the client went away, or the HTTP layer
            # abandoned the request on a framing error and answers it itself.
            return
        except Exception:
            if started:
                raise
            _logger.exception("unexpected error serving %s %s", scope.get("method"), _clip(scope.get("path", "")))
            await reply_json(send, 500, "internal server error while serving the request (details in the server log)")


class BodyGuard:
    """ASGI middleware: 413 for bodies over the limit, 415 for non-JSON POST bodies.

    ``application/octet-stream`` is accepted with an ``Inference-Header-Content-Length``
    header: that is the Open Inference Protocol's binary-tensor extension (a JSON header
    followed by raw tensor bytes), which kserve decodes itself.

    kserve reads whole bodies with no limit, and hands a non-JSON body to the model as
    raw bytes.  The declared Content-Length is checked first (nothing is read), then the
    bytes actually received are counted, so a chunked upload cannot exceed it either.
    A request without a Content-Type is let through: kserve parses it as JSON.
    """

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        limit = self.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await reply_json(send, 400, f"invalid Content-Length {_clip(declared.decode('latin-1'), 30)!r}")
                return
            if int(declared) > limit:
                await _drain(receive)
                await reply_json(send, 413, f"request body of {int(declared)} bytes exceeds the limit of {limit} bytes")
                return
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().decode("latin-1").lower()
        binary = ctype == "application/octet-stream" and b"inference-header-content-length" in headers
        if ctype and ctype not in _JSON_TYPES and not binary:  # binary-tensor bodies: JSON header + raw bytes
            await _drain(receive)
            await reply_json(send, 415, f"unsupported Content-Type {_clip(ctype, 60)!r}; send application/json")
            return
        received = 0
        started = False

        async def counting_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if message.get("more_body", False):
                        await _drain(receive, received)
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge as exc:
            if started:
                raise
            await reply_json(send, 413, str(exc))
