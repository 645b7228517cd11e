"""Choosing one option per tensor (rate_options) for a goal: a byte budget, or the fewest bytes at a fidelity floor.

Both goals rank choices by the summed noise they add at the model's output (sensitivity x error per
tensor) against Vela's encoded bytes. A budget is a multiple-choice knapsack (exact over byte buckets,
algorithms.knapsack). A fidelity floor walks the trade-off path: the choices minimising bytes + mu x
noise for growing mu (each tensor moves along the lower convex hull of its options), ordered by bytes;
the path's plans are judged by writing each tensor's own fit into the model and running it on samples
the fit never saw, and bisection finds the smallest that keeps the floor.

The plans here are the plan step; ``toolchain.rewrite.planner`` applies and checks them.
"""
from __future__ import annotations

from itertools import pairwise

from ..algorithms.knapsack import multiple_choice_knapsack
from ..core.errors import BudgetExceeded
from .choose_k import KPlan, PlanGoal, TensorChoice
from .rate_options import Option, RateOptions, TensorOptions


def budget_picks(options: RateOptions, budget_bytes: int) -> list[int]:
    """The option per tensor with the least summed output noise whose bytes (fixed part included) fit the budget."""
    room = budget_bytes - options.fixed_bytes
    if budget_bytes < options.smallest_bytes:
        raise BudgetExceeded(smallest_message(options, budget_bytes))
    items = [[(i, t.distortion(o), o.encoded_bytes) for i, o in enumerate(t.options)] for t in options.tensors]
    return multiple_choice_knapsack(items, room)


def smallest_message(options: RateOptions, budget_bytes: int) -> str:
    return (f"weight budget {budget_bytes} bytes is below the smallest encoded weights reachable on {options.target}, "
            f"{options.smallest_bytes} bytes ({options.fixed_bytes} of them in weights the rewrite does not change)")


def _hull(t: TensorOptions) -> list[int]:
    """Indices of the options on the lower convex hull of (bytes, noise), by bytes."""
    pts = [(o.encoded_bytes, t.distortion(o), i) for i, o in enumerate(t.options)]
    hull: list[tuple[int, float, int]] = []
    for p in pts:
        while len(hull) >= 2:
            (b0, d0, _), (b1, d1, _) = hull[-2], hull[-1]
            # drop the middle point when it lies on or above the segment from hull[-2] to p
            if (d1 - d0) * (p[0] - b0) >= (p[1] - d0) * (b1 - b0):
                hull.pop()
            else:
                break
        hull.append(p)
    return [i for _, _, i in hull]


def tradeoff_path(options: RateOptions) -> list[list[int]]:
    """The plans minimising bytes + mu x noise as mu grows, from every tensor's smallest option to its least
    noisy one on its hull: each step moves one tensor one hull point, steps ordered by their price in bytes
    per unit of noise removed (so bytes grow and noise falls along the path)."""
    hulls = [_hull(t) for t in options.tensors]
    events = []
    for ti, (t, h) in enumerate(zip(options.tensors, hulls)):
        for step, (a, b) in enumerate(pairwise(h)):
            oa, ob = t.options[a], t.options[b]
            gain = t.distortion(oa) - t.distortion(ob)
            price = (ob.encoded_bytes - oa.encoded_bytes) / gain if gain > 0 else float("inf")
            events.append((price, ti, step))
    events.sort()
    picks = [h[0] for h in hulls]
    path = [list(picks)]
    for _, ti, step in events:
        picks[ti] = hulls[ti][step + 1]
        path.append(list(picks))
    return path


def picks_bytes(options: RateOptions, picks: list[int]) -> int:
    return options.fixed_bytes + sum(t.options[i].encoded_bytes for t, i in zip(options.tensors, picks))


def plan_from_picks(options: RateOptions, picks: list[int], goal: PlanGoal, target: float, **extra) -> KPlan:
    return plan_from_options(options, [t.options[i] for t, i in zip(options.tensors, picks)], goal, target, **extra)


def plan_from_options(options: RateOptions, chosen: list[Option], goal: PlanGoal, target: float, **extra) -> KPlan:
    choices = tuple(TensorChoice(t.name, t.weight.op, t.weight.size, o.clusters, o.relative_error, o.encoded_bytes,
                                 o.rate_lambda)
                    for t, o in zip(options.tensors, chosen))
    return KPlan(goal, float(target), choices, options.fixed_bytes, options.objective, target_name=options.target,
                 smallest_encoded_bytes=options.smallest_bytes, **extra)


def smallest_passing(path_len: int, passes, start: int = 0) -> int | None:
    """The first index i in [start, path_len) with passes(i) true, by bisection (passes is monotone along the
    path); None when even the last fails."""
    lo, hi, best = start, path_len - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if passes(mid):
            best, hi = mid, mid - 1
        else:
            lo = mid + 1
    return best
