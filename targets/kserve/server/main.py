"""Entry point of the KServe stand-in's server process: the real ``kserve`` ModelServer serving the MNIST SavedModel
(or, with ``--model-kind tabular``, a tabular model's ``weights.npz``: :mod:`targets.kserve.server.tabular`).

Run as ``python -m targets.kserve.server.main --model-dir artifacts/model/savedmodel --http-port 8080``.

Why not plain ``ModelServer().start()``: kserve 0.21 has no host option -- its REST server
binds 0.0.0.0 and its gRPC server ``[::]`` -- and it logs about four lines per request
(access log, two timing lines, a latency line), which on a benchmark costs time and
fills disks.  This module keeps everything else of kserve (FastAPI app, V1 and V2
endpoints, DataPlane, exception handlers, the multi-process worker model) and changes
only that:

* REST binds ``--host`` (127.0.0.1 by default); gRPC (the Open Inference Protocol's
  ``inference.GRPCInferenceService``) is started only with ``--grpc-port``, on the same
  host (kserve alone would listen on ``[::]``);
* the access and timing loggers are set to WARNING, start-up messages stay;
* request bodies above ``--max-body-bytes`` get a 413 JSON error before they are read
  whole (at once when the Content-Length says so), and non-JSON content types a 415
  (kserve would hand them to the model as bytes);
* request heads above ``--max-header-bytes`` get a 431 JSON error before they are parsed;
  malformed HTTP (bad chunk sizes, conflicting lengths, no ``Host``, ...) a 400 JSON error
  instead of uvicorn's text/plain one (:mod:`targets.kserve.server.http_protocol`);
* only the inference protocol is served: the model repository extension (load/unload)
  answers 403 and cannot change what is served, a wrong method on a known path 405.

Argument parsing happens only in :func:`main` (this is a program of its own); note that
``kserve.model_server`` also parses ``sys.argv`` at import, with ``parse_known_args``, so
our option names avoid its underscore spellings.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Constants and a path helper only: kserve itself is imported later, after argv is settled.
from targets.kserve.server.http_rules import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_HEADER_BYTES
from targets.kserve.server.savedmodel import resolve_savedmodel_dir

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_HEADER_BYTES",
    "MODEL_KINDS",
    "ServerOptions",
    "main",
    "quiet_log_config",
    "serve",
]


@dataclass(frozen=True)
class ServerOptions:
    """Everything the stand-in needs; built by :func:`main` or by a caller directly."""

    model_dir: str
    model_name: str = "mnist"
    host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_port: int = 0  # 0 = no gRPC server
    workers: int = 1
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    tf_threads: int = 0
    access_log: bool = False
    model_kind: str = "mnist"  # or "tabular": model_dir is then artifacts/<name> holding weights.npz


#: What ``--model-kind`` selects: the study's MNIST SavedModel, or a tabular model's arrays.
MODEL_KINDS = ("mnist", "tabular")


def _model(options: ServerOptions) -> Any:
    """The ``kserve.Model`` to serve; raises ``FileNotFoundError`` before any port opens."""
    if options.model_kind == "tabular":
        from pathlib import Path

        from targets.kserve.server.tabular import TabularModel

        weights = Path(options.model_dir) / "weights.npz"
        if not weights.is_file():
            raise FileNotFoundError(f"no weights.npz in {options.model_dir} (python -m bench train --model NAME)")
        return TabularModel(options.model_name, weights)
    from targets.kserve.server.model import MnistSavedModel

    resolve_savedmodel_dir(options.model_dir, options.model_name)
    return MnistSavedModel(options.model_name, options.model_dir, tf_threads=options.tf_threads)


def quiet_log_config(access_log: bool = False) -> dict[str, Any]:
    """kserve's own logging config with the per-request loggers turned down to WARNING."""
    from kserve.logging import KSERVE_LOG_CONFIG

    config: dict[str, Any] = {
        **KSERVE_LOG_CONFIG,
        "loggers": {k: dict(v) for k, v in KSERVE_LOG_CONFIG["loggers"].items()},
    }
    config["loggers"]["kserve.trace"]["level"] = "WARNING"
    config["filters"] = {"one_line_client_errors": {"()": "targets.kserve.server.loopback.OneLineClientErrors"}}
    config["handlers"] = {k: dict(v) for k, v in KSERVE_LOG_CONFIG["handlers"].items()}
    config["handlers"]["kserve"]["filters"] = ["one_line_client_errors"]
    if not access_log:
        config["loggers"]["uvicorn.access"]["level"] = "WARNING"
    return config


def serve(options: ServerOptions) -> int:
    """Load the model and serve until SIGTERM/SIGINT (blocks); the exit status."""
    from targets.kserve.server import loopback  # kserve imported here, after argv is settled

    model = _model(options)  # fails before any port opens
    if options.workers == 1 or options.grpc_port:
        # gRPC is served by this (parent) process, so it needs the model here too.
        model.load()
    else:
        # The parent of several workers never predicts: it holds the socket and supervises.
        # Each spawned worker loads the model itself, so loading it here too would only
        # add a TensorFlow import (6-10 s, ~0.5 GB) to the start-up; kserve just needs the
        # model marked ready to register it.
        model.ready = True
    server = loopback.LoopbackModelServer(
        host=options.host,
        max_body_bytes=options.max_body_bytes,
        max_header_bytes=options.max_header_bytes,
        log_config=quiet_log_config(options.access_log),
        http_port=options.http_port,
        grpc_port=options.grpc_port,
        workers=options.workers,
    )
    server.start([model])
    return 1 if server.failed else 0


def _parse(argv: Sequence[str] | None) -> ServerOptions:
    parser = argparse.ArgumentParser(
        prog="python -m targets.kserve.server.main",
        description="KServe ModelServer serving the MNIST SavedModel (V1 and V2 REST), loopback by default.",
    )
    parser.add_argument("--model-dir", required=True, help="SavedModel folder, TF-Serving model base, or savedmodel/")
    parser.add_argument("--model-name", default="mnist", help="name in /v1/models/<name> and /v2/models/<name>")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--grpc-port", type=int, default=0, help="serve gRPC on this port too (0 = no gRPC)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (each loads the model)")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument(
        "--max-header-bytes",
        type=int,
        default=DEFAULT_MAX_HEADER_BYTES,
        help="limit on the request line plus all headers; larger heads get a 431 (default: %(default)s)",
    )
    parser.add_argument("--tf-threads", type=int, default=0, help="TF intra/inter-op threads (0 = TF default)")
    parser.add_argument("--access-log", action="store_true", help="log one line per request")
    parser.add_argument(
        "--model-kind",
        choices=MODEL_KINDS,
        default="mnist",
        help="mnist: --model-dir is the SavedModel; tabular: --model-dir is artifacts/<name> with weights.npz",
    )
    ns = parser.parse_args(argv)
    if (
        ns.workers < 1
        or not 0 < ns.http_port < 65536
        or not 0 <= ns.grpc_port < 65536
        or ns.max_body_bytes < 1
        or ns.max_header_bytes < 1024
        or ns.tf_threads < 0
    ):
        parser.error(
            "--workers and --max-body-bytes must be >= 1, --max-header-bytes >= 1024, "
            "--http-port in 1..65535, --grpc-port in 0..65535, --tf-threads >= 0"
        )
    return ServerOptions(
        model_dir=ns.model_dir,
        model_name=ns.model_name,
        host=ns.host,
        http_port=ns.http_port,
        grpc_port=ns.grpc_port,
        workers=ns.workers,
        max_body_bytes=ns.max_body_bytes,
        max_header_bytes=ns.max_header_bytes,
        tf_threads=ns.tf_threads,
        access_log=ns.access_log,
        model_kind=ns.model_kind,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = _parse(argv)
    try:
        return serve(options)
    except FileNotFoundError as exc:
        print(f"targets.kserve.server.main: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # Re-import under the real module name so that classes pickled into kserve's spawned
    # workers resolve as ``targets.kserve.server.main``/``targets.kserve.server.loopback``, not __main__.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from targets.kserve.server.main import main as _main

    sys.exit(_main())
