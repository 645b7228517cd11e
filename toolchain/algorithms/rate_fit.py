"""Rate-aware shared palettes: least error + lambda x code bits (entropy-constrained quantisation; pure numpy).

Vela's weight stream codes palette indices by frequency (Golomb-Rice on the frequency rank, zero
runs apart), so a palette used unevenly costs fewer bytes than the same number of values used
evenly. The ideal code length of entry j is -log2 p_j (p_j: the share of weights mapped to it);
these functions trade error against that length (Chou, Lookabaugh and Gray's entropy-constrained
scalar quantisation). Lambda is dimensionless: bits are priced in squared int8 steps of the
weights' own channel (a lambda of 0.1 gives up one bit per weight for 0.1 step^2 of error), so one
lambda means the same on every layer and for both objectives. The real size comes from Vela
(targets.weight_encoding); this module only shapes the palette.

- ``entropy_palette``: the exact optimum over contiguous runs of sorted values of
  sum of weighted squared error + lambda x N_run x log2(N / N_run), by the palette DP. With
  weights proportional to counts, contiguous runs are optimal among all assignments (re-encoding
  any assignment with its own codes and lengths gives intervals and cannot raise the cost).
- ``rate_round``: GPTQ's column loop (output_fit.gptq_round) with each weight rounded to the code
  minimising (target - code)^2 + lambda x bits(code) in int8 steps, and the same compensation; the bits
  are Vela's Golomb-Rice lengths of the codes' frequency ranks (``golomb_rice_bits``), not the ideal ones.
- ``fit_rate_palette``: the output-aware fit of a layer with both, code lengths re-estimated from the
  rounding over a few passes, then the per-channel scale (and bias) refit, which leaves codes and rate.
- ``rate_weight_fit``: the same on the weights' own error (no data): the DP, then a least-squares scale
  per channel for the fixed codes (never worse).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .output_fit import (
    GPTQ_BLOCK,
    LayerSolve,
    OutputFit,
    codes_error,
    gptq_round,
    refit_channel_scales,
    solve_layer,
)
from .palette import (
    PALETTE_MAX,
    PALETTE_MIN,
    PaletteSolution,
    apply_lut,
    partition,
    segment_costs,
    value_lut,
    value_weights,
)

RATE_PASSES = 3  # rounding passes, code lengths re-estimated from the previous one
SMOOTHING = 0.5  # pseudo-count of every palette entry: an unused entry costs about log2(2N) bits, not infinity


@dataclass(frozen=True)
class RatePalette:
    solution: PaletteSolution
    counts: np.ndarray = field(repr=False)  # weights mapped to each palette entry
    distortion: float  # weighted squared error (the weights' units)
    bits: float  # sum of ideal code lengths, N x entropy of the assignment

    @property
    def palette(self) -> np.ndarray:
        return self.solution.palette


def ideal_bits(counts: np.ndarray) -> float:
    """N x entropy (bits) of a mapping with these counts per entry."""
    c = np.asarray(counts, np.float64)
    c = c[c > 0]
    n = float(c.sum())
    return float(np.sum(c * np.log2(n / c))) if n > 0 else 0.0


def code_bits(counts: np.ndarray) -> np.ndarray:
    """Code length (bits) of each entry from its count, smoothed so that an unused entry stays finite."""
    c = np.asarray(counts, np.float64) + SMOOTHING
    return np.log2(c.sum() / c)


GOLOMB_RICE_DIVISORS = range(6)  # Vela's weight stream: GRC divisors 0..5, plain or truncated (quotient <= 2)


def golomb_rice_bits(counts: np.ndarray) -> np.ndarray:
    """Code length (bits) of each palette entry in Vela's weight stream: entries ranked by count (most common
    first; an entry's index is its rank), each coded as Golomb-Rice with the one divisor (plain or truncated)
    that codes these counts in the fewest bits. What skew buys there comes in steps: a more peaked use
    pays only when it lets a smaller divisor win or moves weights below a rank boundary."""
    c = np.asarray(counts, np.float64) + SMOOTHING
    rank = np.empty(c.size, np.int64)
    rank[np.argsort(-c, kind="stable")] = np.arange(c.size)
    best, best_total = None, np.inf
    for div in GOLOMB_RICE_DIVISORS:
        q = rank >> div
        variants = [q + 1 + div]
        if int(q.max(initial=0)) <= 2:
            variants.append(np.minimum(q + 1, 2) + div)
        for lengths in variants:
            total = float(np.sum(c * lengths))
            if total < best_total:
                best, best_total = lengths, total
    return np.asarray(best, np.float64)


def entropy_palette(values: np.ndarray, weights: np.ndarray, counts: np.ndarray, k: int, lam: float,
                    keep_zero: bool = True) -> RatePalette:
    """At most ``k`` integer centroids over contiguous runs of the sorted distinct ``values`` minimising
    sum weights x squared error + ``lam`` x ideal bits (see module doc); ``counts``: weights holding each value.

    The run holding 0 keeps centroid 0 when ``keep_zero`` and 0 is a value. Exact over contiguous runs."""
    x = np.asarray(values, np.int64)
    w = np.asarray(weights, np.float64)
    n = np.asarray(counts, np.float64)
    if x.ndim != 1 or x.shape != w.shape or x.shape != n.shape:
        raise ValueError("values, weights and counts must be 1-D arrays of the same length")
    if k < 1:
        raise ValueError("k must be at least 1")
    if not np.isfinite(lam) or lam < 0:
        raise ValueError(f"lambda must be finite and >= 0, got {lam}")
    if x.size and np.any(np.diff(x) <= 0):
        raise ValueError("values must be sorted and distinct")
    if x.size == 0:
        return RatePalette(PaletteSolution(np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0), np.zeros(0), 0.0, 0.0)
    wmax = float(w.max()) if float(w.max()) > 0 else 1.0
    zero_index = int(np.searchsorted(x, 0)) if keep_zero and 0 in x else None
    cost, centroid = segment_costs(x, w / wmax, zero_index)
    distortion_cost = cost.copy()
    total = float(n.sum())
    if lam > 0 and total > 0:
        pn = np.concatenate([[0.0], np.cumsum(n)])
        a = np.arange(x.size)[:, None]
        b = np.arange(x.size)[None, :]
        run = np.where(a <= b, pn[b + 1] - pn[a], 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(run > 0, run * np.log2(total / np.where(run > 0, run, 1.0)), 0.0)
        cost = np.where(a <= b, cost + (lam / wmax) * rate, np.inf)
    bounds = partition(cost, k)
    palette = np.array([centroid[a, b] for a, b in bounds], dtype=np.int64)
    entry = np.concatenate([np.full(b - a + 1, i, dtype=np.int64) for i, (a, b) in enumerate(bounds)])
    run_counts = np.array([n[a:b + 1].sum() for a, b in bounds])
    distortion = float(sum(distortion_cost[a, b] for a, b in bounds)) * wmax
    return RatePalette(PaletteSolution(palette, entry, distortion), run_counts, distortion, ideal_bits(run_counts))


def rate_codes(t: np.ndarray, palette: np.ndarray, lam: float, bits: np.ndarray) -> np.ndarray:
    """The palette code minimising (t - code)^2 + lam x bits(code) for each target ``t`` (int8 steps)."""
    pal = np.asarray(palette, np.float64)
    cost = (np.asarray(t, np.float64)[..., None] - pal) ** 2 + lam * np.asarray(bits, np.float64)
    return pal[np.argmin(cost, axis=-1)]


def rate_round(w: np.ndarray, scales: np.ndarray, palette: np.ndarray, hessian_inverse: np.ndarray, rounded: int,
               lam: float, bits: np.ndarray, fixed_zero: np.ndarray | None = None, block: int = GPTQ_BLOCK,
               upper: np.ndarray | None = None) -> np.ndarray:
    """Codes (C, rounded) of the first ``rounded`` columns of ``w`` (C, M) in units of ``scales``: GPTQ's loop
    (inverse-Hessian compensation of the later columns, lazy blocks) with ``rate_codes`` as the rounding.

    ``hessian_inverse``: (M, M) shared or (C, M, M) per channel; ``bits``: code length per palette entry;
    ``upper``: its Cholesky factor when already computed."""
    return gptq_round(w, scales, palette, hessian_inverse, rounded, fixed_zero, block, upper=upper,
                      round_codes=lambda t: rate_codes(t, palette, lam, bits))


def _entry_counts(codes: np.ndarray, palette: np.ndarray) -> np.ndarray:
    return np.array([np.count_nonzero(codes == v) for v in palette], np.float64)


def _palette_on(ints: np.ndarray, scales: np.ndarray, k: int, rate_lambda: float,
                keep_zero: bool) -> tuple[RatePalette, float]:
    """The entropy-constrained palette of int8 values ``ints`` (C, D), each channel weighted by its scale^2
    relative to the mean, and the absolute price of a bit it used: ``rate_lambda`` x the mean squared error
    (int8 steps) of the palette without the rate term."""
    rel = scales**2 / (float(np.mean(scales**2)) or 1.0)
    values, weights = value_weights(ints, rel, 0)
    _, counts = value_weights(ints, np.ones_like(rel), 0)
    plain = entropy_palette(values, weights, counts, k, 0.0, keep_zero)
    if rate_lambda <= 0:
        return plain, 0.0
    lam = rate_lambda * plain.distortion / max(float(counts.sum()), 1.0)
    return entropy_palette(values, weights, counts, k, lam, keep_zero), lam


def fit_rate_palette(stats, codes_orig: np.ndarray, scales: np.ndarray, bias_orig: np.ndarray, k: int,
                     rate_lambda: float, *,
                     free_bias: bool = True, keep_zero: bool = True, damping: float = 0.01, refit_scales: bool = True,
                     passes: int = RATE_PASSES, solve: LayerSolve | None = None) -> OutputFit:
    """The rate-aware output fit of one layer (output_fit.LayerStatistics ``stats``): palette from the
    entropy-constrained DP on the damped optimum v*, rate-aware GPTQ rounding, code lengths re-estimated
    ``passes`` times, then the per-channel scale/bias refit when it lowers the output error. ``solve``:
    output_fit.solve_layer's result for these statistics when already computed."""
    s = np.asarray(scales, np.float64)
    q = np.asarray(codes_orig, np.float64)
    d = q.shape[1]
    v_orig = np.concatenate([s[:, None] * q, (s * np.asarray(bias_orig, np.float64))[:, None]], axis=1)
    solve = solve_layer(stats, v_orig, damping, free_bias) if solve is None else solve
    v_star, hinv = solve.v_star, solve.hessian_inverse
    fixed_zero = (q == 0) if keep_zero and np.any(q == 0) else None
    ints = np.clip(np.round(v_star[:, :d] / s[:, None]), PALETTE_MIN, PALETTE_MAX)
    if fixed_zero is not None:
        ints = np.where(fixed_zero, 0.0, ints)
    rp, lam = _palette_on(ints.astype(np.int8), s, k, rate_lambda, fixed_zero is not None)
    palette = rp.palette.astype(np.float64)
    bits = golomb_rice_bits(rp.counts)
    target = v_star if free_bias else v_star[:, :d]
    codes = None
    for _ in range(max(passes, 1)):
        codes = rate_round(target, s, palette, hinv, d, lam, bits, fixed_zero, upper=solve.upper)
        bits = golomb_rice_bits(_entry_counts(codes, palette))
    q = codes_error(stats, codes)
    bias = q.best_bias(s) if free_bias else v_orig[:, -1].copy()
    error = float(q.errors(s, bias).sum())
    refit = False
    if refit_scales:
        s2, b2 = refit_channel_scales(stats, codes, s, v_orig, damping, free_bias, q)
        e2 = float(q.errors(s2, b2).sum())
        if e2 < error:
            s, bias, error, refit = s2, b2, e2, not np.array_equal(s2, np.asarray(scales, np.float64))
    return OutputFit(codes, s, bias, palette, error, "gptq+rate", refit)


def rate_weight_fit(qc: np.ndarray, scales: np.ndarray, k: int, rate_lambda: float,
                    keep_zero: bool = True) -> tuple[float, np.ndarray, np.ndarray]:
    """(error, codes, scales) of the rate-aware weight-space fit of int8 codes ``qc`` (C, D) with per-channel
    ``scales``: the entropy-constrained palette, then each channel's least-squares scale for its codes when
    that lowers its error (codes and rate unchanged)."""
    s = np.asarray(scales, np.float64)
    rp, _ = _palette_on(np.asarray(qc), s, k, rate_lambda, keep_zero)
    values, _ = value_weights(qc, np.ones_like(s), 0)
    codes = apply_lut(qc, value_lut(rp.solution, values)).astype(np.float64)
    f = s[:, None] * np.asarray(qc, np.float64)
    den = np.sum(codes * codes, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        fitted = np.where(den > 0, np.sum(f * codes, axis=1) / np.where(den > 0, den, 1.0), s)
    before = np.sum((f - s[:, None] * codes) ** 2, axis=1)
    after = np.sum((f - fitted[:, None] * codes) ** 2, axis=1)
    new_s = np.where((fitted > 0) & np.isfinite(fitted) & (after < before), fitted, s)
    error = float(np.sum((f - new_s[:, None] * codes) ** 2))
    return error, codes.astype(np.int8), new_s
