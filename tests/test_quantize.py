"""toolchain quantize: full-int8 conversion of real clustered models, measured with LiteRT."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures_training import (  # noqa: F401  (pytest fixtures)
    CLUSTERS,
    clustered_digits,
    digits_convnet,
    int8_digits,
    run_cli,
    training_dir,
)

from toolchain.core.errors import DataError, ExitCode, ModelFormatError
from toolchain.tflite.accuracy import evaluate_tflite
from toolchain.tflite.graph import (
    Granularity,
    TensorType,
    find_weight_tensors,
    tensor_values,
)
from toolchain.tflite.model_io import read_model
from toolchain.training.datasets import load_digits
from toolchain.training.quantize import representative_indices, weight_tensor_stats

pytestmark = pytest.mark.tf


def _summary(path: Path) -> dict:
    return json.loads(Path(str(path) + ".json").read_text())


def _keras_accuracy(path: Path) -> float:
    from toolchain.training.keras_io import keras_accuracy, load_keras_model

    d = load_digits()
    return keras_accuracy(load_keras_model(path), d.x_test, d.y_test)


def _conv_weights(tflite: bytes):
    model = read_model(tflite)
    for w in find_weight_tensors(model):
        if w.op == "CONV_2D":
            yield w, tensor_values(model, model.subgraphs[w.subgraph].tensors[w.tensor_index])


def test_full_int8_with_int8_io_and_batch_1(int8_digits):
    model = read_model(int8_digits.read_bytes())
    sg = model.subgraphs[0]
    (inp,), (out,) = [sg.tensors[i] for i in sg.inputs], [sg.tensors[i] for i in sg.outputs]
    assert inp.type == TensorType.INT8 and out.type == TensorType.INT8
    assert list(inp.shape) == [1, 8, 8, 1] and list(out.shape) == [1, 10]
    assert (inp.shapeSignature if inp.shapeSignature is not None else inp.shape)[0] == 1  # no dynamic batch
    weights = find_weight_tensors(model)
    assert {w.op for w in weights} == {"CONV_2D", "FULLY_CONNECTED"} and len(weights) == 3


def test_int8_accuracy_in_litert_is_within_2_points_of_float(int8_digits, clustered_digits):
    d = load_digits()
    float_acc = _keras_accuracy(clustered_digits)
    int8_acc = evaluate_tflite(int8_digits.read_bytes(), d.x_test, d.y_test)
    assert float_acc > 0.9
    assert abs(int8_acc - float_acc) <= 0.02
    result = _summary(int8_digits)["result"]
    assert result["float_accuracy"] == pytest.approx(float_acc)
    assert result["int8_accuracy"] == pytest.approx(int8_acc)
    assert result["representative_samples"] == 100 and result["test_samples"] == 359


def test_bn_folding_with_per_channel_scales_breaks_the_cluster_count(int8_digits, clustered_digits):
    """The problem this product exists for (docs/design.md), asserted so a TensorFlow change is noticed.

    Every Keras kernel holds <= K values; after BN folding and per-channel quantization
    each channel still holds <= K codes, but the conv tensors hold more than K, because
    each channel is scaled by its own largest centroid times its own BN factor.
    """
    from toolchain.training.keras_io import load_keras_model

    keras_model = load_keras_model(clustered_digits)
    assert all(np.unique(np.asarray(l.kernel)).size <= CLUSTERS for l in keras_model.layers if hasattr(l, "kernel"))
    convs = list(_conv_weights(int8_digits.read_bytes()))
    assert len(convs) == 2
    for w, q in convs:
        assert w.quantization.granularity is Granularity.PER_CHANNEL
        per_channel = np.moveaxis(q, w.channel_axis, 0).reshape(q.shape[w.channel_axis], -1)
        assert max(np.unique(row).size for row in per_channel) <= CLUSTERS
        assert np.unique(q).size > CLUSTERS, f"{w.name}: {np.unique(q).size} distinct int8 values"
    reported = {s.name: s.distinct_values for s in weight_tensor_stats(int8_digits.read_bytes())}
    assert reported == {s["name"]: s["distinct_values"] for s in _summary(int8_digits)["result"]["weight_tensors"]}


def test_quantize_rerun_is_byte_identical(int8_digits, clustered_digits, tmp_path):
    again = tmp_path / "again.tflite"
    rc, stdout = run_cli(["quantize", str(clustered_digits), "--data", "digits", "-o", str(again),
                          "--representative-samples", "100"])
    assert rc == 0
    assert again.read_bytes() == int8_digits.read_bytes()
    first, second = _summary(int8_digits), _summary(again)
    second["output_model"]["file"] = first["output_model"]["file"]
    assert first == second
    assert not re.search(r"elapsed|time|date|/tmp/", json.dumps(first))
    assert re.search(r"int8 \d+\.\d\d% \(LiteRT\)", stdout)


def test_representative_draw_is_seeded_and_bounded():
    a = representative_indices(1000, 50, seed=0)
    assert a.tolist() == representative_indices(1000, 50, seed=0).tolist()
    assert a.tolist() != representative_indices(1000, 50, seed=1).tolist()
    assert len(np.unique(a)) == 50 and representative_indices(40, 200, seed=0).tolist() == list(range(40))


def test_per_tensor_quantization(clustered_digits, tmp_path):
    out = tmp_path / "pt.tflite"
    rc, _ = run_cli(["quantize", str(clustered_digits), "--data", "digits", "-o", str(out), "--per-tensor",
                     "--representative-samples", "50"])
    assert rc == 0
    tflite = out.read_bytes()
    weights = find_weight_tensors(read_model(tflite))
    assert weights and all(w.quantization.granularity is Granularity.PER_TENSOR for w in weights)
    d = load_digits()
    assert abs(evaluate_tflite(tflite, d.x_test, d.y_test) - _keras_accuracy(clustered_digits)) <= 0.02
    # the dense layer has no BN to fold: one scale keeps its K values
    stats = {s.op: s for s in weight_tensor_stats(tflite)}
    assert stats["FULLY_CONNECTED"].distinct_values <= CLUSTERS
    summary = _summary(out)
    assert summary["config"]["per_tensor"] is True and summary["result"]["representative_samples"] == 50


def test_cluster_preserving_qat(clustered_digits, tmp_path):
    out = tmp_path / "cqat.tflite"
    rc, stdout = run_cli(["quantize", str(clustered_digits), "--data", "digits", "-o", str(out),
                          "--cluster-preserving-qat", "--qat-epochs", "1", "--epoch-lines",
                          "--representative-samples", "50"])
    assert rc == 0
    assert [l.split(":")[0] for l in stdout.splitlines() if l.startswith("epoch ")] == ["epoch 1/1"]
    tflite = out.read_bytes()
    for w, q in _conv_weights(tflite):  # tfmot's promise: at most K per channel
        per_channel = np.moveaxis(q, w.channel_axis, 0).reshape(q.shape[w.channel_axis], -1)
        assert max(np.unique(row).size for row in per_channel) <= CLUSTERS
    result = _summary(out)["result"]
    assert result["qat_float_accuracy"] is not None
    d = load_digits()
    assert result["int8_accuracy"] == pytest.approx(evaluate_tflite(tflite, d.x_test, d.y_test))
    assert abs(result["int8_accuracy"] - result["float_accuracy"]) <= 0.02


def test_bad_options_exit_2(capsys, clustered_digits, tmp_path):
    cases = [
        (["--per-tensor", "--cluster-preserving-qat"], "o.tflite", r"per-tensor quantization cannot be combined"),
        (["--representative-samples", "0"], "o.tflite", r"representative samples must be >= 1"),
        (["--preserve-sparsity"], "o.tflite", r"applies to cluster-preserving QAT only"),
        ([], "o.keras", r"must end in \.tflite"),
    ]
    for extra, name, message in cases:
        rc, _ = run_cli(["quantize", str(clustered_digits), "--data", "digits", "-o", str(tmp_path / name), *extra])
        err = capsys.readouterr().err
        assert rc == ExitCode.BAD_INPUT, err
        lines = [l for l in err.splitlines() if l.startswith("error:")]
        assert len(lines) == 1 and re.search(message, lines[0]), err
        assert not (tmp_path / name).exists()


# --- evaluate_tflite: the TensorFlow-free accuracy helper --------------------------------------------------


def test_evaluate_tflite_imports_no_tensorflow(int8_digits):
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from toolchain.training.datasets import load_digits\n"
        "from toolchain.tflite.accuracy import evaluate_tflite\n"
        "d = load_digits()\n"
        f"acc = evaluate_tflite(Path({str(int8_digits)!r}).read_bytes(), d.x_test, d.y_test)\n"
        "assert 0.9 < acc <= 1.0, acc\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')]\n"
        "assert not bad, bad[:3]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_evaluate_tflite_refuses_bad_input(int8_digits):
    d = load_digits()
    with pytest.raises(ModelFormatError):
        evaluate_tflite(b"TFL3" * 100, d.x_test, d.y_test)
    with pytest.raises(DataError, match=r"samples have shape \(28, 28, 1\) but the model expects \(8, 8, 1\)"):
        evaluate_tflite(int8_digits.read_bytes(), np.zeros((3, 28, 28, 1), np.float32), np.zeros(3))
    with pytest.raises(DataError, match="as many labels as samples"):
        evaluate_tflite(int8_digits.read_bytes(), d.x_test, d.y_test[:-1])
    # (N, 8, 8) samples are given the model's channel dimension
    assert evaluate_tflite(int8_digits.read_bytes(), d.x_test[..., 0], d.y_test) == pytest.approx(
        evaluate_tflite(int8_digits.read_bytes(), d.x_test, d.y_test))
