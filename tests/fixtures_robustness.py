"""Models for the robustness tests (fuzzing, bad inputs, determinism), made with the real converter.

Import the fixtures into a test module with ``from fixtures_robustness import *``.
"""
from __future__ import annotations

import pytest

__all__ = ["int16x8_model", "fuzz_seeds_dir", "robustness_models_dir"]


@pytest.fixture(scope="session")
def robustness_models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("robustness_models")


def int16x8_bytes() -> bytes:
    """The conv+BN model in the converter's 16x8 mode: int16 activations, int8 weights, int64 biases."""
    import model_factory as mf
    import numpy as np
    import tensorflow as tf

    model = mf.conv_bn_model()
    rng = np.random.default_rng(0)

    def representative():
        for _ in range(16):
            yield [rng.normal(0, 1, (1, 16, 16, 1)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    conv.inference_input_type = tf.int16
    conv.inference_output_type = tf.int16
    return conv.convert()


@pytest.fixture(scope="session")
def int16x8_model(robustness_models_dir):
    path = robustness_models_dir / "int16x8.tflite"
    if not path.exists():
        path.write_bytes(int16x8_bytes())
    return path


@pytest.fixture(scope="session")
def fuzz_seeds_dir(robustness_models_dir, conv_bn_int8, depthwise_int8, dense_int8):
    """The fuzz worker's seeds: the small real int8 models of conftest."""
    import fuzz_mutators as fm

    return fm.write_seeds(
        robustness_models_dir / "seeds",
        {"conv_bn_int8": conv_bn_int8, "depthwise_int8": depthwise_int8, "dense_int8": dense_int8},
    )
