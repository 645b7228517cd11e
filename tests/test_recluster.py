"""The rewriter on real converter-made models, through the Python API and the CLI."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from model_compare import diff_paths, to_plain

import toolchain
from toolchain.cli import main
from toolchain.core.errors import ConfigError
from toolchain.core.fileio import sha256_file
from toolchain.rewrite.calibration_set import CalibrationSet, CheckSet, calibration_set_from_files
from toolchain.rewrite.config import ReclusterConfig, ScaleFit, TensorRule
from toolchain.rewrite.inspect import inspect_model
from toolchain.rewrite.recluster import recluster_model
from toolchain.rewrite.result import Evidence, TensorAction
from toolchain.rewrite.verify import VerifyOptions, verify
from toolchain.tflite import interpreter as rt
from toolchain.tflite.agreement import compare_outputs
from toolchain.tflite.graph import find_weight_tensors, tensor_values
from toolchain.tflite.inputs import random_inputs
from toolchain.tflite.model_io import read_model

pytestmark = pytest.mark.tf


def _weights(data: bytes) -> dict[str, np.ndarray]:
    m = read_model(data)
    return {w.name: tensor_values(m, m.subgraphs[w.subgraph].tensors[w.tensor_index]) for w in find_weight_tensors(m)}


@pytest.mark.parametrize("k", [4, 16, 32])
@pytest.mark.parametrize("fit", list(ScaleFit))
def test_at_most_k_values_and_runs(conv_bn_int8, k, fit):
    data = conv_bn_int8.read_bytes()
    before = inspect_model(data)
    assert before.max_distinct_values > 32  # per-channel quantization + BN folding: the product's premise
    out, report = toolchain.recluster(data, ReclusterConfig(clusters=k, fit=fit))
    stats = inspect_model(out)
    rewritten = {t.name for t in report.rewritten}
    assert rewritten == {t.name for t in before.tensors if t.distinct_values > k and t.weights >= 64}
    for t in stats.tensors:
        if t.name in rewritten:
            assert t.distinct_values <= k
    for r in report.rewritten:
        assert r.distinct_after <= k and r.sqnr_db is not None and r.sqnr_db > 5
    # the model still runs and mostly agrees with the original (on varied inputs: random int8 ones saturate it)
    spec = rt.input_specs(data)[0]
    x = rt.quantize_input(np.random.default_rng(0).normal(0, 1, (16, *spec.shape)), spec)
    v = verify(data, out, CalibrationSet(None, CheckSet([[s] for s in x], "normal images", Evidence.HELD_OUT)))
    assert v.agreement.samples == 16
    if k >= 16:
        assert v.agreement.top1_agreement >= 0.75


def test_everything_but_weights_unchanged_with_kept_scales(conv_bn_int8):
    data = conv_bn_int8.read_bytes()
    out, _ = recluster_model(data, ReclusterConfig(clusters=8, fit=ScaleFit.KEEP))
    a, b = to_plain(read_model(data)), to_plain(read_model(out))
    m = read_model(data)
    weight_buffers = {m.subgraphs[0].tensors[w.tensor_index].buffer for w in find_weight_tensors(m)}
    allowed = {f"model.buffers[{i}].data" for i in weight_buffers}
    assert set(diff_paths(a, b)) <= allowed
    assert set(diff_paths(a, b)) == allowed  # and every weight buffer did change


def test_refit_changes_only_weights_scales_and_biases(conv_bn_int8):
    data = conv_bn_int8.read_bytes()
    out, report = recluster_model(data, ReclusterConfig(clusters=8, fit=ScaleFit.REFIT))
    assert any(t.scales_refit for t in report.tensors)
    changed = diff_paths(to_plain(read_model(data)), to_plain(read_model(out)))
    m = read_model(data)
    ws = find_weight_tensors(m)
    ok_tensors = {w.tensor_index for w in ws} | {w.bias_tensor_index for w in ws if w.bias_tensor_index is not None}
    ok_buffers = {m.subgraphs[0].tensors[t].buffer for t in ok_tensors}
    for path in changed:
        if path.startswith("model.buffers["):
            assert int(path.split("[")[1].split("]")[0]) in ok_buffers, path
        else:
            assert path.startswith("model.subgraphs[0].tensors["), path
            assert int(path.split("tensors[")[1].split("]")[0]) in ok_tensors, path
            assert path.endswith(".quantization.scale"), path


def test_refit_bias_rescale_keeps_layer_function(dense_int8):
    """With scales refit, s'*q' ~ s*q and the bias follows: outputs stay close to the keep-scales rewrite."""
    data = dense_int8.read_bytes()
    keep, rk = recluster_model(data, ReclusterConfig(clusters=16, fit=ScaleFit.KEEP))
    refit, rr = recluster_model(data, ReclusterConfig(clusters=16, fit=ScaleFit.REFIT))
    for a, b in zip(rk.tensors, rr.tensors):
        assert b.squared_error <= a.squared_error * (1 + 1e-9)
    inputs = random_inputs(rt.input_specs(data), 16, seed=3)
    ref = compare_outputs(rt.run_model(data, inputs), rt.run_model(refit, inputs), rt.output_specs(data))
    base = compare_outputs(rt.run_model(data, inputs), rt.run_model(keep, inputs), rt.output_specs(data))
    assert ref.mean_abs_diff_steps <= base.mean_abs_diff_steps * 1.5 + 0.5


def test_depthwise_skipped_by_default_and_included_on_request(depthwise_int8):
    data = depthwise_int8.read_bytes()
    _, rep = recluster_model(data, ReclusterConfig(clusters=4, min_weights=0))
    dw = next(t for t in rep.tensors if t.op == "DEPTHWISE_CONV_2D")
    assert dw.action is TensorAction.SKIPPED and "depthwise" in dw.reason
    out, rep = recluster_model(data, ReclusterConfig(clusters=4, min_weights=0, include_depthwise=True))
    dw = next(t for t in rep.tensors if t.op == "DEPTHWISE_CONV_2D")
    assert dw.action is TensorAction.REWRITTEN and dw.distinct_after <= 4
    rt.run_model(out, random_inputs(rt.input_specs(out), 2, seed=0))


def test_rules_min_size_and_precedence(depthwise_int8):
    data = depthwise_int8.read_bytes()
    cfg = ReclusterConfig(
        clusters=16,
        min_weights=200,
        rules=(
            TensorRule(clusters=None, op="FULLY_CONNECTED"),
            TensorRule(clusters=4, pattern="*stem*"),
            TensorRule(clusters=8, op="CONV_2D"),
        ),
    )
    _, rep = recluster_model(data, cfg)
    by_op = {t.name: t for t in rep.tensors}
    head = next(t for n, t in by_op.items() if "head" in n)
    stem = next(t for n, t in by_op.items() if "stem" in n)
    pw = next(t for n, t in by_op.items() if "/pw/" in n)
    assert head.action is TensorAction.SKIPPED and "rule" in head.reason
    assert stem.clusters == 4 and stem.distinct_after <= 4  # name rule beats op rule
    assert pw.clusters == 8 and pw.distinct_after <= 8  # op rule overrides the minimum size (128 < 200)
    _, rep = recluster_model(data, ReclusterConfig(clusters=16, min_weights=200))
    pw = next(t for t in rep.tensors if "/pw/" in t.name)
    assert pw.action is TensorAction.SKIPPED and "fewer than 200" in pw.reason


def test_zero_stays_zero(dense_int8):
    data = dense_int8.read_bytes()
    out, _ = recluster_model(data, ReclusterConfig(clusters=4, fit=ScaleFit.REFIT))
    before, after = _weights(data), _weights(out)
    for name, q in before.items():
        assert np.all(after[name][q == 0] == 0)
        assert 0 in after[name]


def test_input_unchanged_and_output_deterministic(conv_bn_int8, tmp_path):
    h = sha256_file(conv_bn_int8)
    outs = []
    for i in range(2):
        o = tmp_path / f"o{i}.tflite"
        assert main(["recluster", str(conv_bn_int8), "-o", str(o), "-k", "8", "--fit", "refit"]) == 0
        outs.append((o.read_bytes(), o.with_suffix(".json").read_bytes()))
    assert outs[0] == outs[1]
    assert sha256_file(conv_bn_int8) == h


def test_cli_report_and_options(conv_bn_int8, tmp_path, capsys):
    o = tmp_path / "o.tflite"
    cfg = tmp_path / "rc.toml"
    cfg.write_text('clusters = 8\nfit = "refit"\n[[rules]]\npattern = "*dense*"\nclusters = "skip"\n')
    rc = main(["recluster", str(conv_bn_int8), "-o", str(o), "--config", str(cfg), "--json", "--samples", "8"])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["config"]["clusters"] == 8 and rep["config"]["fit"] == "refit"
    dense = next(t for t in rep["tensors"] if "dense" in t["name"])
    assert dense["action"] == "skipped"
    assert json.loads(o.with_suffix(".json").read_text()) == rep
    # the reported agreement is what running both models on the same seeded inputs gives
    inputs = random_inputs(rt.input_specs(conv_bn_int8.read_bytes()), 8, seed=0)
    ref = np.stack([r[0].reshape(-1) for r in rt.run_model(conv_bn_int8.read_bytes(), inputs)])
    new = np.stack([r[0].reshape(-1) for r in rt.run_model(o.read_bytes(), inputs)])
    assert rep["verification"]["samples"] == 8 and rep["verification"]["inputs"] == "8 random inputs (seed 0)"
    # random int8 inputs may saturate the classifier into one class: then top-1 agreement is not measurable
    measurable = len(set(ref.argmax(1))) > 1
    expected = pytest.approx(np.mean(ref.argmax(1) == new.argmax(1))) if measurable else None
    assert rep["verification"]["top1_agreement"] == expected
    steps = np.abs(ref.astype(np.int64) - new.astype(np.int64))
    assert rep["verification"]["max_abs_diff_steps"] == steps.max()


def test_calibration_npz(conv_bn_int8, tmp_path):
    x = np.random.default_rng(0).normal(size=(10, 16, 16, 1)).astype(np.float32)
    np.savez(tmp_path / "cal.npz", x=x)
    data = conv_bn_int8.read_bytes()
    out, _ = recluster_model(data, ReclusterConfig(clusters=16))
    cal = calibration_set_from_files(data, tmp_path / "cal.npz", None, fit_uses_data=False, fit_samples=512, seed=0,
                                     stateful=False)
    v = verify(data, out, cal, VerifyOptions(samples=100))
    assert v.agreement.samples == 10 and v.inputs == "10 samples of cal.npz (the weight-space fit does not use data)"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["-k", "1"], "clusters must be an integer from 2 to 256"),
        (["-k", "999"], "clusters must be an integer from 2 to 256"),
        (["--op-rule", "NOT_AN_OP=4"], "unknown op type"),
        (["--rule", "foo"], "must look like"),
        (["--rule", "x=abc"], "neither an integer"),
        (["--config", "missing.toml"], "not found"),
        (["--calibration", "missing.npz"], "not found"),
    ],
)
def test_cli_bad_options_exit_2(conv_bn_int8, tmp_path, argv, message):
    proc = subprocess.run(
        [sys.executable, "-m", "toolchain", "recluster", str(conv_bn_int8), "-o", str(tmp_path / "o.tflite"), *argv],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o.tflite").exists()


def test_bad_config_key_refused(tmp_path):
    from toolchain.rewrite.config_file import load_recluster_config

    p = tmp_path / "c.toml"
    p.write_text("clusterz = 8\n")
    with pytest.raises(ConfigError, match="clusterz"):
        load_recluster_config(p)


def test_output_over_input_refused(conv_bn_int8, tmp_path):
    copy = tmp_path / "m.tflite"
    copy.write_bytes(conv_bn_int8.read_bytes())
    assert main(["recluster", str(copy), "-o", str(copy)]) == 2
    assert copy.read_bytes() == conv_bn_int8.read_bytes()


def test_min_top1_agreement_gate(conv_bn_int8, tmp_path, capsys):
    check = tmp_path / "check.npz"  # varied images: random int8 inputs saturate this classifier into one class
    np.savez(check, x=np.random.default_rng(0).normal(0, 1, (16, 16, 16, 1)).astype(np.float32))
    base = ["recluster", str(conv_bn_int8), "-k", "2", "--verify-data", str(check), "--fit", "keep"]
    assert main([*base, "-o", str(tmp_path / "free.tflite")]) == 0
    agreement = json.loads((tmp_path / "free.json").read_text())["verification"]["top1_agreement"]
    assert agreement < 1.0  # K=2 moves some argmax on these inputs: the gate has something to catch
    capsys.readouterr()
    assert main([*base, "-o", str(tmp_path / "pass.tflite"), "--min-top1-agreement", str(agreement)]) == 0
    assert main([*base, "-o", str(tmp_path / "gate.tflite"), "--min-top1-agreement", str(min(1.0, agreement + 0.05))]) == 5
    assert "below --min-top1-agreement" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["1.01", "-0.1", "nan", "inf", "abc"])
def test_min_top1_agreement_out_of_range_refused(conv_bn_int8, tmp_path, value):
    proc = subprocess.run([sys.executable, "-m", "toolchain", "recluster", str(conv_bn_int8), "-o",
                           str(tmp_path / "o.tflite"), "--min-top1-agreement", value],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "from 0 to 1" in proc.stderr
    assert not (tmp_path / "o.tflite").exists()


def test_transpose_conv_weights_found_and_reclustered(model_dir):
    import model_factory as mf

    path = model_dir / "transpose_conv_int8.tflite"
    if not path.exists():
        path.write_bytes(mf.convert_int8(mf.transpose_conv_model()))
    data = path.read_bytes()
    ws = {w.op: w for w in find_weight_tensors(read_model(data))}
    assert "TRANSPOSE_CONV" in ws
    tc = ws["TRANSPOSE_CONV"]
    assert tc.bias_tensor_index is not None and tc.size >= 64
    out, rep = recluster_model(data, ReclusterConfig(clusters=8))
    r = next(t for t in rep.tensors if t.op == "TRANSPOSE_CONV")
    assert r.action is TensorAction.REWRITTEN and r.distinct_after <= 8
    v = verify(data, out, None, VerifyOptions(samples=8))
    assert v.agreement.samples == 8 and v.agreement.mean_abs_diff_steps < 20
