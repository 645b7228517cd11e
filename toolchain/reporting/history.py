"""The build history of a model: ``build/<model>/history.jsonl``, one JSON line per changed build.

Append-only: a pipeline run adds an entry only when one of its targets' results
differs from that target's latest entry (so rerunning an unchanged build leaves the
file, and the dashboards rendered from it, byte-identical, also when runs alternate
between targets). Each entry holds the time of the build (the only timestamps
anywhere in a build) and the key figures of the run's targets' models.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.fileio import canonical_json, read_input_bytes, sha256_bytes
from ..core.version import __version__

HISTORY = "history.jsonl"


def _figure(v: Any) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))


def well_formed(e: Any) -> bool:
    """An entry as record_build writes it: the dashboards index these keys without further checks."""
    if not isinstance(e, dict) or not isinstance(e.get("targets"), dict):
        return False
    if not (isinstance(e.get("build"), int) and isinstance(e.get("time_utc"), str) and isinstance(e.get("clusters"), int)):
        return False
    return all(isinstance(t, str) and isinstance(models, dict) and all(
        m is None or (isinstance(m, dict) and all(_figure(x) for x in m.values())) for m in models.values())
        for t, models in e["targets"].items())


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """Every well-formed entry, oldest first: a torn line from a crash, or a line edited into
    something else (another shape, absurd nesting, NaN), is left out rather than trusted."""
    p = Path(path)
    if not os.path.lexists(p):
        return []
    text = read_input_bytes(p, "build history").decode("utf-8", errors="replace")
    entries = []
    for line in text.splitlines():
        try:
            e = json.loads(line)
        except (ValueError, RecursionError):
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
