"""Models and cached fine-tuning for the Fashion-MNIST compression benchmark.

The two-conv ConvNet of the clustering paper's MNIST row (conv 32@5x5, pool, conv
64@5x5, pool, dense 1024, dense 10; 3.3M parameters) and the same with BatchNorm
(momentum 0.9: the default 0.99 needs far more steps to settle) after each convolution.
The converged float base models are benchmarks/base_models.py's (trained on all 60,000
training images); the fine-tunes, conversions and rewrites are cached under
build/bench/fashion_mnist/<recipe>/ with a small JSON sidecar holding how long each
took, so a rerun skips them and still reports their cost.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

import numpy as np
from common import CACHE

from toolchain.core.fileio import atomic_write_bytes, atomic_write_json
from toolchain.training.datasets import Dataset, validate_dataset

ROOT = CACHE / "fashion_mnist"


class Arch(Enum):
    CONVNET = "convnet"  # conv 32@5x5 + relu, pool, conv 64@5x5 + relu, pool, dense 1024 relu, dense 10
    CONVNET_BN = "convnet_bn"  # the same with a bias-free conv + BatchNorm(momentum 0.9) + relu


@dataclass(frozen=True)
class Recipe:
    """Everything after the base model that determines the cached models (its tag names the cache directory)."""

    finetune_epochs: int = 2  # tfmot clustering fine-tune
    finetune_train: int = 20_000  # images of the 60,000 training set used for the fine-tune
    finetune_batch: int = 64
    qat_epochs: int = 1  # cluster-preserving QAT after clustering
    qat_train: int = 5_000  # part of the fine-tune subset
    qat_batch: int = 64
    seed: int = 0

    @property
    def tag(self) -> str:
        return f"f{self.finetune_epochs}x{self.finetune_train}-q{self.qat_epochs}x{self.qat_train}-s{self.seed}"

    def to_dict(self) -> dict:
        return asdict(self)


def subsets(data: Dataset, recipe: Recipe) -> dict[str, Dataset]:
    """Seeded training subsets (nested: the QAT subset is part of the fine-tune one); full test set each."""
    order = np.random.default_rng(recipe.seed).permutation(len(data.x_train))

    def take(n: int, name: str) -> Dataset:
        idx = np.sort(order[:n])
        return validate_dataset(f"{data.name}[{name} {n}]", data.x_train[idx], data.y_train[idx], data.x_test, data.y_test)

    return {"finetune": take(recipe.finetune_train, "finetune"), "qat": take(recipe.qat_train, "qat")}


def build_model(arch: Arch):
    from toolchain.training.tf_env import import_keras

    keras = import_keras()
    bn = arch is Arch.CONVNET_BN
    inp = keras.Input((28, 28, 1), name="image")
    x = inp
    for i, filters in enumerate((32, 64), start=1):
        x = keras.layers.Conv2D(filters, 5, padding="same", use_bias=not bn,
                                activation=None if bn else "relu", name=f"conv{i}")(x)
        if bn:
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
            x = keras.layers.ReLU(name=f"relu{i}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(1024, activation="relu", name="fc1")(x)
    out = keras.layers.Dense(10, name="logits")(x)
    return keras.Model(inp, out, name=arch.value)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".bench.json")


def cached(path: Path) -> dict | None:
    """The sidecar of a cached artifact, or None when it (or its sidecar) is missing."""
    side = _sidecar(path)
    if path.is_file() and side.is_file():
        return json.loads(side.read_text())
    return None


def store(path: Path, data: bytes, info: dict) -> None:
    atomic_write_bytes(path, data)
    atomic_write_json(_sidecar(path), info)
