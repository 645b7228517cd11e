"""Keras model files are data (toolchain.training.keras_config): the stored config is read before Keras builds
anything, and a model holding code (Lambda layers, TensorFlow functions or ops of its choosing, custom
objects) is refused unless the user passes --trust-model-code.

The checks on hand-written configs need no TensorFlow; the end-to-end tests save real tf_keras models
(.h5 and .keras) whose Lambda layer touches a file when it runs, and load them through the one loader.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolchain.core.errors import ModelFormatError
from toolchain.training.keras_config import model_code

BUILTIN = {"InputLayer", "Dense", "Flatten", "Conv2D", "GlorotUniform", "Zeros", "ClusterWeights", "Policy"}.__contains__


def _layer(cls: str, config: dict | None = None, **extra) -> dict:
    return {"class_name": cls, "config": {"name": cls.lower(), **(config or {})}, **extra}


def _model(*layers: dict) -> dict:
    return {"class_name": "Functional", "config": {"name": "m", "layers": list(layers)}}


DENSE = _layer("Dense", {"kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
                         "dtype": {"class_name": "Policy", "config": {"name": "float32"}}})


@pytest.mark.parametrize("config", [
    _model(_layer("InputLayer"), _layer("Flatten"), DENSE),
    _model(_layer("ClusterWeights", {"layer": DENSE})),  # tfmot's wrapper around a built-in layer
    _model(_layer("TFOpLambda", {"function": "math.multiply"}), _layer("TFOpLambda", {"function": "nn.relu6"}),
           _layer("TFOpLambda", {"function": "reshape"}), _layer("SlicingOpLambda", {"function": "__operators__.getitem"})),
    {"module": "tf_keras.src.engine.functional", "class_name": "Functional", "registered_name": "Functional",
     "config": {"layers": [dict(_layer("Dense"), module="keras.layers", registered_name=None)]}},
])
def test_built_in_layers_and_pure_tf_functions_pass(config):
    assert model_code(config, BUILTIN) is None


@pytest.mark.parametrize("config, found", [
    (_model(_layer("Lambda", {"function": ["4wEAAA==", None, None], "function_type": "lambda"})), "Lambda layer"),
    (_model(_layer("Lambda", {"function": "os.system", "function_type": "function"})), "Lambda layer"),
    (_model(_layer("TFOpLambda", {"function": "io.write_file"})), "calling TensorFlow's 'io.write_file'"),
    (_model(_layer("TFOpLambda", {"function": "py_function"})), "calling TensorFlow's 'py_function'"),
    (_model(_layer("TensorFlowOpLayer", {"node_def": {"op": "WriteFile"}})), "TensorFlowOpLayer layer"),
    (_model(_layer("InstanceMethod", {"function": "numpy"})), "InstanceMethod layer"),
    (_model(_layer("MyLayer")), "a custom object 'MyLayer'"),
    (_model(DENSE, {"class_name": "Dense", "config": {}, "registered_name": "evil>Dense"}), "custom object 'evil>Dense'"),
    (_model(dict(_layer("Dense"), module="evil.layers")), "from module 'evil.layers'"),
    (_model(_layer("Dense", {"kernel_initializer": {"class_name": "MyInit", "config": {}}})), "custom object 'MyInit'"),
    (_model(_layer("Dense", {"activation": {"function_type": "lambda", "function": "..."}})), "a Python lambda"),
    (_model(_layer("ClusterWeights", {"layer": _layer("Lambda", {"function_type": "lambda"})})), "Lambda layer"),
])
def test_code_anywhere_in_the_config_is_found(config, found):
    assert found in (model_code(config, BUILTIN) or "")


# --------------------------------------------------------------------------- real files (TensorFlow)


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory) -> dict[str, Path]:
    """Real tf_keras models: a plain one and one whose Lambda touches ./pwned when it runs, as .h5 and .keras."""
    from toolchain.training.tf_env import import_keras

    keras = import_keras()
    d = tmp_path_factory.mktemp("keras_files")
    out = {}
    cwd = os.getcwd()
    os.chdir(d)  # building the Lambda layer calls it once: its ./pwned lands here, not in the checkout
    try:
        for kind in ("plain", "lambda"):
            inp = keras.Input((8, 8, 1))
            x = keras.layers.Flatten()(inp)
            if kind == "lambda":
                x = keras.layers.Lambda(lambda t: (__import__("pathlib").Path("pwned").touch(), t)[1])(x)
            model = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))
            for suffix in (".h5", ".keras"):
                out[kind + suffix] = d / f"{kind}{suffix}"
                model.save(out[kind + suffix])
    finally:
        os.chdir(cwd)
    return out


@pytest.mark.tf
@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_a_lambda_is_refused_before_it_runs_and_runs_only_when_trusted(keras_files, suffix, tmp_path, monkeypatch):
    from toolchain.training.keras_io import load_keras_model

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelFormatError, match="holds a Lambda layer 'lambda' \\(Python code\\).*--trust-model-code"):
        load_keras_model(keras_files["lambda" + suffix])
    assert not os.path.exists("pwned")
    assert load_keras_model(keras_files["plain" + suffix]) is not None
    load_keras_model(keras_files["lambda" + suffix], trust_model_code=True)  # the user's word: the code runs
    assert os.path.exists("pwned")


@pytest.mark.tf
def test_a_weights_only_h5_is_refused_in_one_line(tmp_path):
    import h5py

    from toolchain.training.keras_config import read_model_config

    path = tmp_path / "weights.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("w", data=[1.0, 2.0])
    with pytest.raises(ModelFormatError, match="holds no model config"):
        read_model_config(path)
