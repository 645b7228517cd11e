"""Output-aware shared-palette fit of one layer from calibration statistics (pure numpy).

A layer with weights w[c, :] = s[c] q[c, :] (int8 codes q, per-channel scales s) and bias
beta[c] = s[c] b[c] computes t[c] = w[c] . x + beta[c] on x = input - zero point (its output
divided by the input scale). With z = [x, 1] and v[c] = [w[c], beta[c]], the statistics of
calibration rows are H = sum z_n z_n^T (inputs the rewritten prefix produces), r[c] = sum
t_o[c] z_n (targets: the original layer on the original inputs) and e[c] = sum t_o[c]^2, so
the output error of any v is E(v) = v H v^T - 2 v r + e, exactly, without the rows.

The fit (after GPTQ, Frantar et al. 2022, with rounding to one shared palette of K int8 codes
instead of the integer grid): the unconstrained optimum v*, damped towards the original
weights (lambda = damping x mean diagonal: few rows, e.g. a fully connected layer's one row
per sample, cannot overfit); the exact palette DP on v* in int8 units; columns rounded one
by one to the nearest palette code with the inverse-Hessian compensation of the columns not
yet rounded (lazy blocks: the Python loop runs over one block's columns, the rest is matrix
products); the bias column is never rounded: it is the least-squares bias given the codes.
Nearest-code rounding of v* is kept instead when it has the lower error. A Hessian per
channel (depthwise convolution) runs the same loop batched over channels.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .gram import augmented_gram
from .palette import PALETTE_MAX, PALETTE_MIN, solve_palette, value_weights

GPTQ_BLOCK = 64  # columns per lazy block update (64 ran fastest on a 1024x3136 layer: 32, 128, 256 slower)
LOSSLESS_RELATIVE_ERROR = 1e-12  # below this, float rounding: the fit is exact


class LayerStatistics:
    """H, r and e of the module doc for the targets of ``v_orig`` (C, D+1), accumulated over chunks of
    calibration rows (an accumulator, not a result).

    ``per_channel``: one Hessian per output channel (depthwise), H is (C, D+1, D+1); else (D+1, D+1).
    While the rewritten prefix equals the original (the same rows), r and e follow from H alone.
    """

    def __init__(self, v_orig: np.ndarray, per_channel: bool) -> None:
        channels, d1 = v_orig.shape
        self.per_channel = per_channel
        self.v_orig = np.asarray(v_orig, np.float64)
        self.hessian = np.zeros((channels, d1, d1) if per_channel else (d1, d1))
        # The part of H from rows whose inputs did not move, not yet folded into r and e: H itself while
        # every row so far is such a row (``_all_same``), else kept apart in ``_same``.
        self._same: np.ndarray | None = None
        self._all_same = True
        self._pending = False
        self._cross = np.zeros((channels, d1))
        self._energy = np.zeros(channels)
        self.rows = 0

    @property
    def channels(self) -> int:
        return self._cross.shape[0]

    @property
    def inputs(self) -> int:
        return self._cross.shape[1] - 1

    def _fold(self) -> None:
        if self._pending:
            hv = self._times(self.hessian if self._all_same else self._same, self.v_orig)
            self._cross += hv
            self._energy += np.einsum("cd,cd->c", self.v_orig, hv)
            self._same, self._all_same, self._pending = None, False, False

    @property
    def cross(self) -> np.ndarray:
        self._fold()
        return self._cross

    @property
    def target_energy(self) -> np.ndarray:
        self._fold()
        return self._energy

    def add(self, x_new: np.ndarray, x_orig: np.ndarray | None = None) -> None:
        """Rows of centred integer inputs (x - zero point): (R, D) shared, or (C, R, D) per channel; ``x_orig``
        None: the same rows. H is exact (algorithms.gram): the same whatever the batches or BLAS threads."""
        h = augmented_gram(x_new)
        self.rows += x_new.shape[-2]
        if x_orig is None:
            if not self._all_same:
                self._same = h.copy() if self._same is None else np.add(self._same, h, out=self._same)
            self.hessian += h
            self._pending = True
            return
        if self._all_same:
            self._same = self.hessian.copy() if self._pending else None
            self._all_same = False
        self.hessian += h
        ones = np.ones(x_new.shape[:-1] + (1,), np.float32)
        zn = np.concatenate([x_new.astype(np.float32, copy=False), ones], axis=-1)
        zo = np.concatenate([x_orig.astype(np.float32, copy=False), ones], axis=-1)
        v32 = self.v_orig.astype(np.float32)
        if self.per_channel:
            t = np.matmul(zo, v32[:, :, None])[..., 0]  # (C, R)
            self._cross += np.matmul(t[:, None, :], zn)[:, 0, :].astype(np.float64)
            self._energy += np.sum(t.astype(np.float64) ** 2, axis=1)
        else:
            t = zo @ v32.T  # (R, C)
            self._cross += (t.T @ zn).astype(np.float64)
            self._energy += np.sum(t.astype(np.float64) ** 2, axis=0)

    def _times(self, h: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.matmul(h, v[:, :, None])[..., 0] if self.per_channel else v @ h

    def times(self, v: np.ndarray) -> np.ndarray:
        """H v[c] for every channel (C, D+1)."""
        return self._times(self.hessian, v)

    def entry(self, i: int, j: int) -> np.ndarray:
        """H[i, j] per channel (C,)."""
        h = self.hessian
        return h[:, i, j] if self.per_channel else np.full(self.channels, h[i, j])


def output_errors(stats: LayerStatistics, v: np.ndarray) -> np.ndarray:
    """E(v[c]) per channel: squared output error on the calibration rows (weight units)."""
    e = np.einsum("cd,cd->c", v, stats.times(v)) - 2.0 * np.einsum("cd,cd->c", v, stats.cross) + stats.target_energy
    return np.maximum(e, 0.0)


def relative_error(stats: LayerStatistics, v: np.ndarray) -> float:
    """Output noise energy / target energy (10^(-SQNR/10)); 0 when the fit is exact up to float rounding."""
    energy = float(np.sum(stats.target_energy)) or 1.0
    rel = float(np.sum(output_errors(stats, v))) / energy
    return 0.0 if rel < LOSSLESS_RELATIVE_ERROR else rel


@dataclass(frozen=True)
class CodesError:
    """The output error per channel of fixed codes a (C, D) as a function of each channel's scale s and bias
    beta (weight units): E_c = aa s^2 + 2 ab s beta + bb beta^2 - 2 ar s - 2 br beta + e, exactly
    output_errors of [s a, beta]. One H a product builds it; every (s, beta) after that is O(C), so a fit
    judges its rounding, least-squares bias and scale refit from one product instead of one each."""

    aa: np.ndarray = field(repr=False)
    ab: np.ndarray = field(repr=False)
    bb: np.ndarray = field(repr=False)
    ar: np.ndarray = field(repr=False)
    br: np.ndarray = field(repr=False)
    e: np.ndarray = field(repr=False)

    def errors(self, s: np.ndarray, beta: np.ndarray) -> np.ndarray:
        e = (self.aa * s * s + 2.0 * self.ab * s * beta + self.bb * beta * beta - 2.0 * self.ar * s
             - 2.0 * self.br * beta + self.e)
        return np.maximum(e, 0.0)

    def best_bias(self, s: np.ndarray) -> np.ndarray:
        """The bias (weight units) with the least output error for the weights s x codes."""
        return (self.br - s * self.ab) / self.bb


def codes_error(stats: LayerStatistics, codes: np.ndarray) -> CodesError:
    d = stats.inputs
    a = np.asarray(codes, np.float64)
    ha = stats.times(np.concatenate([a, np.zeros((a.shape[0], 1))], axis=1))
    cross = stats.cross
    return CodesError(np.einsum("cd,cd->c", a, ha[:, :d]), ha[:, d], stats.entry(d, d),
                      np.einsum("cd,cd->c", a, cross[:, :d]), cross[:, d], stats.target_energy)


def _damping(stats: LayerStatistics, damping: float) -> np.ndarray:
    """lambda per channel (one value for a shared Hessian): (damping + D / rows) x mean diagonal.

    The D / rows term pulls layers with few rows per input (a fully connected layer has one row per
    sample) towards their original weights: fitted freely, they would learn the calibration set.
    """
    d = stats.inputs
    h = stats.hessian
    diag = np.diagonal(h, axis1=-2, axis2=-1)[..., :d].mean(axis=-1)
    lam = np.broadcast_to((damping + d / max(stats.rows, 1)) * diag, (stats.channels,))
    return np.where(lam > 0, lam, max(damping, 1e-12))


def damped_targets(stats: LayerStatistics, v_orig: np.ndarray, damping: float,
                   free_bias: bool) -> tuple[np.ndarray, np.ndarray]:
    """(v*, inverse of the damped Hessian of the fitted columns): the unconstrained optimum pulled towards
    v_orig's weights. Without ``free_bias`` the bias keeps v_orig's and the Hessian loses its column.
    The inverse is (M, M) when the Hessian is shared, else (C, M, M)."""
    d = stats.inputs
    lam = _damping(stats, damping)
    rhs = stats.cross.copy()
    rhs[:, :d] += lam[:, None] * v_orig[:, :d]
    idx = np.arange(d)
    h = stats.hessian.copy()
    if stats.per_channel:
        h[:, idx, idx] += lam[:, None]
        if not free_bias:
            rhs, h = rhs[:, :d] - h[:, :d, d] * v_orig[:, d:], h[:, :d, :d]
        hinv = _symmetric_inverse(h)
        v = np.einsum("cde,ce->cd", hinv, rhs)
    else:
        h[idx, idx] += lam[0]
        if not free_bias:
            rhs, h = rhs[:, :d] - v_orig[:, d:] * h[None, :d, d], h[:d, :d]
        hinv = _symmetric_inverse(h)
        v = rhs @ hinv
    return (v, hinv) if free_bias else (np.concatenate([v, v_orig[:, d:]], axis=1), hinv)


@dataclass(frozen=True)
class LayerSolve:
    """What every candidate fit of one layer shares (damped_targets and its Cholesky factor): computed once
    when several K or rate prices are tried on the same statistics, the largest cost of a candidate."""

    v_star: np.ndarray = field(repr=False)
    hessian_inverse: np.ndarray = field(repr=False)
    upper: np.ndarray = field(repr=False)  # U with hessian_inverse = U^T U
    original_error: float  # sum of output_errors of v_orig (the layer as it is)


def solve_layer(stats: LayerStatistics, v_orig: np.ndarray, damping: float, free_bias: bool) -> LayerSolve:
    v_star, hinv = damped_targets(stats, v_orig, damping, free_bias)
    return LayerSolve(v_star, hinv, _upper_cholesky(hinv), float(output_errors(stats, v_orig).sum()))


def _symmetric_inverse(h: np.ndarray) -> np.ndarray:
    hinv = np.linalg.inv(h)
    return (hinv + np.swapaxes(hinv, -1, -2)) / 2


def _upper_cholesky(hinv: np.ndarray) -> np.ndarray:
    """U upper triangular with hinv = U^T U, batched."""
    return np.swapaxes(np.linalg.cholesky(hinv), -1, -2)


def nearest_codes(t: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Nearest palette code (palette sorted) to each target in int8 units; outside the range: the end codes."""
    if palette.size == 1:
        return np.full(t.shape, palette[0], np.float64)
    mids = (palette[1:] + palette[:-1]) / 2.0
    return palette[np.searchsorted(mids, t)].astype(np.float64)


def gptq_round(w: np.ndarray, scales: np.ndarray, palette: np.ndarray, hessian_inverse: np.ndarray, rounded: int,
               fixed_zero: np.ndarray | None = None, block: int = GPTQ_BLOCK,
               upper: np.ndarray | None = None,
               round_codes: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Codes (C, rounded) of the first ``rounded`` columns of ``w`` (C, M), rounded to ``palette`` in
    units of ``scales`` with inverse-Hessian compensation of the later columns (GPTQ).

    ``hessian_inverse``: (M, M) shared by all channels, or (C, M, M). Columns past ``rounded`` (the bias) are
    compensated, never rounded. ``fixed_zero`` (C, rounded) marks weights that must stay zero. ``upper``:
    the Cholesky factor of ``hessian_inverse`` when already computed. ``round_codes``: the rounding of one
    column's targets (int8 steps) to codes; by default the nearest palette code.
    """
    pal = np.asarray(palette, np.float64)
    if round_codes is None:
        def round_codes(t: np.ndarray) -> np.ndarray:
            return nearest_codes(t, pal)
    s = np.asarray(scales, np.float64)
    u = _upper_cholesky(hessian_inverse) if upper is None else upper
    if hessian_inverse.ndim == 2:
        return _gptq_shared(np.asarray(w, np.float64), s, u, rounded, fixed_zero, block, round_codes)
    w = np.array(w, np.float64)
    codes = np.zeros((w.shape[0], rounded))
    for j in range(rounded):
        col = w[:, j]
        c = round_codes(col / s)
        if fixed_zero is not None:
            c = np.where(fixed_zero[:, j], 0.0, c)
        codes[:, j] = c
        e = (col - s * c) / u[:, j, j]
        w[:, j:] -= e[:, None] * u[:, j, j:]
    return codes


def _gptq_shared(w: np.ndarray, s: np.ndarray, u: np.ndarray, rounded: int, fixed_zero: np.ndarray | None,
                 block: int, round_codes: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """gptq_round with one Hessian for all channels, on w transposed: a column of w is then a contiguous row,
    which halves the loop's time on large layers (the strided column updates missed the cache)."""
    wt = np.array(w.T, order="C")  # (M, C)
    m, channels = wt.shape
    codes = np.zeros((rounded, channels))
    for b0 in range(0, rounded, block):
        b1 = min(b0 + block, rounded)
        err = np.zeros((b1 - b0, channels))
        for j in range(b0, b1):
            col = wt[j]
            c = round_codes(col / s)
            if fixed_zero is not None:
                c = np.where(fixed_zero[:, j], 0.0, c)
            codes[j] = c
            e = (col - s * c) / u[j, j]
            wt[j:b1] -= u[j, j:b1][:, None] * e[None, :]
            err[j - b0] = e
        if b1 < m:
            wt[b1:] -= u[b0:b1, b1:].T @ err
    return np.ascontiguousarray(codes.T)


@dataclass(frozen=True)
class OutputFit:
    codes: np.ndarray = field(repr=False)  # (C, D) int8 palette codes
    scales: np.ndarray = field(repr=False)  # (C,)
    bias: np.ndarray = field(repr=False)  # (C,) in weight units (s x int bias)
    palette: np.ndarray = field(repr=False)
    error: float  # squared output error on the calibration rows (weight units)
    method: str  # "gptq" or "nearest": which rounding won
    scales_refit: bool


def _assemble(codes: np.ndarray, scales: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return np.concatenate([scales[:, None] * codes, bias[:, None]], axis=1)


def _bias_for(q: CodesError, scales: np.ndarray, v_orig: np.ndarray, free_bias: bool) -> np.ndarray:
    return q.best_bias(scales) if free_bias else v_orig[:, -1].copy()


def refit_channel_scales(stats: LayerStatistics, codes: np.ndarray, scales: np.ndarray, v_orig: np.ndarray,
                         damping: float, free_bias: bool, q: CodesError | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, the (damped) least-squares scale, and bias when free, for fixed codes (``q``: their
    codes_error when already built)."""
    d = stats.inputs
    lam = _damping(stats, damping)
    q = codes_error(stats, codes) if q is None else q
    aha = q.aa + lam * np.einsum("cd,cd->c", codes, codes)
    arw = q.ar + lam * np.einsum("cd,cd->c", codes, v_orig[:, :d])
    ahb = q.ab
    if free_bias:
        hbb, rb = q.bb, q.br
        det = aha * hbb - ahb * ahb
        ok = np.abs(det) > 1e-12 * np.abs(aha * hbb)
        s = np.where(ok, (arw * hbb - ahb * rb) / np.where(ok, det, 1.0), scales)
        beta = (rb - s * ahb) / hbb
    else:
        beta = v_orig[:, d].copy()
        ok = aha > 0
        s = np.where(ok, (arw - ahb * beta) / np.where(ok, aha, 1.0), scales)
    good = np.isfinite(s) & (s > 0) & np.isfinite(beta)
    s = np.where(good, s, scales)
    beta = np.where(good, beta, _bias_for(q, scales, v_orig, free_bias))
    return s, beta


def choose_palette(v_star: np.ndarray, scales: np.ndarray, k: int, fixed_zero: np.ndarray | None) -> np.ndarray:
    """The exact palette DP (palette.solve_palette) on v*'s weights in int8 units of each channel's scale."""
    ints = np.clip(np.round(v_star / scales[:, None]), PALETTE_MIN, PALETTE_MAX)
    if fixed_zero is not None:
        ints = np.where(fixed_zero, 0.0, ints)
    values, weights = value_weights(ints.astype(np.int8), scales**2, 0)
    return solve_palette(values, weights, k, keep_zero=fixed_zero is not None).palette.astype(np.float64)


def fit_output_palette(stats: LayerStatistics, codes_orig: np.ndarray, scales: np.ndarray, bias_orig: np.ndarray,
                       k: int, *, free_bias: bool = True, keep_zero: bool = True, damping: float = 0.01,
                       refit_scales: bool = True, starts: tuple = (), solve: LayerSolve | None = None,
                       try_nearest: bool = True) -> OutputFit:
    """Shared palette of <= k int8 codes and per-channel scales minimising the layer's output error.

    ``codes_orig`` (C, D) int8, ``scales`` (C,), ``bias_orig`` (C,) int bias in accumulator units.
    ``starts``: more (scales, palette or None) to round with besides the original scales and the DP
    palette (e.g. the weight-space fit's); the lowest output error wins. ``refit_scales`` is for
    per-channel scales only (a per-tensor scale must stay shared). ``solve``: solve_layer's result for these
    statistics, v_orig, damping and free_bias when already computed. ``try_nearest`` False: GPTQ's rounding
    alone (nearest rounding of v* rarely wins; skipping it saves one error evaluation).
    """
    scales = np.asarray(scales, np.float64)
    q = np.asarray(codes_orig, np.float64)
    d = q.shape[1]
    v_orig = _assemble(q, scales, scales * np.asarray(bias_orig, np.float64))
    solve = solve_layer(stats, v_orig, damping, free_bias) if solve is None else solve
    v_star, hinv, upper = solve.v_star, solve.hessian_inverse, solve.upper
    fixed_zero = (q == 0) if keep_zero and np.any(q == 0) else None
    candidates = []
    for start_scales, palette in ((scales, None),) + tuple(starts):
        s = np.asarray(start_scales, np.float64)
        if palette is None:
            palette = choose_palette(v_star[:, :d], s, k, fixed_zero)
        palette = np.asarray(palette, np.float64)
        gptq = gptq_round(v_star if free_bias else v_star[:, :d], s, palette, hinv, d, fixed_zero, upper=upper)
        nearest = nearest_codes(v_star[:, :d] / s[:, None], palette)
        if fixed_zero is not None:
            nearest = np.where(fixed_zero, 0.0, nearest)
        for method, codes in (("gptq", gptq), ("nearest", nearest))[: 2 if try_nearest else 1]:
            q = codes_error(stats, codes)
            bias = _bias_for(q, s, v_orig, free_bias)
            per_channel = q.errors(s, bias)
            candidates.append((float(per_channel.sum()), method, codes, s, bias, per_channel, palette, q))
    error, method, codes, s, bias, per_channel, palette, q = min(candidates, key=lambda c: c[0])
    refit = not np.array_equal(s, scales)
    if refit_scales:
        s2, b2 = refit_channel_scales(stats, codes, s, v_orig, damping, free_bias, q)
        after = q.errors(s2, b2)
        # float noise is no gain: an exact fit keeps its scales
        better = after < per_channel * (1.0 - 1e-9) - LOSSLESS_RELATIVE_ERROR * stats.target_energy
        if better.any():
            s, bias = np.where(better, s2, s), np.where(better, b2, bias)
            error = float(np.sum(np.where(better, after, per_channel)))
            refit = True
    return OutputFit(codes.astype(np.int8), s, bias, palette.astype(np.int64), error, method, refit)
