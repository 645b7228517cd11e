"""Bit packing of palette indices (pure numpy; knows nothing of models).

Bit order (the same as TFLM's LUT compression, so the two agree byte for byte):
the indices are written one after another, each as ``bits`` bits, most
significant bit first, into a stream that fills every byte from its most
significant bit (bit 7) down to bit 0. Index ``i`` therefore occupies stream
bits ``i*bits .. i*bits+bits-1``, where stream bit ``k`` is bit ``7 - k % 8`` of
byte ``k // 8``. The unused low bits of the last byte are zero. The packed size
of ``n`` indices is exactly ``ceil(n * bits / 8)`` bytes.
"""
from __future__ import annotations

import numpy as np

MIN_INDEX_BITS = 1
MAX_INDEX_BITS = 8


def _check_bits(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"bits must be an integer, got {type(bits).__name__}")
    bits = int(bits)
    if not MIN_INDEX_BITS <= bits <= MAX_INDEX_BITS:
        raise ValueError(f"bits must be in {MIN_INDEX_BITS}..{MAX_INDEX_BITS}, got {bits}")
    return bits


def index_bits_for(palette_size: int) -> int:
    """The fewest bits (at least 1) that can address ``palette_size`` entries."""
    if palette_size < 1:
        raise ValueError(f"a palette needs at least one entry, got {palette_size}")
    return max(MIN_INDEX_BITS, int(palette_size - 1).bit_length())


def packed_size_bytes(count: int, bits: int) -> int:
    """Bytes that ``count`` indices of ``bits`` bits take once packed."""
    bits = _check_bits(bits)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    return (int(count) * bits + 7) // 8


def pack_indices(indices: np.ndarray, bits: int) -> bytes:
    """Pack non-negative integers below ``2**bits`` (flattened in C order); see the module doc."""
    bits = _check_bits(bits)
    flat = np.asarray(indices).ravel()
    if flat.size == 0:
        return b""
    if not np.issubdtype(flat.dtype, np.integer):
        raise TypeError(f"indices must be integers, got {flat.dtype}")
    if int(flat.min()) < 0 or int(flat.max()) >= (1 << bits):
        raise ValueError(f"indices must lie in 0..{(1 << bits) - 1} for {bits}-bit packing")
    values = flat.astype(np.uint16)
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint16)
    stream = ((values[:, None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(stream.ravel()).tobytes()  # packbits is MSB-first and zero-pads the tail


def unpack_indices(data: bytes | np.ndarray, count: int, bits: int) -> np.ndarray:
    """The first ``count`` indices of a packed stream, as uint8 (inverse of ``pack_indices``)."""
    bits = _check_bits(bits)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    raw = np.frombuffer(bytes(data), dtype=np.uint8) if not isinstance(data, np.ndarray) else data.astype(np.uint8).ravel()
    need = packed_size_bytes(count, bits)
    if raw.size < need:
        raise ValueError(f"{count} indices of {bits} bits need {need} bytes, got {raw.size}")
    if count == 0:
        return np.zeros(0, dtype=np.uint8)
    stream = np.unpackbits(raw[:need])[: count * bits].reshape(count, bits).astype(np.uint16)
    weights = (1 << np.arange(bits - 1, -1, -1, dtype=np.uint16)).astype(np.uint16)
    return (stream * weights).sum(axis=1).astype(np.uint8)
