"""A model as Arm's Ethos-N support library sees it: NHWC tensors, its operations, raw weights.

Both Ethos-N estimates read this one description: the calibrated analytical model
(``ethos_n``) and Arm's own estimator behind the bridge (``ethos_n_bridge``). It is built from
a .tflite by ``ethos_n_from_tflite``, or directly from a grid point by ``ethos_n_calibration``.
Operand ids name tensors; a model layer (one TFLite operator) becomes one or more operations
(a convolution and its fused ReLU), or one "unmapped" operation that carries the reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

Shape4 = tuple[int, int, int, int]  # N, H, W, C
Padding = tuple[int, int, int, int]  # top, bottom, left, right


class DataType(Enum):
    INT8 = "i8"
    UINT8 = "u8"


class EthosNOpKind(Enum):
    """The support library operations the toolchain maps to (the bridge's request keywords)."""

    CONV = "conv"
    DEPTHWISE = "dwconv"
    FULLY_CONNECTED = "fc"
    POOL = "pool"
    ADD = "add"
    MUL = "mul"
    RELU = "relu"
    LEAKY_RELU = "leaky"
    SIGMOID = "sigmoid"
    TANH = "tanh"
    MEAN_XY = "meanxy"
    RESHAPE = "reshape"
    CONCAT = "concat"
    PAD = "pad"
    REQUANTIZE = "requant"
    RESIZE = "resize"
    UNMAPPED = "estimate"  # no support library operation: an "estimate only" node with the toolchain's reason

    @property
    def has_weights(self) -> bool:
        return self in (EthosNOpKind.CONV, EthosNOpKind.DEPTHWISE, EthosNOpKind.FULLY_CONNECTED)


@dataclass(frozen=True)
class TensorDesc:
    shape: Shape4
    zero_point: int
    scale: float
    dtype: DataType = DataType.INT8

    @property
    def elements(self) -> int:
        n, h, w, c = self.shape
        return n * h * w * c


@dataclass(frozen=True)
class Weights:
    """Raw int8 weights in the library's layout: HWIO (convolution, fully connected) or HWIM (depthwise)."""

    values: np.ndarray = field(compare=False, repr=False)
    scales: tuple[float, ...]  # one per output channel, or one
    zero_point: int
    bias: np.ndarray = field(compare=False, repr=False)  # int32, one per output channel

    @property
    def hwio(self) -> tuple[int, int, int, int]:
        return tuple(int(d) for d in self.values.shape)  # type: ignore[return-value]

    @property
    def output_channels(self) -> int:
        return self.hwio[3]

    def per_output_channel(self, depthwise: bool) -> np.ndarray:
        """[output channel, weights of that channel] (depthwise: HWIM with M = 1 per input channel)."""
        h, w, i, m = self.hwio
        if depthwise:
            return self.values.reshape(h * w, i * m).T
        return self.values.reshape(h * w * i, m).T


@dataclass(frozen=True)
class NpuOp:
    kind: EthosNOpKind
    inputs: tuple[int, ...]  # operand ids
    output: int  # operand id
    out: TensorDesc
    weights: Weights | None = None
    kernel_hw: tuple[int, int] = (1, 1)  # convolution or pooling window
    stride_hw: tuple[int, int] = (1, 1)
    padding: Padding = (0, 0, 0, 0)
    pool_max: bool = False
    relu_bounds: tuple[int, int] = (0, 0)
    alpha: float = 0.0  # LeakyReLU
    resize_bilinear: bool = False
    axis: int = 3  # concatenation axis, of NHWC
    reason: str = ""  # UNMAPPED: why the toolchain gives the library no operation for it


@dataclass(frozen=True)
class Layer:
    """One operator of the model (subgraph 0) and the operations it became."""

    index: int
    name: str
    op: str  # the TFLite operator, e.g. "CONV_2D"
    ops: tuple[NpuOp, ...]

    @property
    def main(self) -> NpuOp:
        return self.ops[0]

    @property
    def mapped(self) -> bool:
        return self.main.kind is not EthosNOpKind.UNMAPPED


@dataclass(frozen=True)
class Network:
    inputs: tuple[tuple[int, TensorDesc], ...]  # (operand id, tensor)
    layers: tuple[Layer, ...]
    outputs: tuple[int, ...]  # operand ids the model outputs

    def tensors(self) -> dict[int, TensorDesc]:
        out = dict(self.inputs)
        for layer in self.layers:
            for op in layer.ops:
                out[op.output] = op.out
        return out

    def input_of(self, op: NpuOp, position: int = 0) -> TensorDesc:
        return self.tensors()[op.inputs[position]]
