"""The base class of every adapter whose local stand-in is a server process.

Why: each such adapter (gunicorn + Flask, the KServe ModelServer, the aiohttp and FastAPI
examples) needs the same sixty lines of plumbing -- remote mode in four places (readiness,
headers, ``describe``, the base URL), spawn / wait-until-ready / stop with no orphans, the
``processes`` the contract suite and ``bench serve`` watch -- and each copy could get one
of them wrong.  Here they are written once; an adapter supplies only what differs:

* :meth:`LocalServerTarget.command` -- the server's command line for a host and port
  (and :meth:`environment`, extra variables; :attr:`health_path`, the readiness URL);
* ``encode`` / ``decode`` -- its wire format (``targets.wire`` has the built-ins' one);
* optionally ``manifests`` (the default is a shell script of the same command line),
  :meth:`spawn_plan` (several processes) and :meth:`readiness_probe` (a stricter check).

What the base does:

* **remote mode**: with ``endpoint`` set (:class:`targets.remote.RemoteSettings`), nothing
  is spawned; ``start`` checks ``health_path`` with the configured Host and credentials,
  and :meth:`request_headers` adds them to every request;
* **spawn**: on a free port of ``context.bind_host`` (loopback), under
  :func:`targets.process.spawn` (own process group, lifeline watchdog, CPU pinning to the
  ``cpus`` setting or the run's stand-in CPUs, a log file in ``context.log_dir``), with
  the adapter's package folder on ``PYTHONPATH`` so ``python -m yourpkg.server`` imports
  even when the package is not pip-installed;
* **readiness**: :func:`targets.process.wait_ready` on ``health_path`` -- on failure a
  :class:`TargetError` with the URL, the last answer and the log's last lines, and
  everything spawned is stopped;
* **stop**: SIGTERM to each group, then SIGKILL; idempotent.
"""

from __future__ import annotations

import abc
import asyncio
import os
import shlex
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from targets.base import Target, TargetContext, TargetError
from targets.process import ManagedProcess, Probe, free_port, http_probe, spawn, wait_ready
from targets.remote import RemoteAccess, RemoteSettings, check_remote_ready, open_remote, public_remote_settings

__all__ = ["LocalServerSettings", "LocalServerTarget", "SpawnSpec", "package_root"]


@dataclass(frozen=True)
class LocalServerSettings(RemoteSettings):
    """The keys every local-server adapter accepts: the remote-mode ones plus ``cpus``.

    ``cpus``: pin the stand-in to these CPUs instead of the run's stand-in CPUs (empty =
    the run's).  Subclass it to add keys of your own.
    """

    cpus: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if any(c < 0 for c in self.cpus):
            raise ValueError(f"cpus must be CPU numbers >= 0, got {list(self.cpus)}")


@dataclass(frozen=True)
class SpawnSpec:
    """One process of a stand-in: its command line, extra environment and log file name."""

    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    log_name: str = ""


def package_root(module_name: str) -> Path | None:
    """The folder a module's top-level package was imported from (the ``sys.path`` entry).

    None for a module that is not a file (builtins) or comes from site-packages, whose
    folder a spawned interpreter already searches.
    """
    top = sys.modules.get(module_name.split(".", 1)[0])
    origin = getattr(top, "__file__", None)
    if not origin:
        return None
    path = Path(origin).resolve()
    root = path.parent.parent if path.name == "__init__.py" else path.parent
    return None if root.name in ("site-packages", "dist-packages") else root


class LocalServerTarget(Target):
    """A target whose local stand-in is one (or more) server processes on a loopback port.

    Subclasses set ``adapter``, ``Settings`` (a :class:`LocalServerSettings` or a
    subclass), ``health_path``, and implement :meth:`command`, ``encode`` and ``decode``.
    Set ``page_protocol`` when the server answers one of the digit page's shapes.
    """

    Settings: ClassVar[type] = LocalServerSettings
    #: GET path that answers 200 once the server can predict (locally and remotely).
    health_path: str = "/health"

    def __init__(self, name: str, settings: Any, context: TargetContext) -> None:
        super().__init__(name, settings, context)
        self._processes: list[ManagedProcess] = []
        self._access: RemoteAccess | None = None
        self._remote_ready = False
        #: The (first) stand-in process's log file, once started.
        self.log_path: Path | None = None
        if self.is_remote:
            self.base_url = str(settings.endpoint).rstrip("/")

    # -- what an adapter supplies --------------------------------------------------------
    @abc.abstractmethod
    def command(self, host: str, port: int) -> list[str]:
        """The server's command line, listening on ``host:port`` (use ``sys.executable``)."""

    def environment(self) -> dict[str, str]:
        """Variables added to the server's environment (on top of this process's)."""
        return {}

    def spawn_plan(self, host: str, port: int) -> list[SpawnSpec]:
        """Every process of the stand-in; one by default. Override for replicas."""
        return [SpawnSpec(self.command(host, port), self.environment(), self.name)]

    def remote_readiness_probe(self, access: RemoteAccess) -> Probe | None:
        """The check ``start`` polls in remote mode; None (the default): ``GET health_path``."""
        return None

    def readiness_probe(self, url: str) -> Probe:
        """The check ``start`` polls: by default ``GET url`` answering 200."""
        return http_probe(url)

    # -- helpers for adapters ------------------------------------------------------------
    @property
    def cpus(self) -> tuple[int, ...]:
        """CPUs the stand-in is pinned to: the ``cpus`` setting, else the run's stand-in CPUs."""
        return tuple(getattr(self.settings, "cpus", ()) or ()) or tuple(self.context.cpus)

    @property
    def ready_timeout_s(self) -> float:
        """The ``ready_timeout_s`` setting, else the run's default."""
        return float(getattr(self.settings, "ready_timeout_s", 0.0) or self.context.ready_timeout_s)

    def model_file(self, relative: str, what: str = "model file") -> Path:
        """A file of the trained model (``torchscript/model.pt``, ``model.json``, ...), checked.

        Raises :class:`TargetError` naming the path and the fix before anything is spawned.
        """
        path = Path(self.context.artifacts_dir).resolve() / relative
        if not path.exists():
            raise TargetError(f"target {self.name!r}: {what} not found at {path} (run `python -m bench train`)")
        return path

    def request_headers(self) -> dict[str, str]:
        """``Content-Type: application/json`` plus, in remote mode, Host and credentials.

        The credentials are read from their variables on first use (by ``start`` or by an
        ``encode`` before it), never stored elsewhere.
        """
        headers = {"Content-Type": "application/json"}
        if self.is_remote:
            if self._access is None:
                self._access = open_remote(self.name, self.settings)
            headers.update(self._access.headers)
        return headers

    # -- lifetime ------------------------------------------------------------------------
    @property
    def processes(self) -> list[ManagedProcess]:
        return list(self._processes)

    async def start(self) -> None:
        if self.is_remote:
            await self._check_remote()
        elif not self._processes:
            await self._start_local()

    async def _check_remote(self) -> None:
        if self._remote_ready:
            return
        access = open_remote(self.name, self.settings)
        probe = self.remote_readiness_probe(access)
        await check_remote_ready(self.name, access, self.health_path, timeout_s=self.ready_timeout_s, probe=probe)
        self._access, self._remote_ready, self.base_url = access, True, access.base_url

    async def _start_local(self) -> None:
        host = self.context.bind_host
        port = free_port(host)
        plan = self.spawn_plan(host, port)  # raises (e.g. model missing) before anything runs
        url_host = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{url_host}:{port}"
        health = self.base_url + self.health_path
        log_dir = Path(self.context.log_dir or tempfile.gettempdir())
        try:
            for spec in plan:
                log = log_dir / f"{spec.log_name or self.name}.log"
                self._processes.append(spawn(spec.argv, env=self._env(spec.env), log_path=log, cpus=self.cpus))
            self.log_path = self._processes[0].log_path
            where = f"{len(plan)} processes at {health}" if len(plan) > 1 else f"at {health}"
            await wait_ready(
                self.readiness_probe(health),
                timeout=self.ready_timeout_s,
                process=self._processes,
                what=f"target {self.name!r} ({self.adapter} stand-in, {where})",
            )
        except BaseException:
            await self.stop()
            raise

    def _env(self, extra: Mapping[str, str]) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
        root = package_root(type(self).__module__)
        if root is not None:
            paths = [str(root), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
            env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        return env

    async def stop(self) -> None:
        procs, self._processes = self._processes, []
        self._access, self._remote_ready = None, False
        if procs:
            await asyncio.gather(*(p.astop() for p in procs))

    # -- description and deployment ------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        facts = super().describe()
        facts.update(public_remote_settings(self.settings))
        return facts

    def manifests(self) -> dict[str, str]:
        """``run-NAME.sh``: the stand-in's own command line, for a host of your own.

        Override it with what your deployment really needs (Dockerfile, Deployment, ...).
        """
        plan = self.spawn_plan("127.0.0.1", 8080)
        lines = [
            "#!/bin/sh",
            f"# Starts target {self.name!r} ({self.adapter}) as servebench's stand-in does, on",
            "# loopback port 8080 (put a reverse proxy in front); its Python package must be importable.",
            "# Rendered by `python -m bench manifests`.",
            "set -e",
        ]
        commands = []
        for spec in plan:
            argv = ["python" if arg == sys.executable else str(arg) for arg in spec.argv]
            env = [f"{key}={value}" for key, value in sorted(spec.env.items())]
            commands.append(shlex.join(["env", *env, *argv] if env else argv))
        if len(commands) == 1:
            lines.append(f"exec {commands[0]}")
        else:
            lines += [f"{command} &" for command in commands] + ["wait"]
        return {f"run-{self.name}.sh": "\n".join([*lines, ""])}
