"""Gated outputs: a candidate that fails its gate never replaces the last good output.

A gate (top-1 agreement below ``--min-top1-agreement``: exit 5; a budget missed: exit 4) that fails after
the output was written would leave the rejected candidate where the good one was, and a make-style
build would then take it for an up-to-date result. Here the gate runs first: on success the outputs
are written (and a rejected candidate of an earlier run beside them is removed); on failure they are
written beside the real names as ``OUT.rejected.tflite`` / ``OUT.rejected.json``, the files at the
real names stay as they were, and the error says both. ``toolchain recluster`` and the deploy
pipeline's gated stage (``toolchain.pipeline.stage_runner``) both go through ``write_unless_rejected``.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import BudgetExceeded, ToolchainError, VerificationError
from .fileio import atomic_write_bytes

REJECTED_TAG = "rejected"
GATE_ERRORS = (VerificationError, BudgetExceeded)  # what a gate raises; anything else is a plain failure


def rejected_path(path: str | os.PathLike[str]) -> Path:
    """Where a rejected candidate of ``path`` goes: ``OUT.tflite`` -> ``OUT.rejected.tflite``."""
    p = Path(path)
    return p.with_name(f"{p.stem}.{REJECTED_TAG}{p.suffix}")


@dataclass(frozen=True)
class GatedOutcome:
    written: tuple[Path, ...]  # the real paths, or the rejected ones when the gate failed
    rejection: ToolchainError | None = None  # the gate's error
    kept: tuple[Path, ...] = ()  # real paths that already held an output and were left as they were
    missing: tuple[Path, ...] = ()  # real paths that hold nothing (no earlier good output)

    @property
    def rejected(self) -> bool:
        return self.rejection is not None

    def note(self) -> str:
        """'rejected candidate written to A and B; C kept (the last good output)'."""
        parts = ["rejected candidate written to " + " and ".join(str(p) for p in self.written)]
        if self.kept:
            parts.append(", ".join(str(p) for p in self.kept) + " kept (the last good output)")
        if self.missing:
            parts.append(", ".join(str(p) for p in self.missing) + " not written")
        return "; ".join(parts)

    def raise_if_rejected(self) -> None:
        """The gate's error (same type, same exit code), with where the candidate went and what was kept."""
        if self.rejection is not None:
            raise type(self.rejection)(f"{self.rejection}; {self.note()}") from None


def write_unless_rejected(outputs: Mapping[Path, bytes], gate: Callable[[], None],
                          prepare: Callable[[], None] = lambda: None) -> GatedOutcome:
    """Write ``outputs`` (path -> bytes, atomically) when ``gate()`` passes, else under the rejected names.

    ``prepare`` runs after the gate passed, before anything is written (a pipeline stage drops its manifest
    there). Nothing is raised for a failed gate: the caller reports, then calls ``raise_if_rejected``.
    """
    try:
        gate()
    except GATE_ERRORS as exc:
        written = tuple(atomic_write_bytes(rejected_path(p), data) for p, data in outputs.items())
        kept = tuple(Path(p) for p in outputs if Path(p).is_file())
        missing = tuple(Path(p) for p in outputs if not Path(p).is_file())
        return GatedOutcome(written, exc, kept, missing)
    prepare()
    written = tuple(atomic_write_bytes(p, data) for p, data in outputs.items())
    clear_rejected(outputs)
    return GatedOutcome(written)


def clear_rejected(paths) -> None:
    """Remove the rejected candidates beside ``paths``: a good output there supersedes them."""
    for p in paths:
        stale = rejected_path(p)
        try:
            if stale.is_symlink() or stale.is_file():
                stale.unlink()
        except OSError:  # a name too long to exist (the output's name is at the limit): nothing to clear
            continue
