"""Bytes of Vela's encoded weight stream for one tensor, from Vela's own encoder.

``ethosu.vela.api.npu_encode_weights`` is the encoder the compiler uses (U55/U65 streams,
measured within 1-3% of U85's); the rewriter's size plans are given this function."""
from __future__ import annotations

import numpy as np

from ..tflite.graph import BuiltinOp


def encoded_bytes(q: np.ndarray, op: str) -> int:
    """Bytes of Vela's encoded weight stream for one tensor (Ethos-U55-128 encoder)."""
    from ethosu.vela.api import NpuAccelerator, NpuBlockTraversal, npu_encode_weights

    depthwise = op == BuiltinOp.DEPTHWISE_CONV_2D.name
    if depthwise:  # TFLite [1, H, W, C] -> OHWI with one input channel per output
        vol = np.transpose(q, (3, 1, 2, 0))
    elif q.ndim == 4:
        vol = q
    else:  # fully connected [O, I] (or anything else) as O x 1 x 1 x I
        vol = q.reshape(q.shape[0], 1, 1, -1)
    enc = npu_encode_weights(
        NpuAccelerator.Ethos_U55_128, np.ascontiguousarray(vol.astype(np.int16)), (1, 1), 8, 16, depthwise,
        NpuBlockTraversal.DEPTH_FIRST,
    )
    return len(enc)
