"""Models for the compile tests, made with the real TFLite converter (session-scoped, cached).

Import the fixtures into a test module with ``from fixtures_compile import *``.
"""
from __future__ import annotations

import pytest

__all__ = ["compile_models_dir", "few_values_int8", "gather_int8", "hybrid_int8"]


@pytest.fixture(scope="session")
def compile_models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("compile_models")


def _keras():
    import model_factory as mf

    return mf._keras()


def _gather_model():
    """Convolutions around a GATHER, which Vela leaves to the CPU on Ethos-U55: a partly-CPU model."""
    import tensorflow as tf

    keras = _keras()
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 4), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", name="c2")(x)
    x = keras.layers.Lambda(lambda t: tf.gather(t, [3, 1, 0, 2, 5, 4, 7, 6], axis=3), name="shuffle")(x)
    x = keras.layers.Conv2D(8, 1, name="c3")(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(4, name="d")(x)
    return keras.Model(inp, out)


def _hybrid_bytes() -> bytes:
    """Dynamic-range quantization (no representative data): int8 weights, float activations.

    The common mistake that makes Vela leave every operator on the CPU.
    """
    import model_factory as mf
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(mf.dense_model())
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    return conv.convert()


@pytest.fixture(scope="session")
def gather_int8(compile_models_dir):
    import model_factory as mf

    path = compile_models_dir / "gather_int8.tflite"
    if not path.exists():
        path.write_bytes(mf.convert_int8(_gather_model()))
    return path


@pytest.fixture(scope="session")
def hybrid_int8(compile_models_dir):
    path = compile_models_dir / "hybrid_int8.tflite"
    if not path.exists():
        path.write_bytes(_hybrid_bytes())
    return path


def _few_values_model(values: int = 8, seed: int = 0):
    """Dense layers whose float weights take only ``values`` distinct values (a clustered model's shape)."""
    import model_factory as mf
    import numpy as np

    model = mf.dense_model(seed=seed)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.get_weights():
            kernel, bias = layer.get_weights()
            centroids = np.linspace(-0.2, 0.2, values)
            layer.set_weights([rng.choice(centroids, size=kernel.shape).astype(np.float32), bias])
    return model


@pytest.fixture(scope="session")
def few_values_int8(compile_models_dir):
    """Per-tensor int8: every weight tensor keeps its 8 distinct values after conversion."""
    import model_factory as mf

    path = compile_models_dir / "few_values_int8.tflite"
    if not path.exists():
        path.write_bytes(mf.convert_int8(_few_values_model(), per_tensor=True))
    return path
