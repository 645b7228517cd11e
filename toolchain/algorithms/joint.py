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
SEARCH_SAMPLE = 512  # weights per channel the scale search scores candidates on
SEARCH_EXTREMES = 2  # the scale search tries the two largest weights of a channel against every code


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
    (its old scale). Every codebook entry carries the uncertainty of the int8 rounding it
    came from; a value matches an entry when they agree within both uncertainties, and
    matched entries are refined by inverse-variance averaging. Returns None when the
    codebook grows beyond ``max_codes`` (the tensor is not clustered).
    """
    channels = f.shape[0]
    factors = np.zeros(channels)
    values = [np.unique(row[row != 0.0]) for row in f]
    order = sorted(range(channels), key=lambda c: (-values[c].size, c))
    book = np.zeros(0)
    unc = np.zeros(0)
    matched = total = 0
    for c in order:
        v = values[c]
        if v.size == 0:
            continue
        total += v.size
        if book.size == 0:
            factors[c] = np.max(np.abs(v))
            book = v / factors[c]
            unc = np.full(v.size, 0.5 * steps[c] / factors[c])
            continue
        extremes = v[np.argsort(-np.abs(v), kind="stable")[:EXTREMES_TRIED]]
        nz = book != 0.0
        cands = (extremes[:, None] / book[nz][None, :]).ravel()
        # every candidate factor at once: each value's distance to its nearest entry, in uncertainties
        t = v[None, :] / cands[:, None]
        tv = 0.5 * steps[c] / np.abs(cands)[:, None]
        idx = np.clip(np.searchsorted(book, t), 1, max(book.size - 1, 1)) if book.size > 1 else np.zeros(t.shape, int)
        if book.size > 1:
            left = np.abs(book[idx - 1] - t) <= np.abs(book[idx] - t)
            idx = np.where(left, idx - 1, idx)
        d = np.abs(book[idx] - t)
        allowed = MATCH_STEPS * 2 * (tv + unc[idx])
        hit = d <= allowed
        hits = hit.sum(axis=1)
        err = np.where(hit, (d / allowed) ** 2, 0.0).sum(axis=1)
        best = int(np.lexsort((err, -hits))[0])
        a = float(cands[best])
        factors[c] = a
        matched += int(hits[best])
        tb, vb, ib, hb = t[best], tv[best][0], idx[best], hit[best]
        # refine matched entries (inverse-variance mean), append the rest
        for j in np.nonzero(hb)[0]:
            e = ib[j]
            w1, w2 = 1.0 / unc[e] ** 2, 1.0 / vb**2
            book[e] = (book[e] * w1 + tb[j] * w2) / (w1 + w2)
            unc[e] = 1.0 / np.sqrt(w1 + w2)
        if (~hb).any():
            book = np.concatenate([book, tb[~hb]])
            unc = np.concatenate([unc, np.full(int((~hb).sum()), vb)])
        order_b = np.argsort(book, kind="stable")
        book, unc = book[order_b], unc[order_b]
        if max_codes is not None and book.size > max_codes:
            return None
    peak = np.max(np.abs(book)) if book.size else 1.0
    return Alignment(factors * peak, book / peak, matched / total if total else 1.0)


def distinct_per_row(q: np.ndarray) -> np.ndarray:
    """How many distinct values each row of an int8 matrix holds (one pass, no per-row sort)."""
    rows = q.shape[0]
    seen = np.zeros((rows, 256), bool)
    seen[np.arange(rows)[:, None], q.astype(np.int64) + 128] = True
    return seen.sum(axis=1)


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
    if int(np.max(distinct_per_row(q), initial=0)) > MAX_VALUES_FOR_ALIGNMENT:
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
    r = refit_scales(f, codes, new_scales, sol.palette, keep_zero=keep_zero, max_iterations=iterations, values=q)
    best = r if r.error <= start else RefitResult(codes, new_scales, sol.palette, start, 0)
    # Alternate: best scale per channel for the current palette (a discrete search: the
    # error is not convex in the scale), then the exact palette for the new scales.
    for _ in range(iterations):
        searched = scale_search(f, best.palette.astype(np.float64), best.scales)
        ints = np.clip(np.round(f / searched[:, None]), -PALETTE_MAX, PALETTE_MAX).astype(np.int8)
        x, w = value_weights(ints, searched**2, 0)
        sol = solve_palette(x, w, k, keep_zero=keep_zero)
        codes = apply_lut(ints, value_lut(sol, x))
        cand = refit_scales(f, codes, searched, sol.palette, keep_zero=keep_zero, max_iterations=iterations,
                            values=q)
        if not cand.error < best.error * (1 - 1e-4):
            break
        best = cand
    return best


def scale_search(f: np.ndarray, palette: np.ndarray, scales: np.ndarray, block_elements: int = 1 << 22) -> np.ndarray:
    """Per channel, the scale among f/L candidates (largest |f| x every entry) with the least error.

    Vectorised over blocks of channels so that a block's candidate grid stays within
    ``block_elements`` floats.
    """
    out = scales.copy()
    nz = palette[palette != 0.0]
    if nz.size == 0:
        return out
    mids = (palette[1:] + palette[:-1]) / 2.0
    channels, n = f.shape
    top = np.argsort(-np.abs(f), axis=1, kind="stable")[:, :SEARCH_EXTREMES]
    ext = np.take_along_axis(f, top, axis=1)  # C x E
    cands = (ext[:, :, None] / nz[None, None, :]).reshape(channels, -1)  # C x (E * P)
    # only positive factors are scales; others fall back to the current scale (a harmless duplicate)
    cands = np.concatenate([np.where(cands > 0, cands, scales[:, None]), scales[:, None]], axis=1)
    if n > SEARCH_SAMPLE:
        # choosing among candidates needs no more than an even sample of the channel plus its extremes
        cols = np.unique(np.linspace(0, n - 1, SEARCH_SAMPLE).astype(np.int64))
        sample = np.concatenate([f[:, cols], ext], axis=1)
    else:
        sample = f
    f = sample
    n = f.shape[1]
    per_channel = cands.shape[1] * n
    step = max(1, block_elements // max(per_channel, 1))
    for lo in range(0, channels, step):
        hi = min(channels, lo + step)
        fb, cb = f[lo:hi], cands[lo:hi]
        t = fb[:, None, :] / cb[:, :, None]
        near = palette[np.searchsorted(mids, t)]
        err = np.sum((fb[:, None, :] - cb[:, :, None] * near) ** 2, axis=2)
        best = np.argmin(err, axis=1)
        live = np.any(fb != 0.0, axis=1)
        out[lo:hi] = np.where(live, cb[np.arange(hi - lo), best], scales[lo:hi])
    return out
