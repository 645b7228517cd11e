"""The output-aware fit's numpy pieces against independent references: direct products, brute force, naive loops."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolchain.algorithms.im2col import (
    ConvGeometry,
    conv_patches,
    depthwise_patches,
    sample_positions,
)
from toolchain.algorithms.output_fit import (
    LayerStatistics,
    codes_error,
    damped_targets,
    fit_output_palette,
    gptq_round,
    output_errors,
    relative_error,
)


def _stack(codes, scales, bias_int):
    return np.concatenate([scales[:, None] * codes, (scales * bias_int)[:, None]], axis=1)


def _direct_error(x_new, x_orig, v_new, v_orig):
    """||[x_n 1] v_new^T - [x_o 1] v_orig^T||^2 per channel, from the rows themselves."""
    zn = np.c_[x_new.astype(np.float64), np.ones(len(x_new))]
    zo = np.c_[x_orig.astype(np.float64), np.ones(len(x_orig))]
    return np.sum((zn @ v_new.T - zo @ v_orig.T) ** 2, axis=0)


def test_statistics_give_the_exact_output_error_in_chunks():
    rng = np.random.default_rng(0)
    x_o = rng.integers(-100, 100, (700, 12)).astype(np.float32)
    x_n = x_o + rng.integers(-3, 4, x_o.shape)  # the rewritten prefix moved the inputs a little
    v_o = rng.normal(0, 0.01, (5, 13))
    v_n = v_o + rng.normal(0, 0.002, v_o.shape)
    stats = LayerStatistics(v_o, per_channel=False)
    for lo in range(0, 700, 256):
        stats.add(x_n[lo:lo + 256], x_o[lo:lo + 256])
    np.testing.assert_allclose(output_errors(stats, v_n), _direct_error(x_n, x_o, v_n, v_o), rtol=1e-4)
    same = LayerStatistics(v_o, per_channel=False)
    same.add(x_o[:300])
    same.add(x_o[300:])
    np.testing.assert_allclose(output_errors(same, v_n), _direct_error(x_o, x_o, v_n, v_o), rtol=1e-4)
    assert relative_error(same, v_o) == 0.0


def test_per_channel_statistics_match_each_channel_alone():
    rng = np.random.default_rng(1)
    x_o = rng.integers(-50, 50, (4, 300, 9)).astype(np.float32)  # channels, rows, taps
    x_n = x_o + rng.integers(-2, 3, x_o.shape)
    v_o = rng.normal(0, 0.01, (4, 10))
    v_n = v_o + rng.normal(0, 0.003, v_o.shape)
    stats = LayerStatistics(v_o, per_channel=True)
    stats.add(x_n, x_o)
    expected = [_direct_error(x_n[c], x_o[c], v_n[c:c + 1], v_o[c:c + 1])[0] for c in range(4)]
    np.testing.assert_allclose(output_errors(stats, v_n), expected, rtol=1e-4)


@pytest.mark.parametrize("per_channel", [False, True])
def test_codes_error_is_the_output_error_of_any_scale_and_bias(per_channel):
    """The quadratic in (scale, bias) built from one H a product gives, for every scale and bias, what the rows
    themselves give (an independent reference: the outputs computed sample by sample)."""
    rng = np.random.default_rng(5)
    channels, taps = 4, 9
    shape = (channels, 300, taps) if per_channel else (300, taps)
    x_o = rng.integers(-50, 50, shape).astype(np.float32)
    x_n = x_o + rng.integers(-2, 3, x_o.shape)
    v_o = rng.normal(0, 0.01, (channels, taps + 1))
    stats = LayerStatistics(v_o, per_channel=per_channel)
    stats.add(x_n, x_o)
    codes = rng.integers(-8, 8, (channels, taps)).astype(np.float64)
    q = codes_error(stats, codes)
    for _ in range(3):
        s = rng.uniform(0.0005, 0.002, channels)
        beta = rng.normal(0, 0.01, channels)
        v = np.c_[s[:, None] * codes, beta]
        if per_channel:
            expected = [_direct_error(x_n[c], x_o[c], v[c:c + 1], v_o[c:c + 1])[0] for c in range(channels)]
        else:
            expected = _direct_error(x_n, x_o, v, v_o)
        np.testing.assert_allclose(q.errors(s, beta), expected, rtol=1e-6)
        ls = q.best_bias(s)  # the least-squares bias: no bias does better on any channel
        for shift in (-1e-3, 1e-3):
            assert np.all(q.errors(s, ls) <= q.errors(s, ls + shift) + 1e-12)


def test_best_bias_is_lstsq():
    rng = np.random.default_rng(2)
    x_o = rng.normal(0, 30, (400, 6)).astype(np.float32)
    v_o = rng.normal(0, 0.1, (3, 7))
    stats = LayerStatistics(v_o, per_channel=False)
    stats.add(x_o)
    w = v_o[:, :6] + rng.normal(0, 0.02, (3, 6))
    target = np.c_[x_o, np.ones(400)] @ v_o.T
    expected = [np.mean(target[:, c] - x_o @ w[c]) for c in range(3)]
    np.testing.assert_allclose(codes_error(stats, w).best_bias(np.ones(3)), expected, rtol=1e-5, atol=1e-9)


def test_targets_are_the_least_squares_solution_with_tiny_damping():
    rng = np.random.default_rng(3)
    x_o = rng.normal(0, 20, (2000, 5)).astype(np.float32)
    x_n = x_o * 0.9 + rng.normal(0, 2, x_o.shape).astype(np.float32)
    v_o = rng.normal(0, 0.1, (4, 6))
    stats = LayerStatistics(v_o, per_channel=False)
    stats.add(x_n, x_o)
    v_star, _ = damped_targets(stats, v_o, 1e-9, free_bias=True)
    zn = np.c_[x_n, np.ones(2000)]
    expected = np.linalg.lstsq(zn, np.c_[x_o, np.ones(2000)] @ v_o.T, rcond=None)[0].T
    # D / rows = 0.0025 of the diagonal pulls towards v_o: close to, not exactly, the free solution
    np.testing.assert_allclose(v_star, expected, rtol=0.05, atol=1e-3)


@pytest.mark.parametrize("per_channel", [False, True])
def test_weights_already_on_k_codes_come_back_exactly(per_channel):
    """A layer whose weights are K shared codes x per-channel scales: the fit returns them, with zero error."""
    rng = np.random.default_rng(4)
    channels, inputs, k = 6, 9, 8
    palette = np.array([-120, -60, -25, 0, 7, 31, 77, 127])
    codes = palette[rng.integers(0, k, (channels, inputs))]
    scales = rng.uniform(0.002, 0.02, channels)
    bias = rng.integers(-500, 500, channels)
    stats = LayerStatistics(_stack(codes, scales, bias), per_channel=per_channel)
    shape = (channels, 5000, inputs) if per_channel else (5000, inputs)
    stats.add(rng.integers(-128, 128, shape).astype(np.float32))
    fit = fit_output_palette(stats, codes, scales, bias, k)
    np.testing.assert_array_equal(fit.codes, codes)
    np.testing.assert_array_equal(fit.scales, scales)
    np.testing.assert_allclose(fit.bias / scales, bias, atol=1e-6)
    assert relative_error(stats, _stack(fit.codes, fit.scales, fit.bias / fit.scales)) == 0.0
    assert not fit.scales_refit


def _quadratic(h, w_star, q):
    d = q - w_star
    return float(d @ h @ d)


def _brute_force(h, w_star, scale, palette):
    best = np.inf
    for combo in itertools.product(palette, repeat=w_star.size):
        best = min(best, _quadratic(h, w_star, scale * np.asarray(combo, float)))
    return best


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(2, 4), st.integers(0, 2**31 - 1), st.booleans())
def test_gptq_rounding_against_brute_force(d, n_codes, seed, diagonal):
    """One channel, D <= 4 columns, a palette of n codes: GPTQ is never better than the brute-force optimum,
    equals it when the Hessian is diagonal (columns independent: nearest code is optimal) or D = 1."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 1, (d, d))
    h = np.diag(rng.uniform(0.5, 2, d)) if diagonal else a @ a.T + 0.1 * np.eye(d)
    palette = np.sort(rng.choice(np.arange(-127, 128), n_codes, replace=False)).astype(float)
    scale = float(rng.uniform(0.5, 2))
    w_star = rng.uniform(-140, 140, d) * scale
    codes = gptq_round(w_star[None, :], np.array([scale]), palette, np.linalg.inv(h), d)[0]
    assert set(codes) <= set(palette)
    got = _quadratic(h, w_star, scale * codes)
    optimum = _brute_force(h, w_star, scale, palette)
    assert got >= optimum - 1e-9 * max(1.0, optimum)
    if diagonal or d == 1:
        assert got == pytest.approx(optimum, rel=1e-9, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_fit_never_worse_than_nearest_code_rounding(seed):
    """The fit keeps GPTQ or nearest-code rounding of the same palette, whichever has less output error."""
    rng = np.random.default_rng(seed)
    channels, inputs, k = 3, 5, 4
    x = rng.normal(0, 40, (300, inputs)).astype(np.float32)
    x[:, 1] = x[:, 0] * 0.9 + x[:, 1] * 0.1  # correlated inputs: where compensation matters
    codes = rng.integers(-127, 128, (channels, inputs))
    scales = rng.uniform(0.005, 0.02, channels)
    bias = rng.integers(-300, 300, channels)
    v = _stack(codes, scales, bias)
    stats = LayerStatistics(v, per_channel=False)
    stats.add(x)
    fit = fit_output_palette(stats, codes, scales, bias, k, refit_scales=False)
    assert np.unique(fit.codes).size <= k
    v_star, _ = damped_targets(stats, v, 0.01, free_bias=True)
    mids = (fit.palette[1:] + fit.palette[:-1]) / 2
    nearest = fit.palette[np.searchsorted(mids, v_star[:, :-1] / scales[:, None])]
    fixed = codes == 0
    nearest = np.where(fixed, 0, nearest)
    nb = codes_error(stats, nearest).best_bias(scales)
    nearest_error = float(output_errors(stats, np.c_[scales[:, None] * nearest, nb]).sum())
    assert fit.error <= nearest_error * (1 + 1e-9) + 1e-12


def _naive_conv_rows(x, zp, g: ConvGeometry, n, oy, ox):
    """Patches by explicit loops over the kernel: out-of-range reads give 0 (x - zp at padding)."""
    _, height, width, chans = x.shape
    pad_t, pad_l = g.padding_hw(height, width)
    out = np.zeros((n.size, g.kernel_h, g.kernel_w, chans), np.float32)
    for r in range(n.size):
        for ky in range(g.kernel_h):
            for kx in range(g.kernel_w):
                yy = oy[r] * g.stride_h + ky * g.dilation_h - pad_t
                xx = ox[r] * g.stride_w + kx * g.dilation_w - pad_l
                if 0 <= yy < height and 0 <= xx < width:
                    out[r, ky, kx] = x[n[r], yy, xx].astype(np.float32) - zp
    return out


@pytest.mark.parametrize("geometry", [
    ConvGeometry(3, 3), ConvGeometry(3, 3, 2, 2), ConvGeometry(5, 3, 2, 1, same_padding=False),
    ConvGeometry(3, 3, 1, 1, 2, 2), ConvGeometry(10, 4, 2, 2), ConvGeometry(2, 2, 2, 2),
])
def test_patches_match_naive_loops(geometry):
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (3, 11, 9, 2)).astype(np.int8)
    out_h, out_w = geometry.output_hw(11, 9)
    n, oy, ox = sample_positions(3, out_h, out_w, out_h * out_w, rng)
    np.testing.assert_array_equal(conv_patches(x, -7, geometry, n, oy, ox), _naive_conv_rows(x, -7, geometry, n, oy, ox))
    source = np.array([1, 0, 1, 1, 0])  # output channel -> input channel (depthwise)
    dw = depthwise_patches(x, -7, geometry, n, oy, ox, source)
    naive = _naive_conv_rows(x, -7, geometry, n, oy, ox)
    np.testing.assert_array_equal(dw, naive.reshape(n.size, -1, 2)[:, :, source].transpose(2, 0, 1))
    sub = sample_positions(3, out_h, out_w, 4, np.random.default_rng(0))
    assert sub[0].size == 12 and np.all(sub[1] < out_h) and np.all(sub[2] < out_w)
