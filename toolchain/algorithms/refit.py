"""Per-channel scale refit around a shared palette (pure numpy).

Given the float weights a quantized tensor represents, f[c, i] = s[c] * q[c, i],
and a shared integer palette, alternate three steps that each can only lower
E = sum (f - s'[c] * L[a])^2: least-squares scales for fixed codes, nearest-entry
assignment for fixed scales, and integer centroid update for fixed assignment.
Starting from the scales-fixed solution, the result is never worse than it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .palette import PALETTE_MAX, PALETTE_MIN


@dataclass(frozen=True)
class RefitResult:
    codes: np.ndarray = field(repr=False)  # int8, channels x weights-per-channel
    scales: np.ndarray = field(repr=False)  # float64, one per channel
    palette: np.ndarray = field(repr=False)  # sorted int64
    error: float  # sum of squared float-domain differences to f
    iterations: int


def float_error(f: np.ndarray, scales: np.ndarray, codes: np.ndarray) -> float:
    d = f - scales[:, None] * codes
    return float(np.sum(d * d))


def _assign(targets: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Index of the nearest palette entry for every target (palette sorted)."""
    mids = (palette[1:] + palette[:-1]) / 2.0
    return np.searchsorted(mids, targets, side="left")


LOOKUP_MIN_WEIGHTS = 256  # weights per channel above which a per-value lookup beats a search per weight


class _ValueLookup:
    """f's values per channel and int8 value (C, 256), and where each weight reads its own."""

    def __init__(self, f: np.ndarray, values: np.ndarray) -> None:
        channels = f.shape[0]
        self.column = np.asarray(values).astype(np.intp) + 128
        self.table = np.zeros((channels, 256))
        self.table[np.arange(channels)[:, None], self.column] = f

    def assign(self, scales: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(f / scales, nearest palette index) of every weight."""
        targets = self.table / scales[:, None]
        return (np.take_along_axis(targets, self.column, axis=1),
                np.take_along_axis(_assign(targets, palette), self.column, axis=1))


def refit_scales(
    f: np.ndarray,
    codes: np.ndarray,
    scales: np.ndarray,
    palette: np.ndarray,
    keep_zero: bool = True,
    max_iterations: int = 10,
    rel_tol: float = 1e-3,  # stop once an iteration gains less than 0.1%
    *,
    values: np.ndarray | None = None,
) -> RefitResult:
    """Alternate scales / assignment / centroids from a starting solution; never increases the error.

    ``f`` and ``codes`` are channels x weights-per-channel; ``codes`` must take values in ``palette``.
    ``values``: the int8 codes ``f`` holds in each channel (f = s x q), when known: a channel's targets and
    nearest entries are then computed once per int8 value and gathered, not per weight (the same numbers).
    """
    f = np.asarray(f, np.float64)
    lookup = _ValueLookup(f, values) if values is not None and f.shape[1] > LOOKUP_MIN_WEIGHTS else None
    codes = np.asarray(codes, np.float64)
    scales = np.asarray(scales, np.float64).copy()
    palette = np.unique(np.asarray(palette, np.int64))
    zeros = f == 0.0
    zero_locked = keep_zero and bool(np.any(zeros)) and 0 in palette
    best = float_error(f, scales, codes)
    best_state = (codes.copy(), scales.copy(), palette.copy())
    it = 0
    for it in range(1, max_iterations + 1):
        # 1. least-squares scale per channel for fixed codes
        num = np.sum(f * codes, axis=1)
        den = np.sum(codes * codes, axis=1)
        ok = (den > 0) & (num > 0)
        new_scales = np.where(ok, num / np.where(den > 0, den, 1.0), scales)
        # 2. nearest palette entry in each channel's own units
        if lookup is None:
            targets = f / new_scales[:, None]
            idx = _assign(targets, palette.astype(np.float64))
        else:
            targets, idx = lookup.assign(new_scales, palette.astype(np.float64))
        if zero_locked:
            idx = np.where(zeros, int(np.searchsorted(palette, 0)), idx)
        # 3. integer centroid per entry, weighted by the channel scale squared
        w = np.broadcast_to((new_scales**2)[:, None], f.shape)
        new_palette = palette.copy()
        flat_idx = idx.ravel()
        wt = w * targets
        sw = np.bincount(flat_idx, weights=w.ravel(), minlength=palette.size)
        swt = np.bincount(flat_idx, weights=wt.ravel(), minlength=palette.size)
        swtt = np.bincount(flat_idx, weights=(wt * targets).ravel(), minlength=palette.size)
        for k in range(palette.size):
            if sw[k] <= 0 or (zero_locked and palette[k] == 0):
                continue
            mean = swt[k] / sw[k]
            cands = np.clip(np.array([np.floor(mean), np.ceil(mean)]), PALETTE_MIN, PALETTE_MAX)
            costs = swtt[k] - 2 * cands * swt[k] + cands * cands * sw[k]
            new_palette[k] = int(cands[int(np.argmin(costs))])
        new_codes = new_palette[idx].astype(np.float64)
        err = float_error(f, new_scales, new_codes)
        if not err < best * (1.0 - rel_tol):
            break
        best = err
        # merged entries (two centroids landing on one integer) stay consistent: codes hold values
        best_state = (new_codes, new_scales, np.unique(new_palette))
        codes, scales, palette = new_codes, new_scales, np.unique(new_palette)
    codes_b, scales_b, palette_b = best_state
    return RefitResult(codes_b.astype(np.int8), scales_b, palette_b, best, it)
