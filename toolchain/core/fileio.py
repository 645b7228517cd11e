"""File reading with clear errors, and atomic writes (temp file + rename)."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import InputError

# Refuse inputs above this size before reading them into memory: the flatbuffer
# format itself is limited to 2 GiB.
MAX_INPUT_BYTES = 2**31


def read_input_bytes(path: str | os.PathLike[str], what: str = "file") -> bytes:
    """Read a user-supplied file, turning every OS failure into a one-line InputError."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} not found: {p}")
    if p.is_dir():
        raise InputError(f"{what} is a directory, expected a file: {p}")
    try:
        size = p.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise InputError(f"{what} is {size} bytes, over the 2 GiB limit: {p}")
        return p.read_bytes()
    except PermissionError:
        raise InputError(f"{what} is not readable (permission denied): {p}") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {p}: {exc.strerror or exc}") from None


def _prepare_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output directory {path.parent}: {exc.strerror or exc}") from None
    if not os.access(path.parent, os.W_OK):
        raise InputError(f"output directory is not writable: {path.parent}")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` so that ``path`` either holds all of it or is untouched."""
    target = Path(path)
    if target.is_dir():
        raise InputError(f"output path is a directory: {target}")
    _prepare_parent(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
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
