"""Accuracy of a .tflite model on labelled data, run by the LiteRT interpreter.

Imports no TensorFlow (ai_edge_litert only), so the post-processing stages can
measure a re-clustered model without the training stack.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.errors import DataError, ModelFormatError
from ..tflite.model_io import read_model


@dataclass(frozen=True)
class TensorIO:
    """What the interpreter says about the model's single input or output tensor."""

    index: int
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float  # 0.0 when not quantized
    zero_point: int


def _io(detail: dict) -> TensorIO:
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorIO(int(detail["index"]), tuple(int(d) for d in detail["shape"]), np.dtype(detail["dtype"]),
                    float(scale), int(zero_point))


def make_interpreter(model_bytes: bytes, num_threads: int = 1):
    """A LiteRT interpreter with tensors allocated; ModelFormatError for bytes it cannot load."""
    read_model(bytes(model_bytes))  # our validating reader first: LiteRT may crash on junk
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        # The builtin kernels without the XNNPACK delegate: the int8 arithmetic of the
        # TFLite reference path that micro-controller runtimes follow, and no delegate chatter.
        interpreter = Interpreter(
            model_content=bytes(model_bytes),
            num_threads=num_threads,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelFormatError(f"LiteRT cannot load the model: {str(exc).splitlines()[0]}") from None
    return interpreter


def quantize_input(x: np.ndarray, io: TensorIO) -> np.ndarray:
    """Float samples -> the input tensor's dtype (affine int8/uint8 quantization when it has one)."""
    if io.dtype.kind in "iu" and io.scale > 0:
        info = np.iinfo(io.dtype)
        q = np.round(x / io.scale) + io.zero_point
        return np.clip(q, info.min, info.max).astype(io.dtype)
    return x.astype(io.dtype)


def dequantize_output(y: np.ndarray, io: TensorIO) -> np.ndarray:
    if io.dtype.kind in "iu" and io.scale > 0:
        return (y.astype(np.float32) - io.zero_point) * io.scale
    return y.astype(np.float32)


def predict_tflite(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """Float outputs (N, classes) of a single-input, single-output model, one sample at a time."""
    interpreter = make_interpreter(model_bytes)
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelFormatError(
            f"accuracy needs a model with one input and one output, this one has {len(inputs)} and {len(outputs)}"
        )
    inp, out = _io(inputs[0]), _io(outputs[0])
    x = np.asarray(x, dtype=np.float32)
    sample_shape = inp.shape[1:]
    if x.ndim >= 1 and x.shape[1:] != sample_shape:
        if int(np.prod(x.shape[1:], dtype=np.int64)) == int(np.prod(sample_shape, dtype=np.int64)) and (
            x.shape[1:] + (1,) == sample_shape or x.shape[1:] == sample_shape + (1,)
        ):
            x = x.reshape((-1, *sample_shape))
        else:
            raise DataError(f"samples have shape {tuple(x.shape[1:])} but the model expects {sample_shape}")
    if inp.shape[0] != 1:
        interpreter.resize_tensor_input(inp.index, [1, *sample_shape])
        interpreter.allocate_tensors()
    xq = quantize_input(x, inp)
    results = []
    for i in range(xq.shape[0]):
        interpreter.set_tensor(inp.index, xq[i : i + 1])
        interpreter.invoke()
        results.append(interpreter.get_tensor(out.index).reshape(-1).copy())
    if not results:
        return np.zeros((0, int(np.prod(out.shape[1:]))), dtype=np.float32)
    return dequantize_output(np.stack(results), out)


def evaluate_tflite(model_bytes: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy (0..1) of a .tflite classifier on samples ``x`` with integer labels ``y``."""
    y = np.asarray(y).reshape(-1)
    if len(y) == 0 or len(y) != len(x):
        raise DataError(f"need as many labels as samples (got {len(x)} samples and {len(y)} labels), at least one")
    logits = predict_tflite(model_bytes, x)
    return float(np.mean(np.argmax(logits, axis=1) == y))
