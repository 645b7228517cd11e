"""TFLM LUT-compressed model (model_tflm.tflite) made with tflite-micro's own compression library.

The value-table mode must follow each tensor's quantization: per-channel tables
(on the quantized axis) for per-channel weights, one table otherwise. A mismatch
is not refused by TFLM and gives silently wrong outputs (docs/palettes.md).
A tensor is left uncompressed when the compressed form would not be smaller
(small tensors with many channels) or when TFLM cannot decode its table axis.
``tflite-micro`` is an optional dependency (the ``tflm`` extra), imported lazily.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from ..algorithms.packing import packed_size_bytes
from ..core.errors import ToolError, VerificationError
from ..tflite.graph import Granularity

if TYPE_CHECKING:
    from .table import PaletteTable

# DECODE's common metadata header in front of the value tables (tflite-micro decode.py).
DCM_HEADER_BYTES = 16
INSTALL_HINT = "pip install 'ethos-palette-toolchain[tflm]' (or pass --no-tflm)"


class LutMode(Enum):
    PER_TENSOR = "per-tensor"
    PER_CHANNEL = "per-channel"


@dataclass(frozen=True)
class TflmPlan:
    """How one palettised tensor goes into the TFLM model, and what it costs there."""

    subgraph: int
    tensor_index: int
    mode: LutMode
    axis: int | None  # channel axis of the value tables (per-channel), else None
    index_bits: int
    value_table_stride: int  # entries per value table (the longest table; others are zero-padded)
    encoded_bytes: int
    ancillary_bytes: int
    compressed: bool
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "compressed": self.compressed,
            "mode": self.mode.value,
            "axis": self.axis,
            "value_table_stride": self.value_table_stride,
            "encoded_bytes": self.encoded_bytes,
            "ancillary_bytes": self.ancillary_bytes,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class TflmResult:
    model_bytes: bytes
    tflite_micro_version: str


def lut_mode_for(table: PaletteTable) -> tuple[LutMode, int | None]:
    """The value-table mode that matches the tensor's quantization."""
    if table.granularity is Granularity.PER_CHANNEL:
        return LutMode.PER_CHANNEL, table.axis
    return LutMode.PER_TENSOR, None


def _distinct_per_slice(values: np.ndarray, axis: int) -> int:
    rows = np.sort(np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1), axis=1)
    if rows.shape[1] == 0:
        return 1
    return int((1 + np.count_nonzero(np.diff(rows, axis=1), axis=1)).max())


def plan_for(table: PaletteTable) -> TflmPlan:
    mode, axis = lut_mode_for(table)
    encoded = packed_size_bytes(table.element_count, table.index_bits)
    if mode is LutMode.PER_CHANNEL:
        assert axis is not None
        stride = _distinct_per_slice(table.decode(), axis)
        tables = table.shape[axis]
    else:
        stride, tables = table.palette_size, 1
    ancillary = DCM_HEADER_BYTES + tables * stride  # int8 value tables: one byte per entry
    plan = TflmPlan(table.subgraph, table.tensor_index, mode, axis, table.index_bits, stride, encoded, ancillary, True, None)
    rank = len(table.shape)
    if mode is LutMode.PER_CHANNEL and axis not in (0, rank - 1):
        return not_compressed(plan, f"TFLM decodes per-channel tables on axis 0 or the last axis only, not axis {axis}")
    if encoded + ancillary >= table.raw_bytes:
        return not_compressed(plan, f"LUT form ({encoded + ancillary} bytes) would not be smaller than {table.raw_bytes} bytes")
    return plan


def not_compressed(plan: TflmPlan, reason: str) -> TflmPlan:
    return replace(plan, compressed=False, reason=reason)


def _tflite_micro():
    try:
        # The package exports the compress() function (its public API) under the module's name.
        from tflite_micro.tensorflow.lite.micro.compression import (
            compress,
            compressor,
            spec,
        )
    except ImportError as exc:
        raise ToolError(f"the tflite-micro package is needed for model_tflm.tflite ({exc}); {INSTALL_HINT}") from None
    return compress, compressor, spec


def tflite_micro_available() -> bool:
    from importlib.util import find_spec

    return find_spec("tflite_micro") is not None


def tflite_micro_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tflite_micro")
    except PackageNotFoundError:
        return "unknown"


def compress_model(model_bytes: bytes, tables: Sequence[PaletteTable], plans: Sequence[TflmPlan]) -> TflmResult:
    """The model with every planned tensor LUT-compressed and DECODE operators inserted."""
    compress, compressor, spec = _tflite_micro()
    specs = []
    for table, plan in zip(tables, plans):
        if not plan.compressed:
            continue
        mode = spec.PerChannel(axis=plan.axis) if plan.mode is LutMode.PER_CHANNEL else spec.PerTensor()
        specs.append(spec.Tensor(subgraph=table.subgraph, tensor=table.tensor_index,
                                 compression=[spec.LookUpTableCompression(index_bitwidth=plan.index_bits, mode=mode)]))
    # The library prints a note when a per-channel table needs fewer bits than the tensor's
    # palette, and warns about growth we have already excluded: neither is news to the user.
    with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = compress(model_bytes, specs)
        except compressor.CompressionError as exc:
            raise ToolError(f"TFLM LUT compression failed: {exc}") from None
    return TflmResult(bytes(out), tflite_micro_version())


# ---------------------------------------------------------------- verification under TFLM


def _runtime():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as exc:
        raise ToolError(f"the tflite-micro package is needed to run TFLM ({exc}); {INSTALL_HINT}") from None
    return runtime


def sample_input(details: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """A standard-normal input expressed in the tensor's own type and quantization."""
    dtype = np.dtype(details["dtype"])
    shape = tuple(int(d) for d in details["shape"])
    x = rng.standard_normal(shape)
    if np.issubdtype(dtype, np.floating):
        return x.astype(dtype)
    if not np.issubdtype(dtype, np.integer):
        return (x > 0).astype(dtype)
    q = details.get("quantization_parameters") or {}
    scales = np.asarray(q.get("scales", []), dtype=np.float64)
    zps = np.asarray(q.get("zero_points", []), dtype=np.float64)
    scale = float(scales.ravel()[0]) if scales.size else 1.0 / 32
    zp = float(zps.ravel()[0]) if zps.size else 0.0
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zp), info.min, info.max).astype(dtype)


def run_tflm(model_bytes: bytes, inputs: list[list[np.ndarray]], n_outputs: int, arena_bytes: int) -> list[list[np.ndarray]]:
    """Outputs of the TFLM interpreter for each input set."""
    runtime = _runtime()
    outputs = []
    try:
        interp = runtime.Interpreter.from_bytes(model_bytes, arena_size=arena_bytes)
        for sample in inputs:
            for i, x in enumerate(sample):
                interp.set_input(x, i)
            interp.invoke()
            outputs.append([np.array(interp.get_output(o), copy=True) for o in range(n_outputs)])
    except (RuntimeError, ValueError) as exc:
        raise ToolError(f"the TFLM interpreter cannot run this model: {exc}") from None
    return outputs


def verify_same_outputs(original: bytes, compressed: bytes, samples: int, seed: int = 0) -> None:
    """Run both models under TFLM on the same inputs; raise VerificationError unless outputs are identical."""
    from ..tflite.model_io import read_model

    runtime = _runtime()
    main = read_model(original).subgraphs[0]
    n_inputs, n_outputs = len(main.inputs), len(main.outputs)
    # The decompressed weights live in the arena: size it from the uncompressed model.
    arena = 10 * len(original) + (1 << 16)
    try:
        probe = runtime.Interpreter.from_bytes(original, arena_size=arena)
        details = [probe.get_input_details(i) for i in range(n_inputs)]
    except (RuntimeError, ValueError) as exc:
        raise ToolError(f"the TFLM interpreter cannot load this model: {exc}") from None
    rng = np.random.default_rng(seed)
    inputs = [[sample_input(d, rng) for d in details] for _ in range(samples)]
    ref = run_tflm(original, inputs, n_outputs, arena)
    new = run_tflm(compressed, inputs, n_outputs, arena)
    for s, (a, b) in enumerate(zip(ref, new)):
        if len(a) != len(b) or any(x.shape != y.shape or not np.array_equal(x, y) for x, y in zip(a, b)):
            raise VerificationError(
                f"the TFLM-compressed model's outputs differ from the original's on sample {s} "
                "(they must be identical): please report this"
            )
