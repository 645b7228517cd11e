"""Exact Gram matrices of integer-valued rows through float32 BLAS (pure numpy).

The output-aware fit's Hessians are sums of products of centred integer activations
(x - zero point: |x| <= 255 for int8). float32 holds every integer up to 2^24, so a float32
matrix product of integer rows is exact, in any order of summation, while no partial sum can
pass 2^24: at most 2^24 / max|x|^2 rows at a time (258 rows of int8 offsets). Blocks of that many
rows go through BLAS (the fast path) and are summed in float64, exact up to 2^53. The result is
the exact integer matrix whatever BLAS does with it: it does not depend on the number of threads,
the kernel a CPU selects, or how the rows were batched. Wider values (int16 activations) take
float64 products instead, exact while the sums stay below 2^53.
"""
from __future__ import annotations

import numpy as np

FLOAT32_EXACT = float(1 << 24)  # every integer up to this is a float32
FLOAT64_EXACT = float(1 << 53)


def exact_block_rows(peak: float, limit: float = FLOAT32_EXACT) -> int:
    """Rows whose products of values up to ``peak`` in magnitude add up without passing ``limit``
    (0 when a single product does)."""
    square = max(float(peak), 1.0) ** 2
    return int(limit // square) if square <= limit else 0


def augmented_gram(x: np.ndarray) -> np.ndarray:
    """[x, 1]^T [x, 1] in float64, exact for integer-valued x: (R, D) -> (D+1, D+1), or per channel
    (C, R, D) -> (C, D+1, D+1). The column of ones (the bias input) rides along in the same products."""
    x = np.asarray(x)
    peak = max(float(x.max()), -float(x.min()), 1.0) if x.size else 1.0
    step, dtype = exact_block_rows(peak), np.float32
    if not step:
        step, dtype = exact_block_rows(peak, FLOAT64_EXACT), np.float64
    if not step:
        raise ValueError(f"values up to {peak:g} are too wide for an exact Gram matrix")
    z = np.concatenate([x.astype(dtype, copy=False), np.ones(x.shape[:-1] + (1,), dtype)], axis=-1)
    *lead, rows, d1 = z.shape
    out = np.zeros((*lead, d1, d1))
    for lo in range(0, rows, step):
        block = z[..., lo:lo + step, :]
        out += np.matmul(np.swapaxes(block, -1, -2), block)
    return out
