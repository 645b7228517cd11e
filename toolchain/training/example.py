"""The bundled example: a small ConvNet with BatchNorm trained on the bundled MNIST digits.

BatchNorm is there on purpose: the converter folds it into the convolutions, and
that folding plus per-channel quantization is what multiplies the distinct int8
values of a clustered model (docs/training.md). Momentum 0.9 because the default 0.99
leaves the moving statistics unusable after a short training run.

The model is built with a dynamic batch for training; ``quantize`` converts it
through a batch-1 concrete function. Results are cached: a rerun with the same
recipe, data and tool versions reuses the saved model.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ConfigError, ToolError
from ..core.fileio import (
    atomic_write_bytes,
    atomic_write_json,
    sha256_bytes,
    sha256_file,
)
from .datasets import Dataset, load_mnist
from .finetune import summary_path
from .keras_io import keras_accuracy, keras_model_bytes
from .keras_training import compile_for_training, epoch_line_callback
from .tf_env import import_keras, import_tf, seed_everything, tool_versions

# Bump when the architecture or training procedure changes: it invalidates cached builds.
RECIPE_VERSION = 1
DEFAULT_DIR = Path("build") / "example"
MODEL_FILE = "example.keras"
MIN_ACCURACY = 0.97  # the example's promise; build_example fails loudly below it


@dataclass(frozen=True)
class ExampleConfig:
    filters: tuple[int, int, int] = (16, 32, 32)
    epochs: int = 12
    peak_learning_rate: float = 2e-3  # cosine-decayed to 0 over the run
    batch_size: int = 32
    max_shift_px: int = 2  # random translation of training digits (4,000 images are few)
    dropout: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.max_shift_px < 0 or not 0 <= self.dropout < 1:
            raise ConfigError(f"invalid example config {self}")


@dataclass(frozen=True)
class ExampleResult:
    model_path: Path
    summary_path: Path
    float_accuracy: float  # test split of the bundled mnist, 0..1
    train_samples: int
    test_samples: int
    parameters: int
    reused: bool  # True when the cached build was taken as is
    elapsed_s: float = field(compare=False)


def build_model(config: ExampleConfig = ExampleConfig()):
    """Conv-BN-ReLU-pool x2, conv-BN-ReLU, flatten, dropout, dense logits (28x28x1 -> 10)."""
    keras = import_keras()
    f1, f2, f3 = config.filters
    inp = keras.Input((28, 28, 1), name="image")
    x = inp
    for i, filters in enumerate((f1, f2, f3), start=1):
        # No bias: BatchNorm's beta replaces it (and this is the case tfmot's per-channel check misses).
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        if i < 3:
            x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    out = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inp, out, name="example_convnet")


def _augmented_batches(data: Dataset, config: ExampleConfig):
    """Training batches, reshuffled and randomly shifted each epoch (seeded, deterministic).

    The augmentation lives in the input pipeline, not in the model, so the saved model
    holds no preprocessing layers that the converter would have to carry.
    """
    tf = import_tf()
    m = config.max_shift_px
    h, w, c = data.sample_shape

    def shift(image, label):
        padded = tf.pad(image, [[m, m], [m, m], [0, 0]])
        return tf.image.random_crop(padded, [h, w, c], seed=config.seed), label

    ds = tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
    ds = ds.shuffle(len(data.x_train), seed=config.seed, reshuffle_each_iteration=True)
    if m:
        ds = ds.map(shift)  # sequential map: deterministic order
    return ds.batch(config.batch_size)


def train_example(data: Dataset, config: ExampleConfig = ExampleConfig(), quiet: bool = False):
    """A freshly trained example model (deterministic for a given seed)."""
    keras = import_keras()
    seed_everything(config.seed)
    model = build_model(config)
    steps = config.epochs * int(np.ceil(len(data.x_train) / config.batch_size))
    compile_for_training(model, keras.optimizers.schedules.CosineDecay(config.peak_learning_rate, steps))
    model.fit(
        _augmented_batches(data, config),
        epochs=config.epochs,
        verbose=0 if quiet else 2,  # one line per epoch: a progress bar per epoch would be noise here
        callbacks=[epoch_line_callback(config.epochs)] if quiet else [],
    )
    return model


def cache_key(data: Dataset, config: ExampleConfig) -> str:
    """Identifies everything that determines the trained model."""
    ident = {
        "recipe_version": RECIPE_VERSION,
        "config": asdict(config),
        "data_sha256": data.fingerprint(),
        "tool_versions": tool_versions(),
    }
    return sha256_bytes(json.dumps(ident, sort_keys=True).encode())


def _cached(out_dir: Path, key: str) -> dict[str, Any] | None:
    model_path, meta_path = out_dir / MODEL_FILE, summary_path(out_dir / MODEL_FILE)
    if not (model_path.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if meta.get("cache_key") != key or meta.get("output_model", {}).get("sha256") != sha256_file(model_path):
        return None
    return meta


def build_example(
    out_dir: str | Path = DEFAULT_DIR, config: ExampleConfig = ExampleConfig(), force: bool = False, quiet: bool = False
) -> ExampleResult:
    """Train (or reuse) the example; writes DIR/example.keras and DIR/example.keras.json."""
    t0 = time.perf_counter()
    out = Path(out_dir)
    model_path = out / MODEL_FILE
    data = load_mnist()
    key = cache_key(data, config)
    meta = None if force else _cached(out, key)
    if meta is not None:
        r = meta["result"]
        return ExampleResult(model_path, summary_path(model_path), r["float_accuracy"], r["train_samples"],
                             r["test_samples"], r["parameters"], True, time.perf_counter() - t0)
    model = train_example(data, config, quiet=quiet)
    accuracy = keras_accuracy(model, data.x_test, data.y_test)
    if accuracy < MIN_ACCURACY:
        # The example's promise is broken: say so rather than hand on a bad model.
        raise ToolError(
            f"training the example reached only {accuracy:.2%} test accuracy, below the promised {MIN_ACCURACY:.0%}"
        )
    model_bytes = keras_model_bytes(model, ".keras")
    atomic_write_bytes(model_path, model_bytes)
    result = {
        "float_accuracy": accuracy,
        "train_samples": len(data.x_train),
        "test_samples": len(data.x_test),
        "parameters": int(model.count_params()),
    }
    atomic_write_json(
        summary_path(model_path),
        {
            "stage": "example",
            "cache_key": key,
            "recipe_version": RECIPE_VERSION,
            "config": asdict(config),
            "data": data.describe(),
            "result": result,
            "output_model": {"file": MODEL_FILE, "sha256": sha256_bytes(model_bytes), "bytes": len(model_bytes)},
            "tool_versions": tool_versions(),
        },
    )
    return ExampleResult(model_path, summary_path(model_path), accuracy, result["train_samples"],
                         result["test_samples"], result["parameters"], False, time.perf_counter() - t0)
