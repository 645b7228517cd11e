"""Bounded .npz reads (toolchain.core.npz): a member is checked on its header before it is inflated, only the
members (and samples) used are read, float data becomes float32 while it is read, every failure is a DataError.

Sizes are measured with tracemalloc (numpy reports its allocations to it) on real archives: small files
whose members inflate to gigabytes (tests/npz_bombs.py writes them without ever holding the zeros).
"""
from __future__ import annotations

import io
import tracemalloc
import zipfile

import npz_bombs
import numpy as np
import pytest

from toolchain.core.errors import DataError
from toolchain.core.npz import MAX_ARRAY_BYTES, NpzArchive
from toolchain.tflite.inputs import load_calibration
from toolchain.tflite.interpreter import TensorSpec
from toolchain.training.datasets import load_npz

MIB = 1 << 20


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _peak_bytes(fn) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_arrays_read_back_exactly_as_numpy_writes_them():
    rng = np.random.default_rng(0)
    arrays = {"a": rng.random((3, 5)), "b": np.asfortranarray(rng.integers(-9, 9, (4, 6), dtype=np.int16)),
              "c": np.array(["ab", "c"]), "d": rng.random(7).astype(">f4")}
    with NpzArchive(_npz(**arrays), "x.npz") as z:
        assert z.names == ("a", "b", "c", "d")
        for k, a in arrays.items():
            got = z.read(k)
            assert got.dtype == a.dtype and got.shape == a.shape and np.array_equal(got, a), k
        assert z.read("a", to_float32=True).dtype == np.float32
        assert np.array_equal(z.read("a", to_float32=True), arrays["a"].astype(np.float32))
        assert np.array_equal(z.read("a", max_elements=4), arrays["a"].reshape(-1)[:4])
        assert z.read("c", to_float32=True).dtype == arrays["c"].dtype  # not numeric: returned as stored


def test_a_member_declaring_more_than_the_limit_is_refused_before_it_is_inflated():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # the header declares 4 TiB; the member holds 64 bytes
        zf.writestr("x.npy", npz_bombs._npy_header((1 << 40,), "float32") + bytes(64))
    with NpzArchive(buf.getvalue(), "big.npz") as z, pytest.raises(DataError, match="over the 4 GiB limit"):
        z.member("x")
    assert MAX_ARRAY_BYTES == 4 << 30


def test_only_the_samples_asked_for_are_inflated():
    """A 1 GiB member of which the first 100 elements are wanted costs kilobytes, not a gigabyte."""
    raw = npz_bombs.bomb_npz({"x": ((1 << 28,), "float32"), "unused": ((1 << 28,), "float32")})
    assert len(raw) < 3 * MIB
    with NpzArchive(raw, "bomb.npz") as z:
        a, peak = _peak_bytes(lambda: z.read("x", max_elements=100))
    assert a.shape == (100,) and not a.any()
    assert peak < 8 * MIB, peak


def test_float64_data_becomes_float32_without_a_float64_copy():
    raw = npz_bombs.bomb_npz({"x": ((1 << 23,), "float64")})  # 64 MiB inflated
    with NpzArchive(raw, "d.npz") as z:
        a, peak = _peak_bytes(lambda: z.read("x", to_float32=True))
    assert a.dtype == np.float32 and a.size == 1 << 23
    assert peak < 32 * MIB + 24 * MIB, peak  # the float32 result and a few 4 MiB chunks, never 64 MiB more


@pytest.mark.parametrize("make, message", [
    (lambda: b"PK\x03\x04 not really a zip", "not a readable .npz \\(BadZipFile"),
    (lambda: npz_bombs.bomb_npz({"x": ((1 << 20,), "float32")}, corrupt="x"), "not a readable .npz \\(zlib.error"),
    (lambda: _npz(o=np.array([{}, 1], dtype=object)), "object arrays \\(pickled data is refused\\)"),
])
def test_corrupt_archives_and_pickles_are_data_errors(make, message):
    with pytest.raises(DataError, match=message), NpzArchive(make(), "f.npz") as z:
        z.read(z.names[0])


@pytest.mark.parametrize("extra, message", [(-8, "holds less data"), (8, "holds more data")])
def test_a_member_holding_other_than_its_header_says_is_refused(extra, message):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.npy", npz_bombs._npy_header((16,), "float32") + bytes(64 + extra))
    with NpzArchive(buf.getvalue(), "f.npz") as z, pytest.raises(DataError, match=message):
        z.read("x")


def test_total_limit_counts_every_array_read():
    raw = _npz(a=np.zeros(1000, np.float32), b=np.zeros(1000, np.float32))
    with NpzArchive(raw, "f.npz", total_limit_bytes=6000) as z:
        z.read("a")
        with pytest.raises(DataError, match="more than the 6,000 bytes one archive may hand out"):
            z.read("b")


def test_calibration_reads_only_the_samples_it_uses(tmp_path):
    """1 GiB of samples and a 1 GiB member nobody uses: 32 samples of 256 values are all that is inflated."""
    path = tmp_path / "calib.npz"
    path.write_bytes(npz_bombs.bomb_npz({"x": ((1 << 20, 16, 16, 1), "float32"), "junk": ((1 << 28,), "float32")}))
    spec = TensorSpec("input", (1, 16, 16, 1), np.dtype(np.int8), 0.1, -3)
    rows, peak = _peak_bytes(lambda: load_calibration(path, (spec,), 32))
    assert len(rows) == 32 and rows[0][0].shape == (1, 16, 16, 1) and rows[0][0].dtype == np.int8
    assert int(rows[0][0].reshape(-1)[0]) == -3  # 0.0 quantised: the zero point
    assert peak < 64 * MIB, peak  # (the file itself is read in 16 MiB chunks)


def test_a_data_npz_with_a_corrupt_member_is_a_data_error(tmp_path):
    """zlib.error used to escape load_npz as an internal error."""
    path = tmp_path / "data.npz"
    path.write_bytes(npz_bombs.bomb_npz({"x_train": ((64, 8), "float32")}, corrupt="x_train", arrays={
        "y_train": np.arange(64) % 2, "x_test": np.zeros((16, 8), np.float32), "y_test": np.arange(16) % 2}))
    with pytest.raises(DataError, match="not a readable .npz \\(zlib.error"):
        load_npz(path)


def test_a_data_npz_keeps_float32_and_ignores_other_members(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "data.npz"
    path.write_bytes(npz_bombs.bomb_npz({"unused": ((1 << 28,), "float32")}, arrays={
        "x_train": rng.random((64, 8)), "y_train": np.arange(64) % 3, "x_test": rng.random((16, 8)),
        "y_test": np.arange(16) % 3}))
    data, peak = _peak_bytes(lambda: load_npz(path))
    assert data.x_train.dtype == np.float32 and data.x_train.shape == (64, 8)
    assert peak < 64 * MIB, peak  # the 1 GiB member was never inflated
