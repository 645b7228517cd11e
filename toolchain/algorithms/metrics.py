"""Statistics of int8 weight tensors (pure numpy)."""
from __future__ import annotations

import math

import numpy as np

VELA_PALETTE_ENTRIES = 32  # Vela's weight encoder palette holds at most 32 values


def value_counts(q: np.ndarray) -> np.ndarray:
    """Histogram over the 256 int8 values (index = value + 128)."""
    return np.bincount(np.asarray(q, np.int64).ravel() + 128, minlength=256)


def entropy_bits(counts: np.ndarray) -> float:
    """Shannon entropy of the value distribution: the ideal index cost in bits per weight."""
    c = counts[counts > 0].astype(np.float64)
    if c.size <= 1:
        return 0.0
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum())


def top_fraction(counts: np.ndarray, k: int = VELA_PALETTE_ENTRIES) -> float:
    """Fraction of weights covered by the k most frequent values."""
    total = counts.sum()
    if total == 0:
        return 0.0
    return float(np.sort(counts)[::-1][:k].sum() / total)


def vela_palette_applies(counts: np.ndarray) -> bool:
    """Vela uses its palette only when the 32 most frequent values cover more than half the weights."""
    return top_fraction(counts, VELA_PALETTE_ENTRIES) > 0.5


def vela_zero_runs_apply(counts: np.ndarray) -> bool:
    """Vela run-length codes zeros when zero is over 4x as common as the next most common value."""
    zeros = counts[128]
    others = np.delete(counts, 128)
    return bool(zeros > 0 and zeros > 4 * (others.max() if others.size else 0))


def sqnr_db(reference: np.ndarray, approx: np.ndarray) -> float:
    """Signal-to-quantisation-noise ratio in dB; +inf when identical."""
    ref = np.asarray(reference, np.float64)
    noise = float(np.sum((ref - np.asarray(approx, np.float64)) ** 2))
    signal = float(np.sum(ref * ref))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def distinct_per_channel(q: np.ndarray, axis: int) -> np.ndarray:
    q = np.asarray(q)
    if q.ndim == 0:
        return np.array([1])
    moved = np.moveaxis(q, axis, 0).reshape(q.shape[axis], -1)
    return np.array([np.unique(row).size for row in moved], dtype=np.int64)
