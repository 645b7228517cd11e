"""Fixtures for the training-side tests: small real models trained on real bundled data.

Test modules import these fixtures by name. Several modules importing the same
fixture would each get their own pytest definition, so the expensive results are
memoised here per process: a session trains each model once.
"""
from __future__ import annotations

import io
import os
from contextlib import redirect_stdout
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np
import pytest

from toolchain.cli import main

_MEMO: dict[str, object] = {}


def _once(key: str, build):
    if key not in _MEMO:
        _MEMO[key] = build()
    return _MEMO[key]


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``toolchain.cli.main(argv)`` -> (exit code, stdout)."""
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(argv)
    return rc, buf.getvalue()


def digits_convnet_model(seed: int = 0, epochs: int = 6):
    """Conv(no bias)-BN-ReLU x2 and a dense head, trained on scikit-learn's digits in seconds."""
    from toolchain.training.datasets import load_digits
    from toolchain.training.keras_training import compile_for_training
    from toolchain.training.tf_env import import_keras, seed_everything

    keras = import_keras()
    data = load_digits()
    seed_everything(seed)
    inp = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1")(inp)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="conv2")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    out = keras.layers.Dense(10, name="dense")(x)
    model = keras.Model(inp, out, name="digits_convnet")
    compile_for_training(model, 3e-3)
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def training_dir(tmp_path_factory) -> Path:
    return _once("training_dir", lambda: tmp_path_factory.mktemp("training"))


@pytest.fixture(scope="session")
def digits_convnet(training_dir) -> Path:
    """Path of a trained float .keras classifier for 8x8x1 digits (BatchNorm, no conv bias)."""

    def build():
        from toolchain.training.keras_io import save_keras_model

        path = training_dir / "digits_convnet.keras"
        save_keras_model(digits_convnet_model(), path)
        return path

    return _once("digits_convnet", build)


CLUSTERS = 16


@pytest.fixture(scope="session")
def clustered_digits(training_dir, digits_convnet) -> Path:
    """digits_convnet clustered to 16 values per layer by ``toolchain finetune`` (1 epoch)."""

    def build():
        out = training_dir / "digits_k16.keras"
        rc, _ = run_cli(["finetune", str(digits_convnet), "--data", "digits", "-o", str(out),
                         "--clusters", str(CLUSTERS), "--epochs", "1", "--quiet"])
        assert rc == 0
        return out

    return _once("clustered_digits", build)


@pytest.fixture(scope="session")
def int8_digits(training_dir, clustered_digits) -> Path:
    """clustered_digits converted by ``toolchain quantize`` (per-channel, 100 calibration samples)."""

    def build():
        out = training_dir / "digits_k16_int8.tflite"
        rc, _ = run_cli(["quantize", str(clustered_digits), "--data", "digits", "-o", str(out),
                         "--representative-samples", "100"])
        assert rc == 0
        return out

    return _once("int8_digits", build)


@pytest.fixture(scope="session")
def example_build(tmp_path_factory):
    """The bundled example, really trained once per session (about half a minute)."""

    def build():
        from toolchain.training.example import build_example

        return build_example(tmp_path_factory.mktemp("example"), quiet=True)

    return _once("example_build", build)


def write_npz(path: Path, **arrays) -> Path:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def digits_arrays() -> dict[str, np.ndarray]:
    """The digits split as plain arrays, for building good and bad .npz files."""
    from toolchain.training.datasets import load_digits

    d = load_digits()
    return {"x_train": d.x_train, "y_train": d.y_train, "x_test": d.x_test, "y_test": d.y_test}
