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
  ``image/png`` / ``image/jpeg`` body), as the study's web page sent (which bytes are
  accepted: :mod:`targets.flask.server.photo`);
* ``GET /healthz``: ``{"status": "ok", "replica": ..., "pid": ..., "model_loading": ...}``.

Answers ``{"predictions": [digit, ...]}`` with an ``X-Replica`` header naming the replica
(so the k8s stand-in's traffic spreading can be counted).

Bodies: the app reads the body itself (:func:`_read_body`) instead of Werkzeug's
``get_data``, which stops at ``MAX_CONTENT_LENGTH`` on a chunked body and returns the
prefix as if it were the whole body; here a body one byte over the limit is a 413, and
a body the server cannot de-frame (a bad chunk) is a 400, never a 500.  The stand-ins'
worker (:mod:`targets.flask.server.worker`) refuses most of that before the app runs; these
checks keep the app right under any other server.

For gunicorn, ``targets.flask.server.app:app`` builds the app from environment variables
(``SERVEBENCH_ARTIFACTS_DIR``, ``SERVEBENCH_MODEL_LOADING``, ``SERVEBENCH_REPLICA``,
``SERVEBENCH_MAX_INSTANCES``, ``SERVEBENCH_MAX_BODY_BYTES``, ``SERVEBENCH_TORCH_THREADS``)
on first access, so importing this module stays cheap.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from models.data import normalize
from targets.flask.server.framing import Limits
from targets.flask.server.photo import MAX_PHOTO_PIXELS, PhotoError, preprocess_photo

__all__ = [
    "DEFAULT_MAX_BODY",
    "ENV_PREFIX",
    "MAX_PHOTO_PIXELS",
    "MODEL_LOADINGS",
    "BadInput",
    "create_app",
    "create_app_from_env",
    "preprocess_photo",
]

ENV_PREFIX = "SERVEBENCH_"
MODEL_LOADINGS = ("per-request", "startup")
#: The largest request body accepted (the buffering worker's limit too): 64 images of
#: full-precision floats fit comfortably.
DEFAULT_MAX_BODY = Limits.max_body_bytes
#: Any normalised MNIST pixel lies in about [-0.43, 2.83]; far outside means wrong input.
INSTANCE_ABS_LIMIT = 1000.0
#: A JSON integer longer than this is not a pixel (and Python refuses > 4300 digits itself).
MAX_INT_DIGITS = 20
_READ_STEP = 1024 * 1024
_REPR = re.compile(r"<[^<>]*\bat 0x[0-9a-fA-F]+>|\b0x[0-9a-fA-F]{6,}\b")


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


def _clean(message: str) -> str:
    """No object repr or memory address ever reaches a client."""
    return _REPR.sub("<object>", message)


# -- the body ----------------------------------------------------------------------------
def _too_large(limit: int) -> BadInput:
    return BadInput(f"body too large: the limit is {limit} bytes", 413)


def _read_body(limit: int) -> bytes:
    """The whole request body: 413 past ``limit`` (never cut short), 400 if it cannot be de-framed.

    With a Content-Length, Werkzeug's stream stops at it; a chunked body (the server
    sets ``wsgi.input_terminated``) is read from the raw input up to ``limit + 1`` bytes,
    so one byte too many is seen and refused.  Without either there is no body.
    """
    length = request.content_length
    if length is not None and length > limit:
        raise _too_large(limit)
    environ = request.environ
    if length is not None:
        stream, want = request.stream, length
    elif environ.get("wsgi.input_terminated"):
        stream, want = environ["wsgi.input"], limit + 1
    else:
        return b""
    parts: list[bytes] = []
    got = 0
    try:
        while got < want:
            piece = stream.read(min(_READ_STEP, want - got))
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
    except RequestEntityTooLarge:
        raise _too_large(limit) from None
    except Exception as exc:  # the server's de-framing failed (e.g. a bad chunk): the client's bytes
        raise BadInput(f"malformed request body: the server could not read it ({type(exc).__name__})") from None
    if got > limit:
        raise _too_large(limit)
    if length is not None and got < length:
        raise BadInput(f"request body ended early: {got} of {length} bytes")
    return b"".join(parts)


def _reject_constant(name: str) -> float:
    raise BadInput(f"{name} is not a valid JSON number (NaN/Infinity are not allowed)")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise BadInput(f"a JSON integer has {len(text.lstrip('-'))} digits: pixel values are small numbers")
    return int(text)


def _parse_json(body: bytes) -> Any:
    if not body.strip():
        raise BadInput('empty body: expected JSON {"instances": [...]} or {"images": [...]}')
    try:
        return json.loads(body, parse_constant=_reject_constant, parse_int=_parse_int)
    except BadInput:
        raise
    except RecursionError:
        raise BadInput("malformed JSON: nested too deeply") from None
    except UnicodeDecodeError:
        raise BadInput("malformed JSON: the body is not UTF-8 text") from None
    except ValueError as exc:
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


def _multipart_file(body: bytes, limit: int) -> tuple[bytes, str]:
    """The ``file`` part of a multipart body: (bytes, its declared Content-Type)."""
    parser = FormDataParser(max_form_memory_size=limit, max_content_length=limit, silent=False, max_form_parts=100)
    try:
        _, _, files = parser.parse(io.BytesIO(body), "multipart/form-data", len(body), request.mimetype_params)
    except RequestEntityTooLarge:
        raise _too_large(limit) from None
    except ValueError:
        raise BadInput("malformed multipart/form-data body") from None
    upload = files.get("file")
    if upload is None:
        raise BadInput("multipart upload must have a 'file' field with a PNG or JPEG image")
    data = upload.read()
    if not data:
        raise BadInput("empty body: the uploaded 'file' is empty")
    return data, upload.mimetype or ""


def _read_input(max_instances: int, max_body: int) -> np.ndarray:
    """The request -> float32 (N, 28, 28) model input, or :class:`BadInput`."""
    mimetype = request.mimetype
    if mimetype not in ("application/json", "multipart/form-data", "image/png", "image/jpeg"):
        shown = mimetype or "(none)"
        raise BadInput(
            f"unsupported Content-Type {shown}: use application/json, multipart/form-data, image/png or image/jpeg",
            415,
        )
    body = _read_body(max_body)
    if mimetype == "application/json":
        doc = _parse_json(body)
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
        data, declared = _multipart_file(body, max_body)
        return preprocess_photo(data, declared)
    if not body:
        raise BadInput("empty body: expected a PNG or JPEG image")
    return preprocess_photo(body, mimetype)


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
    app.json.sort_keys = False

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok", replica=replica, pid=os.getpid(), model_loading=model_loading)

    @app.post("/predict")
    def predict() -> Response:
        x = _read_input(max_instances, max_body_bytes)
        return jsonify(predictions=model.predict(x))

    @app.errorhandler(BadInput)
    @app.errorhandler(PhotoError)
    def bad_input(exc: BadInput | PhotoError) -> tuple[Response, int]:
        return jsonify(error=_clean(str(exc))), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Response, int]:
        message = exc.description or exc.name
        if exc.code == 413:
            message = f"body too large: the limit is {max_body_bytes} bytes"
        return jsonify(error=_clean(message)), exc.code or 500

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
    """``targets.flask.server.app:app`` for gunicorn, built from the environment on first access."""
    global _APP
    if name == "app":
        if _APP is None:
            _APP = create_app_from_env()
        return _APP
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
