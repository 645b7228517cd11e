"""Palettised weight tables: every weight tensor with few distinct int8 values as palette + packed indices.

For each weight tensor with at most 2^b distinct int8 values (typically after
``toolchain recluster``) the palette is its sorted distinct values and each
element is stored as a b-bit index into it (bit order: ``algorithms.packing``).
Outputs (``write_palettise_outputs``): ``palettes.json`` (schema ``palette``),
``palettes.npz``, ``palettes.h``/``palettes.c`` and, through ``tflm_compress``,
a TFLM LUT-compressed ``model_tflm.tflite``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import ToolError
from ..core.fileio import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_input_bytes,
    sha256_bytes,
)
from ..core.paths import check_paths
from ..core.schemas import validate
from .document import PALETTES_JSON, npz_bytes, palettes_document
from .table import PaletteSet, PalettiseConfig, build_palette_set

PALETTES_NPZ = "palettes.npz"
PALETTES_H = "palettes.h"
PALETTES_C = "palettes.c"
TFLM_MODEL = "model_tflm.tflite"
C_PREFIX = "palette"


# ---------------------------------------------------------------- the stage


@dataclass(frozen=True)
class PalettiseOutcome:
    palette_set: PaletteSet
    document: dict[str, Any] = field(repr=False)
    files: tuple[Path, ...]
    tflm_notes: tuple[str, ...]


def palettise_file(model_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], config: PalettiseConfig) -> PalettiseOutcome:
    """Run the stage: read the model, build the tables, write every output atomically."""
    from . import tflm_model as tflm_compress
    from .c_source import emit_palette_sources

    model_path = Path(model_path)
    out = Path(out_dir)
    check_paths(inputs=[model_path], outputs=[out / n for n in (PALETTES_JSON, PALETTES_NPZ, PALETTES_H, PALETTES_C,
                                                                TFLM_MODEL)], output_dirs=[out])
    model_bytes = read_input_bytes(model_path, "model")
    pset = build_palette_set(model_bytes, config, what=str(model_path))

    plans = [tflm_compress.plan_for(t) for t in pset.tables]
    notes: list[str] = []
    tflm_model: bytes | None = None
    summary: dict[str, Any]
    if not config.tflm:
        plans = [tflm_compress.not_compressed(p, "TFLM model disabled (--no-tflm)") for p in plans]
        summary = {"status": "disabled"}
    elif not tflm_compress.tflite_micro_available():
        if config.verify_samples:  # a check that cannot run must not pass
            raise ToolError("--verify runs the TFLM interpreter, and the tflite-micro package is not installed: "
                            "pip install 'ethos-palette-toolchain[tflm]'")
        # the core install has no tflite-micro: everything else is still written, and palettes.json says why not
        plans = [tflm_compress.not_compressed(p, "tflite-micro is not installed") for p in plans]
        summary = {"status": "unavailable"}
        notes.append(f"model_tflm.tflite not written: the tflite-micro package is not installed ({tflm_compress.INSTALL_HINT})")
    elif not any(p.compressed for p in plans):
        summary = {"status": "nothing-to-compress"}
        notes.append("no tensor gains from TFLM LUT compression: model_tflm.tflite not written")
    else:
        result = tflm_compress.compress_model(model_bytes, pset.tables, plans)
        tflm_model = result.model_bytes
        summary = {
            "status": "written",
            "file": TFLM_MODEL,
            "bytes": len(tflm_model),
            "sha256": sha256_bytes(tflm_model),
            "compressed_tensors": sum(p.compressed for p in plans),
            "tflite_micro_version": result.tflite_micro_version,
            "verified": False,
        }
        if config.verify_samples:
            tflm_compress.verify_same_outputs(model_bytes, tflm_model, config.verify_samples)
            summary["verified"] = True
            summary["verify_samples"] = config.verify_samples

    doc = palettes_document(pset, model_path.name, model_bytes, [p.to_json() for p in plans], summary)
    validate(doc, "palette", "palettes.json (internal)")
    header, source = emit_palette_sources(
        pset.tables, header_name=PALETTES_H, prefix=C_PREFIX,
        origin=f"`toolchain palettise` from {model_path.name} (sha256 {sha256_bytes(model_bytes)})",
    )
    files = [
        atomic_write_json(out / PALETTES_JSON, doc),
        atomic_write_bytes(out / PALETTES_NPZ, npz_bytes(pset)),
        atomic_write_text(out / PALETTES_H, header),
        atomic_write_text(out / PALETTES_C, source),
    ]
    stale = out / TFLM_MODEL
    if tflm_model is not None:
        files.append(atomic_write_bytes(stale, tflm_model))
    elif stale.is_file():
        stale.unlink()  # a model from an earlier run would no longer match palettes.json
    return PalettiseOutcome(pset, doc, tuple(files), tuple(notes))
