"""toolchain.ptq: a float .tflite to full int8 with ai-edge-quantizer, through the verb and through deploy.

Real parts: the TF converter makes the float model (float16 sparse weights, as mobile models ship), the
real ai-edge-quantizer quantizes it, LiteRT runs both, Vela compiles the deploy.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from toolchain.core.errors import InputError
from toolchain.ptq.config import IoType, PtqConfig
from toolchain.ptq.quantize import quantize_tflite
from toolchain.targets.npu_model import load_npu_model
from toolchain.tflite import interpreter as rt
from toolchain.tflite.graph import BuiltinOp, op_code
from toolchain.tflite.model_io import read_model

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def float_model(model_dir):
    import model_factory as mf

    path = model_dir / "conv_bn_sparse_fp16.tflite"
    if not path.exists():
        path.write_bytes(mf.convert_float16_sparse(mf.conv_bn_model()))
    return path


@pytest.fixture(scope="module")
def calibration(float_model, tmp_path_factory):
    spec = rt.input_specs(float_model.read_bytes())[0]
    path = tmp_path_factory.mktemp("cal") / "cal.npz"
    np.savez(path, x=np.random.default_rng(1).normal(0, 1, (48, *spec.shape[1:])).astype(np.float32))
    return path


def test_quantized_model_is_full_int8_and_follows_the_float_model(float_model, calibration, tmp_path):
    out, report = quantize_tflite(float_model.read_bytes(), float_model.name, calibration, False,
                                  PtqConfig(calibration_samples=32, check_samples=16))
    (tmp_path / "q.tflite").write_bytes(out)
    load_npu_model(tmp_path / "q.tflite")  # the checks every int8 input passes
    ins, outs = rt.input_specs(out), rt.output_specs(out)
    assert all(s.dtype == np.int8 and s.scale > 0 for s in ins + outs)
    assert report.calibration.held_out and len(report.calibration.rows) == 32
    f = report.fidelity
    assert f is not None and f.samples == 16 and report.fidelity_not_run is None
    assert f.sqnr_db is not None and f.sqnr_db > 15.0  # int8 of a small conv net on its calibration distribution
    assert report.prep.densified > 0 and report.prep.float16_folded > 0
    assert not report.float_operators


def test_float_io_keeps_float_inputs_and_outputs(float_model, calibration):
    out, report = quantize_tflite(float_model.read_bytes(), float_model.name, calibration, False,
                                  PtqConfig(calibration_samples=16, check_samples=8, io=IoType.FLOAT))
    assert all(s.dtype == np.float32 for s in rt.input_specs(out) + rt.output_specs(out))
    m = read_model(out)
    codes = [op_code(m, op) for op in m.subgraphs[0].operators]
    assert codes[0] == BuiltinOp.QUANTIZE and codes[-1] == BuiltinOp.DEQUANTIZE
    assert report.fidelity is not None and report.fidelity.sqnr_db > 15.0


def test_no_calibration_is_refused_and_synthetic_is_said(float_model):
    with pytest.raises(InputError, match="random inputs give meaningless activation ranges"):
        quantize_tflite(float_model.read_bytes(), float_model.name, None, False)
    _, report = quantize_tflite(float_model.read_bytes(), float_model.name, None, True,
                                PtqConfig(synthetic_samples=8, check_samples=4))
    assert report.synthetic and report.calibration.label.startswith("synthetic:")
    assert report.to_json()["synthetic_calibration"] is True


@pytest.mark.slow
def test_deploy_quantizes_a_float_model_first(float_model, tmp_path):
    build = tmp_path / "build"
    r = subprocess.run([sys.executable, "-m", "toolchain", "deploy", str(float_model), "--synthetic-calibration",
                        "--target", "ethos-u55-128", "--build-dir", str(build), "--verify-samples", "4"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    mdir = build / float_model.stem
    doc = json.loads((mdir / "ethos-u55-128" / "report" / "report.json").read_text())
    assert doc["entry"] == "float-tflite" and doc["models"]["before"]["file"] == "quantize/model_int8.tflite"
    q = doc["quantization"]
    assert q["synthetic_calibration"] and q["fidelity"]["outputs"]
    assert any(w.startswith("SYNTHETIC CALIBRATION") for w in doc["warnings"])
    md = (mdir / "ethos-u55-128" / "report" / "report.md").read_text()
    assert "## Quantization: float vs int8" in md and "SYNTHETIC CALIBRATION" in md
    assert "SYNTHETIC CALIBRATION" in (mdir / "index.html").read_text()
    assert "quantize (ai-edge-quantizer)" in r.stdout and "SYNTHETIC calibration" in r.stdout
