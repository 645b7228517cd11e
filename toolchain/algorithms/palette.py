"""The exact shared-palette solver (pure numpy; knows nothing of models).

Problem: integer points x_0 < ... < x_{n-1} (the distinct int8 values of a tensor)
with positive weights w_i (sum over channels of scale^2 x count), choose at most K
integer centroids L and map every point to one, minimising sum w_i (x_i - L(x_i))^2.
In one dimension the optimal clusters are contiguous runs of the sorted points,
so a dynamic programme over runs finds the exact optimum in O(K n^2) with n <= 256.
A run's best integer centroid is the weighted mean rounded down or up (the cost is
a parabola in c), unless the run holds 0 and zero must stay exact.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

INT8_MIN = -128
INT8_MAX = 127
# TFLite's int8 weight spec is symmetric: new palette entries stay in [-127, 127].
PALETTE_MIN = -127
PALETTE_MAX = 127


@dataclass(frozen=True)
class PaletteSolution:
    palette: np.ndarray = field(repr=False)  # sorted int64 centroids, len <= K
    point_to_entry: np.ndarray = field(repr=False)  # for each input point, its palette index
    error: float  # weighted squared error of the mapping

    @property
    def size(self) -> int:
        return int(self.palette.size)


def value_weights(q: np.ndarray, channel_weight: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of an int8 tensor and their weights: sum over channels of channel_weight x count."""
    q = np.asarray(q)
    channels = q.shape[axis] if q.ndim else 1
    moved = np.moveaxis(q, axis, 0).reshape(channels, -1) if q.ndim else q.reshape(1, 1)
    # One bincount over (channel, value) pairs: fast for millions of weights.
    idx = (np.arange(channels, dtype=np.int64)[:, None] * 256 + (moved.astype(np.int64) - INT8_MIN)).ravel()
    counts = np.bincount(idx, minlength=channels * 256).reshape(channels, 256).astype(np.float64)
    cw = np.broadcast_to(np.asarray(channel_weight, dtype=np.float64).ravel(), (channels,))
    weights = cw @ counts
    present = counts.sum(axis=0) > 0
    values = np.nonzero(present)[0] + INT8_MIN
    return values.astype(np.int64), weights[present]


def segment_costs(x: np.ndarray, w: np.ndarray, zero_index: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Cost and best integer centroid of every run [a..b] (a <= b), as n x n matrices."""
    n = x.size
    pw = np.concatenate([[0.0], np.cumsum(w)])
    p1 = np.concatenate([[0.0], np.cumsum(w * x)])
    p2 = np.concatenate([[0.0], np.cumsum(w * x * x)])
    a = np.arange(n)[:, None]
    b = np.arange(n)[None, :]
    valid = a <= b
    W = np.where(valid, pw[b + 1] - pw[a], 1.0)
    S1 = np.where(valid, p1[b + 1] - p1[a], 0.0)
    S2 = np.where(valid, p2[b + 1] - p2[a], 0.0)
    mean = S1 / W
    best_c = None
    best_cost = None
    for c in (np.floor(mean), np.ceil(mean)):
        c = np.clip(c, PALETTE_MIN, PALETTE_MAX)
        cost = S2 - 2.0 * c * S1 + c * c * W
        if best_cost is None:
            best_c, best_cost = c, cost
        else:
            better = cost < best_cost
            best_c = np.where(better, c, best_c)
            best_cost = np.where(better, cost, best_cost)
    if zero_index is not None:
        holds_zero = (a <= zero_index) & (b >= zero_index)
        best_c = np.where(holds_zero, 0.0, best_c)
        best_cost = np.where(holds_zero, S2, best_cost)
    best_cost = np.maximum(best_cost, 0.0)  # cancellation can leave -1e-12
    best_cost = np.where(valid, best_cost, np.inf)
    return best_cost, best_c.astype(np.int64)


def solve_palette(values: np.ndarray, weights: np.ndarray, k: int, keep_zero: bool = True) -> PaletteSolution:
    """Exact optimum of the weighted integer 1-D clustering problem (see module doc)."""
    x = np.asarray(values, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    if x.ndim != 1 or x.shape != w.shape:
        raise ValueError("values and weights must be 1-D arrays of the same length")
    if k < 1:
        raise ValueError("k must be at least 1")
    if x.size and np.any(np.diff(x) <= 0):
        raise ValueError("values must be sorted and distinct")
    n = x.size
    if n == 0:
        return PaletteSolution(np.zeros(0, np.int64), np.zeros(0, np.int64), 0.0)
    if n <= k and x.min() >= PALETTE_MIN:
        return PaletteSolution(x.copy(), np.arange(n, dtype=np.int64), 0.0)
    # Scale weights to avoid tiny numbers (scale^2 ~ 1e-6); the optimum does not change.
    wmax = float(w.max())
    wn = w / wmax if wmax > 0 else np.ones_like(w)
    zero_index = int(np.searchsorted(x, 0)) if keep_zero and 0 in x else None
    cost, centroid = segment_costs(x, wn, zero_index)
    bounds = partition(cost, k)
    palette = np.array([centroid[a, b] for a, b in bounds], dtype=np.int64)
    point_to_entry = np.concatenate([np.full(b - a + 1, i, dtype=np.int64) for i, (a, b) in enumerate(bounds)])
    error = float(sum(cost[a, b] for a, b in bounds)) * (wmax if wmax > 0 else 1.0)
    return PaletteSolution(palette, point_to_entry, error)


def partition(cost: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Contiguous runs (a, b) covering points 0..n-1, at most ``k`` of them, with the least summed ``cost[a, b]``
    (an n x n matrix, inf where a > b): exact, O(k n^2). Among equal costs, fewer runs."""
    n = cost.shape[0]
    k_eff = min(k, n)
    # dp[j][b]: best cost of covering points 0..b with j+1 runs; arg[j][b]: start of the last run.
    dp = np.empty((k_eff, n))
    arg = np.zeros((k_eff, n), dtype=np.int64)
    dp[0] = cost[0]
    for j in range(1, k_eff):
        # last run is [a..b] with a >= 1: previous runs cover 0..a-1
        cand = dp[j - 1][:-1, None] + cost[1:, :]
        best = np.argmin(cand, axis=0)
        dp[j] = cand[best, np.arange(n)]
        arg[j] = best + 1
        dp[j, :j] = np.inf  # fewer points than runs
    # Use the number of runs with the lowest cost (more runs are never worse without a rate term; ties: fewer).
    j = int(np.argmin(dp[:, n - 1]))
    bounds = []
    b = n - 1
    while j >= 0:
        a = int(arg[j][b]) if j > 0 else 0
        bounds.append((a, b))
        b = a - 1
        j -= 1
    bounds.reverse()
    return bounds


def mapping_error(values: np.ndarray, weights: np.ndarray, mapped: np.ndarray) -> float:
    """Weighted squared error of mapping each value to ``mapped`` (for checks and baselines)."""
    d = np.asarray(values, np.float64) - np.asarray(mapped, np.float64)
    return float(np.sum(np.asarray(weights, np.float64) * d * d))


def value_lut(solution: PaletteSolution, values: np.ndarray) -> np.ndarray:
    """A 256-entry table int8 value -> new int8 value (identity for values not present)."""
    lut = np.arange(INT8_MIN, INT8_MAX + 1, dtype=np.int64)
    lut[np.asarray(values, np.int64) - INT8_MIN] = solution.palette[solution.point_to_entry]
    return lut


def apply_lut(q: np.ndarray, lut: np.ndarray) -> np.ndarray:
    return lut[np.asarray(q, np.int64) - INT8_MIN].astype(np.int8)
