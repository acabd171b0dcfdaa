"""A null gRPC inference server on loopback, in its own process: what the gRPC engine is calibrated against.

Why: ``bench calibrate`` measures each HTTP engine's own ceiling against a server that
costs almost nothing (nginx or :mod:`loadgen.nullserver`); the ``grpc`` engine needs the
same, speaking HTTP/2 + gRPC.  This is a ``grpc.aio`` server whose one generic handler
answers *every* unary call with the same pre-serialized ``ModelInferResponse`` (10 FP32
logits in ``raw_output_contents``, what the KServe stand-in answers), reading the request
bytes without parsing them.  It binds 127.0.0.1 only, runs in a new session pinned to the
CPUs given, is always stopped (SIGTERM to its group, then SIGKILL) and exits by itself
when its parent dies.

gRPC's own server is far from free (it is Python on top of the C core, ~0.1 ms of CPU per
call here), so the figure measured against it is a floor of the client's ceiling, not
the ceiling itself, and nginx-level numbers are not to be expected; the calibration
records which endpoint each engine was measured against.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from ground.cpus import pin_current_process, pin_process
from loadgen.inference.grpc_messages import MODEL_INFER_METHOD, encode_infer_request, encode_infer_response
from loadgen.nullserver import SpawnedEndpoint, _read_line, _stop_group
from loadgen.request import Request

__all__ = ["NULL_GRPC_ANSWER", "NullGrpcEndpoint", "grpc_payload", "serve_forever"]

_READY = "NULLGRPC READY"
#: The fixed answer: a serialized ModelInferResponse with 10 FP32 logits (digit 0 wins).
NULL_GRPC_ANSWER = encode_infer_response("mnist", {"logits": np.eye(1, 10, dtype=np.float32)})


def grpc_payload() -> tuple[Request, str]:
    """The calibration's gRPC request: one 28x28 FP32 ``pixels`` tensor, as protocol grpc-v2 sends it.

    Seeded random pixels: the message's size (3,136 raw bytes plus framing), not its
    values, is what the client's cost depends on.
    """
    pixels = np.random.default_rng(0).random((1, 28, 28), dtype=np.float32)
    body = encode_infer_request("mnist", {"pixels": pixels})
    return Request("POST", MODEL_INFER_METHOD, body, {}), "seeded random 1x28x28 FP32 pixels, grpc_messages encoding"


# -- the server (runs in the child process) ------------------------------------------------
def serve_forever(host: str = "127.0.0.1", port: int = 0, cpus: Sequence[int] = ()) -> None:
    """Serve until SIGTERM or until the parent dies; prints ``NULLGRPC READY <port>`` once listening."""
    pin_current_process(cpus)
    asyncio.run(_serve(host, port))


async def _serve(host: str, port: int) -> None:
    import grpc
    from grpc import aio

    answer = NULL_GRPC_ANSWER

    async def infer(_request: bytes, _context: Any) -> bytes:
        return answer

    handler = grpc.unary_unary_rpc_method_handler(infer)  # no (de)serializers: bytes in, bytes out

    class AnyMethod(grpc.GenericRpcHandler):
        def service(self, _details: Any) -> Any:
            return handler

    server = aio.server(handlers=[AnyMethod()], options=[("grpc.so_reuseport", 0)])
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    sys.stdout.write(f"{_READY} {bound}\n")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    loop.add_signal_handler(signal.SIGINT, lambda: stop.done() or stop.set_result(None))
    parent = os.getppid()

    def watch_parent() -> None:
        if os.getppid() != parent and not stop.done():
            stop.set_result(None)  # orphaned: our starter died without stopping us
        else:
            loop.call_later(0.5, watch_parent)

    loop.call_later(0.5, watch_parent)
    await stop
    await server.stop(grace=None)


# -- the parent's handle -------------------------------------------------------------------
class NullGrpcEndpoint(SpawnedEndpoint):
    """``with NullGrpcEndpoint(cpus=(0,)) as ep: ep.url`` -> ``grpc://127.0.0.1:PORT``.

    ``port``: 0 (the default) picks a free one; a fixed port lets a test stop the endpoint
    and start another on the same address (a target restarting mid-run).
    """

    kind = "python-grpc"

    def __init__(self, *, cpus: Sequence[int] = (), port: int = 0) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer in 0..65535, got {port!r}")
        self.cpus = tuple(cpus)
        self._fixed_port = port
        self.port = port
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def describe(self) -> dict[str, Any]:
        import grpc

        return {
            "kind": self.kind,
            "version": f"python {sys.version.split()[0]}, grpcio {grpc.__version__} (grpc.aio)",
            "url": self.url,
            "cpus": list(self.cpus),
            "body_bytes": len(NULL_GRPC_ANSWER),
        }

    def start(self, ready_timeout_s: float = 20.0) -> str:
        """Spawn the server and wait for its ready line; return its URL."""
        if self._proc is not None:
            return self.url
        code = (
            "from loadgen.null_grpc import serve_forever; "
            f"serve_forever('127.0.0.1', {self._fixed_port}, {list(self.cpus)!r})"
        )
        self._proc = subprocess.Popen(
            [sys.executable, "-c", code],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        pin_process(self._proc.pid, self.cpus)
        line = _read_line(self._proc, ready_timeout_s)
        if not line.startswith(_READY):
            err = ""
            if self._proc.poll() is not None and self._proc.stderr is not None:
                err = self._proc.stderr.read().decode(errors="replace")[-2000:]
            self.stop()
            raise RuntimeError(f"null gRPC server did not start (got {line!r}); stderr: {err}")
        self.port = int(line.split()[-1])
        return self.url

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after 3 s; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _stop_group(proc)
