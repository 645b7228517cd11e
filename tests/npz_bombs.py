"""Small .npz files whose members inflate to gigabytes ("decompression bombs"), written in well under a second.

Deflate with a full flush resets the compressor, so one compressed chunk of zeros can be
repeated to describe any multiple of its length; the zip (zip64) is written by hand.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np

CHUNK = 1 << 24  # 16 MiB of zeros per repeated compressed block


def _npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _deflated(head: bytes, zeros: int, corrupt: bool = False) -> tuple[bytes, int]:
    """Raw deflate of ``head`` + ``zeros`` zero bytes, and the CRC-32 of that content."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [c.compress(head), c.flush(zlib.Z_FULL_FLUSH)]
    crc = zlib.crc32(head)
    zero = bytes(CHUNK)
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    full = block.compress(zero) + block.flush(zlib.Z_FULL_FLUSH)  # the same bytes for every 16 MiB of zeros
    n, rest = divmod(zeros, CHUNK)
    out.append(full * n)
    for _ in range(n):
        crc = zlib.crc32(zero, crc)
    out.append(c.compress(bytes(rest)) + c.flush())
    crc = zlib.crc32(bytes(rest), crc)
    data = b"".join(out)
    if corrupt:  # an invalid block type right after the header: zlib.error, not a CRC mismatch
        data = b"\x07" + data[1:]  # BFINAL=1, BTYPE=11 (reserved)
    return data, crc


def bomb_npz(members: dict[str, tuple[tuple[int, ...], str]], corrupt: str | None = None,
             arrays: dict[str, np.ndarray] | None = None) -> bytes:
    """An .npz whose ``members`` (name -> (shape, dtype)) hold zeros; ``arrays`` are stored as they are."""
    entries = []
    for name, (shape, dtype) in members.items():
        head = _npy_header(shape, dtype)
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        data, crc = _deflated(head, size, corrupt == name)
        entries.append((name + ".npy", data, crc, len(head) + size, 8))
    for name, a in (arrays or {}).items():
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
        raw = buf.getvalue()
        entries.append((name + ".npy", raw, zlib.crc32(raw), len(raw), 0))
    out = io.BytesIO()
    central = []
    for fname, data, crc, size, method in entries:
        offset = out.tell()
        name = fname.encode()
        extra = struct.pack("<HHQQ", 1, 16, size, len(data))  # zip64: sizes
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, method, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                              len(name), len(extra)) + name + extra)
        out.write(data)
        cextra = struct.pack("<HHQQQ", 1, 24, size, len(data), offset)
        central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, method, 0, 0x21, crc, 0xFFFFFFFF,
                                   0xFFFFFFFF, len(name), len(cextra), 0, 0, 0, 0, 0xFFFFFFFF) + name + cextra)
    cd_offset = out.tell()
    cd = b"".join(central)
    out.write(cd)
    z64_offset = out.tell()
    out.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, len(entries), len(entries), len(cd), cd_offset))
    out.write(struct.pack("<IIQI", 0x07064B50, 0, z64_offset, 1))
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0))
    return out.getvalue()
