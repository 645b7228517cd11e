"""Choosing K per tensor (SQNR floor, weight budget) and bias correction."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from toolchain.algorithms.knapsack import multiple_choice_knapsack
from toolchain.core.errors import BudgetExceeded
from toolchain.rewrite.bias_correction import correct_biases
from toolchain.rewrite.choose_k import (
    config_with_plan,
    plan_min_sqnr,
    plan_weight_budget,
)
from toolchain.rewrite.config import ReclusterConfig
from toolchain.rewrite.recluster import recluster_model
from toolchain.rewrite.result import TensorAction
from toolchain.targets.compile import compile_model
from toolchain.targets.profiles import load_profile
from toolchain.targets.weight_encoding import encoded_bytes
from toolchain.tflite import interpreter as rt
from toolchain.tflite.graph import find_weight_tensors, tensor_values
from toolchain.tflite.model_io import read_model

pytestmark = pytest.mark.tf


def _encoded_total(data: bytes) -> int:
    m = read_model(data)
    return sum(encoded_bytes(tensor_values(m, m.subgraphs[0].tensors[w.tensor_index]), w.op) for w in find_weight_tensors(m))


def test_auto_k_meets_floor_and_is_minimal(depthwise_int8):
    data = depthwise_int8.read_bytes()
    cfg = ReclusterConfig(clusters=256)
    plan = plan_min_sqnr(data, cfg, 28.0)
    _, rep = recluster_model(data, config_with_plan(cfg, plan))
    chosen = {c.name: c.clusters for c in plan.choices}
    for t in rep.tensors:
        if t.action is TensorAction.REWRITTEN:
            assert t.sqnr_db >= 28.0 and t.distinct_after <= chosen[t.name]
            # one cluster fewer would break the floor: the choice is the smallest K
            _, smaller = recluster_model(data, ReclusterConfig(clusters=chosen[t.name] - 1, min_weights=0,
                                                                 include_depthwise=True))
            assert next(x for x in smaller.tensors if x.name == t.name).sqnr_db < 28.0


def test_budget_is_met_and_close_to_the_compiler(depthwise_int8, tmp_path):
    data = depthwise_int8.read_bytes()
    cfg = ReclusterConfig(clusters=64)
    full = _encoded_total(data)
    sizes = []
    for budget in (int(full * 0.6), int(full * 0.35)):
        plan = plan_weight_budget(data, cfg, budget, encoded_bytes)
        assert plan.predicted_encoded_bytes <= budget
        out, _ = recluster_model(data, config_with_plan(cfg, plan))
        path = tmp_path / f"b{budget}.tflite"
        path.write_bytes(out)
        # The real compiler (its layouts differ from the single-tensor encoder's, and it adds bias and
        # scale streams) lands within 5 % of the plan's prediction.
        compiled = compile_model(path, load_profile("ethos-u55-128"), tmp_path / f"c{budget}", enforce_budget=False)
        vela_bytes = compiled.report["encoded_weight_bytes"]
        assert abs(vela_bytes - plan.predicted_encoded_bytes) <= 0.05 * plan.predicted_encoded_bytes
        sizes.append(vela_bytes)
    assert sizes[1] < sizes[0]  # a smaller budget compiles smaller
    with pytest.raises(BudgetExceeded, match="cannot be met"):
        plan_weight_budget(data, cfg, 50, encoded_bytes)


def test_knapsack_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(40):
        options = [[(k, float(rng.uniform(0, 1)), int(rng.integers(1, 200))) for k in range(int(rng.integers(1, 4)))]
                   for _ in range(int(rng.integers(1, 5)))]
        room = int(rng.integers(50, 600))
        feasible = [c for c in itertools.product(*[range(len(o)) for o in options])
                    if sum(options[t][i][2] for t, i in enumerate(c)) <= room]
        if not feasible:
            with pytest.raises(BudgetExceeded):
                multiple_choice_knapsack(options, room)
            continue
        best = min(sum(options[t][i][1] for t, i in enumerate(c)) for c in feasible)
        got = multiple_choice_knapsack(options, room)
        assert sum(options[t][i][2] for t, i in enumerate(got)) <= room
        assert sum(options[t][i][1] for t, i in enumerate(got)) == pytest.approx(best)


def test_bias_correction_reduces_output_shift(conv_bn_int8):
    data = conv_bn_int8.read_bytes()
    out, _ = recluster_model(data, ReclusterConfig(clusters=4))
    spec = rt.input_specs(data)[0]
    rng = np.random.default_rng(0)

    def draw(n):  # inputs with a non-zero mean, so that weight errors shift outputs
        return [[np.clip(rng.normal(40, 30, spec.shape), -128, 127).astype(np.int8)] for _ in range(n)]

    corrected, report = correct_biases(data, out, draw(32))
    assert any(r.corrected for r in report)
    held_out = draw(64)
    ref = np.stack([r[0] for r in rt.run_model(data, held_out)]).astype(float)
    plain = np.stack([r[0] for r in rt.run_model(out, held_out)]).astype(float)
    fixed = np.stack([r[0] for r in rt.run_model(corrected, held_out)]).astype(float)
    shift_plain = np.abs((plain - ref).mean(axis=0)).mean()
    shift_fixed = np.abs((fixed - ref).mean(axis=0)).mean()
    assert shift_fixed < shift_plain


@pytest.mark.slow
def test_flash_budget_met_when_compiled_by_vela(depthwise_int8, tmp_path):
    from toolchain.pipeline.target_sizer import sizer_for
    from toolchain.rewrite.flash_plan import plan_flash_budget

    profile = load_profile("ethos-u55-128")
    data = depthwise_int8.read_bytes()
    base = compile_model(depthwise_int8, profile, tmp_path / "base", enforce_budget=False)
    budget = int(base.budget.flash_used_bytes * 0.75)
    cfg = ReclusterConfig(clusters=32)
    out, _, fit = plan_flash_budget(data, cfg, sizer_for(profile), budget)
    assert fit.actual_flash_bytes <= budget < base.budget.flash_used_bytes
    assert abs(fit.predicted_flash_bytes - fit.actual_flash_bytes) <= 0.05 * budget
    (tmp_path / "after.tflite").write_bytes(out)
    after = compile_model(tmp_path / "after.tflite", profile, tmp_path / "after", enforce_budget=False)
    assert after.budget.flash_used_bytes == fit.actual_flash_bytes <= budget
    with pytest.raises(BudgetExceeded):
        plan_flash_budget(data, cfg, sizer_for(profile), 100)


def test_every_door_plans_the_same_way(depthwise_int8, tmp_path):
    """The Python API and `toolchain recluster` run one job: the same budget gives the same bytes."""
    import subprocess
    import sys

    import toolchain
    from toolchain.core.errors import ConfigError

    data = depthwise_int8.read_bytes()
    budget = int(_encoded_total(data) * 0.5)
    job = toolchain.ReclusterJob(ReclusterConfig(clusters=64),
                                 toolchain.PlanRequest(toolchain.SizeGoal.WEIGHT_BUDGET, weight_budget_bytes=budget))
    api_bytes, report = toolchain.rewrite_model(data, job)
    assert report.plan is not None and report.plan.predicted_encoded_bytes <= budget
    assert report.verification is not None
    out = tmp_path / "cli.tflite"
    proc = subprocess.run([sys.executable, "-m", "toolchain", "recluster", str(depthwise_int8), "-o", str(out),
                           "--clusters", "64", "--weight-budget", str(budget), "-q"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == api_bytes
    with pytest.raises(ConfigError, match="positive"):
        toolchain.PlanRequest(toolchain.SizeGoal.WEIGHT_BUDGET)
    with pytest.raises(ConfigError, match="--clusters auto"):
        toolchain.PlanRequest(toolchain.SizeGoal.FIXED, min_sqnr_db=30)
    with pytest.raises(ConfigError, match="needs a target"):
        toolchain.rewrite_model(data, toolchain.ReclusterJob(request=toolchain.PlanRequest(toolchain.SizeGoal.FLASH_BUDGET)))
