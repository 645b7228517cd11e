"""Accuracy of a .tflite classifier on labelled data, run by the LiteRT interpreter (no TensorFlow)."""
from __future__ import annotations

import numpy as np

from ..core.errors import DataError, ModelFormatError
from .interpreter import (
    dequantize_output,
    interpreter_inputs,
    interpreter_outputs,
    make_interpreter,
    quantize_input,
)


def predict_tflite(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """Float outputs (N, classes) of a single-input, single-output model, one sample at a time."""
    interpreter = make_interpreter(model_bytes)
    inputs, outputs = interpreter_inputs(interpreter), interpreter_outputs(interpreter)
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelFormatError(
            f"accuracy needs a model with one input and one output, this one has {len(inputs)} and {len(outputs)}"
        )
    inp, out = inputs[0], outputs[0]
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
