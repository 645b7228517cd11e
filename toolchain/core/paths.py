"""Where a verb may write: every verb passes all its inputs and all its outputs (derived ones too) here first.

Inputs are never modified, so an output that *is* an input (the same file by device and
inode, or the same resolved path) is refused, whatever the spelling: ``-o x.tflite`` over
``x.tflite``, a report path equal to the model, a link to the input. A directory the verb
owns and rewrites (deploy's ``build/<model>/``) may not hold an input. Outputs go only to
regular files, never into /proc, /sys or /dev; output directories must be (or become)
writable directories. Each refusal is one line and happens before any work.

Directories a verb owns (deploy's ``build/<model>/``, the build ``toolchain report`` re-renders)
are never written through a symbolic link: a restored CI cache or an unpacked archive can plant
``build/model/recluster -> ../../models`` (deploy would write its output over its own input) or
``history.jsonl -> ~/.bashrc`` (a line appended through the link). ``refuse_links`` finds any link
in such a tree before the verb starts; ``real_dir`` creates a stage directory component by
component (``lstat``, never following); files are opened with ``O_NOFOLLOW`` (fileio).
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


def first_link(root: PathLike, include_root: bool = True) -> Path | None:
    """The first symbolic link at (with ``include_root``) or below ``root`` (listed, never followed), or None."""
    r = Path(root)
    if include_root and os.path.islink(r):
        return r
    if not r.is_dir():
        return None
    for dirpath, dirnames, filenames in os.walk(r, followlinks=False):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            p = Path(dirpath) / name
            if os.path.islink(p):
                return p
    return None


def refuse_links(root: PathLike, what: str = "this command", include_root: bool = True) -> None:
    """InputError (exit 2) when ``root`` (with ``include_root``: a directory the user did not name) or anything
    below it is a symbolic link: ``what`` writes there."""
    link = first_link(root, include_root)
    if link is not None:
        raise InputError(f"{link} is a symbolic link inside {root}, which {what} writes: links there are never "
                         "followed (a restored cache or an unpacked archive?); remove it")


def real_dir(root: PathLike, directory: PathLike) -> Path:
    """Create ``directory`` below ``root`` one component at a time, refusing a symbolic link or a file on the way
    (``mkdir(parents=True)`` would follow a planted link and write wherever it points)."""
    base, d = Path(root), Path(directory)
    try:
        rel = d.relative_to(base)
    except ValueError:
        rel = None
    if rel is None:  # not under root: nothing of ours to protect
        d.mkdir(parents=True, exist_ok=True)
        return d
    base.mkdir(parents=True, exist_ok=True)  # the user's directory (--build-dir): theirs to be a link
    current = base
    for part in rel.parts:
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            try:
                os.mkdir(current)
            except FileExistsError:
                pass
            st = os.lstat(current)
        if stat.S_ISLNK(st.st_mode):
            raise InputError(f"{current} is a symbolic link inside {base}: links there are never followed; remove it")
        if not stat.S_ISDIR(st.st_mode):
            raise InputError(f"{current} is {file_kind(st.st_mode) if not stat.S_ISREG(st.st_mode) else 'a file'}, "
                             "where a directory goes; remove it")
    return d


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
