"""A verdict you can trust, end to end on real models (LiteRT, Vela): the check runs on samples the fit never
saw, a gate cannot pass on inputs that show nothing, and a model LiteRT cannot run still deploys.

- A K=2 rewrite whose agreement on varied inputs (measured here with LiteRT directly) is far below the
  gate, checked on inputs where the original's class never changes: exit 5, "not measurable".
- --verify-data: the printed agreement is the agreement on that file (measured here with LiteRT).
- A custom operator LiteRT has no kernel for: deploy goes on (palettise, compile, firmware, report),
  the verification says "not run: custom operator NAME", a gate exits 5 with that reason.
- deploy --verify-samples 0: no check, and a gate says it was skipped.
"""
from __future__ import annotations

import json
from pathlib import Path

import fuzz_mutators as fm
import numpy as np
import pytest
from fixtures_pipeline import deploy

from toolchain.cli import main

pytestmark = pytest.mark.tf  # the input models come from the TFLite converter


def _litert(model: Path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=model.read_bytes(),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    return interp


def _classes(model: Path, x: np.ndarray) -> np.ndarray:
    """Top-1 class per float sample, quantized with the input's own scale: independent of the toolchain."""
    interp = _litert(model)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zp = inp["quantization"]
    got = []
    for sample in x:
        q = np.clip(np.round(sample / scale) + zp, -128, 127).astype(np.int8).reshape(inp["shape"])
        interp.set_tensor(inp["index"], q)
        interp.invoke()
        got.append(int(np.argmax(interp.get_tensor(out["index"]))))
    return np.array(got)


def _images(n: int, seed: int, shape=(16, 16, 1)) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, *shape)).astype(np.float32)


def test_gate_exits_5_when_the_original_class_never_changes(conv_bn_int8, tmp_path, capsys):
    out = tmp_path / "k2.tflite"
    assert main(["recluster", str(conv_bn_int8), "-o", str(out), "-k", "2", "--no-verify", "-q"]) == 0
    varied = _images(200, seed=1)
    agreement = float(np.mean(_classes(conv_bn_int8, varied) == _classes(out, varied)))
    assert agreement < 0.9  # far below the gate of 0.99 on inputs that show it
    one = _images(1, seed=2)[0]
    same = (one + np.random.default_rng(3).normal(0, 0.01, (48, *one.shape))).astype(np.float32)
    assert len(set(_classes(conv_bn_int8, same))) == 1  # the original answers one class on all of them
    np.savez(tmp_path / "same.npz", x=same)
    rc = main(["recluster", str(conv_bn_int8), "-o", str(out), "-k", "2", "--verify-data", str(tmp_path / "same.npz"),
               "--min-top1-agreement", "0.99"])
    captured = capsys.readouterr()
    assert rc == 5 and "top-1 agreement is not measurable" in captured.err and "on every one of the 48" in captured.err
    # the rejected candidate's report goes beside the last good one (the --no-verify run's, kept)
    assert json.loads(out.with_suffix(".json").read_text())["verification"] is None
    ver = json.loads((tmp_path / "k2.rejected.json").read_text())["verification"]
    assert ver["top1_agreement"] is None and ver["informative"] is False and ver["evidence"] == "held_out"


def test_verify_data_agreement_is_measured_on_that_file(conv_bn_int8, tmp_path, capsys):
    check = _images(96, seed=5)
    np.savez(tmp_path / "check.npz", x=check, y=np.zeros(96, np.int64))
    np.savez(tmp_path / "cal.npz", x=_images(128, seed=6))
    out = tmp_path / "k4.tflite"
    assert main(["recluster", str(conv_bn_int8), "-o", str(out), "-k", "4", "--calibration", str(tmp_path / "cal.npz"),
                 "--verify-data", str(tmp_path / "check.npz")]) == 0
    text = capsys.readouterr().out
    ver = json.loads(out.with_suffix(".json").read_text())["verification"]
    before, after = _classes(conv_bn_int8, check), _classes(out, check)
    assert ver["samples"] == 96 and ver["inputs"] == "96 samples of check.npz (--verify-data)"
    assert ver["top1_agreement"] == pytest.approx(np.mean(before == after))
    assert ver["accuracy_before"] == pytest.approx(np.mean(before == 0))  # labels y: accuracy on them too
    assert "on 96 samples of check.npz (--verify-data)" in text and "weak evidence" not in text
    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["calibration"]["samples"] == 128  # the check has its own file: nothing held back


def test_held_back_check_without_a_check_file(conv_bn_int8, tmp_path, capsys):
    np.savez(tmp_path / "cal.npz", x=_images(300, seed=7))
    out = tmp_path / "k8.tflite"
    assert main(["recluster", str(conv_bn_int8), "-o", str(out), "-k", "8", "--calibration",
                 str(tmp_path / "cal.npz")]) == 0
    rep = json.loads(out.with_suffix(".json").read_text())
    assert rep["calibration"]["samples"] == 300 - 38  # one in eight (38) held back
    assert rep["verification"]["inputs"] == "38 held-back samples of cal.npz"
    assert rep["verification"]["samples"] == 38 and rep["verification"]["evidence"] == "held_out"
    assert "on 38 held-back samples of cal.npz" in capsys.readouterr().out


@pytest.fixture(scope="module")
def custom_op_model(tmp_path_factory, dense_int8) -> Path:
    """The dense model with its first operator replaced by a custom operator LiteRT has no kernel for."""
    path = tmp_path_factory.mktemp("custom") / "custom.tflite"
    path.write_bytes(fm.custom_op(dense_int8.read_bytes(), b"Convolution2DTransposeBias"))
    return path


def test_custom_operator_does_not_stop_deploy(custom_op_model, tmp_path):
    np.savez(tmp_path / "cal.npz", x=np.random.default_rng(0).normal(0, 1, (80, 64)).astype(np.float32))
    base = (str(custom_op_model), "--target", "ethos-u55-128", "--allow-cpu", "--build-dir", str(tmp_path / "b"),
            "--calibration", str(tmp_path / "cal.npz"))
    run = deploy(*base)
    assert run.rc == 0, run.stderr
    assert "not run: custom operator Convolution2DTransposeBias" in run.stdout
    mdir = tmp_path / "b" / "custom"
    doc = json.loads((mdir / "ethos-u55-128" / "report" / "report.json").read_text())
    assert doc["fidelity"]["status"] == "not_run"
    assert doc["fidelity"]["not_run"] == "custom operator Convolution2DTransposeBias"
    assert doc["recluster"]["calibration"]["objective"] == "weights"  # fell back to the weight-space fit
    assert any("LiteRT cannot run the model (custom operator Convolution2DTransposeBias)" in n
               for n in doc["recluster"]["data_notes"])
    assert (mdir / "palettise" / "palettes.json").is_file() and (mdir / "ethos-u55-128" / "firmware").is_dir()
    assert 'data-fidelity="not_run"' in (mdir / "index.html").read_text()
    gated = deploy(*base, "--min-top1-agreement", "0.5")
    assert gated.rc == 5 and "verification not run: custom operator Convolution2DTransposeBias" in gated.stderr


def test_a_calibration_file_that_is_not_there_is_an_error_even_when_unused(custom_op_model, tmp_path, capsys):
    """LiteRT cannot run the model, so its data goes unused: a wrong --calibration or --verify-data path is
    still exit 2, one line, and nothing is written."""
    for flag in ("--calibration", "--verify-data"):
        out = tmp_path / "out.tflite"
        rc = main(["recluster", str(custom_op_model), "-o", str(out), flag, str(tmp_path / "missing.npz")])
        assert rc == 2 and not out.exists()
        assert capsys.readouterr().err.strip() == f"error: calibration file not found: {tmp_path / 'missing.npz'}"


def test_verify_samples_zero_means_no_check(conv_bn_int8, tmp_path):
    base = (str(conv_bn_int8), "--target", "ethos-u55-128", "--build-dir", str(tmp_path / "b"), "--verify-samples", "0")
    run = deploy(*base, "--json")
    assert run.rc == 0, run.stderr
    assert run.json["fidelity"]["status"] == "unchecked"
    doc = json.loads((tmp_path / "b" / "conv_bn_int8" / "ethos-u55-128" / "report" / "report.json").read_text())
    assert doc["recluster"]["verification"] is None
    gated = deploy(*base, "--min-top1-agreement", "0.5")
    assert gated.rc == 5 and "which was skipped" in gated.stderr
