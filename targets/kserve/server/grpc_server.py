"""kserve's gRPC inference server (the Open Inference Protocol over gRPC), bound to one host.

Why a subclass: kserve 0.21's ``GRPCServer.start`` listens on ``[::]:<port>`` -- every
interface -- with no option to change it, and logs one line per call (its
``LoggingInterceptor``).  This class keeps kserve's servicer (``InferenceServicer``: the
same DataPlane, model registry and repository extension as the REST server, so both
protocols answer from one model), its exception-to-status interceptor and its message
limits, and changes only the address it binds (``host``, 127.0.0.1 by default) and the
per-call log line (dropped).
"""

from __future__ import annotations

from concurrent import futures
from typing import Any

from grpc import aio
from kserve.logging import logger
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer

__all__ = ["LoopbackGRPCServer", "grpc_address"]


def grpc_address(host: str, port: int) -> str:
    """``host:port`` as gRPC spells a listening address (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class LoopbackGRPCServer(GRPCServer):
    """kserve's GRPCServer listening on ``host:port`` only, without the per-call log line."""

    def __init__(self, *args: Any, host: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.host = host

    async def start(self, max_workers: int) -> None:
        servicer = InferenceServicer(self._data_plane, self._model_repository_extension)
        options = [
            (key, value)
            for key, value in (
                ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                ("grpc.max_receive_message_length", self._kwargs.get("grpc_max_receive_message_length")),
            )
            if value is not None
        ]
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(ExceptionToStatusInterceptor(),),
            options=options,
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        address = grpc_address(self.host, self._port)
        if self._server.add_insecure_port(address) == 0:
            raise OSError(f"gRPC could not bind {address}")
        logger.info("gRPC listening on %s (%d threads)", address, max_workers)
        await self._server.start()
        await self._server.wait_for_termination()
