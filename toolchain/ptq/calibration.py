"""Calibration samples for a float model: the user's .npz (``x``, or one array per input name), or
synthetic inputs when asked for explicitly, and the samples of the float-vs-int8 check.

A file is split by the rewrite's rule (``toolchain.tflite.holdout.split_samples``: a seeded one in eight,
at least 32, held back; with fewer than 64 samples the check is in-sample): in ``deploy`` the rewrite that
follows splits the same file the same way, so the quantizer and the fit learn from the same samples and
neither check runs on a sample either step saw. Synthetic checks are fresh draws: random, weak evidence."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import DataError
from ..tflite.holdout import MAX_READ_BEYOND_FIT, MIN_HELD_BACK, Evidence, split_samples
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
    check_source: str  # what the check ran on, for people: "64 held-back samples of cal.npz"
    evidence: Evidence  # what the check's inputs can show (held out, in-sample, random)

    @property
    def held_out(self) -> bool:
        return self.evidence is Evidence.HELD_OUT

    def to_json(self) -> dict:
        return {"source": self.source.value, "label": self.label, "samples": len(self.rows),
                "check_samples": len(self.check_rows), "check_inputs": self.check_source,
                "check_evidence": self.evidence.value}


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
    # bounded (core.npz), and as far as the rewrite reads the same file, so that both split it alike
    arrays = read_sample_arrays(path, specs, config.calibration_samples + MAX_READ_BEYOND_FIT)
    columns = [_column(a, s, path) for a, s in zip(arrays.columns, specs)]
    n = min(len(c) for c in columns)
    if n == 0:
        raise DataError(f"calibration file {path} holds no samples")
    split = split_samples(n, config.calibration_samples, config.seed)
    check = split.check[: config.check_samples]
    _check_size(specs, len(split.fit) + (0 if split.evidence is Evidence.IN_SAMPLE else len(check)))
    rows = [[c[j] for c in columns] for j in split.fit]
    check_rows = [[c[j] for c in columns] for j in check]
    name = Path(path).name
    if split.evidence is Evidence.IN_SAMPLE:
        label = (f"{name}: {n} samples (the check reuses them: {2 * MIN_HELD_BACK} or more samples let "
                 f"{MIN_HELD_BACK} be held back)")
        return PtqCalibration(CalibrationSource.FILE, label, rows, check_rows,
                              f"{len(check_rows)} samples of {name}, the same the quantizer calibrated on",
                              Evidence.IN_SAMPLE)
    label = f"{name}: {len(rows)} of {n} samples, {split.held_back} held back for the checks"
    return PtqCalibration(CalibrationSource.FILE, label, rows, check_rows,
                          f"{len(check_rows)} held-back samples of {name}", Evidence.HELD_OUT)


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
    return PtqCalibration(CalibrationSource.SYNTHETIC, label, rows, check,
                          f"{len(check)} more random inputs (seed {config.seed})", Evidence.RANDOM)
