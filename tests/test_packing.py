"""Properties of the palette index bit packing (toolchain.algorithms.packing)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import need_module
from hypothesis import given, settings
from hypothesis import strategies as st

from toolchain.algorithms.packing import (
    MAX_INDEX_BITS,
    MIN_INDEX_BITS,
    index_bits_for,
    pack_indices,
    packed_size_bytes,
    unpack_indices,
)

BITS = st.integers(MIN_INDEX_BITS, MAX_INDEX_BITS)


@st.composite
def indices_and_bits(draw, max_size: int = 600):
    bits = draw(BITS)
    n = draw(st.integers(0, max_size))
    values = draw(st.lists(st.integers(0, (1 << bits) - 1), min_size=n, max_size=n))
    return np.array(values, dtype=np.int64), bits


@settings(max_examples=300, deadline=None)
@given(indices_and_bits())
def test_round_trip_every_width(case):
    idx, bits = case
    packed = pack_indices(idx, bits)
    assert len(packed) == packed_size_bytes(idx.size, bits) == (idx.size * bits + 7) // 8
    back = unpack_indices(packed, idx.size, bits)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, idx)


@settings(max_examples=200, deadline=None)
@given(indices_and_bits())
def test_tail_padding_is_zero_and_extra_bytes_are_ignored(case):
    idx, bits = case
    packed = pack_indices(idx, bits)
    used_bits = idx.size * bits
    if packed:
        tail = len(packed) * 8 - used_bits
        assert packed[-1] & ((1 << tail) - 1) == 0
    # Trailing bytes beyond the packed size (e.g. a longer buffer) do not change the result.
    np.testing.assert_array_equal(unpack_indices(packed + b"\xff\xff", idx.size, bits), idx)


@settings(max_examples=200, deadline=None)
@given(indices_and_bits(max_size=200))
def test_matches_the_tflm_compression_packer(case):
    # TFLM's own packer (a bit-string implementation) is an independent reference for the bit order.
    lut = need_module("tflite_micro.tensorflow.lite.micro.compression.lut", "tflm")
    idx, bits = case
    assert pack_indices(idx, bits) == lut.pack_indices(idx, bits)


@given(st.integers(1, 256))
def test_index_bits_for_is_the_smallest_width(n):
    b = index_bits_for(n)
    assert (1 << b) >= n
    assert b == 1 or (1 << (b - 1)) < n


def test_msb_first_bit_order_worked_example():
    # 3-bit indices 1, 2, 3 -> 001 010 011 (+7 zero bits) -> 0b00101001, 0b10000000
    assert pack_indices(np.array([1, 2, 3]), 3) == bytes([0b00101001, 0b10000000])
    # 1-bit: first index is the top bit of byte 0
    assert pack_indices(np.array([1, 0, 0, 0, 0, 0, 0, 1, 1]), 1) == bytes([0b10000001, 0b10000000])
    # 4-bit: high nibble first
    assert pack_indices(np.array([0xA, 0x5, 0xF]), 4) == bytes([0xA5, 0xF0])


@pytest.mark.parametrize("bits", range(MIN_INDEX_BITS, MAX_INDEX_BITS + 1))
def test_exact_sizes(bits):
    for n in (0, 1, 7, 8, 9, 63, 64, 65, 1000):
        assert packed_size_bytes(n, bits) == -(-n * bits // 8)
        assert len(pack_indices(np.zeros(n, np.uint8), bits)) == packed_size_bytes(n, bits)


def test_refuses_out_of_range_and_bad_arguments():
    with pytest.raises(ValueError):
        pack_indices(np.array([4]), 2)
    with pytest.raises(ValueError):
        pack_indices(np.array([-1]), 3)
    with pytest.raises(ValueError):
        pack_indices(np.array([0]), 0)
    with pytest.raises(ValueError):
        pack_indices(np.array([0]), 9)
    with pytest.raises(TypeError):
        pack_indices(np.array([0.5]), 3)
    with pytest.raises(ValueError):
        unpack_indices(b"\x00", 3, 3)  # 9 bits need 2 bytes
    with pytest.raises(ValueError):
        index_bits_for(0)
