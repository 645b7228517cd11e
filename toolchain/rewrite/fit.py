"""The weight-space fit of one tensor: the exact palette, then scale refit and joint fit, keeping the lowest error."""
from __future__ import annotations

import numpy as np

from ..algorithms.joint import joint_fit
from ..algorithms.palette import apply_lut, solve_palette, value_lut, value_weights
from ..algorithms.refit import float_error, refit_scales
from .config import ReclusterConfig, ScaleFit


def best_weight_fit(qc: np.ndarray, scales: np.ndarray, k: int, config: ReclusterConfig, may_refit: bool,
                    rate_lambda: float = 0.0):
    """(error, codes, scales, how) with the lowest float-domain error among the allowed fits; with a rate price,
    the rate-aware palette (algorithms.rate_fit) and, when allowed, its least-squares scales."""
    if rate_lambda > 0:
        from ..algorithms.rate_fit import rate_weight_fit

        err, codes, new_s = rate_weight_fit(qc, scales, k, rate_lambda, keep_zero=config.keep_zero)
        if not may_refit or config.fit is ScaleFit.KEEP:
            f = scales[:, None] * qc.astype(np.float64)
            return float_error(f, scales, codes.astype(np.float64)), codes, scales, ScaleFit.KEEP
        return err, codes, new_s, ScaleFit.KEEP if np.array_equal(new_s, scales) else ScaleFit.REFIT
    f = scales[:, None] * qc.astype(np.float64)
    values, weights = value_weights(qc, scales**2, 0)
    sol = solve_palette(values, weights, k, keep_zero=config.keep_zero)
    keep_codes = apply_lut(qc, value_lut(sol, values))
    best = (float_error(f, scales, keep_codes.astype(np.float64)), keep_codes, scales, ScaleFit.KEEP)
    if not may_refit or config.fit is ScaleFit.KEEP or config.refit_iterations == 0:
        return best
    r = refit_scales(f, keep_codes, scales, sol.palette, keep_zero=config.keep_zero,
                     max_iterations=config.refit_iterations, values=qc)
    if r.error < best[0]:
        best = (r.error, r.codes, r.scales, ScaleFit.REFIT)
    if config.fit is ScaleFit.JOINT:
        j = joint_fit(qc, scales, k, keep_zero=config.keep_zero, iterations=config.refit_iterations)
        if j is not None and j.error < best[0] and np.unique(j.codes).size <= k:
            best = (j.error, j.codes, j.scales, ScaleFit.JOINT)
    return best
