"""The bundled example: really trained on the bundled MNIST digits (once per session), cached, >= 97%."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from fixtures_training import example_build, run_cli  # noqa: F401  (pytest fixtures)

from toolchain.training.datasets import load_mnist
from toolchain.training.example import (
    MIN_ACCURACY,
    ExampleConfig,
    _cached,
    build_example,
    cache_key,
)

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def test_example_reaches_97_percent_on_its_test_split(example_build):
    from toolchain.training.keras_io import keras_accuracy, load_keras_model

    assert not example_build.reused
    d = load_mnist()
    model = load_keras_model(example_build.model_path)
    accuracy = keras_accuracy(model, d.x_test, d.y_test)  # measured again, not read from the JSON
    assert accuracy >= MIN_ACCURACY == 0.97
    assert example_build.float_accuracy == pytest.approx(accuracy)
    summary = json.loads(example_build.summary_path.read_text())
    assert summary["result"]["float_accuracy"] == pytest.approx(accuracy)
    assert summary["data"]["name"] == "mnist" and summary["result"]["test_samples"] == 1000
    # BatchNorm with momentum 0.9 behind bias-less convolutions: the case BN folding matters for
    bns = [l for l in model.layers if l.__class__.__name__ == "BatchNormalization"]
    convs = [l for l in model.layers if l.__class__.__name__ == "Conv2D"]
    assert len(bns) == len(convs) == 3
    assert all(bn.momentum == 0.9 for bn in bns) and not any(c.use_bias for c in convs)


def test_rerun_reuses_the_cache(example_build, capsys):
    before = example_build.model_path.read_bytes()
    again = build_example(example_build.model_path.parent)
    assert again.reused and again.elapsed_s < 10
    assert again.float_accuracy == example_build.float_accuracy
    assert example_build.model_path.read_bytes() == before
    rc, stdout = run_cli(["example", "-o", str(example_build.model_path.parent)])
    assert rc == 0 and "reused the cached build" in stdout and "example.keras" in stdout


def test_cache_is_refused_when_the_model_changed(example_build, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(example_build.model_path.parent, copy)
    key = cache_key(load_mnist(), ExampleConfig())
    assert _cached(copy, key) is not None
    assert _cached(copy, "another-key") is None
    with open(copy / "example.keras", "ab") as fh:
        fh.write(b"\0")
    assert _cached(copy, key) is None


def test_example_clustered_and_quantized_shows_the_problem(example_build, tmp_path):
    """K=16 in Keras; more than 16 distinct int8 values in every folded conv tensor after conversion."""
    from toolchain.tflite.graph import find_weight_tensors, tensor_values
    from toolchain.tflite.model_io import read_model

    clustered, int8 = tmp_path / "k16.keras", tmp_path / "k16.tflite"
    rc, _ = run_cli(["finetune", str(example_build.model_path), "--data", "mnist", "-o", str(clustered),
                     "--clusters", "16", "--epochs", "1", "--quiet"])
    assert rc == 0
    rc, _ = run_cli(["quantize", str(clustered), "--data", "mnist", "-o", str(int8), "--representative-samples", "100"])
    assert rc == 0
    result = json.loads((tmp_path / "k16.tflite.json").read_text())["result"]
    assert result["int8_accuracy"] >= MIN_ACCURACY
    assert abs(result["int8_accuracy"] - result["float_accuracy"]) <= 0.02
    model = read_model(int8.read_bytes())
    convs = [w for w in find_weight_tensors(model) if w.op == "CONV_2D"]
    assert len(convs) == 3
    for w in convs:
        q = tensor_values(model, model.subgraphs[0].tensors[w.tensor_index])
        assert np.unique(q).size > 16, w.name
