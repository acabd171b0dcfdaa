"""What the digit page must know about its target: ``config.json``, built in one place.

Why a file the page fetches instead of constants in the JavaScript: the page converts
photos to model input itself for KServe targets, and that conversion must equal the
servers' (``models.data.normalize``, ``targets.flask.server.app.preprocess_photo``).  Taking the
numbers from the Python modules at serve/render time means a change there reaches the
page, and the browser tests compare the page's pixels with ``preprocess_photo``'s.

The same document is served by :mod:`webui.server` and baked into the nginx image by
:mod:`webui.manifests`.  It never holds a secret: only names, the API mode, public URLs
and numbers.
"""

from __future__ import annotations

from typing import Any, Literal

from models.data import MEAN, STD
from targets.page_protocols import PAGE_PROTOCOLS

__all__ = [
    "API_MODES",
    "INK_THRESHOLD",
    "WIRE_DECIMALS",
    "ApiMode",
    "UnsupportedTarget",
    "api_mode_for_target",
    "api_mode_for_url",
    "page_config",
]

ApiMode = Literal["multipart", "kserve-v1", "kserve-v2"]

#: The page protocols (:mod:`targets.page_protocols`): ``multipart``: POST the photo as
#: multipart field ``file`` (the Flask app preprocesses it, ``flask`` and ``k8s`` targets);
#: ``kserve-v1`` / ``kserve-v2``: the page converts the photo to 28x28 normalised pixels
#: and POSTs a V1 ``{"instances": ...}`` / V2 body.  An adapter declares which one its
#: server answers (``Target.page_protocol``).
API_MODES: tuple[str, ...] = tuple(PAGE_PROTOCOLS)

#: A pixel is ink when brighter than this after inversion (``preprocess_photo``: grey > 30).
INK_THRESHOLD = 30
#: Decimals of each pixel on the wire (``models.data.wire_pixels`` rounds to 4).
WIRE_DECIMALS = 4
#: The MNIST layout: the digit's box is resized to 20x20 and centred in 28x28.
DIGIT_BOX = 20
IMAGE_SIDE = 28


class UnsupportedTarget(ValueError):
    """The page cannot talk to this target's API (an adapter it does not know)."""


def api_mode_for_target(target: Any) -> ApiMode:
    """The page's API mode for a built target: the page protocol its adapter declares.

    Any adapter works, in-tree or not, when it sets ``page_protocol`` (the built-ins do:
    ``flask``/``k8s`` "multipart", ``kserve`` "kserve-v1"/"kserve-v2"); one that declares
    none, or a protocol the page does not speak, is refused by name.
    """
    protocol = getattr(target, "page_protocol", None)
    adapter = target.adapter or type(target).__name__
    known = ", ".join(API_MODES)
    if protocol is None:
        raise UnsupportedTarget(
            f"target {target.name!r} (adapter {adapter!r}) is not supported by the digit page: its adapter declares "
            f"no page_protocol (the page speaks {known}; see docs/adding-a-target.md)"
        )
    if protocol not in API_MODES:
        raise UnsupportedTarget(
            f"target {target.name!r} (adapter {adapter!r}) declares page_protocol {protocol!r}, which the digit "
            f"page does not speak (it speaks {known})"
        )
    return protocol


def api_mode_for_url(url: str) -> ApiMode:
    """The API mode a predict URL implies: ``/v1/models/M:predict``, ``/v2/models/M/infer``, else Flask."""
    path = url.split("?", 1)[0]
    if "/v1/models/" in path and path.endswith(":predict"):
        return "kserve-v1"
    if "/v2/models/" in path and path.endswith("/infer"):
        return "kserve-v2"
    return "multipart"


def page_config(
    *,
    target: str,
    adapter: str,
    api: ApiMode,
    where: str,
    upstream: str,
    max_upload_bytes: int,
    forwarding: bool = True,
) -> dict[str, Any]:
    """The ``config.json`` document (no secrets: ``upstream`` is a URL without credentials).

    ``where``: "local stand-in", "remote" or "cluster" (shown on the page).  ``forwarding``
    is False when the page's server was told not to start the target (``--no-start``).
    """
    if api not in API_MODES:
        raise ValueError(f"api must be one of {API_MODES}, got {api!r}")
    from targets.flask.server.app import MAX_PHOTO_PIXELS

    return {
        "target": target,
        "adapter": adapter,
        "api": api,
        "where": where,
        "upstream": upstream,
        "predict_path": "api/predict",
        "forwarding": forwarding,
        "max_upload_bytes": max_upload_bytes,
        "preprocess": {
            "ink_threshold": INK_THRESHOLD,
            "digit_box": DIGIT_BOX,
            "side": IMAGE_SIDE,
            "max_pixels": MAX_PHOTO_PIXELS,
        },
        "normalize": {"mean": MEAN, "std": STD, "decimals": WIRE_DECIMALS},
    }
