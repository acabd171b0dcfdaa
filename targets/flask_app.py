"""The Flask predict app served by gunicorn: the `flask` and `k8s` targets' server.

Why it looks like this: it reproduces the study's bare-metal/Kubernetes app (a small
Flask ``/predict`` around the PyTorch model) and can reproduce its cost model:
``model_loading = "per-request"`` loads the TorchScript model on EVERY request, as the
study's linserv app did (its insights, section 7); ``"startup"`` loads it once per
worker.  Everything else is hardened so a benchmark never measures a crash: bad input
gets a 4xx JSON ``{"error": ...}`` and the worker stays up.

Requests:

* ``POST /predict`` JSON ``{"instances": [x, ...]}``: each ``x`` is 28x28 or 784 floats, the
  exact model input (``models.data.wire_pixels``);
* ``POST /predict`` JSON ``{"images": [p, ...]}``: raw 0..255 pixels, normalised here with
  ``models.data.normalize``;
* ``POST /predict`` with a PNG/JPEG photo of a digit (multipart field ``file``, or a raw
  ``image/png`` / ``image/jpeg`` body), as the study's web page sent;
* ``GET /healthz``: ``{"status": "ok", "replica": ..., "pid": ..., "model_loading": ...}``.

Answers ``{"predictions": [digit, ...]}`` with an ``X-Replica`` header naming the replica
(so the k8s stand-in's traffic spreading can be counted).

For gunicorn, ``targets.flask_app:app`` builds the app from environment variables
(``SERVEBENCH_ARTIFACTS_DIR``, ``SERVEBENCH_MODEL_LOADING``, ``SERVEBENCH_REPLICA``,
``SERVEBENCH_MAX_INSTANCES``, ``SERVEBENCH_TORCH_THREADS``) on first access, so importing
this module stays cheap.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from models.data import normalize

__all__ = ["ENV_PREFIX", "MODEL_LOADINGS", "BadInput", "create_app", "create_app_from_env", "preprocess_photo"]

ENV_PREFIX = "SERVEBENCH_"
MODEL_LOADINGS = ("per-request", "startup")
MAX_PHOTO_PIXELS = 4096 * 4096
#: The largest request body accepted: 64 images of full-precision floats fit comfortably.
DEFAULT_MAX_BODY = 4 * 1024 * 1024
#: Any normalised MNIST pixel lies in about [-0.43, 2.83]; far outside means wrong input.
INSTANCE_ABS_LIMIT = 1000.0
#: Up to this much of an oversized body is read and discarded so the 413 answer arrives.
DRAIN_LIMIT = 64 * 1024 * 1024


class BadInput(ValueError):
    """A request the app refuses; ``status`` is the 4xx code to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _torchscript_path(artifacts_dir: Path) -> Path:
    """The shared artifacts layout: ``<dir>/torchscript/model.pt``."""
    return artifacts_dir / "torchscript" / "model.pt"


class _Model:
    """The TorchScript model, loaded once or on every call depending on ``model_loading``."""

    def __init__(self, path: Path, model_loading: str, threads: int) -> None:
        import torch  # lazy: only the serving worker needs it

        self._torch = torch
        torch.set_num_threads(threads)
        self.path = path
        self.model_loading = model_loading
        if not path.is_file():
            raise FileNotFoundError(f"TorchScript model not found: {path} (run `python -m bench train`)")
        # Load once even in per-request mode: a broken artifact fails at boot, not on request 1.
        self._loaded = self._load()
        if model_loading == "per-request":
            self._loaded = None

    def _load(self) -> Any:
        model = self._torch.jit.load(str(self.path), map_location="cpu")
        model.eval()
        return model

    def predict(self, x: np.ndarray) -> list[int]:
        """``x`` float32 (N, 28, 28) normalised -> N digits."""
        model = self._loaded if self._loaded is not None else self._load()
        with self._torch.inference_mode():
            logits = model(self._torch.from_numpy(np.ascontiguousarray(x[:, None, :, :])))
        return [int(d) for d in logits.argmax(dim=1).tolist()]


def _reject_constant(name: str) -> float:
    raise BadInput(f"{name} is not a valid JSON number (NaN/Infinity are not allowed)")


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        raise BadInput("empty body: expected JSON {\"instances\": [...]} or {\"images\": [...]}")
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except BadInput:
        raise
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"malformed JSON: {exc}") from None


def _as_batch(items: Any, key: str, max_instances: int) -> np.ndarray:
    """A JSON list of images -> float64 (N, 28, 28), checked for shape and finiteness."""
    if not isinstance(items, list):
        raise BadInput(f"{key!r} must be a list of images, got {type(items).__name__}")
    if not items:
        raise BadInput(f"{key!r} is empty: send at least one image")
    if len(items) > max_instances:
        raise BadInput(f"too many images: {len(items)} > {max_instances} per request", 413)
    batch = []
    for i, item in enumerate(items):
        try:
            arr = np.asarray(item)
        except (ValueError, TypeError):
            raise BadInput(f"{key}[{i}] is ragged: expected 28x28 or 784 numbers") from None
        if arr.dtype.kind not in "iuf":
            raise BadInput(f"{key}[{i}] must contain only numbers, got {arr.dtype.kind!r} data")
        if arr.shape == (784,):
            arr = arr.reshape(28, 28)
        if arr.shape != (28, 28):
            raise BadInput(f"{key}[{i}] has shape {list(arr.shape)}: expected [28, 28] or [784]")
        arr = arr.astype(np.float64)
        if not np.all(np.isfinite(arr)):
            raise BadInput(f"{key}[{i}] contains NaN or infinite values")
        batch.append(arr)
    return np.stack(batch)


def preprocess_photo(data: bytes) -> np.ndarray:
    """A PNG/JPEG digit photo -> float32 (1, 28, 28) normalised model input.

    MNIST-like: grey, inverted when the background is light (ink must be bright), the
    background level (lower median) subtracted, the ink's bounding box padded to a square,
    resized to 20x20 and centred in 28x28.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > MAX_PHOTO_PIXELS:
            raise BadInput(f"image too large: {img.width}x{img.height} pixels", 413)
        img.load()
    except BadInput:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise BadInput(f"cannot decode image: {exc}") from None
    grey = np.asarray(img.convert("L"), dtype=np.uint8)
    if grey.mean() > 127:
        grey = 255 - grey
    # Paper is rarely pure white: take the background level (the lower median -- most of a
    # digit photo is background) off every pixel, so the ink sits on black as in MNIST.
    background = int(np.sort(grey, axis=None)[(grey.size - 1) // 2])
    if background:
        grey = (grey.astype(np.int16) - background).clip(0, 255).astype(np.uint8)
    ink = np.argwhere(grey > 30)
    out = np.zeros((28, 28), dtype=np.uint8)
    if len(ink):
        (top, left), (bottom, right) = ink.min(axis=0), ink.max(axis=0) + 1
        crop = grey[top:bottom, left:right]
        side = max(crop.shape)
        square = np.zeros((side, side), dtype=np.uint8)
        oy, ox = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
        square[oy : oy + crop.shape[0], ox : ox + crop.shape[1]] = crop
        small = Image.fromarray(square).resize((20, 20), Image.Resampling.LANCZOS)
        out[4:24, 4:24] = np.asarray(small, dtype=np.uint8)
    return normalize(out)[None, :, :]


def _read_input(max_instances: int) -> np.ndarray:
    """The request -> float32 (N, 28, 28) model input, or :class:`BadInput`."""
    mimetype = request.mimetype
    if mimetype == "application/json":
        doc = _parse_json(request.get_data(cache=False))
        if not isinstance(doc, dict):
            raise BadInput(f"expected a JSON object, got {type(doc).__name__}")
        keys = [k for k in ("instances", "images") if k in doc]
        if len(keys) != 1:
            raise BadInput("expected exactly one of the keys 'instances' (model input) or 'images' (0..255 pixels)")
        key = keys[0]
        batch = _as_batch(doc[key], key, max_instances)
        if key == "images":
            if batch.min() < 0 or batch.max() > 255:
                raise BadInput("'images' pixels must lie in 0..255")
            return normalize(batch)
        if np.abs(batch).max() > INSTANCE_ABS_LIMIT:
            raise BadInput(f"'instances' values must be normalised pixels (|x| <= {INSTANCE_ABS_LIMIT:g})")
        return batch.astype(np.float32)
    if mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise BadInput("multipart upload must have a 'file' field with a PNG or JPEG image")
        data = upload.read()
        if not data:
            raise BadInput("empty body: the uploaded 'file' is empty")
        return preprocess_photo(data)
    if mimetype in ("image/png", "image/jpeg"):
        data = request.get_data(cache=False)
        if not data:
            raise BadInput("empty body: expected a PNG or JPEG image")
        return preprocess_photo(data)
    shown = mimetype or "(none)"
    raise BadInput(
        f"unsupported Content-Type {shown}: use application/json, multipart/form-data, image/png or image/jpeg",
        415,
    )


def _drain_body(limit: int = DRAIN_LIMIT) -> None:
    """Read and discard an unread request body (up to ``limit`` bytes).

    Why: a sync worker closes the connection after answering; closing with unread bytes in
    the socket makes the kernel send a TCP reset, and the client then sees "connection
    reset" instead of our 413 JSON.  Draining a few MB on loopback costs milliseconds.
    """
    stream = request.environ.get("wsgi.input")
    if stream is None:
        return
    length = request.content_length
    remaining = min(length, limit) if length is not None else limit
    try:
        while remaining > 0:
            chunk = stream.read(min(65536, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
    except OSError:
        pass


def create_app(
    artifacts_dir: str | os.PathLike[str],
    model_loading: str = "startup",
    *,
    replica: str = "0",
    max_instances: int = 64,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    torch_threads: int = 1,
) -> Flask:
    """The WSGI app. Loads (and checks) the TorchScript model before serving anything."""
    if model_loading not in MODEL_LOADINGS:
        raise ValueError(f"model_loading must be one of {MODEL_LOADINGS}, got {model_loading!r}")
    if max_instances < 1 or max_body_bytes < 1 or torch_threads < 1:
        raise ValueError("max_instances, max_body_bytes and torch_threads must be >= 1")
    model = _Model(_torchscript_path(Path(artifacts_dir)), model_loading, torch_threads)
    app = Flask("servebench")
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok", replica=replica, pid=os.getpid(), model_loading=model_loading)

    @app.post("/predict")
    def predict() -> Response:
        x = _read_input(max_instances)
        return jsonify(predictions=model.predict(x))

    @app.errorhandler(BadInput)
    def bad_input(exc: BadInput) -> tuple[Response, int]:
        return jsonify(error=str(exc)), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        message = exc.description or exc.name
        if exc.code == 413:
            message = f"body too large: the limit is {max_body_bytes} bytes"
            _drain_body()
        return jsonify(error=message), exc.code or 500

    @app.errorhandler(Exception)
    def server_error(exc: Exception) -> tuple[Response, int]:
        app.logger.exception("unhandled error")
        return jsonify(error=f"internal error: {type(exc).__name__}"), 500

    @app.after_request
    def tag_replica(resp: Response) -> Response:
        resp.headers["X-Replica"] = replica
        return resp

    return app


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(ENV_PREFIX + name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{name} must be an integer, got {raw!r}") from None


def create_app_from_env() -> Flask:
    """Build the app from ``SERVEBENCH_*`` environment variables (gunicorn, containers)."""
    artifacts = os.environ.get(ENV_PREFIX + "ARTIFACTS_DIR", "")
    if not artifacts:
        raise RuntimeError(f"{ENV_PREFIX}ARTIFACTS_DIR is not set: it must name the model artifacts folder")
    return create_app(
        artifacts,
        os.environ.get(ENV_PREFIX + "MODEL_LOADING", "startup"),
        replica=os.environ.get(ENV_PREFIX + "REPLICA", "0"),
        max_instances=_env_int("MAX_INSTANCES", 64),
        max_body_bytes=_env_int("MAX_BODY_BYTES", DEFAULT_MAX_BODY),
        torch_threads=_env_int("TORCH_THREADS", 1),
    )


_APP: Flask | None = None


def __getattr__(name: str) -> Any:
    """``targets.flask_app:app`` for gunicorn, built from the environment on first access."""
    global _APP
    if name == "app":
        if _APP is None:
            _APP = create_app_from_env()
        return _APP
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

