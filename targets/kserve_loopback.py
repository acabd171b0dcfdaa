"""kserve's ModelServer, bound to one host, quiet, with request-body guards.

Why subclasses and not a patch of kserve's module globals: ``ModelServer.start`` builds
its REST server(s) inline with ``host="0.0.0.0"``, and in multi-worker mode it pickles
the REST server into *spawned* processes that rebuild the FastAPI app there.  So the
host, the body guard and the log config have to live in picklable objects whose classes
import by a real module path (this one).  Everything else -- the FastAPI app, the V1/V2
endpoints, DataPlane, kserve's exception handlers, worker supervision -- is kserve's own.
gRPC is never started: kserve 0.21 binds it to ``[::]`` with no option, and the
benchmark speaks REST.
"""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any

from kserve import ModelServer
from kserve.errors import InvalidInput, ModelNotFound
from kserve.logging import logger
from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess, RESTServerProcess
from kserve.protocol.rest.server import RESTServer

__all__ = [
    "BodyGuard",
    "LoopbackModelServer",
    "LoopbackRESTServer",
    "LoopbackRESTServerMultiProcess",
    "OneLineClientErrors",
]

_JSON_TYPES = ("application/json", "application/cloudevents+json")
#: Respawns allowed per worker before a multi-worker server gives up and exits.
_MAX_RESPAWNS = 3


#: Past this many bytes an oversized body is no longer read and discarded before the 413:
#: the connection is simply closed after the answer (a client may then see a reset).
_DRAIN_CAP = 64 * 1024 * 1024


def _quiet_warnings() -> None:
    """kserve 0.21 uses ORJSONResponse, which FastAPI deprecates: two warnings per process."""
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")


class OneLineClientErrors(logging.Filter):
    """Log a rejected request (kserve's ``InvalidInput``/``ModelNotFound``) as one line.

    kserve logs every 400 and 404 at ERROR with the full traceback; a bad request is the
    client's mistake, and a test that sends many of them should not fill the log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, (InvalidInput, ModelNotFound)):
            status = 400 if isinstance(exc, InvalidInput) else 404
            record.msg, record.args = "rejected request (%d): %s", (status, exc)
            record.exc_info = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class _TooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds the limit of {limit} bytes")


async def _drain(receive: Any, already: int = 0) -> None:
    """Read and discard the rest of a request body (up to ``_DRAIN_CAP`` bytes).

    Answering before the client has finished sending makes the server close a socket
    with unread data, which the client sees as a connection reset instead of our 413.
    """
    seen = already
    while seen <= _DRAIN_CAP:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _reply(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    """ASGI middleware: 413 for bodies over the limit, 415 for non-JSON POST bodies.

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
                await _reply(send, 400, f"invalid Content-Length {declared.decode('latin-1')!r}")
                return
            if int(declared) > limit:
                await _drain(receive)
                await _reply(send, 413, f"request body of {int(declared)} bytes exceeds the limit of {limit} bytes")
                return
        ctype = headers.get(b"content-type", b"").split(b";")[0].strip().decode("latin-1").lower()
        if ctype and ctype not in _JSON_TYPES:
            await _drain(receive)
            await _reply(send, 415, f"unsupported Content-Type {ctype!r}; send application/json")
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
            await _reply(send, 413, str(exc))


async def _validation_error_handler(_request: Any, exc: Any) -> Any:
    from fastapi.responses import JSONResponse

    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return JSONResponse(status_code=422, content={"error": "invalid inference request: " + "; ".join(problems)})


class LoopbackRESTServer(RESTServer):
    """kserve's RESTServer listening on ``host`` and guarding request bodies."""

    def __init__(self, *args: Any, host: str, max_body_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn.Server holds this same Config object, so this is the address it binds
        # (single process), and the one RESTServerMultiProcess binds its shared socket to.
        self.config.host = host
        self.max_body_bytes = max_body_bytes

    def run(self, sockets: Any = None) -> None:
        """Serve in a spawned worker: load the models there first, then serve.

        Runs after kserve's liveness thread has started, so a slow TensorFlow load does
        not get the worker killed as hung (kserve pings every worker with a 5 s timeout).
        Until loaded, the worker does not accept: the other workers take the requests.
        """
        _quiet_warnings()
        for model in self.dataplane.model_registry.get_models().values():
            if not model.ready:
                model.load()
        super().run(sockets=sockets)

    def _add_exception_handlers(self, app: Any) -> None:
        super()._add_exception_handlers(app)
        # FastAPI answers a V2 body that fails parsing with 422 {"detail": [...]}; the Open
        # Inference Protocol's error shape is {"error": "<message>"}, like every other
        # kserve error, so a client needs one way to read errors.
        from fastapi.exceptions import RequestValidationError

        app.add_exception_handler(RequestValidationError, _validation_error_handler)

    def _add_middlewares(self, app: Any) -> None:
        super()._add_middlewares(app)
        # Runs in every worker: spawned workers rebuild the app from this pickled object.
        app.add_middleware(BodyGuard, max_body_bytes=self.max_body_bytes)


class LoopbackRESTServerMultiProcess(RESTServerMultiProcess):
    """kserve's multi-worker REST server with a :class:`LoopbackRESTServer` inside."""

    gave_up = False  # set when workers kept exiting and the server stopped

    def __init__(self, *args: Any, host: str, max_body_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        inner = self._rest_server
        self._rest_server = LoopbackRESTServer(
            *args[:4],
            access_log_format=inner.access_log_format,
            workers=inner.config.workers,
            grace_period=inner.config.timeout_graceful_shutdown,
            event_loop=kwargs.get("event_loop", "auto"),
            timeout_keep_alive=inner.config.timeout_keep_alive,
            host=host,
            max_body_bytes=max_body_bytes,
        )

    async def keep_subprocess_alive(self, sockets: list[Any]) -> None:
        """Respawn workers that exited; never kill a live one for missing a ping.

        kserve kills and respawns any worker that does not answer a ping within 5 s.
        Importing TensorFlow holds the GIL for longer than that on a busy two-core
        machine, so kserve's own check killed every worker during start-up, forever
        (and respawned workers lost the log config).  A worker that keeps dying is not
        respawned past ``_MAX_RESPAWNS``: the server exits and its log says why.
        """
        if self.should_exit.is_set():
            return
        for idx, process in enumerate(self._processes):
            if process._process.is_alive():  # the OS process, not kserve's ping
                continue
            if self.should_exit.is_set():
                return
            self._respawns = getattr(self, "_respawns", 0) + 1
            logger.warning("worker process [%s] exited with code %s", process.pid, process._process.exitcode)
            if self._respawns > _MAX_RESPAWNS * len(self._processes):
                logger.error("workers keep exiting; stopping the server (see the errors above)")
                self.gave_up = True
                self.should_exit.set()
                return
            replacement = RESTServerProcess(sockets, self._rest_server.run, log_config_file=self.log_config_file)
            replacement.start()
            self._processes[idx] = replacement
            logger.info("started replacement worker process [%s]", replacement.pid)


class LoopbackModelServer(ModelServer):
    """``kserve.ModelServer`` that binds ``host`` only, never starts gRPC, logs quietly."""

    def __init__(
        self,
        *,
        host: str,
        max_body_bytes: int,
        log_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        from kserve import logging as kserve_logging
        from kserve import model_server

        if log_config is not None:
            # ModelServer.__init__ configures logging from kserve's module-level args, and
            # start() hands args.log_config_file to every spawned worker: set both to ours.
            kserve_logging.configure_logging(log_config)
            model_server.args.log_config_file = log_config
        _quiet_warnings()
        kwargs.setdefault("enable_grpc", False)
        kwargs.setdefault("enable_latency_logging", False)
        super().__init__(**kwargs)
        self.host = host
        self.max_body_bytes = max_body_bytes
        self._log_config = log_config

    @property
    def failed(self) -> bool:
        """True when the server stopped because its workers kept exiting."""
        return bool(self._rest_multiprocess_server and self._rest_multiprocess_server.gave_up)

    def start(self, models: list[Any]) -> None:
        """Same as ``ModelServer.start`` minus gRPC, with our REST server classes."""
        import asyncio

        if self.enable_grpc:
            raise ValueError("gRPC is not supported by this stand-in (kserve binds it to all interfaces)")
        self._register_and_check_atleast_one_model_is_ready(models)
        common = dict(
            access_log_format=self.access_log_format,
            workers=self.workers,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
            host=self.host,
            max_body_bytes=self.max_body_bytes,
        )
        positional = ("kserve.model_server:app", self.dataplane, self.model_repository_extension, self.http_port)
        if self.workers > 1:
            self._rest_multiprocess_server = LoopbackRESTServerMultiProcess(
                *positional, log_config_file=self._log_config, **common
            )
            self.servers.append(self._rest_multiprocess_server.start())
        else:
            self._rest_server = LoopbackRESTServer(*positional, **common)
            self.servers.append(self._rest_server.start())
        logger.info("REST listening on http://%s:%d (gRPC disabled)", self.host, self.http_port)
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())
