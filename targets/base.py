"""The Target contract: what every deployment target adapter provides.

Why this shape: the load generator must know nothing about Flask, Kubernetes or KServe.
A target is a ``loadgen.request.Codec``: it turns one 28x28 MNIST image into an HTTP
request blueprint (``encode``), turns a response body back into a digit (``decode``) --
and, beyond the codec, manages its own lifetime (``start`` /
``stop``): a *local stand-in* spawns real serving software on 127.0.0.1, a *remote*
target only checks that the configured endpoint is ready.  Request bodies are encoded
once per image by the caller and reused, so encoding cost never lands in a timing.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from loadgen.request import DecodeError, Request

__all__ = [
    "DecodeError",
    "Request",
    "StandInProcess",
    "Target",
    "TargetContext",
    "TargetError",
]


class TargetError(RuntimeError):
    """A target could not be started, reached or stopped; the message names it."""


@dataclass(frozen=True)
class TargetContext:
    """What a target needs from the run around it (not from its own table).

    ``artifacts_dir``: the trained model's folder (model.json, TorchScript, SavedModel).
    ``cpus``: CPUs a local stand-in may use (empty = no pinning).
    ``log_dir``: where stand-in logs go (their tail is shown when start-up fails).
    ``bind_host``: the address local stand-ins listen on; loopback unless a user asks.
    ``config_dir``: the folder of bench.toml, which relative paths in a target's table are
    relative to (:meth:`path`); None = the working directory.
    """

    artifacts_dir: Any  # pathlib.Path; Any keeps this module free of heavy imports
    log_dir: Any
    cpus: tuple[int, ...] = ()
    bind_host: str = "127.0.0.1"
    ready_timeout_s: float = 120.0
    config_dir: Any = None

    def path(self, value: str | os.PathLike[str]) -> Path:
        """A path setting from the target's table, resolved the way bench.toml's own are.

        Why: ``bench`` may run from any folder (``--config elsewhere/bench.toml``); a path
        in the table means the same file wherever the command is started.
        """
        path = Path(value).expanduser()
        if path.is_absolute():
            return path
        return (Path(self.config_dir) if self.config_dir is not None else Path.cwd()).joinpath(path).resolve()


class StandInProcess(Protocol):
    """What servebench needs of a stand-in process (``targets.process.ManagedProcess`` is one).

    ``pgid`` lets the contract suite and the run's host-load accounting find every process
    of the group; ``returncode`` is None while it runs.
    """

    @property
    def pgid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...


class Target(abc.ABC):
    """Base class of every adapter.

    Subclasses set ``adapter`` (the built-in name) and ``Settings`` (a frozen dataclass
    parsed from the target's bench.toml table with :func:`ground.tables.parse_table`), and
    implement the abstract methods.  ``start``/``stop`` must be safe to call in any order
    and more than once; ``stop`` must leave no process behind.

    An adapter whose local stand-in is a server process should subclass
    :class:`targets.local_server.LocalServerTarget` instead: it implements the lifetime,
    remote mode and ``processes`` and leaves the command line and the wire format.
    """

    adapter: ClassVar[str] = ""
    Settings: ClassVar[type] = object

    def __init__(self, name: str, settings: Any, context: TargetContext) -> None:
        self.name = name
        self.settings = settings
        self.context = context
        self.base_url: str = ""

    # -- lifetime ---------------------------------------------------------------------
    @abc.abstractmethod
    async def start(self) -> None:
        """Local: spawn the stand-in and wait until it answers. Remote: check readiness.

        Sets ``base_url``. Raises :class:`TargetError` naming the target, the URL and what
        it answered (plus the stand-in's log tail) when it does not become ready.
        """

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop everything ``start`` spawned (process group: SIGTERM, then SIGKILL)."""

    async def __aenter__(self) -> Target:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def is_remote(self) -> bool:
        """True when the target points at an existing endpoint and starts nothing.

        The default reads the ``endpoint`` setting (:class:`targets.remote.RemoteSettings`).
        """
        return bool(getattr(self.settings, "endpoint", ""))

    @property
    def processes(self) -> Sequence[StandInProcess]:
        """The local stand-in's live processes (empty when remote or stopped).

        The contract suite proves with it that ``stop`` leaves no process of these groups,
        ``bench serve`` notices a stand-in that died, and a run counts its CPU time.
        """
        return []

    @property
    def page_protocol(self) -> str | None:
        """Which request/answer shape the digit page (``bench ui``) may use with this target.

        One of :data:`targets.page_protocols.PAGE_PROTOCOLS`, or None when the page cannot
        talk to it (then ``bench ui`` refuses the target by name).  A class attribute
        ``page_protocol = "kserve-v1"`` in a subclass is enough.
        """
        return None

    @property
    def verify_tls(self) -> bool:
        """Whether engines check the endpoint's TLS certificate (``verify_tls`` setting)."""
        return bool(getattr(self.settings, "verify_tls", True))

    # -- requests ---------------------------------------------------------------------
    @abc.abstractmethod
    def encode(self, image: np.ndarray) -> Request:
        """One uint8 28x28 image (0..255) -> the request that asks for its digit."""

    @abc.abstractmethod
    def decode(self, status: int, body: bytes) -> int:
        """A 2xx response -> the predicted digit; raise :class:`DecodeError` otherwise."""

    # -- deployment -------------------------------------------------------------------
    @abc.abstractmethod
    def manifests(self) -> dict[str, str]:
        """File name -> text of what creates this target on a real cluster."""

    def describe(self) -> dict[str, Any]:
        """Facts for meta.json and ``bench targets``. Never includes a secret value."""
        return {
            "name": self.name,
            "adapter": self.adapter,
            "mode": "remote" if self.is_remote else "local",
            "base_url": self.base_url,
        }
