"""Palette tables: a weight tensor with few distinct int8 values as palette + packed indices.

For each weight tensor with at most 2^b distinct int8 values (typically after
``toolchain recluster``) the palette is its sorted distinct values and each element is
stored as a b-bit index into it (bit order: ``algorithms.packing``)."""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from ..algorithms.packing import index_bits_for, pack_indices, unpack_indices
from ..core.errors import InputError, ModelFormatError
from ..tflite.graph import (
    Granularity,
    WeightTensor,
    find_weight_tensors,
    require_int8_model,
    tensor_values,
)
from ..tflite.model_io import read_model

MIN_BITS = 1
MAX_BITS = 7  # TFLM's LUT compression (and the palette schema) stop at 7-bit indices
AUTO_MAX_VALUES = 1 << MAX_BITS  # without --bits, tensors with more distinct values are skipped


class TableSkipReason(Enum):
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
    reason: TableSkipReason


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
            skipped.append(SkippedTensor(w.name, w.subgraph, w.tensor_index, w.op, distinct, TableSkipReason.EXCLUDED))
        elif distinct > limit:
            if config.bits is not None:
                over.append((w, distinct))
            else:
                skipped.append(SkippedTensor(w.name, w.subgraph, w.tensor_index, w.op, distinct, TableSkipReason.TOO_MANY_VALUES))
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
