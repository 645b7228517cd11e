"""Where a verb may write: every verb passes all its inputs and all its outputs (derived ones too) here first.

Inputs are never modified, so an output that *is* an input (the same file by device and
inode, or the same resolved path) is refused, whatever the spelling: ``-o x.tflite`` over
``x.tflite``, a report path equal to the model, a link to the input. A directory the verb
owns and rewrites (deploy's ``build/<model>/``) may not hold an input. Outputs go only to
regular files, never into /proc, /sys or /dev; output directories must be (or become)
writable directories. Each refusal is one line and happens before any work.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .fileio import file_kind, refuse_unsafe_output, system_dir_of

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class _Identity:
    path: Path  # as the user spelled it
    real: Path  # symbolic links resolved
    inode: tuple[int, int] | None  # (st_dev, st_ino) when it exists


def _identity(path: PathLike) -> _Identity:
    p = Path(path)
    try:
        st = os.stat(p)
        inode = (st.st_dev, st.st_ino)
    except (OSError, ValueError):
        inode = None
    return _Identity(p, Path(os.path.realpath(p)), inode)


def _same(a: _Identity, b: _Identity) -> bool:
    return a.inode == b.inode if a.inode is not None and b.inode is not None else a.real == b.real


def check_output_dir(directory: PathLike, what: str = "output directory") -> None:
    """A directory the verb writes into: an existing, writable directory, or one that can be created."""
    d = Path(directory)
    system = system_dir_of(d)
    if system is not None:
        raise InputError(f"{what} {d} is under {system}; choose an ordinary directory")
    if os.path.lexists(d) and not os.path.exists(d):
        raise InputError(f"{what} {d} is a broken symbolic link")
    if d.exists():
        mode = os.stat(d).st_mode
        if not stat.S_ISDIR(mode):
            raise InputError(f"{what} {d} is {file_kind(mode) if not stat.S_ISREG(mode) else 'a file'}, not a directory")
        if not os.access(d, os.W_OK | os.X_OK):
            raise InputError(f"{what} {d} is not writable")
        return
    parent = d.parent
    while not parent.exists() and parent != parent.parent:
        if os.path.lexists(parent):
            raise InputError(f"cannot create {what} {d}: {parent} is a broken symbolic link")
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"cannot create {what} {d}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot create {what} {d}: {parent} is not writable")


def check_paths(
    inputs: Iterable[PathLike | None] = (),
    outputs: Iterable[PathLike | None] = (),
    output_dirs: Iterable[PathLike | None] = (),
    owned_dirs: Iterable[PathLike | None] = (),
) -> None:
    """Refuse, in one line, a set of paths that would write over an input, over a non-regular file,
    into a system directory, or into a directory that cannot be written.

    ``outputs`` are files the verb writes; ``output_dirs`` directories it writes into;
    ``owned_dirs`` directories whose contents the verb manages as its own (it removes and
    replaces files there), which therefore may not hold any input.
    """
    ins = [_identity(p) for p in inputs if p is not None]
    outs = [_identity(p) for p in outputs if p is not None]
    for d in [*output_dirs, *owned_dirs]:
        if d is not None:
            check_output_dir(d)
    for d in (Path(x) for x in owned_dirs if x is not None):
        real = Path(os.path.realpath(d))
        for i in ins:
            if i.real.is_relative_to(real):
                raise InputError(f"input {i.path} lies inside {d}, which this command rewrites; move it elsewhere "
                                 "or choose another directory (inputs are never modified)")
    seen: list[_Identity] = []
    for o in outs:
        refuse_unsafe_output(o.path)
        for i in ins:
            if _same(o, i):
                what = "the input file" if o.path == i.path else f"the input file {i.path}"
                raise InputError(f"output {o.path} is {what}; choose another path (inputs are never modified)")
        for other in seen:
            if _same(o, other):
                raise InputError(f"two outputs are the same file: {other.path} and {o.path}; choose distinct paths")
        seen.append(o)
