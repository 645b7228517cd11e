"""The rate-aware palette pieces against independent references: brute force over assignments, GPTQ, naive loops."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolchain.algorithms.output_fit import LayerStatistics, fit_output_palette, gptq_round
from toolchain.algorithms.palette import solve_palette
from toolchain.algorithms.rate_fit import (
    code_bits,
    entropy_palette,
    fit_rate_palette,
    rate_round,
    rate_weight_fit,
)

problems = st.integers(0, 2**32 - 1).map(np.random.default_rng)


def _objective(x, w, n, groups, lam, keep_zero):
    """Least distortion + lam x ideal bits of one assignment (value i -> group groups[i]), integer centroids."""
    total = float(n.sum())
    cost = 0.0
    for g in set(groups):
        idx = [i for i, gi in enumerate(groups) if gi == g]
        xs, ws, ns = x[idx], w[idx], n[idx]
        if keep_zero and 0 in xs:
            cands = [0]
        else:
            cands = range(int(xs.min()), int(xs.max()) + 1)
        cost += min(float(np.sum(ws * (xs - c) ** 2)) for c in cands)
        cost += lam * float(ns.sum()) * math.log2(total / float(ns.sum()))
    return cost


def _brute_force(x, w, n, k, lam, keep_zero, contiguous_only):
    best = math.inf
    size = x.size
    for groups in itertools.product(range(min(k, size)), repeat=size):
        if contiguous_only and any(groups[i + 1] < groups[i] or groups[i + 1] > groups[i] + 1
                                   for i in range(size - 1)):
            continue
        best = min(best, _objective(x, w, n, list(groups), lam, keep_zero))
    return best


@settings(max_examples=120, deadline=None)
@given(rng=problems, size=st.integers(1, 6), k=st.integers(1, 3), lam=st.sampled_from([0.0, 0.3, 2.0, 10.0]),
       keep_zero=st.booleans())
def test_entropy_palette_is_the_optimum_over_contiguous_runs(rng, size, k, lam, keep_zero):
    x = np.sort(rng.choice(np.arange(-8, 9), size, replace=False))
    n = rng.integers(1, 9, size).astype(np.float64)
    w = n * rng.uniform(0.3, 3.0, size)
    rp = entropy_palette(x, w, n, k, lam, keep_zero)
    got = rp.distortion + lam * rp.bits
    assert rp.palette.size <= k
    assert got == pytest.approx(_brute_force(x, w, n, k, lam, keep_zero, contiguous_only=True), rel=1e-9, abs=1e-9)


@settings(max_examples=80, deadline=None)
@given(rng=problems, size=st.integers(2, 6), k=st.integers(2, 3), lam=st.sampled_from([0.2, 1.0, 5.0]))
def test_with_weights_proportional_to_counts_no_assignment_beats_it(rng, size, k, lam):
    x = np.sort(rng.choice(np.arange(-8, 9), size, replace=False))
    n = rng.integers(1, 9, size).astype(np.float64)
    rp = entropy_palette(x, 0.7 * n, n, k, lam, keep_zero=False)
    assert rp.distortion + lam * rp.bits <= _brute_force(x, 0.7 * n, n, k, lam, False, contiguous_only=False) + 1e-9


def test_without_rate_it_is_the_palette_solver():
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = np.sort(rng.choice(np.arange(-60, 61), 30, replace=False))
        n = rng.integers(1, 50, 30).astype(np.float64)
        w = n * rng.uniform(0.5, 2.0, 30)
        for keep_zero in (False, True):
            assert entropy_palette(x, w, n, 6, 0.0, keep_zero).distortion == pytest.approx(
                solve_palette(x, w, 6, keep_zero).error, rel=1e-9)


def test_a_higher_rate_price_never_raises_the_bits():
    x = np.arange(-40, 41)
    n = np.round(1000 * np.exp(-(x / 12.0) ** 2)) + 1
    bits = [entropy_palette(x, n, n, 16, lam, True).bits for lam in (0.0, 0.05, 0.2, 1.0, 5.0)]
    assert all(b2 <= b1 + 1e-9 for b1, b2 in itertools.pairwise(bits))
    assert bits[-1] < 0.8 * bits[0]


def test_rate_round_without_rate_is_gptq():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 20, (400, 9))
    h = x.T @ x + np.eye(9)
    hinv = np.linalg.inv(h)
    w = rng.normal(0, 1.0, (6, 9))
    s = rng.uniform(0.02, 0.05, 6)
    palette = np.array([-60.0, -20.0, -5.0, 0.0, 5.0, 20.0, 60.0])
    np.testing.assert_array_equal(rate_round(w, s, palette, hinv, 9, 0.0, np.zeros(7)),
                                  gptq_round(w, s, palette, hinv, 9))


def test_rate_round_with_a_high_price_takes_the_cheapest_code():
    rng = np.random.default_rng(2)
    hinv = np.linalg.inv(np.eye(5) * 3.0)
    w = rng.normal(0, 1.0, (4, 5))
    s = np.full(4, 0.05)
    palette = np.array([-10.0, 0.0, 10.0])
    bits = np.array([4.0, 0.5, 4.0])
    codes = rate_round(w, s, palette, hinv, 5, 1e6, bits, fixed_zero=None)
    assert np.all(codes == 0.0)


def test_code_bits_are_finite_and_ordered():
    b = code_bits(np.array([0.0, 10.0, 100.0]))
    assert np.all(np.isfinite(b)) and b[0] > b[1] > b[2] > 0


def _layer(rng, channels=8, inputs=24, rows=3000):
    x = rng.integers(-60, 60, (rows, inputs)).astype(np.float32)
    q = np.clip(np.round(rng.laplace(0, 18, (channels, inputs))), -127, 127)
    q[:, ::7] = 0
    s = rng.uniform(0.01, 0.03, channels)
    bias = rng.integers(-500, 500, channels).astype(np.float64)
    v = np.concatenate([s[:, None] * q, (s * bias)[:, None]], axis=1)
    stats = LayerStatistics(v, per_channel=False)
    stats.add(x)
    return stats, q.astype(np.int8), s, bias


def _entropy(codes):
    _, c = np.unique(codes, return_counts=True)
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum())


def test_rate_fit_trades_error_for_entropy_and_keeps_zeros():
    stats, q, s, bias = _layer(np.random.default_rng(7))
    plain = fit_rate_palette(stats, q, s, bias, 16, 0.0)
    priced = fit_rate_palette(stats, q, s, bias, 16, 2.0)
    for fit in (plain, priced):
        assert np.unique(fit.codes).size <= 16
        assert np.all(fit.codes[q == 0] == 0)
    assert _entropy(priced.codes) < _entropy(plain.codes)
    assert priced.error >= plain.error
    # Without the rate term it is as good as the shipped output fit's GPTQ on the same palette size (within 5%).
    shipped = fit_output_palette(stats, q, s, bias, 16)
    assert plain.error <= 1.05 * shipped.error


def test_rate_fit_scale_refit_never_raises_the_error():
    stats, q, s, bias = _layer(np.random.default_rng(11))
    with_refit = fit_rate_palette(stats, q, s, bias, 8, 0.5, refit_scales=True)
    without = fit_rate_palette(stats, q, s, bias, 8, 0.5, refit_scales=False)
    assert with_refit.error <= without.error + 1e-12
    np.testing.assert_array_equal(with_refit.codes, without.codes)


def test_rate_weight_fit_errors_against_a_direct_sum():
    rng = np.random.default_rng(4)
    qc = np.clip(np.round(rng.normal(0, 25, (6, 40))), -127, 127).astype(np.int8)
    s = rng.uniform(0.01, 0.02, 6)
    for lam in (0.0, 0.5, 3.0):
        err, codes, new_s = rate_weight_fit(qc, s, 8, lam)
        assert np.unique(codes).size <= 8
        direct = float(np.sum((s[:, None] * qc - new_s[:, None] * codes.astype(np.float64)) ** 2))
        assert err == pytest.approx(direct, rel=1e-12)
        fixed = float(np.sum((s[:, None] * qc - s[:, None] * codes.astype(np.float64)) ** 2))
        assert err <= fixed + 1e-15
    assert _entropy(rate_weight_fit(qc, s, 8, 3.0)[1]) < _entropy(rate_weight_fit(qc, s, 8, 0.0)[1])

