"""The calibration grid's layers: one-layer networks with synthetic weights of K distinct int8 values.

A grid point names a layer (kind, shape, channels, kernel, stride), how many distinct values its
weights take and a seed; ``network_of`` rebuilds the same network from it anywhere (numpy's
PCG64 stream is stable across releases), so the figures Arm's estimator gave for it
(``benchmarks/results/ethos_n_calibration.json``) can be compared with the analytical model
without the library. Weights are drawn uniformly from K values spread over the int8 range, as a
clustered tensor's are; per-channel scales as the TFLite converter writes them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

import numpy as np

from .ethos_n_network import EthosNOpKind, Layer, Network, NpuOp, TensorDesc, Weights

INPUT_SCALE = 0.05
OUTPUT_SCALE = 0.1


class GridKind(Enum):
    CONV = "conv"
    DEPTHWISE = "depthwise"
    FULLY_CONNECTED = "fully_connected"
    MAX_POOL = "max_pool"
    AVG_POOL = "avg_pool"
    ADD = "add"

    @property
    def has_weights(self) -> bool:
        return self in (GridKind.CONV, GridKind.DEPTHWISE, GridKind.FULLY_CONNECTED)


@dataclass(frozen=True)
class GridPoint:
    kind: GridKind
    height: int
    width: int
    in_channels: int
    out_channels: int  # = in_channels for depthwise, pooling and add
    kernel: int = 1  # square kernel or pooling window
    stride: int = 1
    distinct_values: int = 0  # of the weights (0: no weights)
    seed: int = 0

    @property
    def label(self) -> str:
        """The layer type the docs' error table groups by: conv 3x3, conv 3x3 /2, depthwise 3x3, ..."""
        if self.kind is GridKind.CONV:
            return f"conv {self.kernel}x{self.kernel}" + (f" /{self.stride}" if self.stride > 1 else "")
        if self.kind is GridKind.DEPTHWISE:
            return f"depthwise {self.kernel}x{self.kernel}" + (f" /{self.stride}" if self.stride > 1 else "")
        if self.kind in (GridKind.MAX_POOL, GridKind.AVG_POOL):
            return f"{self.kind.value.replace('_', ' ')} {self.kernel}x{self.kernel} /{self.stride}"
        return self.kind.value.replace("_", " ")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GridPoint:
        return cls(**{**d, "kind": GridKind(d["kind"])})


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow's SAME padding: (output size, pad before, pad after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def palette(distinct: int) -> np.ndarray:
    """K int8 values spread over the range (all 256 for K = 256)."""
    if distinct >= 256:
        return np.arange(-128, 128, dtype=np.int16).astype(np.int8)
    return np.unique(np.round(np.linspace(-127, 127, distinct)).astype(np.int8))


def _weights(p: GridPoint, shape: tuple[int, int, int, int], channels: int, rng: np.random.Generator) -> Weights:
    values = rng.choice(palette(p.distinct_values), size=shape).astype(np.int8)
    # Per-channel scales; one for fully connected, the only form the library supports there
    per_channel = channels if p.kind is not GridKind.FULLY_CONNECTED else 1
    scales = tuple(float(np.float32(0.01 * (1 + (c % 7) / 10))) for c in range(per_channel))
    bias = rng.integers(-1000, 1000, size=channels, dtype=np.int32)
    return Weights(values=values, scales=scales, zero_point=0, bias=bias)


def network_of(p: GridPoint) -> Network:
    """The one-layer network of a grid point (layer index 0; operand 0 in, 1 out, 2 the second input of add)."""
    rng = np.random.default_rng(p.seed)
    x = TensorDesc((1, p.height, p.width, p.in_channels), 0, INPUT_SCALE)
    inputs: list[tuple[int, TensorDesc]] = [(0, x)]
    k, s = p.kernel, p.stride
    oh, top, bottom = _same_padding(p.height, k, s)
    ow, left, right = _same_padding(p.width, k, s)
    pad = (top, bottom, left, right)
    if p.kind is GridKind.CONV:
        out = TensorDesc((1, oh, ow, p.out_channels), 0, OUTPUT_SCALE)
        w = _weights(p, (k, k, p.in_channels, p.out_channels), p.out_channels, rng)
        op = NpuOp(EthosNOpKind.CONV, (0,), 1, out, w, (k, k), (s, s), pad)
    elif p.kind is GridKind.DEPTHWISE:
        out = TensorDesc((1, oh, ow, p.in_channels), 0, OUTPUT_SCALE)
        w = _weights(p, (k, k, p.in_channels, 1), p.in_channels, rng)
        op = NpuOp(EthosNOpKind.DEPTHWISE, (0,), 1, out, w, (k, k), (s, s), pad)
    elif p.kind is GridKind.FULLY_CONNECTED:
        x = TensorDesc((1, 1, 1, p.in_channels), 0, INPUT_SCALE)
        inputs = [(0, x)]
        out = TensorDesc((1, 1, 1, p.out_channels), 0, OUTPUT_SCALE)
        w = _weights(p, (1, 1, p.in_channels, p.out_channels), p.out_channels, rng)
        op = NpuOp(EthosNOpKind.FULLY_CONNECTED, (0,), 1, out, w)
    elif p.kind is GridKind.MAX_POOL:  # VALID windows, as the usual 2x2 /2 and 3x3 /2; pooling keeps the input's scale
        oh, ow = (p.height - k) // s + 1, (p.width - k) // s + 1
        out = TensorDesc((1, oh, ow, p.in_channels), 0, INPUT_SCALE)
        op = NpuOp(EthosNOpKind.POOL, (0,), 1, out, None, (k, k), (s, s), (0, 0, 0, 0), pool_max=True)
    elif p.kind is GridKind.AVG_POOL:  # the library's two: 3x3 /1 SAME, and the global mean (window = input)
        glob = k == p.height
        out = TensorDesc((1, 1, 1, p.in_channels) if glob else x.shape, 0, INPUT_SCALE)
        op = NpuOp(EthosNOpKind.POOL, (0,), 1, out, None, (k, k), (s, s), (0, 0, 0, 0) if glob else pad)
    elif p.kind is GridKind.ADD:
        inputs.append((2, TensorDesc(x.shape, 0, INPUT_SCALE * 1.5)))
        out = TensorDesc(x.shape, 0, OUTPUT_SCALE)
        op = NpuOp(EthosNOpKind.ADD, (0, 2), 1, out)
    else:  # pragma: no cover - GridKind is closed
        raise AssertionError(p.kind)
    layer = Layer(index=0, name=p.label, op=p.kind.value.upper(), ops=(op,))
    return Network(inputs=tuple(inputs), layers=(layer,), outputs=(1,))
