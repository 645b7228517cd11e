"""Properties of the exact shared-palette solver and the scale refit."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolchain.algorithms.palette import (
    apply_lut,
    mapping_error,
    solve_palette,
    value_lut,
    value_weights,
)
from toolchain.algorithms.refit import float_error, refit_scales


def brute_force(x, w, k, keep_zero):
    """Optimum over every set of <= k integer centroids (points map to the nearest)."""
    best = np.inf
    lo, hi = max(int(x.min()), -127), int(x.max())
    grid = range(lo, hi + 1)
    for size in range(1, k + 1):
        for combo in itertools.combinations(grid, size):
            c = np.array(combo)
            if keep_zero and 0 in x and 0 not in c:
                continue
            d = (x[:, None] - c[None, :]) ** 2
            best = min(best, float((w * d.min(axis=1)).sum()))
    return best


problems = st.integers(0, 2**32 - 1).map(np.random.default_rng)


@settings(max_examples=150, deadline=None)
@given(rng=problems, n=st.integers(1, 7), k=st.integers(1, 3), keep_zero=st.booleans())
def test_equals_brute_force_optimum(rng, n, k, keep_zero):
    x = np.sort(rng.choice(np.arange(-10, 11), n, replace=False))
    w = rng.uniform(0.05, 4.0, n)
    sol = solve_palette(x, w, k, keep_zero=keep_zero)
    assert sol.size <= k
    assert sol.error == pytest.approx(brute_force(x, w, k, keep_zero), rel=1e-9, abs=1e-9)
    assert sol.error == pytest.approx(mapping_error(x, w, sol.palette[sol.point_to_entry]), rel=1e-9, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(rng=problems, k=st.integers(2, 64), keep_zero=st.booleans(), scale_exp=st.integers(-8, 2))
def test_never_more_than_k_and_zero_kept(rng, k, keep_zero, scale_exp):
    q = np.clip(np.round(rng.normal(0, rng.uniform(5, 60), size=(8, 50))), -127, 127).astype(np.int8)
    s = rng.uniform(0.5, 2.0, 8) * 10.0**scale_exp
    x, w = value_weights(q, s**2, 0)
    sol = solve_palette(x, w, k, keep_zero=keep_zero)
    out = apply_lut(q, value_lut(sol, x))
    assert np.unique(out).size <= k
    assert out.min() >= -128 and out.max() <= 127
    if keep_zero and (q == 0).any():
        assert np.array_equal(out == 0, q == 0) or np.all(out[q == 0] == 0)
        assert np.all(out[q == 0] == 0)


@settings(max_examples=40, deadline=None)
@given(rng=problems, k=st.integers(2, 40))
def test_idempotent_and_deterministic(rng, k):
    q = rng.integers(-127, 128, size=(4, 300)).astype(np.int8)
    s = rng.uniform(0.001, 0.01, 4)
    x, w = value_weights(q, s**2, 0)
    sol = solve_palette(x, w, k)
    again = solve_palette(x, w, k)
    assert np.array_equal(sol.palette, again.palette) and sol.error == again.error
    out = apply_lut(q, value_lut(sol, x))
    x2, w2 = value_weights(out, s**2, 0)
    sol2 = solve_palette(x2, w2, k)
    assert sol2.error == 0.0
    assert np.array_equal(apply_lut(out, value_lut(sol2, x2)), out)


def test_fewer_values_than_k_is_lossless():
    x = np.array([-5, 0, 7])
    sol = solve_palette(x, np.ones(3), 16)
    assert sol.error == 0.0 and list(sol.palette) == [-5, 0, 7]


def test_weights_change_the_optimum():
    # Heavier weight pulls the shared centroid towards its point.
    x = np.array([0, 10])
    light = solve_palette(x, np.array([1.0, 1.0]), 1, keep_zero=False)
    heavy = solve_palette(x, np.array([1.0, 100.0]), 1, keep_zero=False)
    assert heavy.palette[0] > light.palette[0]


def test_value_weights_sums_scale_squared_per_channel():
    q = np.array([[1, 1, 2], [1, 3, 3]], dtype=np.int8)
    x, w = value_weights(q, np.array([2.0, 3.0]), 0)
    assert list(x) == [1, 2, 3]
    assert list(w) == [2 * 2 + 3, 2, 3 * 2]


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        solve_palette(np.array([3, 1]), np.ones(2), 2)
    with pytest.raises(ValueError):
        solve_palette(np.array([1, 2]), np.ones(2), 0)


@settings(max_examples=40, deadline=None)
@given(rng=problems, k=st.integers(2, 32), keep_zero=st.booleans())
def test_refit_never_worse(rng, k, keep_zero):
    channels = int(rng.integers(1, 9))
    q = np.clip(np.round(rng.normal(0, 40, size=(channels, 64))), -127, 127).astype(np.int8)
    s = rng.uniform(0.001, 0.02, channels)
    x, w = value_weights(q, s**2, 0)
    sol = solve_palette(x, w, k, keep_zero=keep_zero)
    codes = apply_lut(q, value_lut(sol, x))
    f = s[:, None] * q
    start = float_error(f, s, codes.astype(np.float64))
    assert start == pytest.approx(sol.error, rel=1e-9, abs=1e-15)
    r = refit_scales(f, codes, s, sol.palette, keep_zero=keep_zero)
    assert r.error <= start * (1 + 1e-12)
    assert np.unique(r.codes).size <= k
    assert r.error == pytest.approx(float_error(f, r.scales, r.codes.astype(np.float64)), rel=1e-9, abs=1e-18)
    assert np.all(r.scales > 0)
    if keep_zero:
        assert np.all(r.codes[q == 0] == 0)
