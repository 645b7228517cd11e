"""Palettised weight tables: every weight tensor with few distinct int8 values as palette + packed indices.

For each weight tensor with at most 2^b distinct int8 values (typically after
``toolchain recluster``) the palette is its sorted distinct values and each
element is stored as a b-bit index into it (bit order: ``algorithms.packing``).
Outputs (``write_palettise_outputs``): ``palettes.json`` (schema ``palette``),
``palettes.npz``, ``palettes.h``/``palettes.c`` and, through ``tflm_compress``,
a TFLM LUT-compressed ``model_tflm.tflite``.
"""
from __future__ import annotations

import base64
import fnmatch
import io
import os
import zipfile
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..algorithms.packing import index_bits_for, pack_indices, packed_size_bytes, unpack_indices
from ..core.errors import InputError, ModelFormatError
from ..core.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, read_input_bytes, sha256_bytes
from ..core.schemas import validate
from ..tflite.graph import Granularity, WeightTensor, find_weight_tensors, require_int8_model, tensor_values
from ..tflite.model_io import read_model

SCHEMA_VERSION = 1
MIN_BITS = 1
MAX_BITS = 7  # TFLM's LUT compression (and the palette schema) stop at 7-bit indices
AUTO_MAX_VALUES = 1 << MAX_BITS  # without --bits, tensors with more distinct values are skipped

PALETTES_JSON = "palettes.json"
PALETTES_NPZ = "palettes.npz"
PALETTES_H = "palettes.h"
PALETTES_C = "palettes.c"
TFLM_MODEL = "model_tflm.tflite"
C_PREFIX = "palette"


class SkipReason(Enum):
    TOO_MANY_VALUES = "too-many-values"
    EXCLUDED = "excluded"


@dataclass(frozen=True)
class PalettiseConfig:
    bits: int | None = None  # None: the smallest width per tensor; tensors over 128 values are skipped
    exclude: tuple[str, ...] = ()  # fnmatch patterns on tensor names, left out of every output
    tflm: bool = True  # write model_tflm.tflite (needs the tflite-micro package)
    verify_samples: int = 0  # > 0: run both models under the TFLM interpreter and require identical outputs

    def __post_init__(self) -> None:
        if self.bits is not None and (isinstance(self.bits, bool) or not MIN_BITS <= self.bits <= MAX_BITS):
            raise InputError(f"--bits must be an integer from {MIN_BITS} to {MAX_BITS}, got {self.bits}")
        if self.verify_samples < 0:
            raise InputError("the number of verification samples must be >= 0")


@dataclass(frozen=True)
class PaletteTable:
    """One tensor as a palette of int8 values plus packed indices (row-major, MSB-first)."""

    name: str
    subgraph: int
    tensor_index: int
    op: str
    shape: tuple[int, ...]
    granularity: Granularity
    scales: np.ndarray = field(repr=False, compare=False)  # float32
    zero_points: np.ndarray = field(repr=False, compare=False)  # int64
    axis: int
    palette: np.ndarray = field(repr=False, compare=False)  # int8, sorted ascending
    index_bits: int
    packed_indices: bytes = field(repr=False)

    @property
    def element_count(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def palette_size(self) -> int:
        return int(self.palette.size)

    @property
    def raw_bytes(self) -> int:
        return self.element_count  # int8: one byte per weight

    @property
    def packed_index_bytes(self) -> int:
        return len(self.packed_indices)

    @property
    def palettised_bytes(self) -> int:
        return self.palette_size + self.packed_index_bytes

    def indices(self) -> np.ndarray:
        return unpack_indices(self.packed_indices, self.element_count, self.index_bits).reshape(self.shape)

    def decode(self) -> np.ndarray:
        """The int8 tensor the table stands for."""
        return self.palette[self.indices()].astype(np.int8)


@dataclass(frozen=True)
class SkippedTensor:
    name: str
    subgraph: int
    tensor_index: int
    op: str
    distinct_values: int
    reason: SkipReason


@dataclass(frozen=True)
class PaletteSet:
    tables: tuple[PaletteTable, ...]
    skipped: tuple[SkippedTensor, ...]
    bits_requested: int | None

    @property
    def raw_bytes(self) -> int:
        return sum(t.raw_bytes for t in self.tables)

    @property
    def palettised_bytes(self) -> int:
        return sum(t.palettised_bytes for t in self.tables)


def table_from_values(w: WeightTensor, q: np.ndarray, bits: int | None) -> PaletteTable:
    """Palette and packed indices of one int8 tensor; ``bits=None`` picks the smallest width."""
    palette, inverse = np.unique(np.asarray(q, dtype=np.int8), return_inverse=True)
    b = index_bits_for(palette.size) if bits is None else bits
    if palette.size > (1 << b):
        raise ValueError(f"{palette.size} values do not fit {b}-bit indices")
    scales = np.asarray(w.quantization.scales, dtype=np.float32)
    if scales.size and not np.all(np.isfinite(scales) & (scales > 0)):
        raise ModelFormatError(f"tensor '{w.name}' has a non-finite or non-positive quantization scale")
    zero_points = np.asarray(w.quantization.zero_points, dtype=np.int64).ravel()
    if zero_points.size != scales.size:  # one zero point may stand for all channels
        if zero_points.size > 1:
            raise ModelFormatError(f"tensor '{w.name}' has {zero_points.size} zero points for {scales.size} scales")
        zero_points = np.full(scales.size, zero_points[0] if zero_points.size else 0, dtype=np.int64)
    return PaletteTable(
        name=w.name,
        subgraph=w.subgraph,
        tensor_index=w.tensor_index,
        op=w.op,
        shape=tuple(int(d) for d in w.shape),
        granularity=w.quantization.granularity,
        scales=scales,
        zero_points=zero_points,
        axis=int(w.quantization.axis),
        palette=palette.astype(np.int8),
        index_bits=b,
        packed_indices=pack_indices(inverse.reshape(-1), b),
    )


def _too_many_message(over: list[tuple[WeightTensor, int]], bits: int) -> str:
    first, n = over[0]
    more = f" (and {len(over) - 1} more tensor(s))" if len(over) > 1 else ""
    return (
        f"tensor '{first.name}' has {n} distinct int8 values, more than the {1 << bits} that {bits}-bit indices "
        f"can address{more}: reduce them first with 'toolchain recluster --clusters {1 << bits}', "
        f"leave such tensors out with --exclude PATTERN, or omit --bits to skip them"
    )


def build_palette_set(model_bytes: bytes, config: PalettiseConfig, what: str = "model") -> PaletteSet:
    """Palette tables of every eligible weight tensor (pure: reads nothing, writes nothing)."""
    model = read_model(model_bytes)
    require_int8_model(model, what)
    tables: list[PaletteTable] = []
    skipped: list[SkippedTensor] = []
    over: list[tuple[WeightTensor, int]] = []
    limit = AUTO_MAX_VALUES if config.bits is None else 1 << config.bits
    for w in find_weight_tensors(model):
        q = tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index])
        distinct = int(np.unique(q).size)
        if any(fnmatch.fnmatchcase(w.name, p) for p in config.exclude):
            skipped.append(SkippedTensor(w.name, w.subgraph, w.tensor_index, w.op, distinct, SkipReason.EXCLUDED))
        elif distinct > limit:
            if config.bits is not None:
                over.append((w, distinct))
            else:
                skipped.append(SkippedTensor(w.name, w.subgraph, w.tensor_index, w.op, distinct, SkipReason.TOO_MANY_VALUES))
        else:
            tables.append(table_from_values(w, q, config.bits))
    if over:
        raise InputError(_too_many_message(over, config.bits))  # type: ignore[arg-type]
    if not tables:
        detail = ", ".join(f"'{s.name}' ({s.distinct_values})" for s in skipped[:3]) or "none found"
        raise InputError(
            f"{what}: no weight tensor has at most {AUTO_MAX_VALUES} distinct int8 values (distinct values: {detail}): "
            "run 'toolchain recluster' first"
        )
    return PaletteSet(tuple(tables), tuple(skipped), config.bits)


# ---------------------------------------------------------------- palettes.json / palettes.npz


def npz_prefix(i: int) -> str:
    return f"t{i}"


def palettes_document(
    pset: PaletteSet, source_name: str, source_bytes: bytes, tflm_entries: list[dict[str, Any]], tflm_summary: dict[str, Any]
) -> dict[str, Any]:
    tensors = []
    for i, (t, tflm) in enumerate(zip(pset.tables, tflm_entries)):
        tensors.append(
            {
                "name": t.name,
                "subgraph": t.subgraph,
                "tensor_index": t.tensor_index,
                "op": t.op,
                "shape": list(t.shape),
                "element_count": t.element_count,
                "quantization": {
                    "granularity": t.granularity.value,
                    "scales": [float(s) for s in t.scales],
                    "zero_points": [int(z) for z in t.zero_points],
                    "axis": t.axis,
                },
                "palette": [int(v) for v in t.palette],
                "index_bits": t.index_bits,
                "packed_indices": base64.b64encode(t.packed_indices).decode("ascii"),
                "packed_index_bytes": t.packed_index_bytes,
                "raw_bytes": t.raw_bytes,
                "palettised_bytes": t.palettised_bytes,
                "npz_prefix": npz_prefix(i),
                "c_index": i,
                "tflm": tflm,
            }
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "toolchain palettise", "version": __version__},
        "source_model": {"file": source_name, "bytes": len(source_bytes), "sha256": sha256_bytes(source_bytes)},
        "bit_order": "msb-first",
        "index_order": "row-major",
        "bits_requested": pset.bits_requested,
        "tensors": tensors,
        "skipped": [
            {
                "name": s.name,
                "subgraph": s.subgraph,
                "tensor_index": s.tensor_index,
                "op": s.op,
                "distinct_values": s.distinct_values,
                "reason": s.reason.value,
            }
            for s in pset.skipped
        ],
        "totals": {
            "tensors": len(pset.tables),
            "skipped": len(pset.skipped),
            "raw_bytes": pset.raw_bytes,
            "palettised_bytes": pset.palettised_bytes,
        },
        "tflm": tflm_summary,
    }


def npz_bytes(pset: PaletteSet) -> bytes:
    """A standard .npz (np.load reads it) written with fixed zip timestamps, so reruns are byte-identical."""
    arrays: list[tuple[str, np.ndarray]] = [("names", np.array([t.name for t in pset.tables], dtype=str))]
    for i, t in enumerate(pset.tables):
        p = npz_prefix(i)
        arrays += [
            (f"{p}_palette", t.palette.astype(np.int8)),
            (f"{p}_packed_indices", np.frombuffer(t.packed_indices, dtype=np.uint8)),
            (f"{p}_index_bits", np.array(t.index_bits, dtype=np.uint8)),
            (f"{p}_shape", np.array(t.shape, dtype=np.int64)),
            (f"{p}_scales", t.scales.astype(np.float32)),
            (f"{p}_zero_points", t.zero_points.astype(np.int64)),
            (f"{p}_axis", np.array(t.axis, dtype=np.int64)),
        ]
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, arr in arrays:
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr, order="C"), allow_pickle=False)  # keeps 0-d arrays 0-d
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    return out.getvalue()


def tables_from_document(doc: dict[str, Any], what: str) -> tuple[PaletteTable, ...]:
    """Rebuild the tables of a validated palettes.json, checking each one's internal sizes."""
    tables = []
    for entry in doc["tensors"]:
        name = entry["name"]
        try:
            packed = base64.b64decode(entry["packed_indices"], validate=True)
        except ValueError:
            raise InputError(f"{what}: tensor '{name}' has malformed packed_indices (not base64)") from None
        shape = tuple(int(d) for d in entry["shape"])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        bits = int(entry["index_bits"])
        palette = np.array(entry["palette"], dtype=np.int8)
        if len(packed) != packed_size_bytes(count, bits) or count != entry["element_count"]:
            raise InputError(f"{what}: tensor '{name}' packed indices do not match its shape and index_bits")
        if palette.size > (1 << bits):
            raise InputError(f"{what}: tensor '{name}' has a palette larger than its index_bits allow")
        q = entry["quantization"]
        if len(q["zero_points"]) != len(q["scales"]):
            raise InputError(f"{what}: tensor '{name}' has {len(q['zero_points'])} zero points for {len(q['scales'])} scales")
        table = PaletteTable(
            name=name,
            subgraph=int(entry["subgraph"]),
            tensor_index=int(entry["tensor_index"]),
            op=entry["op"],
            shape=shape,
            granularity=Granularity(q["granularity"]),
            scales=np.array(q["scales"], dtype=np.float32),
            zero_points=np.array(q["zero_points"], dtype=np.int64),
            axis=int(q["axis"]),
            palette=palette,
            index_bits=bits,
            packed_indices=packed,
        )
        if count and int(table.indices().max()) >= palette.size:
            raise InputError(f"{what}: tensor '{name}' has indices beyond its palette")
        tables.append(table)
    return tuple(tables)


def load_palettes(directory: str | os.PathLike[str]) -> tuple[dict[str, Any], tuple[PaletteTable, ...]]:
    """Read and validate ``DIR/palettes.json`` (as written by ``toolchain palettise``)."""
    import json

    path = Path(directory) / PALETTES_JSON
    raw = read_input_bytes(path, "palettes file")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"palettes file {path} is not valid JSON: {exc}") from None
    validate(doc, "palette", f"palettes file {path}")
    return doc, tables_from_document(doc, f"palettes file {path}")


# ---------------------------------------------------------------- the stage


@dataclass(frozen=True)
class PalettiseOutcome:
    palette_set: PaletteSet
    document: dict[str, Any] = field(repr=False)
    files: tuple[Path, ...]
    tflm_notes: tuple[str, ...]


def palettise_file(model_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], config: PalettiseConfig) -> PalettiseOutcome:
    """Run the stage: read the model, build the tables, write every output atomically."""
    from . import c_emit, tflm_compress

    model_path = Path(model_path)
    out = Path(out_dir)
    model_bytes = read_input_bytes(model_path, "model")
    for name in (PALETTES_JSON, PALETTES_NPZ, PALETTES_H, PALETTES_C, TFLM_MODEL):
        if (out / name).exists() and (out / name).resolve() == model_path.resolve():
            raise InputError(f"output {out / name} is the input model; choose another output directory (inputs are never modified)")
    pset = build_palette_set(model_bytes, config, what=str(model_path))

    plans = [tflm_compress.plan_for(t) for t in pset.tables]
    notes: list[str] = []
    tflm_model: bytes | None = None
    summary: dict[str, Any]
    if not config.tflm:
        plans = [tflm_compress.not_compressed(p, "TFLM model disabled (--no-tflm)") for p in plans]
        summary = {"status": "disabled"}
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
    header, source = c_emit.emit_palette_sources(
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
