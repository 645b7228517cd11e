"""The output-aware rewrite on real converter-made models, checked against LiteRT's own arithmetic."""
from __future__ import annotations

import json
import math
from itertools import pairwise

import numpy as np
import pytest

from toolchain.cli import main
from toolchain.rewrite.choose_k import config_with_plan
from toolchain.rewrite.config import Objective, ReclusterConfig, TensorRule
from toolchain.rewrite.layers import FitLayer, describe_layer, layer_rows, layer_weights
from toolchain.rewrite.output_aware import Calibration, calibration_from_training
from toolchain.rewrite.recluster import recluster_model
from toolchain.rewrite.result import TensorAction
from toolchain.tflite import interpreter as rt
from toolchain.tflite.activations import ActivationCapture, choose_batch
from toolchain.tflite.graph import find_weight_tensors
from toolchain.tflite.inputs import random_inputs
from toolchain.tflite.model_io import read_model

pytestmark = pytest.mark.tf


def _calibration(data: bytes, samples: int = 128, seed: int = 0) -> Calibration:
    return Calibration(random_inputs(rt.input_specs(data), samples, seed), f"random (seed {seed})")


def _sqnr(t) -> float:
    return math.inf if t is None else t


def _layers(data: bytes) -> list[FitLayer]:
    model = read_model(data)
    return [la for w in find_weight_tensors(model) if isinstance(la := describe_layer(model, w), FitLayer)]


def _requantized_outputs(data: bytes, layer: FitLayer, x: np.ndarray) -> np.ndarray:
    """The layer's int8/int16 output computed in numpy from the model's own integers: im2col x codes + bias."""
    model = read_model(data)
    sg = model.subgraphs[0]
    op = sg.operators[layer.op_index]
    out_t = sg.tensors[op.outputs[0]]
    codes, scales, bias = layer_weights(model, layer)
    (rows, _), = layer_rows(layer, x, None, 10**9, np.random.default_rng(0))
    if layer.kind.value == "DEPTHWISE_CONV_2D":
        acc = np.einsum("crd,cd->rc", rows.astype(np.float64), codes.astype(np.float64)) + bias
    else:
        acc = rows.astype(np.float64) @ codes.T.astype(np.float64) + bias
    stored = np.asarray(scales, np.float32).astype(np.float64)
    s_out, zp_out = float(out_t.quantization.scale[0]), int(out_t.quantization.zeroPoint[0])
    y = np.round(acc * layer.input_scale * stored / s_out) + zp_out
    info = np.iinfo(np.int16 if int(out_t.type) == 7 else np.int8)
    low = zp_out if op.builtinOptions.fusedActivationFunction in (1, 3) else info.min  # RELU, RELU6
    return np.clip(y, low, info.max)


@pytest.fixture(scope="module")
def multiplier_int8(tmp_path_factory):
    """Depthwise with depth_multiplier 2 (output channel c reads input channel c // 2), stride 2, dilation-free."""
    import model_factory as mf

    keras = mf._keras()
    keras.utils.set_random_seed(4)
    inp = keras.Input((12, 12, 3), batch_size=1)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="stem")(inp)
    x = keras.layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="same", name="dw2")(x)
    x = keras.layers.Conv2D(8, 1, name="pw")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    path = tmp_path_factory.mktemp("mult") / "multiplier_int8.tflite"
    path.write_bytes(mf.convert_int8(keras.Model(inp, keras.layers.Dense(4, name="out")(x))))
    return path


@pytest.mark.parametrize("fixture", ["conv_bn_int8", "depthwise_int8", "dense_int8", "multiplier_int8"])
def test_layer_rows_reproduce_litert_and_the_rewrite_stays_exact(fixture, request):
    """im2col (stride, SAME padding at the input zero point, depthwise channel mapping) times the codes, plus the
    bias, requantized, is LiteRT's output within one step: for the original and for the output-aware rewrite
    (whose refitted scales and least-squares biases must therefore be stored consistently)."""
    data = request.getfixturevalue(fixture).read_bytes()
    cfg = ReclusterConfig(clusters=8, min_weights=0, include_depthwise=True,
                          rules=(TensorRule(clusters=None, pattern="*head*"),))
    rewritten, rep = recluster_model(data, cfg, _calibration(data))
    assert any(t.scales_refit for t in rep.rewritten) or fixture == "dense_int8"
    if fixture == "multiplier_int8":
        assert any(la.multiplier == 2 for la in _layers(data))
    inputs = random_inputs(rt.input_specs(data), 4, seed=9)
    for model in (data, rewritten):
        layers = _layers(model)
        cap = ActivationCapture(model)
        for row in inputs:
            got = cap.run([row], sorted({la.input_index for la in layers}
                                        | {int(read_model(model).subgraphs[0].operators[la.op_index].outputs[0])
                                           for la in layers}))
            for la in layers:
                out_index = int(read_model(model).subgraphs[0].operators[la.op_index].outputs[0])
                mine = _requantized_outputs(model, la, got[la.input_index]).reshape(-1)
                assert np.max(np.abs(mine - got[out_index].astype(np.float64).reshape(-1))) <= 1, la.weight.name


@pytest.mark.parametrize("fixture,k", [("depthwise_int8", 4), ("conv_bn_int8", 16), ("dense_int8", 8)])
def test_output_aware_never_worse_than_the_weight_fit_on_any_tensor(fixture, k, request):
    data = request.getfixturevalue(fixture).read_bytes()
    # the depthwise model's 4096-input head costs seconds of Hessian inversion: the dense model covers FC
    cfg = ReclusterConfig(clusters=k, min_weights=0, include_depthwise=True,
                          rules=(TensorRule(clusters=None, pattern="*head*"),))
    _, rep = recluster_model(data, cfg, _calibration(data))
    assert rep.calibration is not None and rep.calibration.samples == 128
    for t in rep.rewritten:
        assert t.objective == "outputs" and t.distinct_after <= k
        assert _sqnr(t.output_sqnr_db) >= _sqnr(t.weight_fit_output_sqnr_db) - 1e-9, t.name
    assert any(t.method.startswith("outputs") for t in rep.rewritten)  # and it does win somewhere


def test_reported_output_sqnr_is_what_the_written_layer_does(conv_bn_int8):
    """The first layer sees the original inputs: its reported output SQNR is the one of the integers written."""
    data = conv_bn_int8.read_bytes()
    cal = _calibration(data, 64)
    out, rep = recluster_model(data, ReclusterConfig(clusters=4, min_weights=0, segments=1), cal)
    first = min(_layers(data), key=lambda la: la.op_index)
    new_layer = next(la for la in _layers(out) if la.op_index == first.op_index)
    x = np.concatenate([ActivationCapture(data).run([r], [first.input_index])[first.input_index] for r in cal.rows])
    (rows, _), = layer_rows(first, x, None, 10**9, np.random.default_rng(0))

    def pre_activation(model, layer):
        codes, scales, bias = layer_weights(read_model(model), layer)
        s = np.asarray(scales, np.float32).astype(np.float64)
        return (rows.astype(np.float64) @ codes.T.astype(np.float64) + bias) * s

    ref, new = pre_activation(data, first), pre_activation(out, new_layer)
    measured = 10 * np.log10(np.sum(ref**2) / np.sum((ref - new) ** 2))
    reported = next(t for t in rep.tensors if t.name == first.weight.name).output_sqnr_db
    assert measured == pytest.approx(reported, abs=0.05)


def _three_dense_int8():
    import model_factory as mf

    keras = mf._keras()
    keras.utils.set_random_seed(3)
    inp = keras.Input((32,), batch_size=1)
    x = keras.layers.Dense(48, activation="relu", name="d1")(inp)
    x = keras.layers.Dense(48, activation="relu", name="d2")(x)
    out = keras.layers.Dense(16, name="d3")(x)
    return mf.convert_int8(keras.Model(inp, out), samples=64)


def test_sequential_fitting_beats_independent_on_a_three_layer_model():
    """Fitted on the rewritten prefix towards the original outputs, the last layer ends closer to the original."""
    data = _three_dense_int8()
    cal = _calibration(data, 256)
    ref = np.stack([o[0].astype(np.float64) for o in rt.run_model(data, cal.rows)])
    errors = {}
    for segments in (1, 3):
        out, rep = recluster_model(data, ReclusterConfig(clusters=4, min_weights=0, segments=segments), cal)
        assert rep.calibration.segments == segments
        got = np.stack([o[0].astype(np.float64) for o in rt.run_model(out, cal.rows)])
        errors[segments] = float(np.mean((got - ref) ** 2))
    assert errors[3] < errors[1]


def test_int16_activations_are_rewritten_with_int64_biases(tmp_path):
    import model_factory as mf

    data = mf.convert_int16x8(mf.conv_bn_model())
    out, rep = recluster_model(data, ReclusterConfig(clusters=16, min_weights=0), _calibration(data, 64))
    assert len(rep.rewritten) == 3 and all(t.objective == "outputs" for t in rep.rewritten)
    model = read_model(out)
    biases = [la.bias_index for la in _layers(out) if la.bias_index is not None]
    assert len(biases) == 2  # the converter drops the fully connected layer's zero bias
    assert all(int(model.subgraphs[0].tensors[b].type) == 4 for b in biases)  # INT64
    inputs = random_inputs(rt.input_specs(data), 16, seed=5)
    a = [o[0] for o in rt.run_model(data, inputs)]
    b = [o[0] for o in rt.run_model(out, inputs)]
    assert np.mean([np.argmax(x) == np.argmax(y) for x, y in zip(a, b)]) >= 0.9
    test_layer = _layers(out)[0]
    x = ActivationCapture(out).run(inputs[:1], [test_layer.input_index])[test_layer.input_index]
    assert x.dtype == np.int16
    # the weight-space path too: refitted scales rescale the int64 biases, which keep their type and range
    weights_only, rep_w = recluster_model(data, ReclusterConfig(clusters=16, min_weights=0))
    assert rep_w.calibration is None and any(t.scales_refit for t in rep_w.rewritten)
    model_w = read_model(weights_only)
    assert all(int(model_w.subgraphs[0].tensors[b].type) == 4 for b in biases)
    c = [o[0] for o in rt.run_model(weights_only, inputs)]
    assert np.mean([np.argmax(x) == np.argmax(y) for x, y in zip(a, c)]) >= 0.9


def test_batched_capture_equals_one_sample_runs(conv_bn_int8):
    data = conv_bn_int8.read_bytes()
    rows = random_inputs(rt.input_specs(data), 8, seed=1)
    tensors = [la.input_index for la in _layers(data)]
    batch = choose_batch(data, rows, tensors)
    one = ActivationCapture(data)
    many = ActivationCapture(data, batch)
    got = many.run(rows[:batch], tensors)
    for i in range(batch):
        ref = one.run([rows[i]], tensors)
        for t in tensors:
            np.testing.assert_array_equal(got[t][i:i + 1], ref[t])


def test_calibration_comes_from_the_training_split(conv_bn_int8):
    data = conv_bn_int8.read_bytes()
    x_train = np.random.default_rng(0).normal(0, 1, (40, 16, 16, 1)).astype(np.float32)
    cal = calibration_from_training(data, x_train, "toy", ReclusterConfig(calibration_samples=16))
    spec = rt.input_specs(data)[0]
    train_q = rt.quantize_input(x_train.reshape(40, 1, 16, 16, 1), spec)
    assert cal.samples == 16 and "training split" in cal.source
    assert all(any(np.array_equal(r[0], t) for t in train_q) for r in cal.rows)


def _cli(*args) -> int:
    try:
        return main(list(args))
    except SystemExit as exc:
        return int(exc.code)


def test_cli_calibration_makes_outputs_the_default(conv_bn_int8, tmp_path, capsys):
    data = conv_bn_int8.read_bytes()
    npz = tmp_path / "cal.npz"
    np.savez(npz, x=np.random.default_rng(0).normal(0, 1, (80, 16, 16, 1)).astype(np.float32))
    out = tmp_path / "o.tflite"
    assert _cli("recluster", str(conv_bn_int8), "-o", str(out), "--calibration", str(npz), "-k", "8",
                "--calibration-samples", "48", "--segments", "2", "--samples", "8") == 0
    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["calibration"]["objective"] == "outputs" and rep["calibration"]["samples"] == 48
    assert rep["calibration"]["segments"] == 2
    assert rep["calibration"]["source"] == "48 of 80 samples of cal.npz, the rest held back for the check"
    assert rep["verification"]["inputs"] == "8 held-back samples of cal.npz"  # --samples 8 of the 32 held back
    assert "objective: outputs on 48 calibration samples" in capsys.readouterr().out
    assert _cli("recluster", str(conv_bn_int8), "-o", str(out), "--calibration", str(npz), "-k", "8",
                "--objective", "weights", "--samples", "8") == 0
    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["calibration"]["checked_on_data"] is False
    assert all(t["objective"] is None for t in rep["tensors"])
    assert _cli("recluster", str(conv_bn_int8), "-o", str(out), "--objective", "outputs") == 2
    assert "calibration data" in capsys.readouterr().err
    assert data == conv_bn_int8.read_bytes()


def test_cli_auto_clusters_keeps_agreement_on_calibration_data(conv_bn_int8, tmp_path):
    npz = tmp_path / "cal.npz"
    np.savez(npz, x=np.random.default_rng(1).normal(0, 1, (128, 16, 16, 1)).astype(np.float32))
    out = tmp_path / "auto.tflite"
    assert _cli("recluster", str(conv_bn_int8), "-o", str(out), "--calibration", str(npz), "--clusters", "auto",
                "--samples", "64", "--min-weights", "1") == 0
    rep = json.loads(out.with_suffix(".json").read_text())
    plan = rep["plan"]
    assert plan["mode"] == "agreement" and plan["error_measure"] == "outputs"
    attainable = plan["attainable_top1_agreement"]  # set only when 99.5% is out of reach even at K=32
    assert attainable is None or attainable < 0.995
    # 128 samples: 32 held back for the verification, and of the fit's 96 another 32 for the plan's check
    assert plan["held_out"] and plan["check_samples"] == 32
    assert plan["checked_fidelity"] >= min(0.995, attainable or 1.0)
    assert all(t["clusters"] is not None and t["clusters"] <= 32 for t in plan["tensors"])
    assert any(t["action"] == TensorAction.REWRITTEN.value for t in rep["tensors"])
    assert rep["verification"]["evidence"] == "held_out" and rep["verification"]["samples"] == 32
    # the written model against the original on the plan's held-back samples, run here: the planner's figure
    from toolchain.rewrite.calibration_set import hold_back
    from toolchain.tflite import interpreter as rt

    spec = rt.input_specs(conv_bn_int8.read_bytes())[0]
    rows = [[rt.quantize_input(x[None], spec)] for x in np.load(npz)["x"]]
    split = hold_back(rows, "cal", 512, 0)
    planned = hold_back(split.fit.rows, "fit", len(split.fit.rows), 0).check.rows
    assert not {id(r) for r in planned} & {id(r) for r in split.check.rows}  # the verification's are not the plan's
    ref = [np.argmax(o[0]) for o in rt.run_model(conv_bn_int8.read_bytes(), planned)]
    new = [np.argmax(o[0]) for o in rt.run_model(out.read_bytes(), planned)]
    assert np.mean(np.array(ref) == np.array(new)) == pytest.approx(plan["checked_fidelity"])


@pytest.mark.slow
def test_deploy_with_data_fits_outputs_on_training_samples(conv_bn_int8, tmp_path):
    """deploy MODEL.tflite --data: the recluster stage fits on a seeded sample of the training split and
    says so; accuracy and agreement stay on the test split."""
    from fixtures_pipeline import deploy

    rng = np.random.default_rng(0)
    npz = tmp_path / "data.npz"
    np.savez(npz, x_train=rng.normal(0, 1, (48, 16, 16, 1)).astype(np.float32), y_train=rng.integers(0, 10, 48),
             x_test=rng.normal(0, 1, (20, 16, 16, 1)).astype(np.float32), y_test=rng.integers(0, 10, 20))
    run = deploy(str(conv_bn_int8), "--data", str(npz), "--target", "ethos-u55-128", "--clusters", "8",
                 "--build-dir", str(tmp_path / "b"), "--json")
    assert run.rc == 0, run.stderr
    rep = json.loads((tmp_path / "b" / "conv_bn_int8" / "recluster" / "recluster.json").read_text())
    assert rep["calibration"]["objective"] == "outputs" and rep["calibration"]["samples"] == 48
    assert "training split" in rep["calibration"]["source"]
    assert rep["verification"]["inputs"] == "20 test samples of data.npz"
    assert rep["verification"]["evidence"] == "held_out" and rep["verification"]["accuracy_before"] is not None
    report = json.loads((tmp_path / "b" / "conv_bn_int8" / "ethos-u55-128" / "report" / "report.json").read_text())
    assert report["recluster"]["calibration"]["samples"] == 48  # the deploy report says how it was fitted


def test_weight_budget_ranks_tensors_by_output_error(conv_bn_int8, tmp_path):
    from toolchain.rewrite.choose_k import plan_weight_budget
    from toolchain.rewrite.sensitivity import measure_sensitivity
    from toolchain.targets.weight_encoding import encoded_bytes

    data = conv_bn_int8.read_bytes()
    cal = _calibration(data, 64)
    cfg = ReclusterConfig(clusters=64, min_weights=0)
    sens = measure_sensitivity(data, cfg, cal, (2, 4, 8, 16, 32, 64))
    for t in sens.tensors.values():  # more codes never cost output error on the calibration rows
        errors = [t.relative_error(k) for k in sorted(t.fits)]
        assert all(b <= a * 1.05 + 1e-12 for a, b in pairwise(errors)), t.name
    full = plan_weight_budget(data, cfg, 10**9, encoded_bytes, sensitivity=sens).predicted_encoded_bytes
    plan = plan_weight_budget(data, cfg, int(full * 0.5), encoded_bytes, sensitivity=sens)
    assert plan.error_measure is Objective.OUTPUTS and plan.predicted_encoded_bytes <= int(full * 0.5)
    _, rep = recluster_model(data, config_with_plan(cfg, plan), cal)
    chosen = {c.name: c.clusters for c in plan.choices}
    for t in rep.rewritten:
        assert t.distinct_after <= chosen[t.name]


def test_output_aware_rewrite_is_byte_identical_across_runs(depthwise_int8):
    data = depthwise_int8.read_bytes()
    cfg = ReclusterConfig(clusters=8, min_weights=0, rules=(TensorRule(clusters=None, pattern="*head*"),))
    a, ra = recluster_model(data, cfg, _calibration(data, 48))
    b, rb = recluster_model(data, cfg, _calibration(data, 48))
    assert a == b and json.dumps(ra.to_json(), sort_keys=True) == json.dumps(rb.to_json(), sort_keys=True)


def test_pipeline_config_takes_the_output_aware_keys():
    from toolchain.core.errors import ConfigError
    from toolchain.pipeline.config import config_from_mapping
    from toolchain.rewrite.config import Objective

    cfg = config_from_mapping({"recluster": {"objective": "weights", "calibration_samples": 64, "segments": 2,
                                             "damping": 0.05, "calibration_seed": 3}}, None).recluster
    assert (cfg.objective, cfg.calibration_samples, cfg.segments, cfg.damping, cfg.calibration_seed) == (
        Objective.WEIGHTS, 64, 2, 0.05, 3)
    with pytest.raises(ConfigError, match="objective"):
        config_from_mapping({"recluster": {"objective": "accuracy"}}, None)
    with pytest.raises(ConfigError, match="calibration_samples"):
        config_from_mapping({"recluster": {"calibration_samples": 0}}, None)
