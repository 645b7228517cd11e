"""palettes.json (schema ``palette``) and palettes.npz: writing them, and reading palettes.json back into tables."""
from __future__ import annotations

import base64
import io
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..algorithms.packing import packed_size_bytes
from ..core.errors import InputError
from ..core.fileio import read_input_bytes, sha256_bytes
from ..core.schemas import parse_json, validate
from ..core.version import __version__
from ..tflite.graph import Granularity
from .table import PaletteSet, PaletteTable

SCHEMA_VERSION = 1

PALETTES_JSON = "palettes.json"


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
    path = Path(directory) / PALETTES_JSON
    doc = parse_json(read_input_bytes(path, "palettes file"), f"palettes file {path}")
    validate(doc, "palette", f"palettes file {path}")
    return doc, tables_from_document(doc, f"palettes file {path}")
