"""The one LiteRT wrapper: loading a model, describing its inputs and outputs, running it.

Every stage that runs a .tflite goes through ``make_interpreter`` (validated first: LiteRT
may crash on a malformed file) and quantises float samples with ``quantize_input``.
The builtin kernels without the XNNPACK delegate: deterministic, quiet, and the int8
arithmetic of the TFLite reference path that micro-controller runtimes follow.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..core.errors import InputError, ModelFormatError
from .model_io import read_model

# What one run may hold: every tensor LiteRT allocates plus the samples' inputs and outputs.
# A few-KB file can declare gigabytes of activations; Ethos-U models need a few MB.
MAX_RUN_BYTES = 256 << 20
QUANTIZE_BLOCK = 1 << 16  # float64 values quantised at once: 512 KiB, stays in cache


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output as LiteRT describes it."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float  # 0.0 when not quantized
    zero_point: int
    index: int = -1  # LiteRT's tensor index


def make_interpreter(model_bytes: bytes, *, keep_intermediates: bool = False, validated: bool = False):
    """A LiteRT interpreter with tensors allocated; ModelFormatError for a model it cannot load.

    ``keep_intermediates`` keeps every tensor readable after ``invoke`` (activation capture).
    """
    if not validated:
        read_model(bytes(model_bytes))
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        interp = Interpreter(
            model_content=bytes(model_bytes),
            num_threads=1,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            experimental_preserve_all_tensors=keep_intermediates,
        )
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelFormatError(f"LiteRT cannot load the model: {_first_line(exc)}") from None
    _check_run_bytes(interp, samples=0)
    return interp


def litert_cannot_run(model_bytes: bytes) -> str | None:
    """Why LiteRT cannot run the model: "custom operator NAME" for a custom operator it has no kernel for
    (Vela still compiles such a model, with the operator on the CPU), else None.

    Any other reason LiteRT refuses a model stays an error (ModelFormatError) where the model is run.
    """
    from .graph import custom_operator_names

    names = custom_operator_names(read_model(bytes(model_bytes)))
    if not names:
        return None
    try:
        make_interpreter(model_bytes, validated=True)
    except ModelFormatError as exc:
        if "unresolved custom op" not in str(exc):
            raise
        named = [n for n in names if n in str(exc)] or list(names)
        return f"custom operator{'s' if len(named) > 1 else ''} {', '.join(named)}"
    return None


def quantize_input(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Float samples -> the tensor's dtype: affine quantisation (round, clip) when it is a quantized integer.

    Computed in float64 a block of QUANTIZE_BLOCK values at a time, in place in one scratch buffer: the
    same values as one whole-array expression, without float64 copies of the whole set (at 224x224x3 x
    512 samples those were 4 copies of 616 MB, and most of the time went to touching fresh pages).
    """
    x = np.asarray(x)
    if not (spec.dtype.kind in "iu" and spec.scale > 0):
        return x.astype(spec.dtype)
    info = np.iinfo(spec.dtype)
    flat = x.reshape(-1)
    out = np.empty(flat.shape, spec.dtype)
    scratch = np.empty(min(flat.size, QUANTIZE_BLOCK), np.float64)
    for lo in range(0, flat.size, QUANTIZE_BLOCK):
        part = flat[lo:lo + QUANTIZE_BLOCK]
        q = scratch[:part.size]
        q[...] = part
        np.divide(q, spec.scale, out=q)
        np.round(q, out=q)
        np.add(q, spec.zero_point, out=q)
        np.clip(q, info.min, info.max, out=q)
        out[lo:lo + part.size] = q
    return out.reshape(x.shape)


def dequantize_output(y: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """A quantized output as float32 real values (float outputs pass through)."""
    if spec.dtype.kind in "iu" and spec.scale > 0:
        return (y.astype(np.float32) - spec.zero_point) * np.float32(spec.scale)
    return y.astype(np.float32)


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
        out.append(TensorSpec(d["name"], tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]), float(scale), int(zp),
                              int(d["index"])))
    return tuple(out)


def input_specs(model_bytes: bytes) -> tuple[TensorSpec, ...]:
    return interpreter_inputs(make_interpreter(model_bytes))


def interpreter_inputs(interp) -> tuple[TensorSpec, ...]:
    with _litert("describe the model's inputs"):
        return _specs(interp.get_input_details())


def interpreter_outputs(interp) -> tuple[TensorSpec, ...]:
    with _litert("describe the model's outputs"):
        return _specs(interp.get_output_details())


def run_model(model_bytes: bytes, inputs: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Outputs for each sample (a list per sample, one array per model output).

    One interpreter, invoked in order and never reset: a stateful model's resource variables carry
    from one sample to the next, so the samples are a stream (what verification relies on).
    """
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
    return interpreter_outputs(make_interpreter(model_bytes))
