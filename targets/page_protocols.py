"""The digit page's request/answer shapes ("page protocols"), named once for adapters and the page.

Why in targets/ and not in webui/: an adapter declares which shape its server answers
(:attr:`targets.base.Target.page_protocol`), and adapters must not import the web UI
(the layers point down: webui -> targets).  The page (``webui/static/mnist.js``) builds
and reads exactly these shapes; :func:`page_request` and :func:`decode_page_answer` are
their Python mirror, used by the contract suite to prove that a target which declares a
protocol really answers it -- so ``bench ui`` works with it.

* ``multipart``: the photo itself, as multipart field ``file``; the server converts it
  (the Flask app, ``targets.flask.server.photo.preprocess_photo``) and answers ``{"predictions": [d]}``.
* ``kserve-v1``: ``{"instances": [[[28 floats] x 28]]}`` (the normalised model input,
  ``targets.wire.wire_instance``) -> ``{"predictions": [[10 logits]]}``.
* ``kserve-v2``: an Open Inference Protocol tensor ``{"inputs": [{"name": "pixels",
  "shape": [1, 28, 28], "datatype": "FP32", "data": [784 floats]}]}`` ->
  ``{"outputs": [{"shape": [1, 10], "data": [10 logits]}]}``.

The path is the adapter's own (the page's proxy posts to the path ``encode`` uses).
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from targets.wire import wire_instance

__all__ = ["PAGE_PROTOCOLS", "PageAnswerError", "decode_page_answer", "page_request", "photo_png"]

#: Every protocol the page speaks, with what it sends (for messages and docs).
PAGE_PROTOCOLS: dict[str, str] = {
    "multipart": 'the photo as multipart field "file" -> {"predictions": [digit]}',
    "kserve-v1": '{"instances": [28x28 normalised pixels]} -> {"predictions": [[10 logits]]}',
    "kserve-v2": 'a V2 tensor {"inputs": [{"name": "pixels", "shape": [1, 28, 28], ...}]} -> '
    '{"outputs": [{"shape": [1, 10], "data": [10 logits]}]}',
}


class PageAnswerError(ValueError):
    """A 2xx answer the page could not read as a prediction; the message says what is wrong."""


def photo_png(image: np.ndarray, side: int = 112) -> bytes:
    """A uint8 28x28 MNIST image as a photo would arrive: dark ink on white paper, PNG, enlarged."""
    from PIL import Image  # lazy: only the multipart protocol needs Pillow

    buf = io.BytesIO()
    Image.fromarray(255 - np.asarray(image, dtype=np.uint8)).resize((side, side)).save(buf, format="PNG")
    return buf.getvalue()


def page_request(protocol: str, image: np.ndarray) -> tuple[dict[str, Any], str]:
    """What the page sends for ``image``: (httpx request keyword arguments, a description).

    ``multipart`` returns ``{"files": ...}``; the others ``{"json": ...}`` with the body
    the page builds (same pixels as ``encode``: ``wire_instance``).
    """
    if protocol == "multipart":
        return {"files": {"file": ("digit.png", photo_png(image), "image/png")}}, "a PNG photo (multipart)"
    instance = wire_instance(image)
    if protocol == "kserve-v1":
        return {"json": {"instances": [instance]}}, "a KServe V1 body"
    if protocol == "kserve-v2":
        flat = [value for row in instance for value in row]
        tensor = {"name": "pixels", "shape": [1, 28, 28], "datatype": "FP32", "data": flat}
        return {"json": {"inputs": [tensor]}}, "a KServe V2 tensor"
    raise ValueError(f"unknown page protocol {protocol!r}; the page speaks {', '.join(PAGE_PROTOCOLS)}")


def _is_logits(values: Any) -> bool:
    return (
        isinstance(values, list)
        and len(values) == 10
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    )


def decode_page_answer(protocol: str, doc: Any) -> int:
    """A 2xx JSON answer -> the digit, read the way ``mnist.js``'s ``decodeAnswer`` reads it."""
    if not isinstance(doc, dict):
        raise PageAnswerError("the answer is not a JSON object")
    if protocol == "multipart":
        preds = doc.get("predictions")
        if not isinstance(preds, list) or len(preds) != 1:
            raise PageAnswerError('expected {"predictions": [digit]}')
        digit = preds[0]
        if isinstance(digit, bool) or not isinstance(digit, int) or not 0 <= digit <= 9:
            raise PageAnswerError(f"prediction {digit!r} is not a digit")
        return digit
    if protocol == "kserve-v1":
        preds = doc.get("predictions")
        logits = preds[0] if isinstance(preds, list) and len(preds) == 1 else None
    elif protocol == "kserve-v2":
        outputs = doc.get("outputs")
        out = outputs[0] if isinstance(outputs, list) and len(outputs) == 1 else None
        data = out.get("data") if isinstance(out, dict) else None
        logits = _flatten(data) if isinstance(data, list) else None
    else:
        raise ValueError(f"unknown page protocol {protocol!r}; the page speaks {', '.join(PAGE_PROTOCOLS)}")
    if not _is_logits(logits):
        raise PageAnswerError("expected 10 logits for one image")
    return int(np.argmax(np.asarray(logits, dtype=np.float64)))


def _flatten(values: list[Any]) -> list[Any]:
    """``Array.prototype.flat()`` (one level), as the page applies it to V2 ``data``."""
    flat: list[Any] = []
    for value in values:
        flat.extend(value if isinstance(value, list) else [value])
    return flat
