"""The build history of a model: ``build/<model>/history.jsonl``, one JSON line per changed build.

Append-only: a pipeline run adds an entry only when one of its targets' results
differs from that target's latest entry (so rerunning an unchanged build leaves the
file, and the dashboards rendered from it, byte-identical, also when runs alternate
between targets). Each entry holds the time of the build (the only timestamps
anywhere in a build) and the key figures of the run's targets' models.
"""
from __future__ import annotations

import errno
import json
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.fileio import NOFOLLOW, canonical_json, read_input_bytes, sha256_bytes
from ..core.schemas import load_schema, parse_json, strict_validator
from ..core.version import __version__

HISTORY = "history.jsonl"
SCHEMA = "history"


@cache
def _validator() -> Any:
    return strict_validator(load_schema(SCHEMA))


def well_formed(e: Any) -> bool:
    """An entry as record_build writes it, by schemas/history.schema.json (the dashboards index its keys
    without further checks; target names become links, so they match the profile-name pattern)."""
    return isinstance(e, dict) and _validator().is_valid(e)


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """Every well-formed entry, oldest first: a torn line from a crash, or a line edited into something
    else (another shape, absurd nesting or integers, NaN, a lone surrogate), is left out rather than trusted."""
    p = Path(path)
    if not os.path.lexists(p):
        return []
    text = read_input_bytes(p, "build history", follow_links=False).decode("utf-8", errors="replace")
    entries = []
    for line in text.splitlines():
        try:
            e = parse_json(line.encode("utf-8"), "history line")
        except InputError:
            continue
        if well_formed(e):
            entries.append(e)
    return entries


def results_digest(clusters: int, targets: dict[str, Any]) -> str:
    return sha256_bytes(canonical_json({"clusters": clusters, "targets": targets}).encode())


@dataclass(frozen=True)
class HistoryUpdate:
    entries: tuple[dict[str, Any], ...]
    appended: bool


def latest_results(entries: list[dict[str, Any]]) -> dict[str, str]:
    """Target -> canonical JSON of (K, key figures) of the latest entry that holds it."""
    latest = {}
    for e in entries:
        for target, figures in e["targets"].items():
            latest[target] = canonical_json({"clusters": e.get("clusters"), "figures": figures})
    return latest


def record_build(path: str | Path, clusters: int, targets: dict[str, Any], now: datetime | None = None) -> HistoryUpdate:
    """Append an entry when a target's key figures (``targets``: target -> figures) or K differ from its latest entry."""
    p = Path(path)
    entries = read_history(p)
    digest = results_digest(clusters, targets)
    latest = latest_results(entries)
    if all(latest.get(t) == canonical_json({"clusters": clusters, "figures": f}) for t, f in targets.items()):
        return HistoryUpdate(tuple(entries), False)
    when = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    entry = {
        "build": (entries[-1].get("build", len(entries)) + 1) if entries else 1,
        "time_utc": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "toolchain_version": __version__,
        "clusters": clusters,
        "digest": digest,
        "targets": targets,
    }
    line = json.dumps(entry, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"
    _append(p, line)
    return HistoryUpdate(tuple(entries) + (json.loads(line),), True)


def _append(p: Path, line: str) -> None:
    """Append ``line`` (append, never rewrite: earlier entries are the team's record), never through a link."""
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_RDWR | os.O_APPEND | os.O_CREAT | NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"build history {p} is a symbolic link, which is never written through; remove it") from None
        raise InputError(f"cannot append to {p}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"build history {p} is not a regular file; remove it")
        data = line.encode("utf-8")
        if st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
            data = b"\n" + data  # a torn line from a crash stays alone on its line
        os.write(fd, data)
        os.fsync(fd)
    except OSError as exc:
        raise InputError(f"cannot append to {p}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
