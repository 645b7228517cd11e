"""Convolution patches of NHWC activations at chosen output positions (pure numpy).

TFLite's CONV_2D computes out[n, oy, ox, o] = sum over (ky, kx, i) of
x[n, oy*sh + ky*dh - pad_top, ox*sw + kx*dw - pad_left, i] * w[o, ky, kx, i], where
positions outside the input read the input's zero point (x - zp = 0). Patches are
gathered in (ky, kx, i) order, the order of a flattened weight row.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ConvGeometry:
    kernel_h: int
    kernel_w: int
    stride_h: int = 1
    stride_w: int = 1
    dilation_h: int = 1
    dilation_w: int = 1
    same_padding: bool = True  # TFLite Padding.SAME; False: VALID

    def _axis(self, size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
        """(output size, padding before) along one axis, as TFLite computes them."""
        effective = (kernel - 1) * dilation + 1
        if self.same_padding:
            out = (size + stride - 1) // stride
        else:
            out = (size - effective + stride) // stride
        total = max((out - 1) * stride + effective - size, 0)
        return max(out, 0), total // 2

    def output_hw(self, height: int, width: int) -> tuple[int, int]:
        return (self._axis(height, self.kernel_h, self.stride_h, self.dilation_h)[0],
                self._axis(width, self.kernel_w, self.stride_w, self.dilation_w)[0])

    def padding_hw(self, height: int, width: int) -> tuple[int, int]:
        return (self._axis(height, self.kernel_h, self.stride_h, self.dilation_h)[1],
                self._axis(width, self.kernel_w, self.stride_w, self.dilation_w)[1])


def sample_positions(samples: int, out_h: int, out_w: int, per_sample: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sample, oy, ox) indices: every position, or ``per_sample`` drawn without replacement per sample."""
    positions = out_h * out_w
    if per_sample >= positions:
        flat = np.tile(np.arange(positions), samples)
        n = np.repeat(np.arange(samples), positions)
    else:
        flat = np.concatenate([np.sort(rng.choice(positions, per_sample, replace=False)) for _ in range(samples)])
        n = np.repeat(np.arange(samples), per_sample)
    return n, flat // out_w, flat % out_w


def _taps(x: np.ndarray, zero_point: int, g: ConvGeometry, n: np.ndarray, oy: np.ndarray,
          ox: np.ndarray) -> np.ndarray:
    """(KH*KW, rows, C) of the input's own integers: one gather of whole channel vectors per kernel tap;
    taps outside the input read the zero point (gathered in place, not from a padded copy of the batch)."""
    _, height, width, _ = x.shape
    pad_t, pad_l = g.padding_hw(height, width)
    rows_y = oy[:, None] * g.stride_h + np.arange(g.kernel_h)[None, :] * g.dilation_h - pad_t  # (R, KH)
    rows_x = ox[:, None] * g.stride_w + np.arange(g.kernel_w)[None, :] * g.dilation_w - pad_l  # (R, KW)
    inside_y = (rows_y >= 0) & (rows_y < height)
    inside_x = (rows_x >= 0) & (rows_x < width)
    rows_y, rows_x = np.clip(rows_y, 0, height - 1), np.clip(rows_x, 0, width - 1)
    taps = np.stack([x[n, rows_y[:, ky], rows_x[:, kx], :]
                     for ky in range(g.kernel_h) for kx in range(g.kernel_w)])
    outside = ~(inside_y[:, :, None] & inside_x[:, None, :]).reshape(n.size, -1).T  # (T, R)
    if outside.any():
        taps[outside] = zero_point
    return taps


def conv_patches(x: np.ndarray, zero_point: int, geometry: ConvGeometry, n: np.ndarray, oy: np.ndarray,
                 ox: np.ndarray) -> np.ndarray:
    """(rows, KH, KW, C) float32 of x - zero_point around the given output positions (padding reads 0)."""
    taps = _taps(x, zero_point, geometry, n, oy, ox)  # (T, R, C)
    patches = np.array(np.moveaxis(taps, 0, 1), np.float32, order="C")
    patches = patches.reshape(n.size, geometry.kernel_h, geometry.kernel_w, x.shape[3])
    patches -= np.float32(zero_point)
    return patches


def depthwise_patches(x: np.ndarray, zero_point: int, geometry: ConvGeometry, n: np.ndarray, oy: np.ndarray,
                      ox: np.ndarray, input_channel: np.ndarray) -> np.ndarray:
    """(C_out, rows, KH*KW) float32: for each output channel the taps of its input channel ``input_channel[c]``."""
    taps = _taps(x, zero_point, geometry, n, oy, ox)  # (T, R, C_in)
    if input_channel.size != x.shape[3] or np.any(input_channel != np.arange(x.shape[3])):
        taps = taps[:, :, input_channel]
    patches = np.array(taps.transpose(2, 1, 0), np.float32, order="C")
    patches -= np.float32(zero_point)
    return patches
