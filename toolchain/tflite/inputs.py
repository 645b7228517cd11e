"""Inputs to run a model on: seeded random inputs over each input's range, or samples from an .npz.

The .npz format (docs/data.md): one array per model input, named after the input tensor (or ``x``,
``x_test``, ``x_calibration``, the only array, for a one-input model), samples along axis 0; optional
integer labels ``y``. Float data is the model's float input (quantised with the input's scale when the
input is quantized); integer data only the input's own quantized values, in its own dtype. The file is
read through ``core.npz`` (bounded): only the arrays used, each checked on its header before it is inflated.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

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


OUT_OF_RANGE_WARN_FRACTION = 0.01  # float data outside the input's quantization range: warn above this share
LABEL_KEYS = ("y", "y_test", "y_calibration", "labels")


@dataclass(frozen=True)
class InputSamples:
    """Samples of an .npz ready to run: one list of input arrays per sample, in file order."""

    rows: list = field(repr=False, compare=False)
    labels: np.ndarray | None = field(default=None, repr=False, compare=False)  # integer class per sample
    warnings: tuple[str, ...] = ()  # e.g. float data outside the input's quantization range


@dataclass(frozen=True)
class SampleArrays:
    """The arrays of an .npz one model needs, as stored: one per input (its first samples only) and the labels."""

    columns: list = field(repr=False, compare=False)  # one array per model input, samples along axis 0
    labels: np.ndarray | None = field(default=None, repr=False, compare=False)  # as stored (first samples only)
    label_key: str | None = None


def read_sample_arrays(path: str | os.PathLike[str], specs: tuple[TensorSpec, ...],
                       limit: int | None = None) -> SampleArrays:
    """The array of each model input and the labels, read bounded (core.npz): only these members are inflated,
    each checked on its header first, and with ``limit`` only the first ``limit`` samples of each."""
    raw = read_input_bytes(path, "calibration file")
    with NpzArchive(raw, f"calibration file {path}") as npz:
        columns = [_first_samples(npz, calibration_key(npz.names, s, i, len(specs), path), s, limit)
                   for i, s in enumerate(specs)]
        key = next((k for k in LABEL_KEYS if k in npz.names), None)
        if key is None:
            return SampleArrays(columns)
        m = npz.member(key)
        if m.dtype.kind not in "iu" or len(m.shape) != 1:
            raise DataError(f"calibration file {path}: labels '{key}' must be one integer class per sample, "
                            f"got {m.dtype} of shape {m.shape}")
        return SampleArrays(columns, npz.read(key, max_elements=limit), key)


def calibration_key(names: tuple[str, ...], spec: TensorSpec, position: int, inputs: int, path) -> str:
    """The array for one model input: by tensor name, or (one input only) 'x', 'x_test', the only array..."""
    if spec.name in names:
        return spec.name
    if inputs == 1:
        key = next((k for k in ("x", "x_test", "x_calibration", "arr_0") if k in names), None)
        inputs_only = [k for k in names if k not in LABEL_KEYS]
        if key is None and len(inputs_only) == 1:
            key = inputs_only[0]
        if key is None:
            raise DataError(f"calibration file {path}: no array named '{spec.name}', 'x' or 'x_test' "
                            f"(it holds {', '.join(sorted(names)) or 'no array'})")
        return key
    raise DataError(f"calibration file {path}: no array named '{spec.name}' for input {position} "
                    f"(one array per input, named after it)")


def _first_samples(npz: NpzArchive, key: str, spec: TensorSpec, limit: int | None) -> np.ndarray:
    """Array ``key`` (its first ``limit`` samples only), shape-checked on its header before anything is inflated;
    whole rows keep the stored shape past axis 0."""
    m = npz.member(key)
    per_sample = int(np.prod(spec.shape))
    if not m.shape or per_sample == 0 or m.size % per_sample != 0 or m.dtype.kind not in "iuf":
        raise DataError(f"calibration array for input '{spec.name}' has shape {m.shape}, model expects samples of {spec.shape}")
    if limit is None:
        return npz.read(key)
    elements = min(m.size // per_sample, max(limit, 0)) * per_sample
    a = npz.read(key, max_elements=elements)
    if a.size > elements:  # a Fortran-order array is read whole
        a = a.reshape(-1)[:elements]
    row = math.prod(m.shape[1:])
    return a.reshape((-1, *m.shape[1:])) if row and elements % row == 0 else a.reshape(-1)


def load_calibration(path: str | os.PathLike[str], specs: tuple[TensorSpec, ...], limit: int) -> list[list[np.ndarray]]:
    """The first ``limit`` samples of an .npz (see ``load_samples``), as rows."""
    return load_samples(path, specs, limit).rows


def load_samples(path: str | os.PathLike[str], specs: tuple[TensorSpec, ...], limit: int | None = None) -> InputSamples:
    """Inputs from an .npz: one array per model input (by tensor name, or the only array / x / x_test).

    Arrays hold samples along axis 0; float data is quantised with the input's scale when the input is int8,
    integer data must already be the input's own dtype (the quantized values). Labels: ``y`` (optional).
    Only the first ``limit`` samples are read (``read_sample_arrays``).
    """
    arrays = read_sample_arrays(path, specs, limit)
    columns = [_fit_input(a, s, path) for a, s in zip(arrays.columns, specs)]
    n = min(len(c) for c, _ in columns)
    n = n if limit is None else min(n, limit)
    if n == 0:
        raise DataError(f"calibration file {path} holds no samples")
    labels = arrays.labels
    return InputSamples([[c[j] for c, _ in columns] for j in range(n)],
                        None if labels is None else labels[:n].astype(np.int64) if len(labels) >= n else None,
                        tuple(w for _, w in columns if w))


def _fit_input(a: np.ndarray, spec: TensorSpec, path) -> tuple[np.ndarray, str | None]:
    """The samples in the input's dtype, and a warning when float data falls outside its quantization range."""
    per_sample = int(np.prod(spec.shape))
    if a.ndim == 0 or a.size % per_sample != 0 or a.dtype.kind not in "iuf":
        raise DataError(f"calibration array for input '{spec.name}' has shape {a.shape}, model expects samples of {spec.shape}")
    a = a.reshape((-1,) + spec.shape)
    if a.dtype.kind in "iu":
        if a.dtype != spec.dtype:
            raise DataError(_integer_dtype_message(a, spec, path))
        return a, None  # already the input's quantized values
    if not np.all(np.isfinite(a)):
        raise DataError(f"calibration file {path} holds NaN or infinite values")
    if np.issubdtype(spec.dtype, np.integer) and spec.scale <= 0:
        raise DataError(f"input '{spec.name}' is {spec.dtype} without a quantization scale: give its {spec.dtype} "
                        "values, not float data")
    return quantize_input(a, spec), range_warning(a, spec, f"calibration file {os.path.basename(os.fspath(path))}")


def _integer_dtype_message(a: np.ndarray, spec: TensorSpec, path) -> str:
    where = f"calibration file {os.path.basename(os.fspath(path))}: input '{spec.name}'"
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    if np.issubdtype(spec.dtype, np.integer):
        return (f"{where} takes {spec.dtype} and the data is {a.dtype} (values {lo} to {hi}): integer data is read "
                f"only as the input's own quantized {spec.dtype} values. Give float32 data scaled as the model was "
                "trained (e.g. uint8 pixels divided by 255: x.astype('float32') / 255), which is quantized with the "
                f"input's scale, or {spec.dtype} values already quantized")
    return (f"{where} takes {spec.dtype} and the data is {a.dtype} (values {lo} to {hi}): give {spec.dtype} data "
            "scaled as the model was trained (e.g. uint8 pixels divided by 255: x.astype('float32') / 255)")


def range_warning(a: np.ndarray, spec: TensorSpec, what: str) -> str | None:
    """Float data a quantized input cannot represent: clipped, so the model sees something else. ``what`` names
    the data in the warning."""
    if not np.issubdtype(spec.dtype, np.integer) or spec.scale <= 0 or not a.size:
        return None
    info = np.iinfo(spec.dtype)
    lo, hi = (info.min - spec.zero_point) * spec.scale, (info.max - spec.zero_point) * spec.scale
    # half a step of slack: values that round onto the end codes are representable
    outside = float(np.mean((a < lo - spec.scale / 2) | (a > hi + spec.scale / 2)))
    if outside <= OUT_OF_RANGE_WARN_FRACTION:
        return None
    return (f"{what}: {100 * outside:.1f}% of the values for input "
            f"'{spec.name}' lie outside its quantization range [{lo:.4g}, {hi:.4g}] (data from {float(a.min()):.4g} "
            f"to {float(a.max()):.4g}) and are clipped: is the data scaled as the model was trained (e.g. pixels "
            "divided by 255)?")
