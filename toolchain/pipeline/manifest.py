"""Stage manifests: what a stage was run on, so an unchanged stage is skipped.

Each pipeline stage owns a directory and writes ``manifest.json`` there last:
the hashes of its input files, its resolved configuration, the versions of the
tools that ran, the hashes of the files it wrote and a small deterministic
``result`` (accuracies, counts). A stage is up to date when the recomputed
key (inputs, config, tool versions) equals the stored one and every output
still has its recorded hash. Keys hold content hashes, never paths or times,
so a rebuild elsewhere or later still matches, and a changed upstream output
redoes exactly the stages that read it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ..core.errors import InputError
from ..core.fileio import atomic_write_json, read_input_bytes, sha256_file
from ..core.schemas import parse_json
from ..core.version import __version__
from .source_closure import source_digest

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def file_digest(path: str | Path) -> dict[str, Any]:
    """{"file": name, "bytes": n, "sha256": hex} of an input file (the name only: keys stay path-free)."""
    p = Path(path)
    return {"file": p.name, "bytes": p.stat().st_size, "sha256": sha256_file(p)}


# The entry modules of each side's stage bodies: a stage key covers the import closure of its side's
# entry (toolchain.pipeline.source_closure), so editing any module a stage can run redoes it, and
# editing a module only the other side reaches (a training module, the dashboard...) does not.
TRAINING_STAGE_CODE = ("toolchain.pipeline.keras_stages",)
POST_TRAINING_STAGE_CODE = ("toolchain.pipeline.post_stages",)


def package_versions(*dists: str, code: tuple[str, ...] = POST_TRAINING_STAGE_CODE) -> dict[str, str]:
    """Installed versions (from package metadata: nothing is imported), plus the toolchain's own version and
    the digest of the source files the stage's ``code`` entry modules reach through imports."""
    out = {"toolchain": __version__, "toolchain_source_sha256": source_digest(code)}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


@dataclass(frozen=True)
class StageKey:
    """Everything that determines a stage's outputs."""

    stage: str
    inputs: dict[str, Any] = field(default_factory=dict)  # label -> file_digest(...) or a content hash
    config: dict[str, Any] = field(default_factory=dict)
    tool_versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "inputs": self.inputs, "config": self.config, "tool_versions": self.tool_versions}


def _normalised(obj: Any) -> Any:
    # tuples become lists in JSON: compare what was written with what would be written
    return json.loads(json.dumps(obj, sort_keys=True))


def read_manifest(stage_dir: str | Path) -> dict[str, Any] | None:
    path = Path(stage_dir) / MANIFEST
    if not os.path.lexists(path):
        return None
    try:
        data = parse_json(read_input_bytes(path, "stage manifest", follow_links=False), str(path))
    except InputError:  # damaged, tampered with, a link: the stage runs again (and begin() removes it)
        return None
    return data if isinstance(data, dict) else None


def _own_file(p: Path) -> bool:
    """A regular file of the stage directory itself: a symbolic link planted there is never read or listed."""
    return p.is_file() and not p.is_symlink()


def up_to_date(stage_dir: str | Path, key: StageKey) -> dict[str, Any] | None:
    """The stored manifest when the stage need not run again, else None."""
    d = Path(stage_dir)
    stored = read_manifest(d)
    if stored is None or stored.get("manifest_version") != MANIFEST_VERSION:
        return None
    if stored.get("key") != _normalised(key.to_json()):
        return None
    outputs = stored.get("outputs")
    if not isinstance(outputs, dict) or not outputs:
        return None
    for rel, digest in outputs.items():
        p = d / rel
        if not isinstance(rel, str) or not _own_file(p) or not p.resolve().is_relative_to(d.resolve()) \
                or sha256_file(p) != digest:
            return None
    return stored


def begin(stage_dir: str | Path) -> None:
    """Before a stage runs: drop its manifest (a crash leaves it out of date) and the files it listed.

    Only files the previous run recorded are removed, so stale outputs (say, a Vela model
    named after an earlier input) cannot linger, and nothing else in the directory is touched.
    """
    d = Path(stage_dir)
    stored = read_manifest(d)
    (d / MANIFEST).unlink(missing_ok=True)
    if stored and isinstance(stored.get("outputs"), dict):
        for rel in stored["outputs"]:
            p = d / str(rel)
            if p.is_symlink() or (p.is_file() and p.resolve().is_relative_to(d.resolve())):
                p.unlink()  # a link itself, never what it points at


def finish(stage_dir: str | Path, key: StageKey, result: dict[str, Any] | None = None,
           outputs: list[str | Path] | None = None) -> dict[str, Any]:
    """Write the manifest after a stage ran; ``outputs`` defaults to every file now in the directory."""
    d = Path(stage_dir)
    if outputs is None:
        files = sorted(
            p for p in d.rglob("*")
            if _own_file(p) and p.name != MANIFEST and not any(part.startswith(".") for part in p.relative_to(d).parts)
        )
    else:
        files = sorted(d / Path(o) for o in outputs)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "key": _normalised(key.to_json()),
        "outputs": {p.relative_to(d).as_posix(): sha256_file(p) for p in files},
        "result": _normalised(result or {}),
    }
    atomic_write_json(d / MANIFEST, manifest)
    return manifest
