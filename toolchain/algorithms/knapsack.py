"""Multiple-choice knapsack by dynamic programming over byte buckets (one option per item, minimum total error)."""
from __future__ import annotations

import math

import numpy as np

from ..core.errors import BudgetExceeded

KNAPSACK_BUCKETS = 4000


def multiple_choice_knapsack(options: list[list[tuple]], room: int) -> list[int]:
    """Multiple-choice knapsack: one option per tensor, minimum total error, total bytes <= room."""
    bucket = max(1, math.ceil(room / KNAPSACK_BUCKETS))
    cap = room // bucket
    inf = np.inf
    best = np.zeros(cap + 1)  # best[b]: min error using at most b buckets
    picks = []
    for opts in options:
        nxt = np.full(cap + 1, inf)
        arg = np.full(cap + 1, -1, dtype=np.int64)
        for i, (_, err, size) in enumerate(opts):
            cost = math.ceil(size / bucket)
            if cost > cap:
                continue
            cand = np.full(cap + 1, inf)
            cand[cost:] = best[: cap + 1 - cost] + err
            better = cand < nxt
            nxt = np.where(better, cand, nxt)
            arg = np.where(better, i, arg)
        picks.append(arg)
        best = nxt
    b = int(np.argmin(best))
    if not np.isfinite(best[b]):
        raise BudgetExceeded("the weight budget cannot be met")
    chosen = []
    for opts, arg in zip(reversed(options), reversed(picks)):
        i = int(arg[b])
        chosen.append(i)
        b -= math.ceil(opts[i][2] / bucket)
    return list(reversed(chosen))
