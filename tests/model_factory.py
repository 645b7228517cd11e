"""Small real int8 models made with the TFLite converter, built in code for the tests."""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def _keras():
    import tf_keras as keras  # legacy Keras 2, as tfmot requires

    return keras


def conv_bn_model(seed: int = 0, input_hw: int = 16, channels: int = 16):
    """Conv+BatchNorm (folded by the converter, quantized per channel), pooling, dense."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((input_hw, input_hw, 1), batch_size=1)
    x = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False, name="conv1")(inp)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(channels * 2, 3, strides=2, padding="same", use_bias=False, name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(10, name="dense")(x)
    model = keras.Model(inp, out)
    _randomise_bn(model, seed)
    return model


def depthwise_model(seed: int = 0, input_hw: int = 16):
    keras = _keras()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((input_hw, input_hw, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.Conv2D(16, 1, name="pw")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(4, name="head")(x)
    return keras.Model(inp, out)


def pool_act_model(seed: int = 0, input_hw: int = 16):
    """Convolutions each followed by a PLE kernel (max pooling, sigmoid, leaky ReLU), then a global mean, dense."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((input_hw, input_hw, 3), batch_size=1)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", name="conv2")(x)
    x = keras.layers.Activation("sigmoid", name="gate")(x)
    x = keras.layers.Conv2D(32, 1, name="conv3")(x)
    x = keras.layers.LeakyReLU(0.1, name="leaky")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(10, name="dense")(x)
    return keras.Model(inp, out)


def dense_model(seed: int = 0, features: int = 64):
    keras = _keras()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((features,), batch_size=1)
    x = keras.layers.Dense(128, activation="relu", name="fc1")(inp)
    x = keras.layers.Dense(64, activation="relu", name="fc2")(x)
    out = keras.layers.Dense(10, name="fc3")(x)
    return keras.Model(inp, out)


def _randomise_bn(model, seed: int) -> None:
    # Non-trivial BN statistics (including negative gammas) so folding really changes scales.
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            n = layer.get_weights()[0].shape[0]  # gamma's length: every statistic is replaced
            gamma = rng.uniform(0.3, 2.0, n) * np.where(rng.random(n) < 0.2, -1.0, 1.0)
            layer.set_weights([gamma, rng.normal(0, 0.1, n), rng.normal(0, 0.1, n), rng.uniform(0.2, 3.0, n)])


def _quantizing_converter(model, seed: int, samples: int):
    """The real converter with full-integer quantization, calibrated on seeded N(0, 1) inputs."""
    import tensorflow as tf

    shape = [1] + list(model.input_shape[1:])
    rng = np.random.default_rng(seed)

    def representative():
        for _ in range(samples):
            yield [rng.normal(0, 1, shape).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    return conv


def convert_int8(model, seed: int = 0, samples: int = 32, per_tensor: bool = False) -> bytes:
    import tensorflow as tf

    conv = _quantizing_converter(model, seed, samples)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    if per_tensor:
        conv._experimental_disable_per_channel = True
    return conv.convert()


def convert_float(model) -> bytes:
    import tensorflow as tf

    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def convert_float16_sparse(model, sparsity: float = 0.8, seed: int = 0) -> bytes:
    """A float model as mobile models ship: most weights zeroed (seeded), stored sparse in float16, so the
    converter writes DENSIFY and DEQUANTIZE operators in front of the layers."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws and ws[0].ndim >= 2:
            ws[0] = np.where(rng.random(ws[0].shape) < sparsity, 0.0, ws[0]).astype(ws[0].dtype)
            layer.set_weights(ws)
    c = tf.lite.TFLiteConverter.from_keras_model(model)
    c.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY, tf.lite.Optimize.DEFAULT]
    c.target_spec.supported_types = [tf.float16]
    return c.convert()


def transpose_conv_model(seed: int = 0):
    """Conv, then a Conv2DTranspose (TRANSPOSE_CONV: weights are input 1, bias input 3)."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 4), batch_size=1)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="enc")(inp)
    x = keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same", name="up")(x)
    out = keras.layers.Conv2D(2, 1, name="head")(x)
    model = keras.Model(inp, out)
    up = model.get_layer("up")
    k, b = up.get_weights()
    up.set_weights([k, np.random.default_rng(seed).normal(0, 0.1, b.shape)])  # a real bias to rescale
    return model


def convert_int16x8(model, seed: int = 0, samples: int = 32) -> bytes:
    """16x8 quantization: int16 activations (zero point 0), int8 weights, int64 biases."""
    import tensorflow as tf

    conv = _quantizing_converter(model, seed, samples)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    conv.inference_input_type = tf.int16
    conv.inference_output_type = tf.int16
    return conv.convert()
