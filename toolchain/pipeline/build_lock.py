"""One deploy at a time per model directory: a second one is refused at once, not left to race.

Two deploys into the same ``build/<model>/`` (say, with different K) would remove and
rewrite each other's stage outputs mid-stage. The lock is an OS-level file lock
(filelock: fcntl on POSIX), so a crashed or killed deploy never leaves it held.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from ..core.errors import InputError

LOCK_FILE = ".deploy.lock"


@contextlib.contextmanager
def model_dir_lock(mdir: Path) -> Iterator[None]:
    """Hold ``mdir``'s deploy lock for the body; InputError (exit 2) when another deploy holds it."""
    from filelock import FileLock, Timeout

    try:
        mdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create build directory {mdir}: {exc.strerror or exc}") from None
    lock = FileLock(mdir / LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise InputError(f"another deploy is using {mdir}; wait for it to finish or choose another --build-dir") from None
    except OSError as exc:
        raise InputError(f"cannot lock build directory {mdir}: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        lock.release()
