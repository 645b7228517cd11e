"""Inputs to run a model on: seeded random inputs over each input's range, or samples from an .npz."""
from __future__ import annotations

import os

import numpy as np

from ..core.errors import DataError, InputError
from ..core.fileio import read_input_bytes
from ..core.npz import NpzArchive
from .interpreter import MAX_RUN_BYTES, TensorSpec, quantize_input


def random_inputs(specs: tuple[TensorSpec, ...], samples: int, seed: int) -> list[list[np.ndarray]]:
    """Seeded random inputs covering each input's representable range."""
    per_sample = sum(int(np.prod(s.shape, dtype=np.float64)) * s.dtype.itemsize for s in specs)
    drawing = max((int(np.prod(s.shape, dtype=np.float64)) * 8 for s in specs), default=0)  # int64/float64 draw
    if samples * per_sample + drawing > MAX_RUN_BYTES:
        raise InputError(
            f"{samples} random inputs of {per_sample:,} bytes each exceed the {MAX_RUN_BYTES >> 20} MiB limit "
            "of verification: check the model's input shapes, use fewer samples, or skip verification (--no-verify)"
        )
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(samples):
        row = []
        for s in specs:
            if np.issubdtype(s.dtype, np.integer):
                info = np.iinfo(s.dtype)
                row.append(rng.integers(info.min, int(info.max) + 1, size=s.shape, dtype=np.int64).astype(s.dtype))
            else:
                row.append(rng.normal(0.0, 1.0, size=s.shape).astype(s.dtype))
        batches.append(row)
    return batches


def load_calibration(path: str | os.PathLike[str], specs: tuple[TensorSpec, ...], limit: int) -> list[list[np.ndarray]]:
    """Inputs from an .npz: one array per model input (by tensor name, or the only array / x / x_test).

    Arrays hold samples along axis 0; float data is quantised with the input's scale when the input is int8.
    """
    raw = read_input_bytes(path, "calibration file")
    with NpzArchive(raw, f"calibration file {path}") as npz:  # bounded: only the samples used are inflated
        arrays = npz.names
        columns = []
        for i, s in enumerate(specs):
            if s.name in arrays:
                key = s.name
            elif len(specs) == 1:
                key = next((k for k in ("x", "x_test", "x_calibration", "arr_0") if k in arrays), None)
                if key is None and len(arrays) == 1:
                    key = next(iter(arrays))
                if key is None:
                    raise DataError(f"calibration file {path}: no array named '{s.name}', 'x' or 'x_test'")
            else:
                raise DataError(f"calibration file {path}: no array named '{s.name}' for input {i}")
            columns.append(_fit_input(_first_samples(npz, key, s, limit), s, path))
    n = min(len(c) for c in columns)
    n = min(n, limit)
    if n == 0:
        raise DataError(f"calibration file {path} holds no samples")
    return [[c[j] for c in columns] for j in range(n)]


def _first_samples(npz: NpzArchive, key: str, spec: TensorSpec, limit: int) -> np.ndarray:
    """The first ``limit`` samples of array ``key`` (its shape checked on the header: nothing else is inflated)."""
    m = npz.member(key)
    per_sample = int(np.prod(spec.shape))
    if not m.shape or per_sample == 0 or m.size % per_sample != 0 or m.dtype.kind not in "iuf":
        raise DataError(f"calibration array for input '{spec.name}' has shape {m.shape}, model expects samples of {spec.shape}")
    return npz.read(key, max_elements=min(m.size // per_sample, max(limit, 0)) * per_sample)


def _fit_input(a: np.ndarray, spec: TensorSpec, path) -> np.ndarray:
    per_sample = int(np.prod(spec.shape))
    if a.ndim == 0 or a.size % per_sample != 0 or a.dtype.kind not in "iuf":
        raise DataError(f"calibration array for input '{spec.name}' has shape {a.shape}, model expects samples of {spec.shape}")
    a = a.reshape((-1,) + spec.shape)
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise DataError(f"calibration file {path} holds NaN or infinite values")
    if np.issubdtype(spec.dtype, np.integer) and a.dtype.kind == "f" and spec.scale <= 0:
        raise DataError(f"input '{spec.name}' is integer without a scale; give integer calibration data")
    return quantize_input(a, spec) if a.dtype.kind == "f" else a.astype(spec.dtype)
