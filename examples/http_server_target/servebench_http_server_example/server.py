"""A KServe-V1-shaped MNIST server on Python's own ``http.server``, with its two load knobs exposed.

Why it exists: a user's target around ``http.server`` passed every contract check and then
lost 298 of 512 requests at concurrent N=512 and answered every sequential request in a
flat 44 ms.  Two defaults did it, and ``--backlog`` / ``--nodelay`` turn them on and off:

* ``socketserver.TCPServer.request_queue_size = 5``: the listen backlog.  A burst of
  connections beyond it has its SYNs dropped by the kernel; the clients retry after 1 s,
  3 s, 7 s ... and time out.  ``--backlog 1024`` fixes it (the kernel caps it at
  ``net.core.somaxconn``).
* Nagle's algorithm: the handler writes the headers and the body in two ``send`` calls;
  with Nagle on, the body waits for the ACK of the headers, which the client delays by up
  to 40 ms (delayed ACK) on a kept-alive connection.  ``--nodelay`` sets TCP_NODELAY
  (``StreamRequestHandler.disable_nagle_algorithm``).

``bench check-target`` must fail the first two and pass the fixed server
(tests/bench/commands/test_check_target_load.py).  The wire format is the built-ins' one:
``POST /v1/models/mnist:predict`` JSON ``{"instances": [[[28 floats] x 28]]}`` ->
``{"predictions": [[10 logits]]}``; ``GET /health`` -> ``{"ok": true}``.  Bad input gets a
4xx JSON ``{"error": ...}``.  HTTP/1.1 with keep-alive, one thread per connection.
"""

from __future__ import annotations

import argparse
import json
import math
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import torch

__all__ = ["MAX_BODY", "PREDICT_PATH", "BadRequest", "main", "make_server", "parse_instances"]

PREDICT_PATH = "/v1/models/mnist:predict"
MAX_BODY = 1024 * 1024
MAX_INSTANCES = 64


class BadRequest(ValueError):
    """Bad input: the message goes back as ``{"error": ...}`` with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _no_constants(name: str) -> float:
    raise BadRequest(f"{name} is not allowed in JSON numbers")


def parse_instances(body: bytes) -> np.ndarray:
    """Request body -> float32 (N, 1, 28, 28), or :class:`BadRequest` naming what is wrong."""
    if not body.strip():
        raise BadRequest('empty body: expected JSON {"instances": [[[...] x 28]]}')
    try:
        doc = json.loads(body, parse_constant=_no_constants)
    except BadRequest:
        raise
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    items = doc.get("instances") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_INSTANCES:
        raise BadRequest(f'expected {{"instances": [...]}} with 1 to {MAX_INSTANCES} images')
    try:
        arr = np.asarray(items)
    except (ValueError, TypeError):
        raise BadRequest("instances are ragged: each must be 28 rows of 28 numbers") from None
    if arr.dtype.kind not in "iuf" or arr.shape[1:] not in ((28, 28), (784,)):
        raise BadRequest(f"instances must be numbers of shape [N, 28, 28], got {list(arr.shape)}")
    arr = arr.astype(np.float32).reshape(-1, 1, 28, 28)
    if not np.all(np.isfinite(arr)) or float(np.abs(arr).max()) > 1000:
        raise BadRequest("pixel values must be finite normalised numbers")
    return arr


def _handler(model: Any, nodelay: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a load generator expects
        disable_nagle_algorithm = nodelay

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request would cost more than the prediction

        def _json(self, status: int, doc: Any, *, close: bool = False) -> None:
            body = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()  # one send for the status line and headers ...
            self.wfile.write(body)  # ... and one for the body: the write Nagle holds back

        def do_GET(self) -> None:
            if self.path == "/health":
                self._json(200, {"ok": True})
            else:
                self._json(404, {"error": f"no such path {self.path}"})

        def do_POST(self) -> None:
            declared = self.headers.get("Content-Length", "")
            if not declared.isdigit():
                self._json(411, {"error": "Content-Length required"}, close=True)
                return
            if int(declared) > MAX_BODY:  # refused unread: the connection cannot be reused
                self._json(413, {"error": f"body of {declared} bytes is over the {MAX_BODY}-byte limit"}, close=True)
                return
            body = self.rfile.read(int(declared))
            if self.path != PREDICT_PATH:
                self._json(404, {"error": f"no such path {self.path}"})
                return
            media = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            try:
                if media != "application/json":
                    raise BadRequest(f"Content-Type must be application/json, got {media or 'none'}", 415)
                x = parse_instances(body)
            except BadRequest as exc:
                self._json(exc.status, {"error": str(exc)})
                return
            with torch.inference_mode():
                logits = model(torch.from_numpy(x))
            values = [[round(float(v), 5) for v in row] for row in logits]
            if not all(math.isfinite(v) for row in values for v in row):
                self._json(500, {"error": "model produced non-finite logits"})
                return
            self._json(200, {"predictions": values})

    return Handler


def make_server(model_path: str, host: str, port: int, *, backlog: int, nodelay: bool) -> ThreadingHTTPServer:
    """The server, listening with ``backlog`` (http.server's default is 5) and TCP_NODELAY if ``nodelay``."""
    torch.set_num_threads(1)
    model = torch.jit.load(model_path, map_location="cpu").eval()

    class Server(ThreadingHTTPServer):
        request_queue_size = backlog
        daemon_threads = True

    return Server((host, port), _handler(model, nodelay))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="TorchScript model file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backlog", type=int, default=5, help="listen backlog (http.server's default: 5)")
    parser.add_argument("--nodelay", action="store_true", help="set TCP_NODELAY on every connection")
    args = parser.parse_args(argv)
    server = make_server(args.model, args.host, args.port, backlog=args.backlog, nodelay=args.nodelay)
    print(f"listening on {args.host}:{args.port} (backlog {args.backlog}, TCP_NODELAY {args.nodelay})", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
