"""Running .tflite models with the LiteRT interpreter (no TensorFlow)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ..core.errors import DataError, InputError, ModelFormatError
from ..core.fileio import read_input_bytes

# What one run may hold: every tensor LiteRT allocates plus the samples' inputs and outputs.
# A few-KB file can declare gigabytes of activations; Ethos-U models need a few MB.
MAX_RUN_BYTES = 256 << 20


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int


def make_interpreter(model_bytes: bytes):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        # Builtin kernels without the XNNPACK delegate: deterministic and quiet.
        interp = Interpreter(
            model_content=bytes(model_bytes),
            num_threads=1,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelFormatError(f"LiteRT cannot load the model: {_first_line(exc)}") from None
    _check_run_bytes(interp, samples=0)
    return interp


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@contextmanager
def _litert(what: str):
    """LiteRT reports bad models as ValueError/RuntimeError (also UnicodeDecodeError on bad names)."""
    try:
        yield
    except (ValueError, RuntimeError) as exc:
        raise ModelFormatError(f"LiteRT cannot {what}: {_first_line(exc)}") from None


def _nbytes(details) -> int:
    return sum(int(np.prod(d["shape"], dtype=np.float64)) * np.dtype(d["dtype"]).itemsize for d in details)


def _check_run_bytes(interp, samples: int) -> None:
    with _litert("describe the model's tensors"):
        tensors = _nbytes(interp.get_tensor_details())
        io = _nbytes(interp.get_input_details()) + _nbytes(interp.get_output_details())
    need = tensors + samples * io
    if need > MAX_RUN_BYTES:
        with_samples = f" with {samples} samples" if samples else ""
        raise InputError(
            f"running the model in LiteRT would take {need / 2**20:,.0f} MiB{with_samples}, over the "
            f"{MAX_RUN_BYTES >> 20} MiB limit: check the model's tensor shapes, or skip verification (--no-verify)"
        )


def _specs(details) -> tuple[TensorSpec, ...]:
    out = []
    for d in details:
        scale, zp = d.get("quantization", (0.0, 0))
        out.append(TensorSpec(d["name"], tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]), float(scale), int(zp)))
    return tuple(out)


def input_specs(model_bytes: bytes) -> tuple[TensorSpec, ...]:
    interp = make_interpreter(model_bytes)
    with _litert("describe the model's inputs"):
        return _specs(interp.get_input_details())


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
    import io

    raw = read_input_bytes(path, "calibration file")
    try:
        npz = np.load(io.BytesIO(raw), allow_pickle=False)
        arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:
        raise DataError(f"calibration file {path} is not a readable .npz ({type(exc).__name__})") from None
    columns = []
    for i, s in enumerate(specs):
        if s.name in arrays:
            a = arrays[s.name]
        elif len(specs) == 1:
            key = next((k for k in ("x", "x_test", "x_calibration", "arr_0") if k in arrays), None)
            if key is None and len(arrays) == 1:
                key = next(iter(arrays))
            if key is None:
                raise DataError(f"calibration file {path}: no array named '{s.name}', 'x' or 'x_test'")
            a = arrays[key]
        else:
            raise DataError(f"calibration file {path}: no array named '{s.name}' for input {i}")
        columns.append(_fit_input(a, s, path))
    n = min(len(c) for c in columns)
    n = min(n, limit)
    if n == 0:
        raise DataError(f"calibration file {path} holds no samples")
    return [[c[j] for c in columns] for j in range(n)]


def _fit_input(a: np.ndarray, spec: TensorSpec, path) -> np.ndarray:
    per_sample = int(np.prod(spec.shape))
    if a.ndim == 0 or a.size % per_sample != 0 or a.dtype.kind not in "iuf":
        raise DataError(f"calibration array for input '{spec.name}' has shape {a.shape}, model expects samples of {spec.shape}")
    a = a.reshape((-1,) + spec.shape)
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        raise DataError(f"calibration file {path} holds NaN or infinite values")
    if np.issubdtype(spec.dtype, np.integer) and a.dtype.kind == "f":
        if spec.scale <= 0:
            raise DataError(f"input '{spec.name}' is integer without a scale; give integer calibration data")
        info = np.iinfo(spec.dtype)
        a = np.clip(np.round(a / spec.scale + spec.zero_point), info.min, info.max)
    return a.astype(spec.dtype)


def run_model(model_bytes: bytes, inputs: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Outputs for each sample (a list per sample, one array per model output)."""
    interp = make_interpreter(model_bytes)
    _check_run_bytes(interp, samples=len(inputs))
    with _litert("run the model"):
        ins = interp.get_input_details()
        outs = interp.get_output_details()
        results = []
        for row in inputs:
            for d, x in zip(ins, row):
                interp.set_tensor(d["index"], x)
            interp.invoke()
            results.append([interp.get_tensor(d["index"]).copy() for d in outs])
    return results


def output_specs(model_bytes: bytes) -> tuple[TensorSpec, ...]:
    interp = make_interpreter(model_bytes)
    with _litert("describe the model's outputs"):
        return _specs(interp.get_output_details())


@dataclass(frozen=True)
class Agreement:
    """How closely a rewritten model's outputs follow the original's on the same inputs."""

    samples: int
    top1_agreement: float | None  # fraction of samples with the same argmax of output 0
    max_abs_diff_steps: float  # largest output difference in output quantisation steps
    mean_abs_diff_steps: float
    per_output_max_abs_diff_steps: tuple[float, ...] = field(default=())


def compare_outputs(ref: list[list[np.ndarray]], new: list[list[np.ndarray]], specs: tuple[TensorSpec, ...]) -> Agreement:
    n = len(ref)
    per_out = []
    means = []
    for j, s in enumerate(specs):
        a = np.stack([r[j] for r in ref]).astype(np.float64)
        b = np.stack([r[j] for r in new]).astype(np.float64)
        d = np.abs(a - b)
        if not np.issubdtype(s.dtype, np.integer) and s.scale > 0:
            d = d / s.scale
        per_out.append(float(d.max()) if d.size else 0.0)
        means.append(float(d.mean()) if d.size else 0.0)
    top1 = None
    if specs and n and int(np.prod(specs[0].shape)) > 1:
        a = np.stack([r[0].reshape(-1) for r in ref])
        b = np.stack([r[0].reshape(-1) for r in new])
        top1 = float(np.mean(np.argmax(a, axis=1) == np.argmax(b, axis=1)))
    return Agreement(
        samples=n,
        top1_agreement=top1,
        max_abs_diff_steps=max(per_out, default=0.0),
        mean_abs_diff_steps=float(np.mean(means)) if means else 0.0,
        per_output_max_abs_diff_steps=tuple(per_out),
    )
