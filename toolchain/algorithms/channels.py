"""Reshaping a weight tensor to channels x weights along its quantization axis, and back."""
from __future__ import annotations

import numpy as np


def channels_first(q: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(q, axis, 0).reshape(q.shape[axis], -1)


def from_channels_first(flat: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    moved_shape = (shape[axis],) + tuple(d for i, d in enumerate(shape) if i != axis)
    return np.moveaxis(flat.reshape(moved_shape), 0, axis)
