"""Joint fit of a shared integer palette and per-channel scales (pure numpy).

After tfmot clustering, batch-norm folding and per-channel quantization, channel c
holds g_c x (one of K shared centroids), quantized with its own scale, so the int8
tensor shows far more than K values although only K shapes exist. Aligning the
channels onto one growing float codebook (each channel's factor found from its
extreme values) recovers the shared codes; new scales then express every channel
with the same integer palette. The exact DP picks <= K entries (negative factors
mirror the codes), and the alternating refit polishes. The caller keeps whichever
of this and the scales-fixed solution has the lower error, so it is never worse.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .palette import PALETTE_MAX, apply_lut, solve_palette, value_lut, value_weights
from .refit import RefitResult, float_error, refit_scales

# A channel "matches" the codebook when each of its values lies within this many of
# its own quantisation steps of a scaled codebook entry (int8 rounding moves values by 0.5).
MATCH_STEPS = 0.75
# Channels with more distinct values than this are not clustered: alignment would not help.
MAX_VALUES_FOR_ALIGNMENT = 64
EXTREMES_TRIED = 3


@dataclass(frozen=True)
class Alignment:
    factors: np.ndarray = field(repr=False)  # signed float factor per channel (0 for all-zero channels)
    codebook: np.ndarray = field(repr=False)  # sorted float codes, max |code| = 1
    matched_fraction: float  # share of (channel, value) pairs that fell on existing codes


def _nearest(book: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Nearest codebook entry to each element of t (book sorted, non-empty)."""
    if book.size == 1:
        return np.full(t.shape, book[0])
    idx = np.clip(np.searchsorted(book, t), 1, book.size - 1)
    lo, hi = book[idx - 1], book[idx]
    return np.where(np.abs(lo - t) <= np.abs(hi - t), lo, hi)


def align_channels(f: np.ndarray, steps: np.ndarray, max_codes: int | None = None) -> Alignment | None:
    """Find a signed factor per channel and a shared float codebook with f[c] ~ factor[c] x codebook.

    ``f`` is channels x weights (float), ``steps`` the quantisation step of each channel
    (its old scale), which sets the matching tolerance. Returns None when the codebook
    grows beyond ``max_codes`` (the tensor is not clustered).
    """
    channels = f.shape[0]
    factors = np.zeros(channels)
    values = [np.unique(row[row != 0.0]) for row in f]
    order = sorted(range(channels), key=lambda c: (-values[c].size, c))
    book = np.zeros(0)
    matched = total = 0
    for c in order:
        v = values[c]
        if v.size == 0:
            continue
        total += v.size
        if book.size == 0:
            factors[c] = np.max(np.abs(v))
            book = np.unique(v / factors[c])
            continue
        tol_abs = MATCH_STEPS * steps[c]
        extremes = v[np.argsort(-np.abs(v), kind="stable")[:EXTREMES_TRIED]]
        nz_book = book[book != 0.0]
        cands = (extremes[:, None] / nz_book[None, :]).ravel()
        # every candidate factor at once: distance of each value to its nearest scaled code
        t = v[None, :] / cands[:, None]
        d = np.abs(_nearest(book, t) * cands[:, None] - v[None, :])
        hit = d <= tol_abs
        hits = hit.sum(axis=1)
        err = np.where(hit, d * d, 0.0).sum(axis=1)
        best = int(np.lexsort((err, -hits))[0])
        a = float(cands[best])
        factors[c] = a
        matched += int(hits[best])
        new = v[~hit[best]] / a
        if new.size:
            book = np.unique(np.concatenate([book, new]))
            if max_codes is not None and book.size > max_codes:
                return None
    peak = np.max(np.abs(book)) if book.size else 1.0
    return Alignment(factors * peak, book / peak, matched / total if total else 1.0)


def joint_fit(
    q: np.ndarray,
    scales: np.ndarray,
    k: int,
    keep_zero: bool = True,
    iterations: int = 10,
) -> RefitResult | None:
    """Palette of <= k int8 codes with refitted per-channel scales, from the channel alignment.

    ``q`` is channels x weights (int8), ``scales`` the current per-channel scales.
    Returns None when the tensor does not look clustered (alignment cannot help).
    """
    scales = np.asarray(scales, np.float64)
    f = scales[:, None] * q.astype(np.float64)
    if max(np.unique(row).size for row in q) > MAX_VALUES_FOR_ALIGNMENT:
        return None
    # A clustered tensor aligns onto about K codes (2K with sign flips); far more means it is not clustered.
    al = align_channels(f, scales, max_codes=max(4 * k, 64))
    if al is None:
        return None
    mags = np.abs(al.factors)
    live = mags > 0
    if not live.any():
        return None
    # Codebook max maps to 127: channel c's new scale is |factor| / 127, codes carry the sign.
    new_scales = np.where(live, mags / PALETTE_MAX, scales)
    targets = f / new_scales[:, None]
    ints = np.clip(np.round(targets), -PALETTE_MAX, PALETTE_MAX).astype(np.int64)
    x, w = value_weights(ints.astype(np.int8), new_scales**2, 0)
    sol = solve_palette(x, w, k, keep_zero=keep_zero)
    codes = apply_lut(ints.astype(np.int8), value_lut(sol, x))
    start = float_error(f, new_scales, codes.astype(np.float64))
    r = refit_scales(f, codes, new_scales, sol.palette, keep_zero=keep_zero, max_iterations=iterations)
    if r.error <= start:
        return r
    return RefitResult(codes, new_scales, sol.palette, start, 0)
