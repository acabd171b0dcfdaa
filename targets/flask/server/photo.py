"""Checks the Flask app's digit photos and turns them into model input: which bytes pass, how they convert.

A photo upload is the app's one path where the client's bytes
go to a decoder (Pillow), so what is accepted is decided here, once, before any decoder
runs -- and the conversion (:func:`preprocess_photo`) is the reference the digit page's
in-browser conversion is tested against (webui/, tests/webui/test_browser.py).

The rule for formats: **the bytes decide, and a declared type must agree with them.**
Only PNG and JPEG photos are accepted (what the study's page sent).  The format is read
from the bytes' signature; a body that is a GIF, BMP, TIFF, WebP, SVG, ... is refused
with 415 whatever it was declared as; PNG bytes declared ``image/jpeg`` (or the reverse)
get 400.  A multipart part declared ``application/octet-stream`` (or with no type) is
judged by its bytes alone.  Pillow is then opened for the detected format only.

Image bombs: a PNG/JPEG header can declare 100000 x 100000 pixels in a few hundred
bytes; anything over :data:`MAX_PHOTO_PIXELS` is refused with 413 before it is decoded
(Pillow's own ``DecompressionBombError`` is mapped to the same 413).

Error messages are written here, never ``str(exception)``: Pillow's messages can carry a
Python object repr with a memory address.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

from models.data import normalize

__all__ = ["ACCEPTED_TYPES", "MAX_PHOTO_PIXELS", "PhotoError", "decode_photo", "preprocess_photo", "sniff_format"]

MAX_PHOTO_PIXELS = 4096 * 4096
#: Accepted formats and the media types that declare them (browsers send image/jpg too).
ACCEPTED_TYPES: dict[str, tuple[str, ...]] = {
    "PNG": ("image/png",),
    "JPEG": ("image/jpeg", "image/jpg", "image/pjpeg"),
}
#: Declared types that say nothing about the format: the bytes alone decide.
_UNDECLARED = ("", "application/octet-stream")

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "PSD"),
    (b"%PDF", "PDF"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
)


class PhotoError(ValueError):
    """A photo the app refuses; ``status`` is the 4xx to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def sniff_format(data: bytes) -> str | None:
    """The image format the bytes are (``"PNG"``, ``"GIF"``, ``"SVG"``, ...), or None if unknown."""
    for signature, fmt in _SIGNATURES:
        if data.startswith(signature):
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"avif"):
        return "HEIC/AVIF"
    head = data[:1024].lstrip().lower()
    if head.startswith((b"<?xml", b"<svg", b"<!doctype svg")) and b"<svg" in head:
        return "SVG"
    return None


def _check_format(data: bytes, declared: str) -> str:
    """The accepted format of ``data`` (PNG or JPEG), or :class:`PhotoError` (415/400)."""
    declared = declared.strip().lower()
    fmt = sniff_format(data)
    said = f" (declared {declared})" if declared not in _UNDECLARED else ""
    if fmt is None:
        raise PhotoError(f"cannot decode image: the body is not a PNG or JPEG image{said}")
    if fmt not in ACCEPTED_TYPES:
        raise PhotoError(f"unsupported image format {fmt}{said}: send a PNG or JPEG photo", 415)
    if declared not in _UNDECLARED and declared not in ACCEPTED_TYPES[fmt]:
        raise PhotoError(f"declared {declared} but the body is a {fmt} image: declare the type the bytes are")
    return fmt


def decode_photo(data: bytes, declared: str = "") -> np.ndarray:
    """PNG/JPEG bytes -> uint8 grey pixels (H, W), or :class:`PhotoError`.

    ``declared`` is the Content-Type the client gave the bytes ("" if none).
    """
    from PIL import Image

    if not data:
        raise PhotoError("empty body: expected a PNG or JPEG image")
    fmt = _check_format(data, declared)
    too_large = f"image too large: the limit is {MAX_PHOTO_PIXELS} pixels (4096 x 4096); send a smaller photo"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit follows
            img = Image.open(io.BytesIO(data), formats=[fmt])
            if img.width * img.height > MAX_PHOTO_PIXELS:
                raise PhotoError(f"{too_large} (this one is {img.width} x {img.height})", 413)
            img.load()
            return np.asarray(img.convert("L"), dtype=np.uint8)
    except PhotoError:
        raise
    except Image.DecompressionBombError:
        raise PhotoError(too_large, 413) from None
    except Exception:  # any decoder failure is the data's fault; Pillow's text may hold reprs
        raise PhotoError(f"cannot decode image: the {fmt} data is truncated or corrupt") from None


def preprocess_photo(data: bytes, declared: str = "") -> np.ndarray:
    """A PNG/JPEG digit photo -> float32 (1, 28, 28) normalised model input.

    MNIST-like: grey, inverted when the background is light (ink must be bright), the
    background level (lower median) subtracted, the ink's bounding box padded to a square,
    resized to 20x20 and centred in 28x28.
    """
    from PIL import Image

    grey = decode_photo(data, declared)
    if grey.mean() > 127:
        grey = 255 - grey
    # Paper is rarely pure white: take the background level (the lower median -- most of a
    # digit photo is background) off every pixel, so the ink sits on black as in MNIST.
    # np.partition finds that one order statistic in linear time (a full sort of a
    # 16-megapixel photo takes about a second).
    k = (grey.size - 1) // 2
    background = int(np.partition(grey, k, axis=None)[k])
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
