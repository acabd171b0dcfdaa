"""kserve's ModelServer, bound to one host, quiet, serving the inference protocol only.

Why subclasses and not a patch of kserve's module globals: ``ModelServer.start`` builds
its REST server(s) inline with ``host="0.0.0.0"``, and in multi-worker mode it pickles
the REST server into *spawned* processes that rebuild the FastAPI app there.  So the
host, the guards, the header limit and the log config have to live in picklable objects
whose classes import by a real module path (this one).  Everything else -- the FastAPI
app, the V1/V2 endpoints, DataPlane, kserve's exception handlers, worker supervision --
is kserve's own.  gRPC is started only when a port is given, and then bound to the same
host (:mod:`targets.kserve.server.grpc_server`; kserve 0.21 would bind ``[::]``).

What is added around kserve (see :mod:`targets.kserve.server.guards`, :mod:`targets.kserve.server.http_protocol`):
the model repository extension (load/unload) is refused twice -- 403 before routing, and
an extension object that refuses -- so no request can change what is served; request
heads are limited (431) and malformed HTTP is refused (400); bodies are limited (413) and
must be JSON (415); a wrong method on a predict path is a 405 with ``Allow``; every error
is ``{"error": "..."}`` JSON.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from kserve import ModelServer
from kserve.errors import InvalidInput, ModelNotFound
from kserve.logging import logger
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.multiprocess.server import RESTServerMultiProcess, RESTServerProcess
from kserve.protocol.rest.server import RESTServer

from targets.kserve.server.guards import BodyGuard, EndpointGuard, RepositoryDisabled
from targets.kserve.server.http_protocol import DEFAULT_MAX_HEADER_BYTES, HttpLimits, guard_http

__all__ = [
    "BodyGuard",
    "InferenceOnlyRepository",
    "LoopbackModelServer",
    "LoopbackRESTServer",
    "LoopbackRESTServerMultiProcess",
    "OneLineClientErrors",
]

#: Respawns allowed per worker before a multi-worker server gives up and exits.
_MAX_RESPAWNS = 3


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


class InferenceOnlyRepository(ModelRepositoryExtension):
    """kserve's model repository extension with load and unload refused.

    Behind :class:`targets.kserve.server.guards.EndpointGuard` no request reaches it; this is
    the second wall, so that no route kserve adds in a later version can unload a model.
    """

    async def load(self, model_name: str) -> None:
        raise RepositoryDisabled(model_name)

    async def unload(self, model_name: str) -> None:
        raise RepositoryDisabled(model_name)


def _json_error(status: int, message: str, headers: dict[str, str] | None = None) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse(status_code=status, content={"error": message}, headers=headers)


async def _validation_error_handler(_request: Any, exc: Any) -> Any:
    """FastAPI's 422 ``{"detail": [...]}`` for a V2 body -> 400 ``{"error": "..."}``.

    kserve's V2 endpoint takes ``InferenceRequest | bytes``, so pydantic reports every
    problem twice, once per alternative; the ``bytes`` one says nothing useful to a client.
    """
    problems = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            reason = str((error.get("ctx") or {}).get("error", "malformed"))[:80]
            at = error.get("loc", ("body", "?"))[-1]
            return _json_error(400, f"invalid inference request: the body is not JSON ({reason} at character {at})")
        loc = [str(part) for part in error.get("loc", ())]
        if loc[:2] == ["body", "bytes"]:
            continue
        if loc[:2] == ["body", "InferenceRequest"]:
            loc = loc[2:]
        elif loc[:1] == ["body"]:
            loc = loc[1:]
        where = ".".join(loc) or "body"
        message = str(error.get("msg", "invalid"))
        problems.append(f"{where[:60]}: {message[:120]}")
        if len(problems) == 3:
            break
    detail = "; ".join(problems) or "the body is not an inference request"
    return _json_error(400, f"invalid inference request: {detail}")


_UNPARSED = "Unrecognized request format: "


async def _invalid_input_handler(_request: Any, exc: Any) -> Any:
    """kserve's 400 for ``InvalidInput``, with its JSON-decoding message made plainer.

    A V1 body that orjson refuses (``NaN``, ``Infinity``, ``1e400``, ``10**400`` written
    out) reached the client as "Unrecognized request format: number is infinity when
    parsed as double"; the rewrite says it is the JSON and which numbers are refused.
    """
    logger.error("Exception:", exc_info=exc)  # one line, by OneLineClientErrors
    message = str(exc)
    if message.startswith(_UNPARSED):
        message = (
            f"request body is not valid JSON ({message[len(_UNPARSED) :][:200]}); NaN, Infinity and "
            "numbers beyond the 64-bit float range (such as 1e400 or 10**400) are refused"
        )
    return _json_error(400, message)


async def _http_exception_handler(_request: Any, exc: Any) -> Any:
    """Starlette's own errors (e.g. a body that is not JSON) in the ``{"error"}`` shape."""
    detail = exc.detail if isinstance(exc.detail, str) else "bad request"
    if exc.status_code == 400 and detail == "There was an error parsing the body":
        detail = "could not parse the request body as JSON (malformed, or nested too deeply)"
    return _json_error(exc.status_code, detail, headers=getattr(exc, "headers", None))


async def _repository_disabled_handler(_request: Any, exc: Any) -> Any:
    return _json_error(403, str(exc))


class LoopbackRESTServer(RESTServer):
    """kserve's RESTServer listening on ``host`` and guarding request bodies."""

    def __init__(
        self,
        *args: Any,
        host: str,
        max_body_bytes: int,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # uvicorn.Server holds this same Config object, so this is the address it binds
        # (single process), and the one RESTServerMultiProcess binds its shared socket to.
        self.config.host = host
        guard_http(self.config, HttpLimits(max_header_bytes=max_header_bytes, max_body_bytes=max_body_bytes))
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
        # FastAPI answers a V2 body that fails parsing with 422 {"detail": [...]} and its
        # own errors with {"detail": "..."}; the Open Inference Protocol's error shape is
        # {"error": "<message>"}, like every other kserve error, so a client needs one way
        # to read errors.
        from fastapi.exceptions import RequestValidationError
        from starlette.exceptions import HTTPException

        app.add_exception_handler(InvalidInput, _invalid_input_handler)
        app.add_exception_handler(RequestValidationError, _validation_error_handler)
        app.add_exception_handler(HTTPException, _http_exception_handler)
        app.add_exception_handler(RepositoryDisabled, _repository_disabled_handler)

    def _add_middlewares(self, app: Any) -> None:
        super()._add_middlewares(app)
        # Runs in every worker: spawned workers rebuild the app from this pickled object.
        # The last added runs first: BodyGuard, then EndpointGuard, then kserve's.
        app.add_middleware(EndpointGuard)
        app.add_middleware(BodyGuard, max_body_bytes=self.max_body_bytes)


class LoopbackRESTServerMultiProcess(RESTServerMultiProcess):
    """kserve's multi-worker REST server with a :class:`LoopbackRESTServer` inside."""

    gave_up = False  # set when workers kept exiting and the server stopped

    def __init__(self, *args: Any, host: str, max_body_bytes: int, max_header_bytes: int, **kwargs: Any) -> None:
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
            max_header_bytes=max_header_bytes,
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
    """``kserve.ModelServer`` that binds ``host`` only (REST, and gRPC when ``grpc_port`` > 0), logs quietly."""

    def __init__(
        self,
        *,
        host: str,
        max_body_bytes: int,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
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
        kwargs["enable_grpc"] = bool(kwargs.get("grpc_port"))
        kwargs.setdefault("enable_latency_logging", False)
        super().__init__(**kwargs)
        # kserve 0.21 always routes /v2/repository/models/<name>/load|unload to this object.
        self.model_repository_extension = InferenceOnlyRepository(model_registry=self.registered_models)
        self.host = host
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self._log_config = log_config

    @property
    def failed(self) -> bool:
        """True when the server stopped because its workers kept exiting."""
        return bool(self._rest_multiprocess_server and self._rest_multiprocess_server.gave_up)

    def start(self, models: list[Any]) -> None:
        """Same as ``ModelServer.start``, with our REST and gRPC server classes bound to ``host``."""
        import asyncio

        self._register_and_check_atleast_one_model_is_ready(models)
        common = dict(
            access_log_format=self.access_log_format,
            workers=self.workers,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
            host=self.host,
            max_body_bytes=self.max_body_bytes,
            max_header_bytes=self.max_header_bytes,
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
        logger.info("REST listening on http://%s:%d", self.host, self.http_port)
        if self.enable_grpc:
            from kserve import model_server

            from targets.kserve.server.grpc_server import LoopbackGRPCServer

            # In this (parent) process, with the parent's DataPlane: with several REST
            # workers the gRPC server is still one process (as in kserve).
            self._grpc_server = LoopbackGRPCServer(
                self.grpc_port,
                self.dataplane,
                self.model_repository_extension,
                kwargs=vars(model_server.args),
                grace_period=self.grace_period,
                host=self.host,
            )
            self.servers.append(self._grpc_server.start(self.max_threads))
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())
