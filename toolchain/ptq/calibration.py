"""Calibration samples for a float model: the user's .npz (``x``, or one array per input name), or
synthetic inputs when asked for explicitly. The samples after the calibration ones are held back for
the float-vs-int8 check; without any, the check reuses the calibration samples and says so.

This is the quantizer's own split, not the rewrite's (``toolchain.rewrite.calibration_set``, a sibling
package this one cannot import): the quantizer takes the first samples and checks on the next few, the
rewrite that follows in deploy splits the same file again for its own fit and check."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import DataError
from ..tflite.inputs import read_sample_arrays
from ..tflite.interpreter import MAX_RUN_BYTES, TensorSpec
from .config import SYNTHETIC_RANGE, CalibrationSource, PtqConfig

Rows = list[list[np.ndarray]]  # one list per sample, one array per model input


@dataclass(frozen=True)
class PtqCalibration:
    """The samples ai-edge-quantizer calibrates on and those of its float-vs-int8 check."""

    source: CalibrationSource
    label: str  # what the reports print: the file and counts, or "synthetic: ..."
    rows: Rows = field(repr=False, compare=False)  # the samples the quantizer calibrates on
    check_rows: Rows = field(repr=False, compare=False)  # the samples of the float-vs-int8 check
    held_out: bool  # check_rows are not among rows

    def to_json(self) -> dict:
        return {"source": self.source.value, "label": self.label, "samples": len(self.rows),
                "check_samples": len(self.check_rows), "check_held_out": self.held_out}


def _column(a: np.ndarray, spec: TensorSpec, path) -> np.ndarray:
    per_sample = int(np.prod(spec.shape, dtype=np.int64))
    if a.dtype.kind != "f":
        raise DataError(f"calibration array for input '{spec.name}' holds {a.dtype} values; this float model "
                        f"expects float samples of shape {list(spec.shape)} in the range the model was trained on")
    if a.ndim < 2 or int(np.prod(a.shape[1:], dtype=np.int64)) != per_sample:  # samples along axis 0
        raise DataError(f"calibration array for input '{spec.name}' has shape {list(a.shape)}; the model expects "
                        f"samples of shape {list(spec.shape)} (N x {list(spec.shape[1:] or spec.shape)})")
    a = a.reshape((-1, *spec.shape))
    if not np.all(np.isfinite(a)):
        raise DataError(f"calibration file {path}: input '{spec.name}' holds NaN or infinite values")
    return a.astype(spec.dtype)


def _check_size(specs: tuple[TensorSpec, ...], samples: int) -> None:
    need = samples * sum(int(np.prod(s.shape, dtype=np.float64)) * s.dtype.itemsize for s in specs)
    if need > MAX_RUN_BYTES:
        raise DataError(f"{samples} calibration samples take {need / 2**20:,.0f} MiB, over the "
                        f"{MAX_RUN_BYTES >> 20} MiB limit: use fewer (--calibration-samples)")


def calibration_set_from_file(path: str | os.PathLike[str], specs: tuple[TensorSpec, ...],
                              config: PtqConfig) -> PtqCalibration:
    # bounded (core.npz): only the samples calibrated on and checked on are inflated
    arrays = read_sample_arrays(path, specs, config.calibration_samples + config.check_samples)
    columns = [_column(a, s, path) for a, s in zip(arrays.columns, specs)]
    n = min(len(c) for c in columns)
    if n == 0:
        raise DataError(f"calibration file {path} holds no samples")
    used = min(n, config.calibration_samples)
    _check_size(specs, used + min(config.check_samples, n))
    rows = [[c[j] for c in columns] for j in range(used)]
    held = [[c[j] for c in columns] for j in range(used, min(n, used + config.check_samples))]
    name = Path(path).name
    if held:
        label = f"{name}: {used} samples, {len(held)} more held back for the check"
        return PtqCalibration(CalibrationSource.FILE, label, rows, held, True)
    label = f"{name}: {used} samples (the check reuses them: none held back)"
    return PtqCalibration(CalibrationSource.FILE, label, rows, rows[: config.check_samples], False)


def synthetic_calibration(specs: tuple[TensorSpec, ...], config: PtqConfig) -> PtqCalibration:
    lo, hi = SYNTHETIC_RANGE
    _check_size(specs, config.synthetic_samples + config.check_samples)
    rng = np.random.default_rng(config.seed)

    def draw(n: int) -> Rows:
        return [[rng.uniform(lo, hi, size=s.shape).astype(s.dtype) for s in specs] for _ in range(n)]

    rows = draw(config.synthetic_samples)
    check = draw(config.check_samples)
    label = (f"synthetic: {len(rows)} seeded uniform random inputs in [{lo:g}, {hi:g}] (seed {config.seed}), "
             "not real data: activation ranges and fidelity figures are not those of real inputs")
    return PtqCalibration(CalibrationSource.SYNTHETIC, label, rows, check, True)
