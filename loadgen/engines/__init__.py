"""Engine registry: engine names -> classes, imported only when asked for.

Why lazy: each engine pulls in its own client library (httpx, aiohttp, uvloop +
httptools); a run needs one of them, and `bench calibrate` all.  ``engine_class`` is the
single place that maps the ``[loadgen] engine`` setting to code.  The choice of the
*default* engine ("auto") belongs to calibration, not to this module.

Three kinds of engine are registered: the HTTP engines (:data:`ENGINE_NAMES`, the ones
``bench run``, ``[loadgen] engine`` and calibration choose from), the protocol engines
(:data:`PROTOCOL_ENGINE_NAMES`: ``grpc``, chosen by the target's URL scheme, never by
``auto``: it cannot speak HTTP -- :func:`engine_for_url`), and the in-process
``memory`` engine (:data:`TEST_ENGINE_NAMES`), which sends nothing anywhere and exists so
tests can run the real sweep and mode code on virtual time.  ``engine_class`` resolves
both; ``available_engines`` lists only network engines, so nothing ever measures a
target with the memory engine by accident.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from loadgen.engine import Engine, EngineOptions

__all__ = [
    "ENGINE_NAMES",
    "PROTOCOL_ENGINE_NAMES",
    "SCHEME_ENGINES",
    "TEST_ENGINE_NAMES",
    "EngineUnavailable",
    "available_engines",
    "engine_class",
    "engine_for_url",
]

_NETWORK_ENGINES: dict[str, str] = {
    "fast": "loadgen.engines.fast_engine:FastEngine",
    "aiohttp": "loadgen.engines.aiohttp_engine:AiohttpEngine",
    "httpx": "loadgen.engines.httpx_engine:HttpxEngine",
}
_PROTOCOL_ENGINES: dict[str, str] = {
    "grpc": "loadgen.engines.grpc_engine:GrpcEngine",
}
#: Base-URL schemes served by a protocol engine instead of the run's HTTP engine.
SCHEME_ENGINES: dict[str, str] = {"grpc": "grpc", "grpcs": "grpc"}
_TEST_ENGINES: dict[str, str] = {
    "memory": "loadgen.engines.memory_engine:MemoryEngine",
}
_ENGINES: dict[str, str] = {**_NETWORK_ENGINES, **_PROTOCOL_ENGINES, **_TEST_ENGINES}
ENGINE_NAMES: tuple[str, ...] = tuple(_NETWORK_ENGINES)  # what runs and calibration may use
PROTOCOL_ENGINE_NAMES: tuple[str, ...] = tuple(_PROTOCOL_ENGINES)
TEST_ENGINE_NAMES: tuple[str, ...] = tuple(_TEST_ENGINES)


class EngineUnavailable(ImportError):
    """A known engine whose module or library cannot be imported here."""


def engine_class(name: str) -> type[Engine]:
    """The Engine subclass registered as ``name``.

    Raises ValueError for an unknown name (listing the known ones) and
    :class:`EngineUnavailable` when the engine's module cannot be imported.
    """
    try:
        ref = _ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown engine {name!r}; known engines: {', '.join(_ENGINES)}") from None
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EngineUnavailable(f"engine {name!r} is not available here: {exc}") from exc
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise EngineUnavailable(f"engine {name!r}: {ref} is not an Engine subclass")
    return cls


def available_engines() -> tuple[str, ...]:
    """Names of the network engines that import on this machine, in registry order."""
    names = []
    for name in ENGINE_NAMES:
        try:
            engine_class(name)
        except EngineUnavailable:
            continue
        names.append(name)
    return tuple(names)


def engine_for_url(http_factory: Callable[[EngineOptions], Engine]) -> Callable[[EngineOptions], Engine]:
    """An engine factory that sends ``grpc://``/``grpcs://`` targets through the ``grpc`` engine.

    Every other base URL goes to ``http_factory`` (the run's chosen HTTP engine), so one
    run can sweep an HTTP target and a gRPC target side by side; each step's engine is
    picked from that step's ``base_url``.
    """

    def factory(options: EngineOptions) -> Engine:
        scheme = options.base_url.partition("://")[0].lower()
        name = SCHEME_ENGINES.get(scheme)
        if name is None:
            return http_factory(options)
        return engine_class(name)(options)

    return factory
