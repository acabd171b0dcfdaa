"""A small, real aiohttp server that classifies MNIST digits with the TorchScript model.

Why it exists: it is the serving software of the example adapter, with a wire format of its
own so the adapter's ``encode``/``decode`` have something to do:

* ``POST /v1/classify`` JSON ``{"image": [[28 floats] x 28]}`` (the normalised model input,
  ``models.data.wire_pixels``) -> ``{"digit": d, "logits": [10 floats]}``
* ``GET /health`` -> ``{"ok": true}``

Bad input gets a 4xx JSON ``{"error": ...}``; the server stays up.  Run it with
``python -m servebench_aiohttp_example.server --model DIR/torchscript/model.pt --port P``
(it binds 127.0.0.1 unless ``--host`` says otherwise).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import torch
from aiohttp import web

__all__ = ["MAX_BODY", "build_app", "main", "parse_image"]

MAX_BODY = 1024 * 1024  # one image is ~6 KB of JSON


class BadRequest(ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _no_constants(name: str) -> float:
    raise BadRequest(f"{name} is not allowed in JSON numbers")


def parse_image(body: bytes) -> np.ndarray:
    """Request body -> float32 (1, 1, 28, 28), or :class:`BadRequest` saying what is wrong."""
    if not body.strip():
        raise BadRequest('empty body: expected JSON {"image": [[...], ...]}')
    try:
        doc = json.loads(body, parse_constant=_no_constants)
    except BadRequest:
        raise
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict) or "image" not in doc:
        raise BadRequest('expected a JSON object with key "image"')
    try:
        arr = np.asarray(doc["image"])
    except (ValueError, TypeError):
        raise BadRequest("image is ragged: expected 28 rows of 28 numbers") from None
    if arr.dtype.kind not in "iuf":
        raise BadRequest("image must contain only numbers")
    if arr.shape != (28, 28):
        raise BadRequest(f"image has shape {list(arr.shape)}, expected [28, 28]")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)) or float(np.abs(arr).max()) > 1000:
        raise BadRequest("image values must be finite normalised pixels")
    return arr[None, None, :, :]


def build_app(model_path: str) -> web.Application:
    """The aiohttp application; loads the model once."""
    torch.set_num_threads(1)
    model = torch.jit.load(model_path, map_location="cpu")
    model.eval()

    @web.middleware
    async def json_errors(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except BadRequest as exc:
            return web.json_response({"error": str(exc)}, status=exc.status)
        except web.HTTPException as exc:  # 404, 405, 413 from aiohttp itself
            if exc.status < 400:
                raise
            return web.json_response({"error": exc.reason}, status=exc.status)

    async def classify(request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            raise BadRequest(f"Content-Type must be application/json, got {request.content_type}", 415)
        x = parse_image(await request.read())  # read() enforces client_max_size -> 413
        with torch.inference_mode():
            logits = model(torch.from_numpy(x))[0]
        values: list[Any] = [round(float(v), 5) for v in logits]
        if not all(math.isfinite(v) for v in values):
            return web.json_response({"error": "model produced non-finite logits"}, status=500)
        return web.json_response({"digit": int(logits.argmax()), "logits": values})

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=MAX_BODY, middlewares=[json_errors])
    app.router.add_post("/v1/classify", classify)
    app.router.add_get("/health", health)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="TorchScript model file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    web.run_app(build_app(args.model), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
