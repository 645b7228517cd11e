"""A corpus of real architectures, built in code and converted with the real TFLite converter.

What third-party models bring that the toolchain's own examples do not: depthwise stacks and
a softmax (MobileNetV2), residual adds, state in resource variables with a CALL_ONCE initialiser,
16-bit activations, an operator Vela leaves to the CPU, and a WHILE loop over subgraphs.
Each builder returns the .tflite bytes; every model is tiny (seconds to convert, batch fixed to 1).
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import model_factory as mf
import numpy as np


def _keras():
    return mf._keras()


def _live_batch_norm(model, shape: tuple[int, ...], seed: int = 0) -> None:
    """Set every BatchNormalization's moving statistics from one batch (data-dependent init).

    An untrained network with the default statistics (mean 0, variance 1) lets its activations
    vanish through 50 layers: its output would not depend on its input, and nothing could be verified.
    """
    x = np.random.default_rng(seed).normal(0, 1, (8, *shape)).astype(np.float32)
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            layer.momentum = 0.0  # one training-mode call replaces the moving averages by the batch's
    model(x, training=True)


def mobilenet_v2() -> bytes:
    """keras.applications MobileNetV2, alpha 0.35, 96x96 RGB, 10 classes with softmax, untrained."""
    keras = _keras()
    keras.utils.set_random_seed(0)
    inp = keras.Input((96, 96, 3), batch_size=1)
    model = keras.applications.MobileNetV2(input_tensor=inp, alpha=0.35, weights=None, classes=10)
    _live_batch_norm(model, (96, 96, 3))
    return mf.convert_int8(model, samples=4)


def resnet_like() -> bytes:
    """Two residual stages (an identity and a projection shortcut: ADD), global pooling, dense."""
    keras = _keras()
    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3), batch_size=1)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="stem")(inp)
    for filters, stride in ((16, 1), (32, 2)):
        y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", activation="relu")(x)
        y = keras.layers.Conv2D(filters, 3, padding="same")(y)
        if stride != 1:
            x = keras.layers.Conv2D(filters, 1, strides=stride, name=f"project{filters}")(x)
        x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return mf.convert_int8(keras.Model(inp, keras.layers.Dense(10, name="head")(x)), samples=16)


FRAME_FEATURES = 20
STREAM_FRAMES = 5


def streaming_kws() -> bytes:
    """Streaming keyword spotting: a ring buffer of frames in a tf.Variable (resource variable), updated
    per call; two 1-D convolutions and a dense layer over it. Converted with resource variables enabled:
    VAR_HANDLE / READ_VARIABLE / ASSIGN_VARIABLE in subgraph 0, the initialiser in a CALL_ONCE subgraph."""
    import tensorflow as tf

    rng = np.random.default_rng(0)

    class Streaming(tf.Module):
        def __init__(self):
            super().__init__()
            self.frames = tf.Variable(tf.zeros([1, STREAM_FRAMES, FRAME_FEATURES]), trainable=False, name="frames")
            self.w1 = tf.constant(rng.normal(0, 0.25, (3, FRAME_FEATURES, 32)).astype(np.float32))
            self.w2 = tf.constant(rng.normal(0, 0.2, (3, 32, 32)).astype(np.float32))
            self.w3 = tf.constant(rng.normal(0, 0.3, (32, 12)).astype(np.float32))
            self.b3 = tf.constant(rng.normal(0, 0.1, (12,)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([1, 1, FRAME_FEATURES], tf.float32)])
        def __call__(self, frame):
            buf = tf.concat([self.frames[:, 1:, :], frame], axis=1)
            self.frames.assign(buf)
            x = tf.nn.relu(tf.nn.conv1d(buf, self.w1, stride=1, padding="VALID"))
            x = tf.nn.relu(tf.nn.conv1d(x, self.w2, stride=1, padding="VALID"))
            return tf.matmul(tf.reshape(x, [1, 32]), self.w3) + self.b3

    module = Streaming()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([module.__call__.get_concrete_function()], module)
    conv.experimental_enable_resource_variables = True
    return _int8(conv, (1, 1, FRAME_FEATURES))


def conv_16x8() -> bytes:
    """Conv + BN stack quantized 16x8: int16 activations, int8 weights."""
    return mf.convert_int16x8(mf.conv_bn_model(), samples=16)


def gather_on_cpu() -> bytes:
    """Convolutions around a GATHER (a channel shuffle), which Vela leaves to the CPU on Ethos-U55 and -U85."""
    import tensorflow as tf

    keras = _keras()
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 4), batch_size=1)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c1")(inp)
    x = keras.layers.Lambda(lambda t: tf.gather(t, list(range(15, -1, -1)), axis=3), name="shuffle")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return mf.convert_int8(keras.Model(inp, keras.layers.Dense(6, name="head")(x)), samples=16)


def concat_split_by_cpu() -> bytes:
    """Two branches concatenated, one through a GATHER (CPU): Vela writes the CONCATENATION's output in
    slices from two ethos-u operators, one before and one after the GATHER."""
    import tensorflow as tf

    keras = _keras()
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 4), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inp)
    a = keras.layers.Conv2D(8, 1, name="a")(x)
    b = keras.layers.Lambda(lambda t: tf.gather(t, list(range(7, -1, -1)), axis=3), name="shuffle")(x)
    b = keras.layers.Conv2D(8, 1, name="b")(b)
    return mf.convert_int8(keras.Model(inp, keras.layers.Concatenate(axis=3)([a, b])), samples=16)


def while_loop() -> bytes:
    """A dense layer applied three times in a tf.while_loop: WHILE with cond and body subgraphs."""
    import tensorflow as tf

    rng = np.random.default_rng(0)

    class Loop(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.constant(rng.normal(0, 0.3, (16, 16)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([1, 16], tf.float32)])
        def __call__(self, x):
            def body(i, h):
                return i + 1, tf.nn.relu(tf.matmul(h, self.w)) + 0.1 * h

            _, y = tf.while_loop(lambda i, h: i < 3, body, [tf.constant(0), x])
            return y

    module = Loop()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([module.__call__.get_concrete_function()], module)
    return _int8(conv, (1, 16))


def _int8(conv, shape: tuple[int, ...], samples: int = 32) -> bytes:
    import tensorflow as tf

    rng = np.random.default_rng(1)

    def representative():
        for _ in range(samples):
            yield [rng.normal(0, 1, shape).astype(np.float32)]

    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


BUILDERS = {
    "mobilenet_v2": mobilenet_v2,
    "resnet_like": resnet_like,
    "streaming_kws": streaming_kws,
    "conv_16x8": conv_16x8,
    "gather_on_cpu": gather_on_cpu,
    "while_loop": while_loop,
}
