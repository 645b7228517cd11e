"""The size and fidelity goals end to end, on real converted models, checked by the Vela command line."""
from __future__ import annotations

import numpy as np
import pytest

import toolchain
from toolchain.rewrite.config import ReclusterConfig
from toolchain.rewrite.recluster import recluster_model
from toolchain.targets.compile import compile_model
from toolchain.targets.profiles import load_profile
from toolchain.tflite import interpreter as rt

pytestmark = pytest.mark.tf


def _vela(tmp_path, data: bytes, target: str, name: str) -> int:
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(data)
    return int(compile_model(path, load_profile(target), tmp_path / name, enforce_budget=False)
               .report["encoded_weight_bytes"])


@pytest.mark.parametrize("target", ["ethos-u55-128", "ethos-u85-256"])
def test_weight_budget_is_met_by_vela_on_the_target(depthwise_int8, tmp_path, target):
    data = depthwise_int8.read_bytes()
    budget = int(0.45 * _vela(tmp_path, data, target, "int8"))
    job = toolchain.ReclusterJob(ReclusterConfig(clusters=32),
                                 toolchain.PlanRequest(toolchain.SizeGoal.WEIGHT_BUDGET, weight_budget_bytes=budget))
    out, report = toolchain.rewrite_model(data, job, target)
    plan = report.plan
    assert plan.target_name == target
    vela = _vela(tmp_path, out, target, "after")
    assert vela == plan.actual_encoded_bytes <= budget
    assert vela >= 0.8 * budget  # it spends the budget instead of undershooting it
    assert {c.rate_lambda for c in plan.choices} <= {0.0, 1.0, 3.0}


def _calibration_file(model: bytes, path, samples: int = 160) -> None:
    spec = rt.input_specs(model)[0]
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, (samples, *spec.shape[1:])).astype(np.float32)
    np.savez(path, x=x)


def test_fidelity_floor_is_kept_on_held_back_samples_and_never_larger_than_k16(conv_bn_int8, tmp_path):
    data = conv_bn_int8.read_bytes()
    cal = tmp_path / "cal.npz"
    _calibration_file(data, cal)
    job = toolchain.ReclusterJob(ReclusterConfig(), toolchain.PlanRequest(toolchain.SizeGoal.AUTO, min_output_sqnr_db=12.0),
                                 calibration_file=cal)
    out, report = toolchain.rewrite_model(data, job, "ethos-u55-128")
    plan = report.plan
    assert plan.mode.value == "output-sqnr" and plan.held_out and plan.check_samples == 32
    assert plan.checked_fidelity >= 12.0
    # K=16 everywhere (the same output-aware fit) keeps 12 dB here: the plan is never larger
    from toolchain.rewrite.output_aware import calibration_from_file

    k16, _ = recluster_model(data, ReclusterConfig(clusters=16),
                             calibration_from_file(data, cal, ReclusterConfig()))
    assert _vela(tmp_path, out, "ethos-u55-128", "auto") == plan.actual_encoded_bytes
    assert plan.actual_encoded_bytes <= _vela(tmp_path, k16, "ethos-u55-128", "k16")


def _first_output(model: bytes, rows: list) -> np.ndarray:
    """The first output of every row, dequantized, straight from LiteRT's built-in kernels (independent of the
    toolchain's runner; XNNPACK's int8 kernels may differ by a step)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=model,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    inp, out = interp.get_input_details(), interp.get_output_details()[0]
    scale, zero = out["quantization"]
    got = []
    for row in rows:
        for d, x in zip(inp, row):
            interp.set_tensor(d["index"], np.asarray(x).reshape(d["shape"]).astype(d["dtype"]))
        interp.invoke()
        got.append((interp.get_tensor(out["index"]).astype(np.float64) - zero) * scale)
    return np.stack(got).reshape(len(rows), -1)


def test_the_fidelity_plan_returns_the_model_it_measured(conv_bn_int8, tmp_path):
    """--clusters auto returns the plan whose model it ran on the held-back samples: the same model run here on
    those samples gives the figure the plan reports."""
    from toolchain.pipeline.target_sizer import sizer_for
    from toolchain.rewrite.calibration_set import hold_back
    from toolchain.rewrite.choose_k import PlanGoal
    from toolchain.rewrite.output_aware import calibration_from_file
    from toolchain.rewrite.rate_goals import FidelityFloor, fit_fidelity

    data = conv_bn_int8.read_bytes()
    cal_path = tmp_path / "cal.npz"
    _calibration_file(data, cal_path)
    config = ReclusterConfig()
    cal = calibration_from_file(data, cal_path, config)
    rate = sizer_for(load_profile("ethos-u55-128")).rate_model(data)
    out, report, plan = fit_fidelity(data, config, FidelityFloor(PlanGoal.OUTPUT_SQNR, 15.0), cal, rate, 32)
    check = hold_back(cal.rows, cal.source, cal.samples, config.calibration_seed).check.rows
    reference, outputs = _first_output(data, check), _first_output(out, check)
    sqnr = 10 * np.log10(np.sum(reference**2) / np.sum((outputs - reference) ** 2))
    assert plan.checked_fidelity >= 15.0
    assert sqnr == pytest.approx(plan.checked_fidelity, abs=1e-6)
    assert plan.actual_encoded_bytes == rate.model_bytes_of(out) <= plan.smallest_encoded_bytes * 10
    assert {t.name for t in report.rewritten} == {c.name for c in plan.choices if c.clusters is not None}


def test_auto_by_default_also_keeps_k16s_output_noise_and_says_so(conv_bn_int8, tmp_path):
    """--clusters auto with no floor asked: the agreement floor and K=16's output noise; an explicit agreement
    floor is the only floor."""
    from toolchain.reporting.recluster_text import recluster_text

    data = conv_bn_int8.read_bytes()
    cal = tmp_path / "cal.npz"
    _calibration_file(data, cal)
    plans = {}
    for name, request in (("default", toolchain.PlanRequest(toolchain.SizeGoal.AUTO)),
                          ("agreement", toolchain.PlanRequest(toolchain.SizeGoal.AUTO, min_top1_agreement=0.9))):
        job = toolchain.ReclusterJob(ReclusterConfig(), request, calibration_file=cal)
        _, report = toolchain.rewrite_model(data, job, "ethos-u55-128")
        plans[name] = report
    assert plans["default"].plan.to_json()["no_noisier_than_k16"] is True
    assert plans["agreement"].plan.to_json()["no_noisier_than_k16"] is False
    assert "no more output noise than K=16 everywhere" in recluster_text(plans["default"], "o.tflite", "o.json")
    assert "K=16 everywhere" not in recluster_text(plans["agreement"], "o.tflite", "o.json")


def test_auto_on_a_model_whose_output_is_not_class_scores_judges_the_output_noise(tmp_path):
    """The argmax of a detector's boxes means nothing: by default --clusters auto keeps K=16's output noise there,
    with no agreement floor, and says so."""
    from model_factory import _keras, convert_int8

    from toolchain.reporting.recluster_text import recluster_text

    keras = _keras()
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 1), batch_size=1)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    boxes = keras.layers.Reshape((8, 4))(keras.layers.Dense(32)(x))  # 4 coordinates for each of 8 anchors
    data = convert_int8(keras.Model(inp, boxes))
    cal = tmp_path / "cal.npz"
    _calibration_file(data, cal)
    job = toolchain.ReclusterJob(ReclusterConfig(), toolchain.PlanRequest(toolchain.SizeGoal.AUTO),
                                 calibration_file=cal)
    _, report = toolchain.rewrite_model(data, job, "ethos-u55-128")
    plan = report.plan
    assert plan.mode.value == "output-sqnr" and plan.target == 0.0 and plan.no_noisier_than_k16
    assert plan.checked_fidelity > 0.0 and plan.held_out
    assert "keeping output SQNR (dB) >= 0 and no more output noise than K=16 everywhere" in \
        recluster_text(report, "o.tflite", "o.json")
