"""The planner's choices against brute force, and its goals on real models checked by Vela's own compile."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from toolchain.core.errors import BudgetExceeded, ConfigError
from toolchain.rewrite.config import Objective
from toolchain.rewrite.planner import PlanRequest, SizeGoal
from toolchain.rewrite.rate_options import Option, RateOptions, TensorOptions, pareto
from toolchain.rewrite.rate_plan import budget_picks, picks_bytes, tradeoff_path
from toolchain.tflite.graph import Granularity, Quantization, WeightTensor


def _weight(name: str) -> WeightTensor:
    q = Quantization(Granularity.PER_TENSOR, np.ones(1, np.float32), np.zeros(1, np.int64), 0)
    return WeightTensor(0, 0, name, "CONV_2D", 3, (0,), None, (4, 4), np.dtype(np.int8), q)


def _random_options(rng, tensors: int) -> RateOptions:
    out = []
    for t in range(tensors):
        opts = [Option(None, 0.0, 0.0, int(rng.integers(300, 600)))]
        for k in range(int(rng.integers(1, 5))):
            opts.append(Option(2 + k, 0.0, float(rng.uniform(0.001, 0.5)), int(rng.integers(50, 400))))
        out.append(TensorOptions(_weight(f"t{t}"), None, float(rng.uniform(0.1, 3.0)), pareto(opts), opts[0]))
    return RateOptions(tuple(out), 100, Objective.WEIGHTS, "test")


def _noise(options: RateOptions, picks) -> float:
    return sum(t.distortion(t.options[i]) for t, i in zip(options.tensors, picks))


def test_budget_picks_are_the_brute_force_optimum():
    rng = np.random.default_rng(0)
    for _ in range(30):
        options = _random_options(rng, int(rng.integers(1, 4)))
        budget = int(rng.integers(options.smallest_bytes, options.largest_bytes + 1))
        picks = budget_picks(options, budget)
        assert picks_bytes(options, picks) <= budget
        best = min(_noise(options, c) for c in itertools.product(*[range(len(t.options)) for t in options.tensors])
                   if picks_bytes(options, list(c)) <= budget)
        assert _noise(options, picks) <= best + 1e-9  # rooms under 4000 bytes: one byte per bucket, exact


def test_budget_below_the_smallest_option_names_it():
    options = _random_options(np.random.default_rng(1), 3)
    with pytest.raises(BudgetExceeded, match=f"smallest encoded weights reachable on test, {options.smallest_bytes}"):
        budget_picks(options, options.smallest_bytes - 1)


def test_tradeoff_path_holds_every_lagrangian_optimum():
    rng = np.random.default_rng(2)
    for _ in range(30):
        options = _random_options(rng, int(rng.integers(1, 5)))
        path = tradeoff_path(options)
        sizes = [picks_bytes(options, p) for p in path]
        noises = [_noise(options, p) for p in path]
        assert all(a <= b for a, b in itertools.pairwise(sizes))
        assert all(a >= b - 1e-12 for a, b in itertools.pairwise(noises))
        for mu in np.geomspace(1e-1, 1e6, 25):
            optimum = options.fixed_bytes + sum(min(o.encoded_bytes + mu * t.distortion(o) for o in t.options)
                                                for t in options.tensors)
            on_path = min(s + mu * n for s, n in zip(sizes, noises))
            assert on_path == pytest.approx(optimum, rel=1e-9, abs=1e-6)


def test_pareto_keeps_only_undominated_options():
    opts = [Option(None, 0.0, 0.0, 500), Option(2, 0.0, 0.3, 100), Option(4, 0.0, 0.35, 150), Option(8, 1.0, 0.1, 200)]
    kept = pareto(opts)
    assert [o.clusters for o in kept] == [2, 8, None]


@pytest.mark.parametrize("bad", [
    {"goal": SizeGoal.WEIGHT_BUDGET, "weight_budget_bytes": 0},
    {"goal": SizeGoal.WEIGHT_BUDGET, "weight_budget_bytes": -5},
    {"goal": SizeGoal.WEIGHT_BUDGET, "weight_budget_bytes": 1.5},
    {"goal": SizeGoal.FIDELITY, "min_top1_agreement": math.nan},
    {"goal": SizeGoal.FIDELITY, "min_top1_agreement": 1.2},
    {"goal": SizeGoal.FIDELITY, "min_output_sqnr_db": math.inf},
    {"goal": SizeGoal.AUTO, "min_sqnr_db": -3.0},
    {"goal": SizeGoal.FIDELITY},
    {"goal": SizeGoal.FIXED, "min_top1_agreement": 0.9},
    {"goal": SizeGoal.AUTO, "min_top1_agreement": 0.9, "min_output_sqnr_db": 20.0},
    {"goal": SizeGoal.FIXED, "max_clusters": 8},
])
def test_plan_requests_refuse_bad_figures(bad):
    with pytest.raises(ConfigError):
        PlanRequest(**bad)
