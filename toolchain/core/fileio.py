"""File reading with clear errors and byte limits, and atomic writes (temp file + rename) over regular files only."""
from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from .errors import InputError
from .escape import short_hash

# Per-kind read limits, counted while reading (a FIFO or /proc file has no meaningful st_size).
MAX_INPUT_BYTES = 2**31  # models (the flatbuffer format stops at 2 GiB), data sets, generated documents
CONFIG_LIMIT_BYTES = 1 << 20  # configs and hardware profiles: a few KB in practice
NAME_MAX_BYTES = 255  # one path component on Linux and macOS file systems
# Outputs never go where writing has side effects (kernel interfaces, devices); /dev/shm is a plain tmpfs.
SYSTEM_DIRS = (Path("/proc"), Path("/sys"), Path("/dev"))
SYSTEM_DIR_EXCEPTIONS = (Path("/dev/shm"),)
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # open() fails (ELOOP) on a symbolic link instead of following it
_FILE_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words ("a FIFO", "a character device", ...)."""
    return next((kind for test, kind in _FILE_KINDS if test(mode)), "not a regular file")


def size_text(n: int) -> str:
    return f"{n >> 30} GiB" if n >= 1 << 30 and not n % (1 << 30) else f"{n >> 20} MiB" if not n % (1 << 20) else f"{n:,} bytes"


def require_regular_file(path: str | os.PathLike[str], what: str = "file", follow_links: bool = True) -> None:
    """A one-line InputError unless ``path`` is a regular file (read_input_bytes' checks, without reading it): for a
    file the user named that this run does not read, so that a wrong path is never passed over in silence."""
    p = Path(path)
    try:
        st = os.stat(p) if follow_links else os.lstat(p)
    except FileNotFoundError:
        if os.path.lexists(p):
            raise InputError(f"{what} is a broken symbolic link: {p}") from None
        raise InputError(f"{what} not found: {p}") from None
    except PermissionError:
        raise InputError(f"{what} is not readable (permission denied): {p}") from None
    except (OSError, ValueError) as exc:  # ENAMETOOLONG, ELOOP, ENOTDIR; ValueError: a NUL in the path
        raise InputError(f"cannot read {what} {p}: {getattr(exc, 'strerror', None) or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        raise InputError(f"{what} is a symbolic link, which is never followed here: {p}")
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{what} is a directory, expected a file: {p}")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what} is {file_kind(st.st_mode)}, not a regular file: {p}")


def read_input_bytes(path: str | os.PathLike[str], what: str = "file", limit: int = MAX_INPUT_BYTES,
                     follow_links: bool = True) -> bytes:
    """Read a user-supplied regular file of at most ``limit`` bytes; every OS failure becomes a one-line InputError.

    FIFOs, devices and sockets are refused without reading from them (a FIFO would block,
    /dev/zero never ends), and the limit is counted while reading, never taken from ``stat``.
    ``follow_links=False`` refuses a symbolic link (files of a build directory: ours, never a link).
    """
    p = Path(path)
    require_regular_file(p, what, follow_links)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
                     | (0 if follow_links else NOFOLLOW))
    except PermissionError:
        raise InputError(f"{what} is not readable (permission denied): {p}") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):  # replaced between stat and open
            raise InputError(f"{what} is {file_kind(mode)}, not a regular file: {p}")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 24, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise InputError(f"{what} is over the {size_text(limit)} limit: {p}")
        return b"".join(chunks)
    except OSError as exc:
        raise InputError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def system_dir_of(path: Path) -> Path | None:
    """The kernel or device directory (/proc, /sys, /dev) that ``path`` resolves into, if any."""
    resolved = Path(os.path.realpath(path))
    if any(resolved.is_relative_to(d) for d in SYSTEM_DIR_EXCEPTIONS):
        return None
    return next((d for d in SYSTEM_DIRS if resolved.is_relative_to(d)), None)


def refuse_unsafe_output(target: Path) -> None:
    """Outputs go only to regular files (new or existing), never into /proc, /sys or /dev."""
    system = system_dir_of(target)
    if system is not None:
        raise InputError(f"output {target} is under {system}; choose a path in an ordinary directory")
    if len(target.name.encode("utf-8", "surrogateescape")) > NAME_MAX_BYTES:
        raise InputError(f"output file name is longer than {NAME_MAX_BYTES} bytes: {target.name[:40]}...")
    try:
        st = os.stat(target)
    except OSError:
        return  # absent (or a dangling link, which the rename replaces): a new file
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"output path is a directory: {target}")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"output {target} exists and is {file_kind(st.st_mode)}; outputs replace only regular files")


def _prepare_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output directory {path.parent}: {exc.strerror or exc}") from None
    if not os.access(path.parent, os.W_OK):
        raise InputError(f"output directory is not writable: {path.parent}")


def _temp_prefix(name: str) -> str:
    # ".NAME.XXXXXXXX.tmp" must stay within NAME_MAX: long names get a short stand-in.
    return f".{name}." if len(name.encode("utf-8", "surrogateescape")) <= 200 else f".{name[:40]}-{short_hash(name)}."


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` so that ``path`` either holds all of it or is untouched."""
    target = Path(path)
    refuse_unsafe_output(target)
    _prepare_parent(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target.name), suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise InputError(f"cannot write {target}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def canonical_json(obj: Any) -> str:
    """Stable JSON (sorted keys, fixed indent, trailing newline) so reruns are byte-identical."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, canonical_json(obj))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
