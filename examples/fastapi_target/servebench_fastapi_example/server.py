"""A small, real FastAPI app (run by uvicorn) that classifies MNIST digits with the TorchScript model.

It speaks the JSON shape servebench's built-in servers use (TF Serving's / KServe V1's
rows), so the adapter needs no wire code of its own and the digit page can use it:

* ``POST /v1/predict`` JSON ``{"instances": [[[28 floats] x 28], ...]}`` (the normalised
  model input, ``models.data.wire_pixels``; 784 flat floats also accepted) ->
  ``{"predictions": [[10 logits], ...]}`` (logits, not probabilities: take the argmax)
* ``GET /health`` -> ``{"ok": true}`` (the model is loaded before uvicorn accepts)

Bad input gets a 4xx JSON ``{"error": ...}`` and the server stays up: malformed JSON,
NaN/Infinity, a wrong shape, an empty body, a body over ``MAX_BODY`` (413, read in
chunks so an oversized body is never held whole), a Content-Type other than JSON (415).
Run it with ``python -m servebench_fastapi_example.server --model DIR/torchscript/model.pt
--port P`` (it binds 127.0.0.1 unless ``--host`` says otherwise).
"""

from __future__ import annotations

import argparse
import json
import math
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

__all__ = ["MAX_BODY", "MAX_INSTANCES", "BadRequest", "create_app", "main", "parse_instances"]

MAX_BODY = 1024 * 1024  # one image is ~6 KB of JSON
MAX_INSTANCES = 64


class BadRequest(ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _no_constants(name: str) -> float:
    raise BadRequest(f"{name} is not allowed in JSON numbers")


def parse_instances(body: bytes) -> np.ndarray:
    """Request body -> float32 (N, 1, 28, 28), or :class:`BadRequest` saying what is wrong."""
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
        raise BadRequest("instances are ragged: each must be 28 rows of 28 numbers (or 784 numbers)") from None
    if arr.dtype.kind not in "iuf":
        raise BadRequest("instances must contain only numbers")
    if arr.shape[1:] not in ((28, 28), (784,)):
        raise BadRequest(f"instances have shape {list(arr.shape)}, expected [N, 28, 28] or [N, 784]")
    arr = arr.astype(np.float32).reshape(-1, 1, 28, 28)
    if not np.all(np.isfinite(arr)) or float(np.abs(arr).max()) > 1000:
        raise BadRequest("pixel values must be finite normalised numbers")
    return arr


async def _read_body(request: Request) -> bytes:
    """The body, refused with 413 as soon as it passes ``MAX_BODY`` (declared or streamed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise BadRequest(f"body of {declared} bytes is over the {MAX_BODY}-byte limit", 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequest(f"body is over the {MAX_BODY}-byte limit", 413)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(model_path: str) -> FastAPI:
    """The FastAPI application; the model is loaded once, before the server accepts."""
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        torch.set_num_threads(1)
        state["model"] = torch.jit.load(model_path, map_location="cpu").eval()
        yield

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(BadRequest)
    async def bad_request(_: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(HTTPException)  # 404, 405 from the router
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.post("/v1/predict")
    async def predict(request: Request) -> JSONResponse:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise BadRequest(f"Content-Type must be application/json, got {media_type or 'none'}", 415)
        x = parse_instances(await _read_body(request))
        with torch.inference_mode():
            logits = state["model"](torch.from_numpy(x))
        values = [[round(float(v), 5) for v in row] for row in logits]
        if not all(math.isfinite(v) for row in values for v in row):
            return JSONResponse({"error": "model produced non-finite logits"}, status_code=500)
        return JSONResponse({"predictions": values})

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="TorchScript model file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(create_app(args.model), host=args.host, port=args.port, access_log=False, log_level="info")


if __name__ == "__main__":
    main()
