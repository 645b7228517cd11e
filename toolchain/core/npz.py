"""Reading .npz archives as data: only the arrays asked for, each bounded before it is inflated.

An .npz is a zip of .npy files, and zip members are compressed: a 1 MB file can hold a
member that inflates to gigabytes (zeros deflate about 1,000 to 1), and ``np.load(...)[k]``
inflates a whole member, then the caller copies it again. Here each member's header (its
shape and dtype) is read first, a few hundred bytes, and the bytes it declares are checked
against a limit before anything is allocated; the data is then read straight into one
array, counting what actually comes out (a member may hold more or less than its header
says); members nobody asks for are never inflated, and a caller that needs only the first
samples reads only those. Integer and float data can be converted to float32 while it is
read, a chunk at a time, so a float64 member never exists as a whole float64 copy. Object
arrays (pickles: code) are refused. Every failure, a corrupt deflate stream (``zlib.error``)
and a failed allocation (``MemoryError``) included, is one typed error naming the file,
the array and, for memory, the size.
"""
from __future__ import annotations

import io
import math
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import Self

import numpy as np

from .errors import DataError, InputError
from .fileio import size_text

MAX_ARRAY_BYTES = 1 << 32  # one array as stored (4 GiB): far beyond a calibration or training set used here
MAX_TOTAL_BYTES = 1 << 32  # everything one archive hands out, after any conversion
_CHUNK_BYTES = 1 << 22  # read (and convert) 4 MiB at a time
_HEADER_LIMIT = 10_000  # numpy's own limit on an .npy header
# what a corrupt or hostile archive makes zipfile, zlib and numpy's header parser raise
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, struct.error,
                NotImplementedError, RuntimeError, SyntaxError, TypeError)


@dataclass(frozen=True)
class NpzMember:
    """One array of an archive, as its .npy header declares it (nothing inflated beyond the header)."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize


class NpzArchive:
    """The arrays of an .npz held in memory (``raw``), read one at a time on request.

    ``what`` names the file in messages ("calibration file calib.npz"); ``error`` is the
    error type raised (DataError for data sets); ``limit_bytes`` bounds one array as stored,
    ``total_limit_bytes`` everything read from the archive.
    """

    def __init__(self, raw: bytes, what: str, error: type[InputError] = DataError,
                 limit_bytes: int = MAX_ARRAY_BYTES, total_limit_bytes: int = MAX_TOTAL_BYTES) -> None:
        self.what, self.error = what, error
        self.limit_bytes, self.total_limit_bytes = limit_bytes, total_limit_bytes
        self._read_bytes = 0
        self._members: dict[str, NpzMember] = {}
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(raw))
            infos = self._zip.infolist()
        except _READ_ERRORS as exc:
            raise self._unreadable(exc) from None
        # np.savez names each member NAME.npy; np.load lists it as NAME
        self._infos = {i.filename[:-4]: i for i in infos if i.filename.endswith(".npy") and not i.is_dir()}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._zip.close()

    @property
    def names(self) -> tuple[str, ...]:
        """The arrays in the archive, in file order."""
        return tuple(self._infos)

    def _unreadable(self, exc: BaseException) -> InputError:
        detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        kind = "zlib.error" if isinstance(exc, zlib.error) else type(exc).__name__
        return self.error(f"{self.what} is not a readable .npz ({kind}{': ' + detail if detail else ''})")

    def member(self, name: str) -> NpzMember:
        """The shape and dtype ``name`` declares; refuses object arrays and arrays over the limit."""
        if name not in self._members:
            info = self._infos.get(name)
            if info is None:
                raise self.error(f"{self.what} holds no array '{name}'")
            try:
                with self._zip.open(info) as fh:
                    member = self._header(name, fh)
            except InputError:
                raise
            except _READ_ERRORS as exc:
                raise self._unreadable(exc) from None
            self._members[name] = member
        return self._members[name]

    def _header(self, name: str, fh) -> NpzMember:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh, max_header_size=_HEADER_LIMIT)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh, max_header_size=_HEADER_LIMIT)
        else:
            raise self.error(f"{self.what}: array '{name}' uses .npy format version {version}; 1.0 and 2.0 are read")
        if dtype.hasobject:
            raise self.error(f"{self.what} holds object arrays (pickled data is refused): '{name}'")
        if dtype.itemsize == 0 or dtype.subdtype is not None:  # np.save writes neither; counting them means nothing
            raise self.error(f"{self.what}: array '{name}' has an unsupported dtype {dtype}")
        member = NpzMember(name, tuple(int(d) for d in shape), dtype, bool(fortran))
        if member.nbytes > self.limit_bytes:
            raise self.error(f"{self.what}: array '{name}' declares shape {member.shape} of {dtype}, "
                             f"{size_text(member.nbytes)}, over the {size_text(self.limit_bytes)} limit for one array")
        return member

    def read(self, name: str, max_elements: int | None = None, to_float32: bool = False) -> np.ndarray:
        """Array ``name``: whole, or its first ``max_elements`` elements in C order (flat); with ``to_float32``,
        integer and float data become float32 while being read (other dtypes are returned as stored)."""
        m = self.member(name)
        out_dtype = np.dtype(np.float32) if to_float32 and m.dtype.kind in "iuf" else m.dtype
        count = m.size if max_elements is None or m.fortran_order else min(m.size, max(int(max_elements), 0))
        out_bytes = count * out_dtype.itemsize
        if self._read_bytes + out_bytes > self.total_limit_bytes:
            raise self.error(f"{self.what}: reading array '{name}' ({size_text(out_bytes)}) would take more than "
                             f"the {size_text(self.total_limit_bytes)} one archive may hand out")
        try:
            out = np.empty(count, dtype=out_dtype)
        except MemoryError:
            raise self.error(f"{self.what}: array '{name}' needs {size_text(out_bytes)} "
                             f"(shape {m.shape} of {out_dtype}), more memory than this process can get") from None
        try:
            with self._zip.open(self._infos[name]) as fh:
                self._header(name, fh)
                self._fill(fh, m, out, whole=count == m.size)
        except InputError:
            raise
        except MemoryError:
            raise self.error(f"{self.what}: reading array '{name}' ran out of memory") from None
        except _READ_ERRORS as exc:
            raise self._unreadable(exc) from None
        self._read_bytes += out_bytes
        if count != m.size:
            return out
        return out.reshape(m.shape, order="F" if m.fortran_order else "C")

    def _fill(self, fh, m: NpzMember, out: np.ndarray, whole: bool) -> None:
        """Read ``out.size`` elements of ``m`` from ``fh`` into ``out``, converting chunk by chunk."""
        item = m.dtype.itemsize
        per_chunk = max(_CHUNK_BYTES // max(item, 1), 1)
        done = 0
        while done < out.size:
            n = min(per_chunk, out.size - done)
            chunk = fh.read(n * item)
            if len(chunk) != n * item:
                raise self.error(f"{self.what}: array '{m.name}' holds less data than its shape {m.shape} declares")
            out[done:done + n] = np.frombuffer(chunk, dtype=m.dtype)
            done += n
        if whole and fh.read(1):
            raise self.error(f"{self.what}: array '{m.name}' holds more data than its shape {m.shape} declares")
