"""The build history of a model: ``build/<model>/history.jsonl``, one JSON line per changed build.

Append-only: a pipeline run adds an entry only when its results differ from the
last entry's (so rerunning an unchanged build leaves the file, and the
dashboards rendered from it, byte-identical). Each entry holds the time of the
build (the only timestamps anywhere in a build) and the key figures of every
target's three models.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.fileio import canonical_json, sha256_bytes
from ..core.version import __version__

HISTORY = "history.jsonl"


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """Every well-formed entry, oldest first (a torn last line from a crash is ignored)."""
    p = Path(path)
    if not p.is_file():
        return []
    entries = []
    for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if isinstance(e, dict) and isinstance(e.get("targets"), dict):
            entries.append(e)
    return entries


def results_digest(clusters: int, targets: dict[str, Any]) -> str:
    return sha256_bytes(canonical_json({"clusters": clusters, "targets": targets}).encode())


@dataclass(frozen=True)
class HistoryUpdate:
    entries: tuple[dict[str, Any], ...]
    appended: bool


def record_build(path: str | Path, clusters: int, targets: dict[str, Any], now: datetime | None = None) -> HistoryUpdate:
    """Append an entry when ``targets`` (target -> key figures) differ from the last entry's."""
    p = Path(path)
    entries = read_history(p)
    digest = results_digest(clusters, targets)
    if entries and entries[-1].get("digest") == digest:
        return HistoryUpdate(tuple(entries), False)
    when = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    entry = {
        "build": (entries[-1].get("build", len(entries)) + 1) if entries else 1,
        "time_utc": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "toolchain_version": __version__,
        "clusters": clusters,
        "digest": digest,
        "targets": targets,
    }
    line = json.dumps(entry, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_file() and p.stat().st_size and not p.read_bytes().endswith(b"\n"):
            line = "\n" + line  # a torn line from a crash stays alone on its line
        # append, never rewrite: earlier entries are the team's record
        with open(p, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise InputError(f"cannot append to {p}: {exc.strerror or exc}") from None
    return HistoryUpdate(tuple(entries) + (json.loads(line.strip()),), True)
