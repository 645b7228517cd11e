"""Small int8 models written with the flatbuffer object API: no TensorFlow, for the tests the core install runs.

As Vela's own tests do, the model is built table by table (``schema_py_generated``'s object API) and
packed by the toolchain's writer: int8 activations, per-channel int8 weights, int32 biases at
input scale x weight scale, the quantization the TFLite converter produces for a Dense stack. The
values are seeded, so the bytes are the same on every run.
"""
from __future__ import annotations

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from toolchain.tflite.editor import add_default_signature
from toolchain.tflite.model_io import write_model


def _quant(scale, zero_point, axis: int = 0) -> schema.QuantizationParametersT:
    q = schema.QuantizationParametersT()
    q.scale = [float(s) for s in np.atleast_1d(scale)]
    q.zeroPoint = [int(z) for z in np.atleast_1d(zero_point)]
    q.quantizedDimension = axis
    return q


class _Graph:
    def __init__(self) -> None:
        self.model = schema.ModelT()
        self.model.version = 3
        self.model.description = "flatbuffer_models"
        self.model.buffers = [schema.BufferT()]  # buffer 0: the empty one every model starts with
        self.sg = schema.SubGraphT()
        self.sg.tensors, self.sg.operators, self.sg.name = [], [], "main"
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
        code.version = 5
        self.model.operatorCodes = [code]

    def tensor(self, name: str, shape, dtype: int, quant, data: np.ndarray | None = None) -> int:
        t = schema.TensorT()
        t.name, t.shape, t.type, t.quantization = name, list(shape), dtype, quant
        t.buffer = 0
        if data is not None:
            buf = schema.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            self.model.buffers.append(buf)
            t.buffer = len(self.model.buffers) - 1
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def dense(self, name: str, x: int, x_scale: float, x_std: float, units: int, relu: bool,
              rng) -> tuple[int, float, float]:
        """FULLY_CONNECTED with per-channel int8 weights; the output's int8 range spans +-3 standard deviations of
        the layer's output for inputs of standard deviation ``x_std`` (as calibration would set it)."""
        features = self.sg.tensors[x].shape[-1]
        w = rng.integers(-127, 128, size=(units, features), dtype=np.int8)
        w_scale = rng.uniform(0.002, 0.02, size=units)
        y_std = float(np.sqrt(features) * np.std(w.astype(np.float64) * w_scale[:, None]) * x_std)
        b = np.round(rng.normal(0, 0.5 * y_std, size=units) / (w_scale * x_scale)).astype(np.int32)
        y_scale = 6 * y_std / 255
        wt = self.tensor(f"{name}/kernel", (units, features), schema.TensorType.INT8, _quant(w_scale, [0] * units), w)
        bt = self.tensor(f"{name}/bias", (units,), schema.TensorType.INT32, _quant(w_scale * x_scale, [0] * units), b)
        y = self.tensor(name, (1, units), schema.TensorType.INT8, _quant(y_scale, -128 if relu else 0))
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = 0, [x, wt, bt], [y]
        op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
        op.builtinOptions = schema.FullyConnectedOptionsT()
        op.builtinOptions.fusedActivationFunction = (schema.ActivationFunctionType.RELU if relu
                                                     else schema.ActivationFunctionType.NONE)
        self.sg.operators.append(op)
        return y, y_scale, y_std / (np.sqrt(2) if relu else 1)

    def finish(self, inputs: list[int], outputs: list[int]) -> bytes:
        self.sg.inputs, self.sg.outputs = inputs, outputs
        self.model.subgraphs = [self.sg]
        add_default_signature(self.model)
        return write_model(self.model)


def dense_int8_model(seed: int = 0, features: int = 64, units: tuple[int, ...] = (128, 64, 10)) -> bytes:
    """An int8 Dense stack, features -> 128 -> 64 -> 10 by default (ReLU between), like ``dense_int8``."""
    rng = np.random.default_rng(seed)
    g = _Graph()
    x_scale = 1 / 32
    x = g.tensor("input", (1, features), schema.TensorType.INT8, _quant(x_scale, 0))
    first, x_std = x, 74 * x_scale  # uniform int8 inputs
    for i, n in enumerate(units):
        x, x_scale, x_std = g.dense(f"fc{i + 1}", x, x_scale, x_std, n, relu=i < len(units) - 1, rng=rng)
    return g.finish([first], [x])
