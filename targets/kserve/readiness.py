"""Is a KServe model ready over gRPC?  A readiness probe that asks ``ModelReady`` as a client would.

Why: with ``protocol = "grpc-v2"`` the REST health URL answering says nothing about the
gRPC listener (kserve starts it beside REST, in the same process); the stand-in is ready
for a gRPC sweep only when ``inference.GRPCInferenceService/ModelReady`` says the model
is.  Same shape as :func:`targets.process.http_probe`: an async callable returning
(ready, what it answered), polled by :func:`targets.process.wait_ready`.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from grpc import aio

from loadgen.inference import grpc_predict_v2_pb2 as pb
from targets.process import Probe

__all__ = ["grpc_model_ready_probe"]


def grpc_model_ready_probe(
    address: str,
    model_name: str,
    *,
    tls: bool = False,
    metadata: Mapping[str, str] | None = None,
    timeout_s: float = 2.0,
) -> Probe:
    """A probe calling ``ModelReady(model_name)`` at ``address`` (``host:port``); ready on ``ready: true``.

    ``metadata``: headers for the call (credentials, lower-cased); ``Host`` becomes the
    channel's authority.  ``tls`` checks the certificate against the system roots.
    """
    pairs = [(k.lower(), v) for k, v in (metadata or {}).items() if k.lower() not in ("host", "content-type")]
    authority = next((v for k, v in (metadata or {}).items() if k.lower() == "host"), "")
    options = [("grpc.enable_http_proxy", 0)] + ([("grpc.default_authority", authority)] if authority else [])
    request = pb.ModelReadyRequest(name=model_name).SerializeToString()

    async def probe() -> tuple[bool, str]:
        if tls:
            channel = aio.secure_channel(address, grpc.ssl_channel_credentials(), options=options)
        else:
            channel = aio.insecure_channel(address, options=options)
        try:
            call = channel.unary_unary(pb.MODEL_READY_METHOD)
            body = await call(request, timeout=timeout_s, metadata=pairs)
        except aio.AioRpcError as exc:
            return False, f"gRPC {exc.code().name}: {(exc.details() or '')[:200]}"
        finally:
            await channel.close(grace=None)
        ready = pb.ModelReadyResponse.FromString(body).ready
        return bool(ready), f"gRPC ModelReady {model_name!r}: ready={str(ready).lower()}"

    return probe
