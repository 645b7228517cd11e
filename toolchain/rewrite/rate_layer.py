"""The rate-aware output fit of one layer (algorithms.rate_fit), as a ``LayerFit`` of the output-aware rewrite.

Kept apart from output_aware.fit_layer: with a rate price the fit is chosen for error + rate, so the
lowest-error candidates of fit_layer (which ignore the rate) are not compared with it.
"""
from __future__ import annotations

import numpy as np

from ..algorithms.output_fit import LOSSLESS_RELATIVE_ERROR, LayerStatistics, solve_layer
from ..algorithms.rate_fit import RATE_PASSES, fit_rate_palette
from ..tflite.graph import Granularity
from .config import ReclusterConfig
from .layers import FitLayer


def fit_layer_rate(layer: FitLayer, k: int, rate_lambda: float, stats: LayerStatistics, codes: np.ndarray,
                   scales: np.ndarray, bias: np.ndarray, config: ReclusterConfig, solve=None, quick: bool = False):
    """The rate-aware fit of ``layer`` at K and ``rate_lambda`` (> 0), with its relative output errors
    (``solve``: output_fit.solve_layer's result for the layer when already computed; ``quick``: one rounding
    pass, code lengths from the palette's own counts, for a plan's options)."""
    from .output_aware import LayerFit, stacked_weights

    def _relative(error: float) -> float:
        rel = error / (float(np.sum(stats.target_energy)) or 1.0)
        return 0.0 if rel < LOSSLESS_RELATIVE_ERROR else rel

    per_tensor = layer.weight.quantization.granularity is Granularity.PER_TENSOR
    if solve is None:
        solve = solve_layer(stats, stacked_weights(codes, scales, scales * bias), config.damping, layer.free_bias)
    before = _relative(solve.original_error)
    fit = fit_rate_palette(stats, codes, scales, bias, k, rate_lambda, free_bias=layer.free_bias,
                           keep_zero=config.keep_zero, damping=config.damping, refit_scales=not per_tensor, solve=solve,
                           passes=1 if quick else RATE_PASSES)
    rel = _relative(fit.error)
    return LayerFit(fit.codes.astype(np.int8), fit.scales, fit.bias, f"outputs ({fit.method})", rel, rel, before,
                    not np.array_equal(fit.scales, scales))
